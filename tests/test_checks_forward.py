"""The checks of Chapter 5 pass right answers and catch wrong ones, wrong methods and stubs.

The right answers for 5.1-5.3 are written here, independently of the solution notebook;
the ``Dual`` engine and ``dual_jacobian`` are loaded from the solution notebook (right) and
from the generated exercise notebook (stubs). Wrong ``Dual``s override one op of the right
one with a plausible mistake.
"""

import math

import numpy as np
import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vjp

from course import REPO_ROOT
from course.checks import forward as checks
from course.checks.forward import count_passes, per_sample_norms_loop
from course.notebooks import load_notebook_module
from tests.check_cases import assert_fails, assert_not_done_yet, assert_passes

SOLUTION = load_notebook_module(
    REPO_ROOT / "solutions" / "forward.md", "forward-engine", "forward_solution"
)
EXERCISE = load_notebook_module(
    REPO_ROOT / "exercises" / "forward.md", "forward-engine", "forward_exercise"
)
Dual = SOLUTION.Dual


def stub(*args):
    raise NotImplementedError("Exercise 5.x is not done yet")


def jacobian(f, x, side=None):
    """Right by default; ``side`` forces "forward" or "reverse" (a wrong method)."""
    y, pullback = vjp(f, x)
    side = side or ("forward" if x.numel() <= y.numel() else "reverse")
    if side == "forward":
        return torch.stack([jvp(f, (x,), (e,))[1] for e in torch.eye(x.numel(), dtype=x.dtype)], 1)
    return torch.stack([pullback(e)[0] for e in torch.eye(y.numel(), dtype=y.dtype)])


def both_sides(f, x):
    """Wrong method: right values, but computes J both ways."""
    jacobian(f, x, "forward")
    return jacobian(f, x, "reverse")


def jacobian_all_ones(f, x):
    """Wrong: one JVP along (1, ..., 1) repeated, not one-hot directions."""
    y = f(x)
    column = jvp(f, (x,), (torch.ones_like(x),))[1]
    return column.unsqueeze(1).expand(y.numel(), x.numel())


def per_sample_norms(model, X, y, *, weights_only=False, sum_of_norms=False, batch=False):
    """Right by default; the keyword arguments inject mistakes."""
    params = {
        k: p.detach() for k, p in model.named_parameters() if "weight" in k or not weights_only
    }

    def loss(params, x, t):
        logits = torch.func.functional_call(model, params, (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(logits, t.unsqueeze(0))

    if batch:  # the gradient of the batch's mean loss, for every sample
        grads = grad(
            lambda p: torch.nn.functional.cross_entropy(
                torch.func.functional_call(model, p, (X,)), y
            )
        )(params)
        grads = {k: g.expand(len(X), *g.shape) for k, g in grads.items()}
    else:
        grads = torch.func.vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)
    per_param = [g.flatten(1).pow(2).sum(1) for g in grads.values()]
    if sum_of_norms:
        return sum(p.sqrt() for p in per_param)
    return sum(per_param).sqrt()


def vmap_without_unsqueeze(model, X, y):
    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(params, x, t):
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), t)

    grads = torch.func.vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)
    return sum(g.flatten(1).pow(2).sum(1) for g in grads.values()).sqrt()


def hvp(f, x, v):
    return jvp(grad(f), (x,), (v,))[1]


def reverse_over_reverse(f, x, v):
    """Right values, wrong method: the exercise asks for forward-over-reverse."""
    return grad(lambda t: (grad(f)(t) * v).sum())(x)


def hessian_then_product(f, x, v):
    H = hessian(f)(x).reshape(x.numel(), x.numel())
    return (H @ v.reshape(-1)).reshape(x.shape)


def finite_difference_hvp(f, x, v, eps=1e-6):
    return (grad(f)(x + eps * v) - grad(f)(x)) / eps


def wrong_dual(method, rule):
    """The solution's Dual with one op replaced by ``rule``."""
    return type("Dual", (Dual,), {method: rule})


def naive_sigmoid(self):
    s = 1 / (1 + math.exp(-self.data))
    return Dual(s, s * (1 - s) * self.tangent)


WRONG_DUALS = [
    ("__mul__", lambda a, b: Dual(a.data * b.data, a.tangent * b.data), "a * b at"),
    ("__add__", lambda a, b: Dual(a.data + b.data, a.tangent), "a + b at"),
    ("__add__", lambda a, b: (a.data + b.data, a.tangent + b.tangent), "expected a Dual"),
    ("__pow__", lambda a, k: Dual(a.data**k, k * a.data**k * a.tangent), "a ** 3 at"),
    (
        "__pow__",
        lambda a, k: Dual(a.data**k, k * a.data ** (k - 1) * a.tangent),
        "a ** 0 at a=Dual(0.0, 0.75): your code raised ZeroDivisionError",
    ),
    (
        "exp",
        lambda a: Dual(math.exp(a.data), math.exp(a.data)),
        "a.exp() at a=Dual(-1.5, 0.75): tangent",
    ),
    ("log", lambda a: Dual(math.log(a.data), 1 / a.data), "a.log() at a=Dual(0.3, 0.75): tangent"),
    (
        "tanh",
        lambda a: Dual(math.tanh(a.data), (1 - math.tanh(a.data)) * a.tangent),
        "a.tanh() at a=Dual(-1.5, 0.75): tangent",
    ),
    (
        "relu",
        lambda a: Dual(max(a.data, 0.0), a.tangent if a.data >= 0 else 0.0),
        "a.relu() at a=Dual(0.0, 0.75): tangent",
    ),
    (
        "relu",
        lambda a: Dual(max(a.data, 0.0), 1.0 if a.data > 0 else 0.0),
        "a.relu() at a=Dual(2.0, 0.75): tangent",
    ),
    (
        "sigmoid",
        naive_sigmoid,
        "a.sigmoid() at a=Dual(-1000.0, 0.75): your code raised OverflowError",
    ),
]


def dual_jacobian(f, xs, *, one_hot=True, transposed=False, extra_run=False):
    """Right by default (built on the solution's Dual); the keywords inject mistakes."""
    columns = []
    for j in range(len(xs)):
        tangents = [float(i == j) if one_hot else 1.0 for i in range(len(xs))]
        columns.append(
            [o.tangent for o in f([Dual(x, t) for x, t in zip(xs, tangents, strict=True)])]
        )
        if extra_run:
            f([Dual(x) for x in xs])
    J = np.array(columns)
    return J if transposed else J.T


RIGHT = {
    "check_jacobian_cheaper_side": jacobian,
    "check_per_sample_grad_norms": per_sample_norms,
    "check_hvp": hvp,
}

STUBS = {name: stub for name in RIGHT}

WRONG = [
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacobian(f, x, "forward"),
        "f: R^5 -> R^2: passes (JVPs, backward passes): expected {'forward': 0, 'backward': 2}",
    ),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacobian(f, x, "reverse"),
        "f: R^2 -> R^5: passes (JVPs, backward passes): expected {'forward': 2, 'backward': 0}",
    ),
    ("check_jacobian_cheaper_side", both_sides, "expected {'forward': 2, 'backward': 0}"),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: torch.autograd.functional.jacobian(f, x),
        "expected {'forward': 2, 'backward': 0}, got {'forward': 0, 'backward': 5}",
    ),
    ("check_jacobian_cheaper_side", lambda f, x: jacfwd(f)(x), "does not have vmap support"),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacrev(f)(x),
        "expected {'forward': 2, 'backward': 0}, got {'forward': 0, 'backward': 1}",
    ),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacobian(f, x).T,
        "shape: expected (5, 2), got (2, 5)",
    ),
    ("check_jacobian_cheaper_side", jacobian_all_ones, "largest difference"),
    ("check_jacobian_cheaper_side", lambda f, x: 0, "expected a torch.Tensor"),
    ("check_per_sample_grad_norms", per_sample_norms_loop, "your code ran the model 16 times"),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y, batch=True),
        "largest difference",
    ),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y, sum_of_norms=True),
        "largest difference",
    ),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y, weights_only=True),
        "largest difference",
    ),
    ("check_per_sample_grad_norms", vmap_without_unsqueeze, "your code raised"),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y).float(),
        "dtype: expected torch.float64, got torch.float32",
    ),
    ("check_hvp", hessian_then_product, "does not have vmap support"),
    ("check_hvp", reverse_over_reverse, "this is not forward-over-reverse"),
    (
        "check_hvp",
        lambda f, x, v: torch.autograd.functional.hessian(f, x) @ v,
        "this is not forward-over-reverse",
    ),
    ("check_hvp", lambda f, x, v: jvp(grad(f), (x,), (v,))[0], "largest difference"),
    ("check_hvp", lambda f, x, v: (grad(f)(x) * v).sum(), "shape: expected (4,), got ()"),
    ("check_hvp", finite_difference_hvp, "this is not forward-over-reverse"),
]


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes(name, capsys):
    assert_passes(getattr(checks, name), RIGHT[name], capsys)


@pytest.mark.parametrize("name", sorted(STUBS))
def test_stub_is_not_done_yet(name, capsys):
    assert_not_done_yet(getattr(checks, name), STUBS[name], capsys)


@pytest.mark.parametrize(("name", "wrong", "message"), WRONG, ids=[f"{w[0]}-{w[2]}" for w in WRONG])
def test_wrong_answer_fails_and_says_why(name, wrong, message, capsys):
    assert_fails(getattr(checks, name), wrong, message, capsys)


def test_solution_dual_passes(capsys):
    assert_passes(checks.check_dual_ops, SOLUTION.Dual, capsys)
    assert_passes(
        lambda f: checks.check_dual_jacobian(f, SOLUTION.Dual), SOLUTION.dual_jacobian, capsys
    )


def test_exercise_dual_is_not_done_yet(capsys):
    assert_not_done_yet(checks.check_dual_ops, EXERCISE.Dual, capsys)
    assert_not_done_yet(
        lambda f: checks.check_dual_jacobian(f, EXERCISE.Dual), EXERCISE.dual_jacobian, capsys
    )


@pytest.mark.parametrize(
    ("method", "rule", "message"), WRONG_DUALS, ids=[f"{w[0]}-{w[2]}" for w in WRONG_DUALS]
)
def test_wrong_tangent_rule_fails_and_names_the_op(method, rule, message, capsys):
    assert_fails(checks.check_dual_ops, wrong_dual(method, rule), message, capsys)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda f, xs: dual_jacobian(f, xs, transposed=True), "shape: expected (2, 3), got (3, 2)"),
        (lambda f, xs: dual_jacobian(f, xs, one_hot=False), "largest difference"),
        (
            lambda f, xs: dual_jacobian(f, xs, extra_run=True),
            "number of runs of f (one per input): expected 3, got 6",
        ),
        (lambda f, xs: dual_jacobian(f, xs).tolist(), "expected a NumPy array"),
        (lambda f, xs: np.array(f(xs)), "your code raised AttributeError"),
    ],
)
def test_wrong_dual_jacobian_fails(wrong, message, capsys):
    assert_fails(lambda f: checks.check_dual_jacobian(f, Dual), wrong, message, capsys)


def test_count_passes_counts_each_kind():
    f, passes = count_passes(lambda x: x.sin())
    x = torch.ones(3)
    jvp(f, (x,), (x,))
    _, pullback = vjp(f, x)
    pullback(x)
    pullback(x)
    assert dict(passes) == {"forward": 1, "backward": 2}, f"counted {dict(passes)}"
    with pytest.raises(RuntimeError, match="vmap"):
        jacfwd(f)(x)
