"""The checks of Chapter 4 teach: hints in steps, each naming the cause of the mistake made.

Beside tests/test_engine_bugs.py (every injected bug is caught): here a ✗ says *why*. The
two common slips of a backward rule (`=` for `+=`, a forgotten `* out.grad`) get different
messages; an output that does not record its inputs is named in 4.1 and 4.5; a slow or
recursive topological sort is stopped and named; the MNIST checks say "not done yet"
before they load any data.
"""

import sys
import time

import numpy as np
import pytest

from course.checks import engine as checks
from course.checks.engine import scalar
from tests.check_cases import assert_hint_grows
from tests.test_engine_bugs import (
    BUGS,
    X_FEW,
    Y_FEW,
    E,
    dampened_step,
    leading_axes_only,
    logits_model,
    recursive_topological_order,
    run_check,
    small_model,
    summed_cross_entropy,
    tensor_op,
    unshifted_log_softmax,
)


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 4.x is not done yet")


def injected(name, owner, attribute, replacement, monkeypatch):
    """The check `name` (see run_check) of the reference engine with one piece replaced."""
    monkeypatch.setattr(owner, attribute, replacement)

    def check(_):
        return run_check(name)

    check.__name__ = f"the check of {name}"
    return check


def mnist_check(train):
    return checks.check_mnist_training(
        train, lambda: (X_FEW, Y_FEW), small_model, E.cross_entropy, E.Tensor
    )


def value_add(local):
    """Value + whose backward runs `local(self, other, out)` (a learner's rule)."""

    def add(self, other):
        other = other if isinstance(other, E.Value) else E.Value(other)
        out = E.Value(self.data + other.data, (self, other), "+")
        out._backward = lambda: local(self, other, out)
        return out

    return add


def assigning(self, other, out):
    self.grad = out.grad
    other.grad = out.grad


def unchained(self, other, out):
    self.grad += 1.0
    other.grad += 1.0


# --- Hints in steps: for each exercise, a plausible wrong answer ---------------------------

HINT_STEPS = {
    "4.1 assigns": ("add_mul", E.Value, "__add__", value_add(assigning), "(not `self.grad = ...`)"),
    "4.1 forgets out.grad": (
        "add_mul",
        E.Value,
        "__add__",
        value_add(unchained),
        "`self.grad += other.data * out.grad`",
    ),
    "4.2 order": (*BUGS["topological order reversed"], "`stack = [(root, False)]`"),
    "4.2 backward": (*BUGS["backward in forward order"], "for node in reversed(order)"),
    "4.3": (*BUGS["log multiplies"], "`self.grad += out.grad / self.data`"),
    "4.4": ("unbroadcast", E, "unbroadcast", leading_axes_only, "keepdims=True"),
    "4.5": (*BUGS["mul without unbroadcast"], "unbroadcast(out.grad * other.data, self.shape)"),
    "4.6": (*BUGS["sum forgets the reduced axes"], "np.expand_dims(out.grad, axis)"),
    "4.7": ("cross_entropy", E, "log_softmax", unshifted_log_softmax, "x.data.max(axis=-1"),
    "4.8": ("mlp_sgd", E.SGD, "step", dampened_step, "v += p.grad"),
    "side by side": ("side_by_side", E, "cross_entropy", summed_cross_entropy, "4.5 to 4.8"),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # exp overflows without the max shift
@pytest.mark.parametrize("case", HINT_STEPS)
def test_the_first_cross_points_at_the_idea_and_the_third_gives_the_recipe(
    case, monkeypatch, capsys
):
    name, owner, attribute, wrong, recipe = HINT_STEPS[case]
    check = injected(name, owner, attribute, wrong, monkeypatch)
    assert_hint_grows(check, None, recipe, capsys)


def test_the_mnist_checks_hint_grows_too(capsys):
    def wrong_labels():
        return logits_model(np.eye(10)[(Y_FEW + 1) % 10])

    assert_hint_grows(mnist_check, wrong_labels, "and return it", capsys)


# --- 4.1: two mistakes, two messages; the inputs recorded -----------------------------------


def test_assigning_and_forgetting_out_grad_get_different_messages_naming_the_cause(
    monkeypatch, capsys
):
    monkeypatch.setattr(E.Value, "__add__", value_add(assigning))
    lost = checks.check_value_add_mul(E.Value).message
    monkeypatch.setattr(E.Value, "__add__", value_add(unchained))
    chain = checks.check_value_add_mul(E.Value).message
    assert lost.split("\n")[0] != chain.split("\n")[0], f"one message for both:\n{lost}\n{chain}"
    assert "was lost" in lost, lost
    assert "chain rule" not in lost, lost
    assert "times out.grad (the chain rule)" in chain, chain
    assert "lost" not in chain, chain


def test_a_wrong_local_derivative_is_not_blamed_on_accumulation(monkeypatch, capsys):
    """`+=` was used; only the derivative is wrong (d(a * b)/da taken as a)."""

    def mul(self, other):
        other = other if isinstance(other, E.Value) else E.Value(other)
        out = E.Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += self.data * out.grad
            other.grad += other.data * out.grad

        out._backward = _backward
        return out

    monkeypatch.setattr(E.Value, "__mul__", mul)
    message = checks.check_value_add_mul(E.Value).message
    assert "with respect to a is b" in message, message
    assert "+=" not in message, message
    assert "lost" not in message, message


def test_an_output_that_does_not_record_its_inputs_fails_in_4_1(monkeypatch, capsys):
    def add(self, other):
        other = other if isinstance(other, E.Value) else E.Value(other)
        out = E.Value(self.data + other.data)  # no _prev

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    monkeypatch.setattr(E.Value, "__add__", add)
    verdict = checks.check_value_add_mul(E.Value)
    assert verdict.status == "fail", verdict.message
    assert "out._prev" in verdict.message, verdict.message
    assert "through _prev" in verdict.message, verdict.message


# --- 4.2: no silence, no recursion ----------------------------------------------------------


def list_visited_order(root):
    """Right, but `node in visited` scans a list: n² / 2 steps on a chain."""
    order, visited = [], []
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in visited:
            visited.append(node)
            stack.append((node, True))
            stack.extend((child, False) for child in node._prev)
    return order


def recursive_order_raising_the_limit(root):
    """A recursive search that first raises the kernel's recursion limit, as learners do."""
    sys.setrecursionlimit(10**6)
    return recursive_topological_order(root)


def test_a_quadratic_topological_sort_is_stopped_and_called_too_slow(monkeypatch, capsys):
    monkeypatch.setattr(scalar, "TIME_BUDGET", 2.0)
    start = time.perf_counter()
    verdict = checks.check_topological_order(list_visited_order, E.Value)
    seconds = time.perf_counter() - start
    assert verdict.status == "fail", verdict.message
    assert "too slow" in verdict.message, verdict.message
    assert "a set it is one lookup" not in verdict.message, "the first ✗ gave the recipe"
    assert seconds < 30, f"the check waited {seconds:.0f} s"


def test_recursion_with_a_raised_limit_fails_and_the_limit_is_put_back(capsys):
    limit = sys.getrecursionlimit()
    try:
        verdict = checks.check_topological_order(recursive_order_raising_the_limit, E.Value)
        assert verdict.status == "fail", verdict.message
        assert "recurses" in verdict.message, verdict.message
        assert "set it back" in verdict.message, verdict.message
        assert sys.getrecursionlimit() == limit, "the check left the recursion limit raised"
    finally:
        sys.setrecursionlimit(limit)


def test_a_limit_raised_in_an_earlier_cell_is_put_back_too(capsys):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10**6)  # the learner's cell, before the check
    try:
        verdict = checks.check_topological_order(recursive_topological_order, E.Value)
        after = sys.getrecursionlimit()
    finally:
        sys.setrecursionlimit(limit)
    assert verdict.status == "fail", verdict.message
    assert "recurses" in verdict.message, verdict.message
    assert after == scalar.KERNEL_RECURSION_LIMIT, f"the limit stayed at {after:,}"


def test_a_recursive_backward_fails_4_2(monkeypatch, capsys):
    def backward(self):
        order = recursive_order_raising_the_limit(self)
        for node in order:
            if node._prev:
                node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            node._backward()

    limit = sys.getrecursionlimit()
    monkeypatch.setattr(E.Value, "backward", backward)
    try:
        verdict = checks.check_value_backward(E.Value)
    finally:
        sys.setrecursionlimit(limit)
    assert verdict.status == "fail", verdict.message
    assert "recurses" in verdict.message, verdict.message


def test_backward_that_keeps_intermediate_grads_gets_the_hint_about_them(monkeypatch, capsys):
    monkeypatch.setattr(E.Value, *BUGS["backward never resets intermediates"][2:])
    message = checks.check_value_backward(E.Value).message
    assert "backward() twice" in message, message
    assert "intermediate nodes still hold" in message, message


# --- 4.5 and 4.6: the Tensor's graph and the cause of a wrong gradient ---------------------


def add_built_like_value(self, other):
    """`Tensor(data, (self, other), op)`: the inputs land in requires_grad, "+" in _prev."""
    other = self._wrap(other)
    out = E.Tensor(self.data + other.data, (self, other), "+")

    def _backward():
        if self.requires_grad:
            self.grad += E.unbroadcast(out.grad, self.shape)
        if other.requires_grad:
            other.grad += E.unbroadcast(out.grad, other.shape)

    out._backward = _backward
    return out


def test_a_tensor_output_built_like_a_value_gets_a_message_about_its_graph(monkeypatch, capsys):
    monkeypatch.setattr(E.Tensor, "__add__", add_built_like_value)
    message = checks.check_tensor_elementwise(E.Tensor).message
    assert "has no attribute '_prev'" not in message, message
    assert "requires_grad is a tuple, not True or False" in message, message
    assert "records its inputs in _prev" in message, message
    monkeypatch.setattr(E.Tensor, "__add__", lambda self, other: E.Tensor(self.data + other.data))
    message = checks.check_tensor_elementwise(E.Tensor).message
    assert "is not among the output's inputs (_prev)" in message, message


@pytest.mark.parametrize(
    ("rule", "cause", "not_said"),
    [
        (lambda a, out: [a.data * out.grad], "d exp(a)/da = exp(a)", "lost"),  # += kept
        (lambda a, out: [out.data], "times out.grad (the chain rule)", "lost"),
    ],
    ids=["wrong-derivative", "forgets-out-grad"],
)
def test_a_wrong_tensor_gradient_names_its_cause(rule, cause, not_said, monkeypatch, capsys):
    monkeypatch.setattr(E.Tensor, "exp", tensor_op(np.exp, rule))
    message = checks.check_tensor_elementwise(E.Tensor).message
    assert cause in message, message
    assert not_said not in message, message
    assert "leaf grads accumulate" not in message, message


def test_an_assigning_tensor_rule_is_named(monkeypatch, capsys):
    monkeypatch.setattr(E.Tensor, *BUGS["relu assigns instead of accumulating"][2:])
    message = checks.check_tensor_elementwise(E.Tensor).message
    assert "was lost" in message, message


def test_the_matmul_hint_warns_that_numpy_t_reverses_every_axis(monkeypatch, capsys):
    def matmul(self, other):
        other = self._wrap(other)
        if self.data.ndim == 1 or other.data.ndim == 1:
            return self._matmul_vectors(other)
        out = E.Tensor._node(self.data @ other.data, (self, other), "@")

        def _backward():
            if self.requires_grad:
                self.grad += E.unbroadcast(out.grad @ other.data.T, self.shape)
            if other.requires_grad:
                other.grad += E.unbroadcast(self.data.T @ out.grad, other.shape)

        out._backward = _backward
        return out

    monkeypatch.setattr(E.Tensor, "__matmul__", matmul)
    message = checks.check_tensor_shapes(E.Tensor).message
    assert "NumPy's .T reverses all the axes of a 3-D array" in message, message


def test_a_mismatch_names_the_first_differing_entries_not_two_whole_arrays(monkeypatch, capsys):
    monkeypatch.setattr(E.Tensor, *BUGS["Tensor tanh uses the input"][2:])
    message = checks.check_tensor_elementwise(E.Tensor).message
    first_line = message.split("\n")[0]
    assert "entries differ" in first_line, first_line
    assert "first:" in first_line, first_line
    assert len(first_line) < 450, f"{len(first_line)} characters: {first_line}"


# --- 4.7: one example, as F.cross_entropy takes it ------------------------------------------


def batch_only_cross_entropy(logits, targets):
    return -E.log_softmax(logits)[np.arange(len(targets)), targets].mean()


def test_cross_entropy_of_one_example_is_checked(monkeypatch, capsys):
    monkeypatch.setattr(E, "cross_entropy", batch_only_cross_entropy)
    verdict = run_check("cross_entropy")
    assert verdict.status == "fail", verdict.message
    assert "one example: logits of shape (C,) and a 0-d target" in verdict.message, verdict


# --- The MNIST run: "not done yet" before any data is looked for ----------------------------


def no_data(*args):
    raise AssertionError("the data was asked for before the engine was done")


@pytest.mark.parametrize(
    "run",
    [
        lambda: checks.check_matches_torch(small_model, no_data, E.cross_entropy, E.Tensor),
        lambda: checks.check_mnist_training(
            no_data, no_data, small_model, E.cross_entropy, E.Tensor
        ),
        lambda: checks.compare_step_time(small_model, no_data, E.cross_entropy, E.Tensor),
    ],
    ids=["side-by-side", "training", "step-time"],
)
@pytest.mark.parametrize(
    ("owner", "attribute"),
    [(E.MLP, "__call__"), (E.SGD, "step"), (E, "cross_entropy"), (E.Tensor, "__matmul__")],
)
def test_the_mnist_checks_say_not_done_yet_before_loading_data(
    run, owner, attribute, monkeypatch, capsys
):
    monkeypatch.setattr(owner, attribute, stub)
    run()
    out = capsys.readouterr().out
    assert "not done yet" in out, out
    assert "asked for" not in out, out


def kahn_order(root):
    """Kahn's algorithm instead of a depth-first search: a node goes out once every node
    computed from it has; the list is then reversed. Written as a generator."""
    users, stack, seen = {}, [root], {root}
    while stack:
        for child in stack.pop()._prev:
            users[child] = users.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    ready, order = [root], []
    while ready:
        node = ready.pop()
        order.append(node)
        for child in node._prev:
            users[child] -= 1
            if users[child] == 0:
                ready.append(child)
    yield from reversed(order)


def test_another_right_topological_order_passes(capsys):
    verdict = checks.check_topological_order(kahn_order, E.Value)
    assert verdict.passed, verdict.message


def test_an_output_that_never_requires_grad_gets_the_hint_about_building_outputs(
    monkeypatch, capsys
):
    def add(self, other):
        other = self._wrap(other)
        return E.Tensor(self.data + other.data, False, (self, other), "+")

    monkeypatch.setattr(E.Tensor, "__add__", add)
    message = checks.check_tensor_elementwise(E.Tensor).message
    assert "the output's requires_grad: expected True, got False" in message, message
    assert "Tensor._node" in checks.check_tensor_elementwise(E.Tensor).message  # the nudge
    assert "unbroadcast" not in message, message


# --- Review: each common mistake gets a hint that names its own cause -----------------------


def backward_wiping_the_leaves(self):
    """Sets every grad to 0 before the pass, the leaves' too: a second call forgets the first."""
    order = E.topological_order(self)
    for node in order:
        node.grad = 0.0
    self.grad = 1.0
    for node in reversed(order):
        node._backward()


def test_a_backward_that_wipes_the_leaves_is_told_so_not_about_intermediates(monkeypatch, capsys):
    monkeypatch.setattr(E.Value, "backward", backward_wiping_the_leaves)
    message = checks.check_value_backward(E.Value).message
    assert "the first call's was wiped" in message, message
    assert "intermediate nodes still hold" not in message, message


def pow_off_by_one(k):
    """`a ** k` computed as a ** (k + 1), with the right backward rule."""
    return tensor_op(lambda a: a ** (k + 1), lambda a, out: [k * a.data ** (k - 1) * out.grad])


@pytest.mark.parametrize(
    ("attribute", "wrong", "cause"),
    [
        ("exp", tensor_op(np.exp2, lambda a, out: [out.data * out.grad]), "d exp(a)/da"),
        ("log", tensor_op(np.log10, lambda a, out: [out.grad / a.data]), "d log(a)/da"),
        ("tanh", lambda self: np.tan_h(self.data), "d tanh(a)/da"),  # a typo: AttributeError
        ("__pow__", lambda self, k: pow_off_by_one(k)(self), "a ** (k - 1)"),
    ],
    ids=["exp-value", "log-value", "tanh-crash", "pow-value"],
)
def test_a_wrong_unary_op_gets_its_own_hint_not_the_one_about_requires_grad(
    attribute, wrong, cause, monkeypatch, capsys
):
    monkeypatch.setattr(E.Tensor, attribute, wrong)
    message = checks.check_tensor_elementwise(E.Tensor).message
    assert cause in message, message
    assert "does not require grad" not in message, message


def unbroadcast_without_keepdims(grad, shape):
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1))


def unbroadcast_aligned_left(grad, shape):
    """Sums grad's last axes away, as if broadcasting lined shapes up from the left."""
    grad = grad.sum(axis=tuple(range(len(shape), grad.ndim)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True)


def unbroadcast_by_mean(grad, shape):
    grad = grad.mean(axis=tuple(range(grad.ndim - len(shape))))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.mean(axis=stretched, keepdims=True)


@pytest.mark.parametrize(
    ("wrong", "cause"),
    [
        (unbroadcast_without_keepdims, "summing over an axis removes it"),
        (unbroadcast_aligned_left, "lines shapes up from the right"),
        (unbroadcast_by_mean, "not their mean"),
    ],
    ids=["keepdims", "aligned-left", "mean"],
)
def test_a_wrong_unbroadcast_is_told_its_cause(wrong, cause, capsys):
    message = checks.check_unbroadcast(wrong).message
    assert cause in message, message


def global_max_log_softmax(x):
    """Shifts by the largest logit of the whole batch: a row far below it underflows."""
    shifted = x - x.data.max()
    return shifted - shifted.exp().sum(axis=-1, keepdims=True).log()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the log of an underflowed sum
def test_a_shift_by_the_batchs_maximum_is_told_about_underflow(monkeypatch, capsys):
    monkeypatch.setattr(E, "log_softmax", global_max_log_softmax)
    message = run_check("cross_entropy").message
    assert "underflows to 0" in message, message


def velocity_lost_step(self):
    """`v = ...` rebinds the loop variable: self.velocities never change."""
    for p, v in zip(self.parameters, self.velocities, strict=True):
        v = self.momentum * v + p.grad
        p.data -= self.lr * v


def test_a_velocity_that_does_not_carry_over_is_named(monkeypatch, capsys):
    monkeypatch.setattr(E.SGD, "step", velocity_lost_step)
    message = run_check("mlp_sgd").message
    assert "as plain SGD (momentum 0) moves them" in message, message
    monkeypatch.setattr(E.SGD, "step", dampened_step)
    message = run_check("mlp_sgd").message
    assert "no factor 1 - momentum" in message, message
    assert "plain SGD" not in message, message
