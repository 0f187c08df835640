"""The checks of Chapter 4 can fail: wrong backward rules, injected one at a time, are caught.

Each bug replaces one method or function of the reference engine (loaded from
solutions/engine.md) with a plausible mistake; the learner-facing check for that exercise
must then report ✗. The unchanged reference must pass every check, and a stub that raises
``NotImplementedError`` must be reported as "not done yet".
"""

import math

import numpy as np
import pytest

from course.checks import engine as checks
from course.notebooks import engine

E = engine()


def run_check(name, module=E):
    """Run the check called ``name`` on the engine in ``module``; return its verdict."""
    m = module
    return {
        "add_mul": lambda: checks.check_value_add_mul(m.Value),
        "topo": lambda: checks.check_topological_order(m.topological_order, m.Value),
        "backward": lambda: checks.check_value_backward(m.Value),
        "unary": lambda: checks.check_value_unary(m.Value),
        "unbroadcast": lambda: checks.check_unbroadcast(m.unbroadcast),
        "elementwise": lambda: checks.check_tensor_elementwise(m.Tensor),
        "shapes": lambda: checks.check_tensor_shapes(m.Tensor),
        "cross_entropy": lambda: checks.check_cross_entropy(
            m.log_softmax, m.cross_entropy, m.Tensor
        ),
        "mlp_sgd": lambda: checks.check_mlp_sgd(m.MLP, m.SGD, m.Tensor),
        "side_by_side": lambda: checks.check_matches_torch(
            small_model, small_batches, m.cross_entropy, m.Tensor
        ),
    }[name]()


def small_model(dtype):
    model = E.MLP([12, 8, 3], np.random.default_rng(0), dtype)
    return model, E.SGD(model.parameters(), lr=0.1, momentum=0.9)


def small_batches(dtype):
    rng = np.random.default_rng(1)
    return [(rng.standard_normal((16, 12)).astype(dtype), rng.integers(0, 3, 16)) for _ in range(5)]


def scalar_op(data, local_grads, op="?"):
    """A Value op whose backward adds ``local_grads(self, other, out)`` into each input."""

    def method(self, other=None):
        inputs = (
            (self,)
            if other is None
            else (self, other if isinstance(other, E.Value) else E.Value(other))
        )
        out = E.Value(data(*(v.data for v in inputs)), inputs, op)

        def _backward():
            for v, g in zip(inputs, local_grads(*inputs, out), strict=False):
                v.grad += g

        out._backward = _backward
        return out

    return method


def tensor_op(data, local_grads, arity=1, op="?"):
    """A Tensor op on ``arity`` tensors (then plain arguments, e.g. axes); ``local_grads``
    returns the gradient of each input, already reduced to its shape."""

    def method(self, *args):
        inputs = (self, *(self._wrap(a) for a in args[: arity - 1]))
        extra = args[arity - 1 :]
        out = E.Tensor._node(data(*(t.data for t in inputs), *extra), inputs, op)

        def _backward():
            for t, g in zip(inputs, local_grads(*inputs, out, *extra), strict=False):
                if t.requires_grad:
                    t.grad += g

        out._backward = _backward
        return out

    return method


def overwriting_add(self, other):
    other = other if isinstance(other, E.Value) else E.Value(other)
    out = E.Value(self.data + other.data, (self, other), "+")

    def _backward():
        self.grad = out.grad
        other.grad = out.grad

    out._backward = _backward
    return out


def recursive_topological_order(root):
    order, seen = [], set()

    def visit(node):
        if node not in seen:
            seen.add(node)
            for child in node._prev:
                visit(child)
            order.append(node)

    visit(root)
    return order


def micrograd_backward(self):
    """Never resets intermediate grads: a second call sends them on twice."""
    order = E.topological_order(self)
    self.grad = 1.0
    for node in reversed(order):
        node._backward()


def forward_order_backward(self):
    order = E.topological_order(self)
    for node in order:
        node.grad = 0.0 if node._prev else node.grad
    self.grad = 1.0
    for node in order:
        node._backward()


def naive_sigmoid(self):
    s = 1 / (1 + math.exp(-self.data))
    return scalar_op(lambda x: s, lambda a, out: [s * (1 - s) * out.grad], "sigmoid")(self)


def leading_axes_only(grad, shape):
    return grad.sum(axis=tuple(range(grad.ndim - len(shape))))


def unshifted_log_softmax(x):
    return x - x.exp().sum(axis=-1, keepdims=True).log()


def summed_cross_entropy(logits, targets):
    one_hot = np.eye(logits.shape[-1])[targets]
    return -(E.log_softmax(logits) * one_hot).sum()


def dampened_step(self):
    for p, v in zip(self.parameters, self.velocities, strict=False):
        v *= self.momentum
        v += (1 - self.momentum) * p.grad
        p.data -= self.lr * v


def transposed_linear_init(self, in_features, out_features, rng, dtype=np.float32):
    bound = 1 / math.sqrt(in_features)
    self.weight = E.Tensor(
        rng.uniform(-bound, bound, (in_features, out_features)).astype(dtype), True
    )
    self.bias = E.Tensor(rng.uniform(-bound, bound, out_features).astype(dtype), True)


def normal_linear_init(self, in_features, out_features, rng, dtype=np.float32):
    self.weight = E.Tensor(rng.standard_normal((out_features, in_features)).astype(dtype), True)
    self.bias = E.Tensor(np.zeros(out_features, dtype), True)


def unguarded_add(self, other):
    other = self._wrap(other)
    out = E.Tensor._node(self.data + other.data, (self, other), "+")

    def _backward():
        self.grad += E.unbroadcast(out.grad, self.shape)
        other.grad += E.unbroadcast(out.grad, other.shape)

    out._backward = _backward
    return out


def assigning_relu(self):
    out = E.Tensor._node(np.maximum(self.data, 0), (self,), "relu")

    def _backward():
        self.grad = out.grad * (self.data > 0)

    out._backward = _backward
    return out


def unexpanded_sum(self, axis=None, keepdims=False):
    out = E.Tensor._node(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

    def _backward():
        self.grad += out.grad

    out._backward = _backward
    return out


BUGS = {
    # Value
    "mul drops the other factor": (
        "add_mul",
        E.Value,
        "__mul__",
        scalar_op(lambda a, b: a * b, lambda a, b, out: [out.grad, out.grad]),
    ),
    "mul swaps the factors": (
        "add_mul",
        E.Value,
        "__mul__",
        scalar_op(lambda a, b: a * b, lambda a, b, out: [a.data * out.grad, b.data * out.grad]),
    ),
    "add overwrites grads": ("add_mul", E.Value, "__add__", overwriting_add),
    "add forgets the chain rule": (
        "add_mul",
        E.Value,
        "__add__",
        scalar_op(lambda a, b: a + b, lambda a, b, out: [1.0, 1.0]),
    ),
    "recursive topological order": ("topo", E, "topological_order", recursive_topological_order),
    "topological order reversed": (
        "topo",
        E,
        "topological_order",
        lambda root: recursive_topological_order(root)[::-1],
    ),
    "backward never resets intermediates": ("backward", E.Value, "backward", micrograd_backward),
    "backward in forward order": ("backward", E.Value, "backward", forward_order_backward),
    "Value tanh uses the input": (
        "unary",
        E.Value,
        "tanh",
        scalar_op(math.tanh, lambda a, out: [(1 - a.data**2) * out.grad]),
    ),
    "log multiplies": (
        "unary",
        E.Value,
        "log",
        scalar_op(math.log, lambda a, out: [a.data * out.grad]),
    ),
    "pow off by one": (
        "unary",
        E.Value,
        "__pow__",
        scalar_op(lambda a, k: a**k, lambda a, k, out: [k.data * a.data**k.data * out.grad, 0]),
    ),
    "exp drops out.grad": ("unary", E.Value, "exp", scalar_op(math.exp, lambda a, out: [out.data])),
    "relu passes everything": (
        "unary",
        E.Value,
        "relu",
        scalar_op(lambda a: max(a, 0.0), lambda a, out: [out.grad]),
    ),
    "sigmoid overflows": ("unary", E.Value, "sigmoid", naive_sigmoid),
    # Tensor
    "unbroadcast forgets size-1 axes": ("unbroadcast", E, "unbroadcast", leading_axes_only),
    "add without unbroadcast": (
        "elementwise",
        E.Tensor,
        "__add__",
        tensor_op(np.add, lambda a, b, out: [out.grad, out.grad], 2),
    ),
    "mul without unbroadcast": (
        "elementwise",
        E.Tensor,
        "__mul__",
        tensor_op(np.multiply, lambda a, b, out: [out.grad * b.data, out.grad * a.data], 2),
    ),
    "mul drops a factor": (
        "elementwise",
        E.Tensor,
        "__mul__",
        tensor_op(
            np.multiply,
            lambda a, b, out: [E.unbroadcast(out.grad, a.shape), E.unbroadcast(out.grad, b.shape)],
            2,
        ),
    ),
    "add ignores requires_grad": ("elementwise", E.Tensor, "__add__", unguarded_add),
    "relu assigns instead of accumulating": ("elementwise", E.Tensor, "relu", assigning_relu),
    "Tensor tanh uses the input": (
        "elementwise",
        E.Tensor,
        "tanh",
        tensor_op(np.tanh, lambda a, out: [out.grad * (1 - a.data**2)]),
    ),
    "matmul forgets to unbroadcast": (
        "shapes",
        E.Tensor,
        "__matmul__",
        tensor_op(
            np.matmul,
            lambda a, b, out: [
                E.unbroadcast(out.grad @ b.data.swapaxes(-1, -2), a.shape),
                a.data.swapaxes(-1, -2) @ out.grad,
            ],
            2,
        ),
    ),
    "sum forgets the reduced axes": ("shapes", E.Tensor, "sum", unexpanded_sum),
    "transpose backward not swapped": (
        "shapes",
        E.Tensor,
        "transpose",
        tensor_op(
            lambda a, d0, d1: a.swapaxes(d0, d1),
            lambda a, out, d0, d1: [out.grad.reshape(a.shape)],
            1,
        ),
    ),
    "log_softmax without the max shift": ("cross_entropy", E, "log_softmax", unshifted_log_softmax),
    "cross_entropy sums over the batch": (
        "cross_entropy",
        E,
        "cross_entropy",
        summed_cross_entropy,
    ),
    "SGD dampens the gradient": ("mlp_sgd", E.SGD, "step", dampened_step),
    "Linear weight as (in, out)": ("mlp_sgd", E.Linear, "__init__", transposed_linear_init),
    "Linear weights from a standard normal": ("mlp_sgd", E.Linear, "__init__", normal_linear_init),
    "side by side: cross_entropy sums": ("side_by_side", E, "cross_entropy", summed_cross_entropy),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # exp overflows without the max shift
@pytest.mark.parametrize("bug", BUGS)
def test_check_catches_injected_bug(bug, monkeypatch, capsys):
    name, owner, attribute, replacement = BUGS[bug]
    monkeypatch.setattr(owner, attribute, replacement)
    verdict = run_check(name)
    out = capsys.readouterr().out
    assert verdict.status == "fail", f"check {name!r} did not catch {bug!r}: {out}"
    assert out.startswith("✗"), out


CHECKS = [
    "add_mul",
    "topo",
    "backward",
    "unary",
    "unbroadcast",
    "elementwise",
    "shapes",
    "cross_entropy",
    "mlp_sgd",
    "side_by_side",
]


@pytest.mark.parametrize("name", CHECKS)
def test_reference_passes(name, capsys):
    verdict = run_check(name)
    assert verdict.passed, capsys.readouterr().out


STUBS = {
    "add_mul": (E.Value, "__mul__"),
    "topo": (E, "topological_order"),
    "backward": (E.Value, "backward"),
    "unary": (E.Value, "exp"),
    "unbroadcast": (E, "unbroadcast"),
    "elementwise": (E.Tensor, "__add__"),
    "shapes": (E.Tensor, "__matmul__"),
    "cross_entropy": (E, "log_softmax"),
    "mlp_sgd": (E.SGD, "step"),
    "side_by_side": (E.Linear, "__init__"),
}


@pytest.mark.parametrize("name", STUBS)
def test_stub_is_not_done_yet(name, monkeypatch, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise 4.x is not done yet")

    owner, attribute = STUBS[name]
    monkeypatch.setattr(owner, attribute, stub)
    verdict = run_check(name)
    assert verdict.status == "todo", capsys.readouterr().out
    assert "not done yet" in capsys.readouterr().out or verdict.message.startswith("not done yet")


# --- Bugs that must fail with a hint that names the real cause ------------------------------


def half_guarded(op, local):
    """A binary Tensor op that guards only the right operand (`other`), as learners do."""

    def method(self, other):
        other = self._wrap(other)
        out = E.Tensor._node(op(self.data, other.data), (self, other), "?")

        def _backward():
            ga, gb = local(self.data, other.data, out.grad)
            self.grad += E.unbroadcast(ga, self.shape)
            if other.requires_grad:
                other.grad += E.unbroadcast(gb, other.shape)

        out._backward = _backward
        return out

    return method


def unguarded_matmul(self, other):
    other = self._wrap(other)
    out = E.Tensor._node(self.data @ other.data, (self, other), "@")

    def _backward():
        self.grad += E.unbroadcast(out.grad @ other.data.swapaxes(-1, -2), self.shape)
        other.grad += E.unbroadcast(self.data.swapaxes(-1, -2) @ out.grad, other.shape)

    out._backward = _backward
    return out


def exp_tanh(x):
    return (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1)


def value_exp_tanh(a):
    return (math.exp(2 * a) - 1) / (math.exp(2 * a) + 1)


def pow_without_k(self, k):
    out = E.Tensor._node(self.data**k, (self,), f"**{k}")

    def _backward():
        self.grad += self.data ** (k - 1) * out.grad

    out._backward = _backward
    return out


def value_pow_without_guard(self, k):
    out = E.Value(self.data**k, (self,), f"**{k}")

    def _backward():
        self.grad += k * self.data ** (k - 1) * out.grad

    out._backward = _backward
    return out


def detached_log_softmax(x):
    """Right values, wrong gradient: the log-sum-exp is computed from x.data."""
    m = x.data.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x.data - m).sum(axis=-1, keepdims=True)))


def one_hot_cross_entropy(logits, targets):
    one_hot = np.eye(logits.shape[-1], dtype=logits.dtype)[targets]
    return -(E.log_softmax(logits) * one_hot).sum(axis=-1).mean()


def float64_wrap(self, other):
    return other if isinstance(other, E.Tensor) else E.Tensor(np.asarray(other, np.float64))


def numpy_out_add(self, other):
    return self.data + self._wrap(other).data


def no_requires_grad_exp(self):
    out = E.Tensor(np.exp(self.data), False, (self,), "exp")
    return out


class BrokenStr(Exception):
    def __str__(self):
        raise ValueError("no str")


def broken_relu(self):
    raise BrokenStr


def ge_relu(self):
    """The slope at 0 is 1 here, 0 in torch."""
    out = E.Tensor._node(np.maximum(self.data, 0), (self,), "relu")

    def _backward():
        self.grad += out.grad * (self.data >= 0)

    out._backward = _backward
    return out


HINTED_BUGS = {
    "add guards only the right operand": (
        "elementwise",
        E.Tensor,
        "__add__",
        half_guarded(np.add, lambda a, b, g: (g, g)),
        "gets no gradient: its grad stays None",
    ),
    "mul guards only the right operand": (
        "elementwise",
        E.Tensor,
        "__mul__",
        half_guarded(np.multiply, lambda a, b, g: (g * b, g * a)),
        "gets no gradient: its grad stays None",
    ),
    "matmul guards neither operand": (
        "shapes",
        E.Tensor,
        "__matmul__",
        unguarded_matmul,
        "gets no gradient: its grad stays None",
    ),
    "Tensor tanh from exp overflows": (
        "elementwise",
        E.Tensor,
        "tanh",
        tensor_op(exp_tanh, lambda a, out: [out.grad * (1 - out.data**2)]),
        "np.tanh cannot overflow",
    ),
    "Value tanh from exp overflows": (
        "unary",
        E.Value,
        "tanh",
        scalar_op(value_exp_tanh, lambda a, out: [(1 - out.data**2) * out.grad]),
        "math.tanh, which cannot overflow",
    ),
    "Tensor pow drops k": (
        "elementwise",
        E.Tensor,
        "__pow__",
        pow_without_k,
        "for the k you were given",
    ),
    "Value pow divides by zero at x ** 0": (
        "unary",
        E.Value,
        "__pow__",
        value_pow_without_guard,
        "a ** 0 at a=0: your code raised ZeroDivisionError",
    ),
    "log_softmax gradient lost through x.data": (
        "cross_entropy",
        E,
        "log_softmax",
        detached_log_softmax,
        "computed outside your Tensor's ops",
    ),
    "cross_entropy by a one-hot product": (
        "cross_entropy",
        E,
        "cross_entropy",
        one_hot_cross_entropy,
        "-inf * 0",
    ),
    "numbers become float64": ("elementwise", E.Tensor, "_wrap", float64_wrap, "float32"),
    "add returns a NumPy array": (
        "elementwise",
        E.Tensor,
        "__add__",
        numpy_out_add,
        "expected your Tensor, got array",
    ),
    "exp output does not require grad": (
        "elementwise",
        E.Tensor,
        "exp",
        no_requires_grad_exp,
        "the output's requires_grad",
    ),
    "relu raises an exception whose str raises": (
        "elementwise",
        E.Tensor,
        "relu",
        broken_relu,
        "your code raised BrokenStr",
    ),
    "relu has slope 1 at 0": ("elementwise", E.Tensor, "relu", ge_relu, "a.relu()"),
    "Value relu has slope 1 at 0": (
        "unary",
        E.Value,
        "relu",
        scalar_op(lambda a: max(a, 0.0), lambda a, out: [(a.data >= 0) * out.grad]),
        "a.relu() at a=0",
    ),
    "Value mul forgets a number on the left": (
        "add_mul",
        E.Value,
        "__rmul__",
        lambda self, other: E.Value(other),
        "4 * a (a number) at a=2: out._prev",
    ),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow in the wrong answers
@pytest.mark.parametrize("bug", HINTED_BUGS)
def test_check_catches_bug_and_hints_at_its_cause(bug, monkeypatch, capsys):
    name, owner, attribute, replacement, message = HINTED_BUGS[bug]
    monkeypatch.setattr(owner, attribute, replacement)
    verdict = run_check(name)
    out = capsys.readouterr().out
    assert verdict.status == "fail", f"check {name!r} did not catch {bug!r}: {out}"
    assert message in out, f"{bug}: expected {message!r} in:\n{out}"
    assert "Hint:" in out, out
    # none of these is about overflow: "subtract the max" would send the learner astray
    assert "subtract" not in out.split("Hint:")[-1], out


def stable_value_tanh(a):
    e = math.exp(-2 * abs(a))
    return math.copysign((1 - e) / (1 + e), a)


def while_unbroadcast(grad, shape):
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def einsum_matmul(self, other):
    other = self._wrap(other)
    if self.data.ndim == 1 or other.data.ndim == 1:
        return self._matmul_vectors(other)
    out = E.Tensor._node(np.einsum("...ij,...jk->...ik", self.data, other.data), (self, other), "@")

    def _backward():
        for t, g in (
            (self, np.einsum("...ik,...jk->...ij", out.grad, other.data)),
            (other, np.einsum("...ij,...ik->...jk", self.data, out.grad)),
        ):
            if t.requires_grad:
                t.grad += E.unbroadcast(g, t.shape)

    out._backward = _backward
    return out


def logaddexp_log_softmax(x):
    m = x.data.max(axis=-1, keepdims=True)
    return x - m - (x - m).exp().sum(axis=-1, keepdims=True).log()


def sum_then_scale_cross_entropy(logits, targets):
    if logits.data.ndim == 1:  # one example: a batch of one
        logits, targets = logits.reshape(1, -1), np.reshape(targets, 1)
    picked = E.log_softmax(logits)[np.arange(len(targets)), targets]
    return picked.sum() * (-1 / len(targets))


RIGHT_BUT_UNUSUAL = {
    "Value tanh from exp(-2|a|)": (
        "unary",
        E.Value,
        "tanh",
        scalar_op(stable_value_tanh, lambda a, out: [(1 - out.data**2) * out.grad]),
    ),
    "Value sigmoid from tanh": (
        "unary",
        E.Value,
        "sigmoid",
        scalar_op(
            lambda a: 0.5 * (1 + math.tanh(a / 2)),
            lambda a, out: [out.data * (1 - out.data) * out.grad],
        ),
    ),
    "unbroadcast with a while loop": ("unbroadcast", E, "unbroadcast", while_unbroadcast),
    "matmul with einsum": ("shapes", E.Tensor, "__matmul__", einsum_matmul),
    "log_softmax with the max subtracted twice": (
        "cross_entropy",
        E,
        "log_softmax",
        logaddexp_log_softmax,
    ),
    "cross_entropy as a scaled sum": (
        "cross_entropy",
        E,
        "cross_entropy",
        sum_then_scale_cross_entropy,
    ),
    "Tensor tanh as 2 sigmoid(2a) - 1, stable": (
        "elementwise",
        E.Tensor,
        "tanh",
        tensor_op(
            lambda a: 2 * np.exp(-np.logaddexp(0, -2 * a)) - 1,
            lambda a, out: [out.grad * (1 - out.data**2)],
        ),
    ),
}


@pytest.mark.parametrize("answer", RIGHT_BUT_UNUSUAL)
def test_check_accepts_right_but_unusual_answer(answer, monkeypatch, capsys):
    name, owner, attribute, replacement = RIGHT_BUT_UNUSUAL[answer]
    monkeypatch.setattr(owner, attribute, replacement)
    verdict = run_check(name)
    assert verdict.passed, capsys.readouterr().out


# check_mnist_training computes the accuracy itself, from the logits of the model that
# train() returns; small stand-ins for the trained model keep these tests fast.
X_FEW = np.random.default_rng(1).standard_normal((200, 784)).astype(np.float32)
Y_FEW = np.arange(200) % 10


def mnist_check(train, new_model=small_model, cross_entropy=E.cross_entropy):
    """check_mnist_training of `train` on the few test rows X_FEW, Y_FEW."""
    return checks.check_mnist_training(
        train, lambda: (X_FEW, Y_FEW), new_model, cross_entropy, E.Tensor
    )


def logits_model(logits):
    """A "trained model" of the engine whose logits on X_FEW are `logits`."""
    return lambda x: E.Tensor(np.asarray(logits, dtype=np.float32))


@pytest.mark.parametrize(
    ("train", "status", "says"),
    [
        (lambda: logits_model(np.eye(10)[Y_FEW]), "pass", "test accuracy 100.00%"),
        (lambda: logits_model(np.eye(10)[(Y_FEW + 1) % 10]), "fail", "test accuracy 0.00%"),
        (lambda: logits_model(np.zeros((200, 10))), "fail", "below 97%"),
        (lambda: 1.0, "fail", "expected a function"),  # an accuracy, not a model
        (lambda: logits_model(np.eye(10)[Y_FEW][:, :9]), "fail", "expected logits of shape"),
        (lambda: logits_model(np.full((200, 10), np.nan)), "fail", "not all finite"),
        (lambda: lambda x: "logits", "fail", "expected logits of shape"),
    ],
    ids=["right", "wrong-labels", "constant", "a-number", "9-classes", "nan", "junk-output"],
)
def test_the_mnist_check_computes_the_accuracy_itself(train, status, says):
    verdict = mnist_check(train)
    assert verdict.status == status, verdict
    assert says in verdict.message, verdict


def test_the_mnist_check_says_not_done_yet_for_a_stub():
    def train():
        raise NotImplementedError("Exercise 4.8 is not done yet")

    assert mnist_check(train).status == "todo"
