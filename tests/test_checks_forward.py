"""The checks of Chapter 5 pass right answers and catch wrong ones, wrong methods and stubs.

The right answers for 5.1-5.3 are written here, independently of the solution notebook;
the ``Dual`` engine and ``dual_jacobian`` are loaded from the solution notebook (right) and
from the generated exercise notebook (stubs). Wrong ``Dual``s override one op of the right
one with a plausible mistake. Each exercise's hint grows in steps: a plausible wrong
answer's first ✗ does not hold the recipe, its third does.
"""

import math

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import grad, hessian, jacfwd, jacrev, jvp, linearize, vjp, vmap

from course import REPO_ROOT
from course.checks import forward as checks
from course.checks.forward import count_passes, per_sample_norms_loop
from course.notebooks import load_notebook_module
from tests.check_cases import (
    assert_fails,
    assert_hint_grows,
    assert_not_done_yet,
    assert_passes,
    table_tests,
)

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


def label_without_unsqueeze(model, X, y):
    """Wrong: the sample gets its batch dimension back, its label does not."""
    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(params, x, t):
        logits = torch.func.functional_call(model, params, (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(logits, t)

    grads = torch.func.vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)
    return sum(g.flatten(1).pow(2).sum(1) for g in grads.values()).sqrt()


def one_norm_for_the_batch(model, X, y):
    """Wrong axis: the sums run over the batch dimension too."""
    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(params, x, t):
        logits = torch.func.functional_call(model, params, (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(logits, t.unsqueeze(0))

    grads = torch.func.vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)
    return sum(g.pow(2).sum() for g in grads.values()).sqrt()


def sum_over_the_batch(model, X, y):
    """Wrong axis: sum(dim=0) adds the samples; the parameters' shapes then clash."""
    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(params, x, t):
        logits = torch.func.functional_call(model, params, (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(logits, t.unsqueeze(0))

    grads = torch.func.vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)
    return sum(g.pow(2).sum(dim=0) for g in grads.values()).sqrt()


def jacobian_stacked_as_rows(f, x):
    """Wrong: torch.stack's default dim=0 lays the JVPs' columns out as rows."""
    y, pullback = vjp(f, x)
    if x.numel() <= y.numel():
        return torch.stack([jvp(f, (x,), (e,))[1] for e in torch.eye(x.numel(), dtype=x.dtype)])
    return torch.stack([pullback(e)[0] for e in torch.eye(y.numel(), dtype=y.dtype)], dim=1)


def jacobian_filled_in(f, x):
    """Right, written differently: J preallocated, filled column by column or row by row."""
    y, pullback = vjp(f, x)
    n, m = x.numel(), y.numel()
    J = torch.zeros(m, n, dtype=x.dtype)
    for j in range(n) if n <= m else range(m):
        if n <= m:
            J[:, j] = jvp(f, (x,), (torch.eye(n, dtype=x.dtype)[j],))[1]
        else:
            J[j] = pullback(torch.eye(m, dtype=y.dtype)[j])[0]
    return J


def jacobian_by_forward_ad(f, x):
    """Right, written differently: dual tensors when n ≤ m, autograd.grad rows otherwise."""
    n, m = x.numel(), f(x).numel()
    if n <= m:
        columns = []
        for e in torch.eye(n, dtype=x.dtype):
            with fwAD.dual_level():
                columns.append(fwAD.unpack_dual(f(fwAD.make_dual(x, e))).tangent)
        return torch.stack(columns, dim=1)
    leaf = x.clone().requires_grad_()
    y = f(leaf)
    eye = torch.eye(m, dtype=x.dtype)
    return torch.stack([torch.autograd.grad(y, leaf, e, retain_graph=True)[0] for e in eye])


def vmap_over_jvp(f, x):
    """Wrong method: the n JVPs batched by hand with vmap."""
    return vmap(lambda e: jvp(f, (x,), (e,))[1], out_dims=1)(torch.eye(x.numel(), dtype=x.dtype))


def hvp(f, x, v):
    return jvp(grad(f), (x,), (v,))[1]


def hvp_by_forward_ad(f, x, v):
    """Right, written differently: forward_ad's dual tensor through torch.autograd.grad."""
    with fwAD.dual_level():
        dual = fwAD.make_dual(x.clone().requires_grad_(), v)
        (gradient,) = torch.autograd.grad(f(dual), dual)
        return fwAD.unpack_dual(gradient).tangent


def reverse_over_reverse(f, x, v):
    """Right values, wrong method: the exercise asks for forward-over-reverse."""
    return grad(lambda t: (grad(f)(t) * v).sum())(x)


def reverse_over_forward(f, x, v):
    """Right values (H is symmetric), wrong method: a gradient of a JVP."""
    return grad(lambda t: jvp(f, (t,), (v,))[1])(x)


def hessian_then_product(f, x, v):
    H = hessian(f)(x).reshape(x.numel(), x.numel())
    return (H @ v.reshape(-1)).reshape(x.shape)


def finite_difference_hvp(f, x, v, eps=1e-6):
    return (grad(f)(x + eps * v) - grad(f)(x)) / eps


def wrong_dual(method, rule):
    """The solution's Dual with one op replaced by ``rule``."""
    return type("Dual", (Dual,), {method: rule})


def unfinished_dual(*methods):
    """The solution's Dual with ``methods`` still the exercise's stubs."""
    return type("Dual", (Dual,), {m: getattr(EXERCISE.Dual, m) for m in methods})


def naive_sigmoid(self):
    s = 1 / (1 + math.exp(-self.data))
    return Dual(s, s * (1 - s) * self.tangent)


def naive_sigmoid_of_exp(self):
    """σ = eᵃ / (1 + eᵃ): fine at −1000, overflows at +1000."""
    e = math.exp(self.data)
    s = e / (1 + e)
    return Dual(s, s * (1 - s) * self.tangent)


def sigmoid_by_tanh(self):
    """Right, another stable formula: σ(a) = (1 + tanh(a / 2)) / 2."""
    s = 0.5 * (1 + math.tanh(self.data / 2))
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
        "a.sigmoid() at a=Dual(-1000.0, 0.75): your code raised OverflowError: math range "
        "error\n  Hint: at a = ±1000 the textbook forms of σ need e¹⁰⁰⁰",
    ),
    (
        "sigmoid",
        naive_sigmoid_of_exp,
        "a.sigmoid() at a=Dual(1000.0, 0.75): your code raised OverflowError: math range "
        "error\n  Hint: at a = ±1000 the textbook forms of σ need e¹⁰⁰⁰ (1 / (1 + e⁻ᵃ) at "
        "a = −1000, eᵃ / (1 + eᵃ) at a = 1000)",
    ),
]


def dual_jacobian(f, xs, *, one_hot=True, transposed=False, extra_run=False, cls=Dual):
    """Right by default (built on the solution's Dual, or `cls`); the keywords inject mistakes."""
    columns = []
    for j in range(len(xs)):
        tangents = [float(i == j) if one_hot else 1.0 for i in range(len(xs))]
        columns.append(
            [o.tangent for o in f([cls(x, t) for x, t in zip(xs, tangents, strict=True)])]
        )
        if extra_run:
            f([cls(x) for x in xs])
    J = np.array(columns)
    return J if transposed else J.T


RIGHT = {
    "check_jacobian_cheaper_side": jacobian,
    "check_per_sample_grad_norms": per_sample_norms,
    "check_hvp": hvp,
}

RIGHT_BUT_UNUSUAL = [
    ("check_jacobian_cheaper_side", jacobian_by_forward_ad),
    ("check_hvp", hvp_by_forward_ad),
    ("check_hvp", lambda f, x, v: jvp(jacrev(f), (x,), (v,))[1]),  # jacrev of a scalar
    ("check_hvp", lambda f, x, v: linearize(grad(f), x)[1](v)),  # and a plain gradient
    ("check_jacobian_cheaper_side", jacobian_filled_in),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: torch.linalg.vector_norm(
            torch.cat(
                [
                    g.flatten(1)
                    for g in vmap(
                        grad(
                            lambda p, x, t: torch.nn.functional.cross_entropy(
                                torch.func.functional_call(m, p, (x[None],)), t[None]
                            )
                        ),
                        in_dims=(None, 0, 0),
                    )(dict(m.named_parameters()), X, y).values()
                ],
                dim=1,
            ),
            dim=1,
        ),
    ),
]

STUBS = {name: stub for name in RIGHT}

WRONG = [
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacobian(f, x, "forward"),
        "f: R^5 -> R^2: passes through f: expected no JVP and 2 backward passes, got 5 JVPs "
        "and no backward pass\n  Hint: each pass gives one column (a JVP) or one row",
    ),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacobian(f, x, "reverse"),
        "f: R^2 -> R^5: passes through f: expected 2 JVPs and no backward pass, got no JVP "
        "and 5 backward passes",
    ),
    ("check_jacobian_cheaper_side", both_sides, "got 2 JVPs and 5 backward passes"),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: torch.autograd.functional.jacobian(f, x),
        "expected 2 JVPs and no backward pass, got no JVP and 5 backward passes",
    ),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacfwd(f)(x),
        "got 1 JVP carrying 2 tangents at once and no backward pass\n  Hint: this exercise "
        "counts the passes one by one: jacfwd and jacrev",
    ),
    ("check_jacobian_cheaper_side", vmap_over_jvp, "got 1 JVP carrying 2 tangents at once"),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: torch.autograd.functional.jacobian(f, x, vectorize=True),
        "got no JVP and 1 backward pass carrying a batch of cotangents at once",
    ),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacrev(f)(x),
        "expected 2 JVPs and no backward pass, got no JVP and 1 backward pass carrying 5 "
        "cotangents at once",
    ),
    (
        "check_jacobian_cheaper_side",
        lambda f, x: jacobian(f, x).T,
        "shape: expected (5, 2), got (2, 5)\n  Hint: your numbers are J's, transposed",
    ),
    (
        "check_jacobian_cheaper_side",
        jacobian_stacked_as_rows,
        "f: R^2 -> R^5: shape: expected (5, 2), got (2, 5)\n  Hint: your numbers are J's, "
        "transposed",
    ),
    ("check_jacobian_cheaper_side", jacobian_all_ones, "largest difference"),
    ("check_jacobian_cheaper_side", lambda f, x: 0, "expected a torch.Tensor"),
    (
        "check_per_sample_grad_norms",
        per_sample_norms_loop,
        "your code ran the model 16 times for 16 samples; vmap runs it once over the whole "
        "batch\n  Hint: a loop of backward passes runs the model once per sample",
    ),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y, batch=True),
        "Hint: every sample got the same norm: that is the gradient of the whole batch's loss",
    ),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y, sum_of_norms=True),
        "Hint: your numbers add up one norm per parameter tensor",
    ),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y, weights_only=True),
        "Hint: your norms leave out the gradients of 1.bias, 3.bias.",
    ),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y) ** 2,
        "Hint: your numbers are the squares of the norms.",
    ),
    (
        "check_per_sample_grad_norms",
        vmap_without_unsqueeze,
        "your code raised RuntimeError: mat1 and mat2 shapes cannot be multiplied (48x4 and "
        "12x8)\n  Hint: inside vmap your function sees one sample at a time, without the "
        "batch dimension",
    ),
    (
        "check_per_sample_grad_norms",
        label_without_unsqueeze,
        "your code raised ValueError: Expected input batch_size (1) to match target "
        "batch_size (0).\n  Hint: the model ran on your samples; what failed comes after it",
    ),
    (
        "check_per_sample_grad_norms",
        sum_over_the_batch,
        "your code raised RuntimeError: The size of tensor a (12) must match the size of "
        "tensor b (8) at non-singleton dimension 1\n  Hint: the model ran on your samples",
    ),
    (
        "check_per_sample_grad_norms",
        one_norm_for_the_batch,
        "shape: expected (16,), got ()\n  Hint: you returned one number for the whole batch",
    ),
    (
        "check_per_sample_grad_norms",
        lambda m, X, y: per_sample_norms(m, X, y).float(),
        "dtype: expected torch.float64, got torch.float32\n  Hint: your norms are "
        "torch.float32, the model's parameters and X are torch.float64.",
    ),
    (
        "check_hvp",
        hessian_then_product,
        "expected 1 JVP, then 1 backward pass (forward mode over the gradient), got 1 JVP "
        "carrying 5 tangents at once and 1 backward pass\n  Hint: a JVP that carries n "
        "tangents at once builds all of H",
    ),
    (
        "check_hvp",
        lambda f, x, v: jacfwd(grad(f))(x) @ v,
        "got 1 JVP carrying 5 tangents at once and 1 backward pass",
    ),
    (
        "check_hvp",
        reverse_over_reverse,
        "got no JVP and 1 backward pass\n  Hint: no JVP went through f: your code takes a "
        "gradient of a gradient",
    ),
    (
        "check_hvp",
        lambda f, x, v: torch.autograd.functional.hvp(f, x, v)[1],
        "Hint: no JVP went through f",
    ),
    (
        "check_hvp",
        lambda f, x, v: torch.autograd.functional.hessian(f, x) @ v,
        "Hint: no JVP went through f",
    ),
    (
        "check_hvp",
        reverse_over_forward,
        "got 1 JVP and no backward pass\n  Hint: a JVP went through f but no backward pass "
        "did: your code takes the gradient of a JVP (reverse-over-forward)",
    ),
    (
        "check_hvp",
        lambda f, x, v: jvp(grad(f), (x,), (v,))[0],
        "entries differ (shape (5,), torch.float64)",
    ),
    (
        "check_hvp",
        lambda f, x, v: jvp(grad(f), (x,), (v,))[0],
        "Hint: your numbers are the gradient ∇f(x), not H v.",
    ),
    ("check_hvp", lambda f, x, v: (grad(f)(x) * v).sum(), "shape: expected (5,), got ()"),
    (
        "check_hvp",
        lambda f, x, v: jvp(grad(f), (v,), (x,))[1],
        "entries differ (shape (5,), torch.float64); first: at (0,): expected 0.434594, got "
        "-0.0169441; at (1,): expected 0.769697, got -1.27747; at (2,): expected -0.129184, "
        "got -0.592468; largest difference at index (1,): expected 0.769697, got -1.27747\n"
        "  Hint: your numbers are the Hessian at v applied to x: x and v have swapped places.",
    ),
    (
        "check_hvp",
        lambda f, x, v: jvp(grad(f), (x,), (v,)),
        "Hint: your hvp returns a pair: jvp returns the function's value and its JVP",
    ),
    (
        "check_hvp",
        finite_difference_hvp,
        "5 of 5 entries differ (shape (5,), torch.float64)",
    ),
    (
        "check_hvp",
        finite_difference_hvp,
        "Hint: two gradients and no JVP: a difference of gradients",
    ),
]

# (check, a plausible wrong answer, a piece of the recipe its third ✗ gives), per exercise
GROWING_HINTS = [
    (checks.check_jacobian_cheaper_side, jacobian_all_ones, "torch.stack([jvp(f, (x,), (e,))"),
    (checks.check_jacobian_cheaper_side, lambda f, x: jacfwd(f)(x), "torch.eye(n, dtype"),
    (
        checks.check_per_sample_grad_norms,
        lambda m, X, y: per_sample_norms(m, X, y, batch=True),
        "vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)",
    ),
    (checks.check_jacobian_cheaper_side, jacobian_stacked_as_rows, "torch.eye(n, dtype"),
    (checks.check_per_sample_grad_norms, one_norm_for_the_batch, "g.flatten(start_dim=1)"),
    (checks.check_per_sample_grad_norms, label_without_unsqueeze, "t.unsqueeze(0))"),
    (checks.check_hvp, reverse_over_forward, "torch.func.jvp(torch.func.grad(f), (x,), (v,))"),
    (
        checks.check_hvp,
        lambda f, x, v: jvp(grad(f), (v,), (x,))[1],
        "torch.func.jvp(torch.func.grad(f), (x,), (v,))",
    ),
    (checks.check_hvp, finite_difference_hvp, "torch.func.jvp(torch.func.grad(f), (x,), (v,))"),
    (
        checks.check_dual_ops,
        wrong_dual("sigmoid", naive_sigmoid),
        "e = math.exp(-abs(self.data)); s = 1 / (1 + e) if self.data >= 0 else e / (1 + e)",
    ),
    (
        checks.check_dual_ops,
        wrong_dual("__pow__", lambda a, k: Dual(a.data**k, k * a.data ** (k - 1) * a.tangent)),
        "slope = k * self.data ** (k - 1) if k != 0 else 0.0",
    ),
    (
        checks.check_dual_ops,
        wrong_dual("exp", lambda a: Dual(math.exp(a.data), math.exp(a.data))),
        "e = math.exp(self.data); Dual(e, e * self.tangent)",
    ),
    (
        lambda f: checks.check_dual_jacobian(f, Dual),
        lambda f, xs: dual_jacobian(f, xs, one_hot=False),
        "np.array(columns).T",
    ),
    (
        lambda f: checks.check_dual_jacobian(f, Dual),
        lambda f, xs: dual_jacobian(f, xs, extra_run=True),
        "np.array(columns).T",
    ),
]


tests = table_tests(checks, RIGHT, STUBS, WRONG)
test_right_answer_passes, test_stub_is_not_done_yet, test_wrong_answer_fails_and_says_why = tests


@pytest.mark.parametrize(("name", "answer"), RIGHT_BUT_UNUSUAL)
def test_right_but_unusual_answer_passes(name, answer, capsys):
    assert_passes(getattr(checks, name), answer, capsys)


@pytest.mark.parametrize(("check", "wrong", "recipe"), GROWING_HINTS)
def test_the_first_cross_points_at_the_idea_and_the_third_gives_the_recipe(
    check, wrong, recipe, capsys
):
    assert_hint_grows(check, wrong, recipe, capsys)


def test_hint_full_gives_the_recipe_at_the_first_cross(capsys):
    verdict = checks.check_hvp(reverse_over_forward, hint="full")
    assert "Recipe: torch.func.jvp(torch.func.grad(f)" in verdict.message, verdict.message


@pytest.mark.parametrize(
    ("method", "rule"),
    [
        ("sigmoid", sigmoid_by_tanh),
        (
            "__pow__",
            lambda a, k: Dual(
                math.pow(a.data, k), (k * math.pow(a.data, k - 1) if k else 0.0) * a.tangent
            ),
        ),
        ("relu", lambda a: Dual(a.data * (a.data > 0), a.tangent * (a.data > 0))),
    ],
    ids=["sigmoid-by-tanh", "pow-by-math.pow", "relu-by-a-bool"],
)
def test_right_but_unusual_dual_passes(method, rule, capsys):
    assert_passes(checks.check_dual_ops, wrong_dual(method, rule), capsys)


def test_per_sample_norms_in_chunks_pass(capsys):
    """vmap's chunk_size runs the model once per chunk: two chunks are still one batch."""

    def in_chunks(model, X, y):
        params = {k: p.detach() for k, p in model.named_parameters()}

        def loss(params, x, t):
            logits = torch.func.functional_call(model, params, (x.unsqueeze(0),))
            return torch.nn.functional.cross_entropy(logits, t.unsqueeze(0))

        grads = vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=8)(params, X, y)
        return torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()]).norm(dim=0)

    assert_passes(checks.check_per_sample_grad_norms, in_chunks, capsys)


def test_dual_jacobian_by_column_stack_passes(capsys):
    def by_column_stack(f, xs):
        one_hot = [[Dual(x, float(i == j)) for i, x in enumerate(xs)] for j in range(len(xs))]
        return np.column_stack([[out.tangent for out in f(duals)] for duals in one_hot])

    assert_passes(lambda f: checks.check_dual_jacobian(f, Dual), by_column_stack, capsys)


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


def test_not_done_yet_names_the_methods_that_still_raise(capsys):
    verdict = checks.check_dual_ops(unfinished_dual("sigmoid"))
    assert verdict.status == "todo", verdict
    assert "not done yet. Dual.sigmoid still raises NotImplementedError." in verdict.message
    verdict = checks.check_dual_ops(unfinished_dual("exp", "sigmoid"))
    assert "Dual.exp, Dual.sigmoid still raise NotImplementedError." in verdict.message
    assert "None of Dual's methods is written yet" in checks.check_dual_ops(EXERCISE.Dual).message
    capsys.readouterr()


def test_a_written_method_is_checked_while_others_still_raise(capsys):
    partly = type("Dual", (unfinished_dual("sigmoid"),), {"__mul__": WRONG_DUALS[0][1]})
    assert_fails(checks.check_dual_ops, partly, "a * b at", capsys)


def test_dual_jacobian_done_but_dual_not_says_which_method(capsys):
    partly = unfinished_dual("sigmoid")
    verdict = checks.check_dual_jacobian(lambda f, xs: dual_jacobian(f, xs, cls=partly), partly)
    assert verdict.status == "todo", verdict
    assert "Dual.sigmoid (Exercise 5.4) still raises NotImplementedError" in verdict.message
    capsys.readouterr()


@pytest.mark.parametrize(
    ("method", "rule", "message"), WRONG_DUALS, ids=[f"{w[0]}-{w[2]}" for w in WRONG_DUALS]
)
def test_wrong_tangent_rule_fails_and_names_the_op(method, rule, message, capsys):
    assert_fails(checks.check_dual_ops, wrong_dual(method, rule), message, capsys)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            lambda f, xs: dual_jacobian(f, xs, transposed=True),
            "shape: expected (2, 3), got (3, 2)\n  Hint: J has one row per output",
        ),
        (lambda f, xs: dual_jacobian(f, xs, one_hot=False), "largest difference"),
        (
            lambda f, xs: dual_jacobian(f, xs, extra_run=True),
            "number of runs of f (one per input): expected 3, got 6\n  Hint: f ran more often "
            "than once per input",
        ),
        (lambda f, xs: dual_jacobian(f, xs).tolist(), "expected a NumPy array"),
        (lambda f, xs: np.array(f(xs)), "your code raised AttributeError"),
    ],
)
def test_wrong_dual_jacobian_fails(wrong, message, capsys):
    assert_fails(lambda f: checks.check_dual_jacobian(f, Dual), wrong, message, capsys)


def test_count_passes_records_each_kind_in_order():
    f, passes = count_passes(lambda x: x.sin())
    x = torch.ones(3)
    jvp(f, (x,), (x,))
    _, pullback = vjp(f, x)
    pullback(x)
    pullback(x)
    assert passes.events == [("forward", 1), ("backward", 1), ("backward", 1)], passes
    assert repr(passes) == "Passes(forward=[1], backward=[1, 1])"


def test_count_passes_sees_the_batches_of_vmap():
    """jacfwd and jacrev run one pass carrying the whole batch; vmap of f runs no pass."""
    f = lambda x: torch.tanh(x[:3] * x.sum())  # noqa: E731 (R^5 -> R^3)
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    for transform, events in [
        (jacfwd, [("forward", 5)]),
        (jacrev, [("backward", 3)]),
        (lambda g: hessian(lambda t: g(t).sum()), [("forward", 5), ("backward", 1)]),
    ]:
        counted, passes = count_passes(f)
        expected = transform(f)(x)
        assert torch.allclose(transform(counted)(x), expected), f"{transform}: values"
        assert passes.events == events, f"{transform}: {passes.events}"
    counted, passes = count_passes(f)
    X = x.expand(4, 5)
    assert torch.equal(vmap(counted)(X), vmap(f)(X)), "vmap of the counted f"
    assert passes.events == [], f"vmap alone is no pass: {passes.events}"
