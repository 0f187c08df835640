"""Checks for the exercises of Chapter 5 (forward mode, reverse mode and torch.func).

Torch is the reference, in float64. Where an exercise asks for a method (one JVP per input,
vmap instead of a loop, forward-over-reverse), the check also watches how the answer was
computed: the functions it hands over send their output through :class:`Tap`, an identity
`autograd.Function` that counts the forward-mode (JVP) and reverse-mode (backward) passes
through it, and that does not support `vmap`.
"""

import math
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import jacrev

from course.checks import Verdict, call, check, describe, expect, expect_close, expect_equal


def _first_jvp_quietly() -> None:
    """Run the process's first forward-mode product here, hiding the warning it gives.

    The first JVP imports a module of torch that calls the deprecated `torch.jit.script`:
    a FutureWarning about torch's own code, printed with the path of torch's files on
    this machine, under whichever cell happens to run forward mode first. It comes once
    per process, so running one tiny JVP now, with that one warning ignored, keeps it off
    every page that imports these checks; every other warning still shows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script", category=FutureWarning)
        torch.func.jvp(torch.sin, (torch.zeros(()),), (torch.ones(()),))


_first_jvp_quietly()


class Tap(torch.autograd.Function):
    """The identity, counting each JVP and each backward pass through it in `passes`.

    Written in the `setup_context` form so that `torch.func.jvp`, `torch.func.vjp`
    and `torch.func.grad` accept it. It has no `vmap` rule on purpose: `jacfwd` and
    `hessian`, which batch JVPs with `vmap`, refuse it, and `jacrev`'s batched
    backward counts as one pass. A counted function is differentiated one pass at a time.
    """

    @staticmethod
    def forward(y, passes):
        """Pass `y` through unchanged (the counting happens in the derivatives)."""
        return y.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        """Keep the pass counter for the derivative rules."""
        ctx.passes = inputs[1]

    @staticmethod
    def jvp(ctx, y_tangent, _):
        """Count one forward-mode pass; the tangent goes through unchanged."""
        ctx.passes["forward"] += 1
        return y_tangent

    @staticmethod
    def backward(ctx, grad):
        """Count one backward pass; the gradient goes through unchanged."""
        ctx.passes["backward"] += 1
        return grad, None


def count_passes(f):
    """`(g, passes)`: `g` computes `f` and counts the passes through its output.

    `passes["forward"]` counts the JVPs (`torch.func.jvp` or `forward_ad`) that reach
    the output and `passes["backward"]` the backward passes that start from it.
    """
    passes = Counter(forward=0, backward=0)

    def g(*args):
        return Tap.apply(f(*args), passes)

    return g, passes


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1000 * seed + sum(shape))
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def _jacobian_cases():
    """(n, m, f) for f: ℝⁿ → ℝᵐ, wide, tall, square and with one output."""
    cases = []
    for n, m in [(2, 5), (5, 2), (3, 3), (4, 1)]:
        W = _random(m, n, seed=n)
        cases.append((n, m, lambda x, W=W: torch.tanh(W @ x) * x.sum()))
    return cases


def check_jacobian_cheaper_side(jacobian: Callable[..., Any]) -> Verdict:
    """Exercise 5.1: `jacobian(f, x)` is J (shape (m, n)), from the cheaper side.

    For n ≤ m it must take n JVPs and no backward pass; for m < n, m backward passes and
    no JVP (`jacfwd` fails on the counted function, and `jacrev` counts as one pass).
    """

    def body():
        for n, m, f in _jacobian_cases():
            what = f"f: R^{n} -> R^{m}"
            counted, passes = count_passes(f)
            x = _random(n, seed=1)
            got = call(what, jacobian, counted, x)
            expect_close(got, jacrev(f)(x), what, rtol=1e-9)
            if n < m:
                expected = {"forward": n, "backward": 0}
            elif m < n:
                expected = {"forward": 0, "backward": m}
            else:
                expected = None
            counts = {"forward": passes["forward"], "backward": passes["backward"]}
            if expected is None:
                total = counts["forward"] + counts["backward"]
                expect_equal(total, n, f"{what}: number of passes (JVPs + backward)")
            else:
                expect_equal(counts, expected, f"{what}: passes (JVPs, backward passes)")
        return "J right on 4 shapes, n JVPs when n ≤ m and m backward passes when m < n"

    return check(
        "Exercise 5.1 (jacobian)",
        body,
        hint="a JVP with the one-hot tangent e_j gives column j of J, a VJP with the one-hot "
        "cotangent e_i gives row i: loop over the shorter side, one torch.func.jvp (or "
        "vjp pullback call) per input (or output), not jacfwd or jacrev, and stack columns "
        "with dim=1, rows with dim=0",
    )


def _small_net(widths, seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(widths[0], widths[1]), nn.ReLU(), nn.Linear(widths[1], widths[2])
    ).double()


def per_sample_norms_loop(model, X, y):
    """The reference: one backward pass per sample, the norm over all parameters together."""
    norms = []
    for i in range(len(X)):
        model.zero_grad()
        nn.functional.cross_entropy(model(X[i : i + 1]), y[i : i + 1]).backward()
        norms.append(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())))
    model.zero_grad(set_to_none=True)
    return torch.stack(norms)


def check_per_sample_grad_norms(per_sample_grad_norms: Callable[..., Any]) -> Verdict:
    """Exercise 5.2: `per_sample_grad_norms(model, X, y)` is ‖∇θ loss(xᵢ, yᵢ)‖ per sample.

    Compared with a loop of single-sample backward passes; a forward pre-hook counts the
    model's calls, which must not grow with the batch (vmap runs the model once).
    """
    cases = [((12, 8, 3), (16, 3, 4)), ((20, 6, 5), (9, 20))]

    def body():
        for seed, (widths, shape) in enumerate(cases):
            model = _small_net(widths, seed)
            X = _random(*shape, seed=seed)
            y = torch.randint(
                0, widths[2], (shape[0],), generator=torch.Generator().manual_seed(seed)
            )
            expected = per_sample_norms_loop(model, X, y)
            calls = []
            handle = model.register_forward_pre_hook(lambda module, args, c=calls: c.append(1))
            what = f"a {'-'.join(map(str, widths))} MLP, X of shape {shape}"
            try:
                got = call(what, per_sample_grad_norms, model, X, y)
            finally:
                handle.remove()
            expect_close(got, expected, what, rtol=1e-8)
            expect(
                len(calls) <= 2,
                f"{what}: your code ran the model {len(calls)} times for {shape[0]} samples; "
                "vmap runs it once over the whole batch",
            )
        return "right norms for 2 networks and batches, the model run once per batch"

    return check(
        "Exercise 5.2 (per_sample_grad_norms)",
        body,
        hint="write loss(params, x, t) for ONE sample with functional_call(model, params, "
        "(x.unsqueeze(0),)) and t.unsqueeze(0); vmap(grad(loss), in_dims=(None, 0, 0)) "
        "gives every sample's gradients; the norm is the square root of the sum of squares "
        "over all parameters together",
    )


def _hvp_cases():
    A = _random(4, 4, seed=3)
    return [
        ("f(x) = ½ xᵀAx with A not symmetric, x of shape (4,)", lambda x: 0.5 * x @ (A @ x), (4,)),
        (
            "f(x) = Σ tanh(x)² + x₀x₁³, x of shape (5,)",
            lambda x: (torch.tanh(x) ** 2).sum() + x[0] * x[1] ** 3,
            (5,),
        ),
        (
            "f(X) = log Σ exp(X @ X.T), X of shape (2, 3)",
            lambda X: torch.logsumexp(X @ X.T, dim=(0, 1)),
            (2, 3),
        ),
    ]


def check_hvp(hvp: Callable[..., Any]) -> Verdict:
    """Exercise 5.3: `hvp(f, x, v)` is H v by forward-over-reverse (`jvp` of `grad`).

    Compared with `hessian(f)(x)` contracted with `v`; the counted `f` must see one
    JVP (the forward mode over the gradient) and refuses `vmap`, so `hessian` fails.
    """

    def body():
        for seed, (what, f, shape) in enumerate(_hvp_cases()):
            x, v = _random(*shape, seed=seed), _random(*shape, seed=seed + 10)
            H = torch.func.hessian(f)(x).reshape(x.numel(), x.numel())
            expected = (H @ v.reshape(-1)).reshape(shape)
            counted, passes = count_passes(f)
            got = call(what, hvp, counted, x, v)
            expect_close(got, expected, what, rtol=1e-9)
            expect(
                passes["forward"] >= 1,
                f"{what}: no JVP went through f: this is not forward-over-reverse",
            )
        return "H v right on 3 functions, by forward mode over the gradient"

    return check(
        "Exercise 5.3 (hvp)",
        body,
        hint="H v is the directional derivative of the gradient along v: "
        "torch.func.jvp(torch.func.grad(f), (x,), (v,)) returns (gradient, H v); keep the "
        "second",
    )


# (name, op on Duals or torch tensors, the inputs where it is tried)
DUAL_OPS = [
    ("a + b", lambda a, b: a + b, [(0.5, -2.0), (3.0, 1.5)]),
    ("a * b", lambda a, b: a * b, [(0.5, -2.0), (3.0, 1.5)]),
    ("a * a", lambda a: a * a, [(-1.5,), (2.0,)]),
    ("a ** 3", lambda a: a**3, [(-1.5,), (2.0,)]),
    ("a ** -1", lambda a: a**-1, [(-1.5,), (2.0,)]),
    ("a ** 0.5", lambda a: a**0.5, [(0.7,), (2.0,)]),
    ("a ** 0", lambda a: a**0, [(0.0,), (2.0,)]),
    ("a.exp()", lambda a: a.exp(), [(-1.5,), (2.0,)]),
    ("a.log()", lambda a: a.log(), [(0.3,), (2.0,)]),
    ("a.tanh()", lambda a: a.tanh(), [(-1.5,), (0.0,), (30.0,)]),
    ("a.relu()", lambda a: a.relu(), [(-1.5,), (0.0,), (2.0,)]),
    ("a.sigmoid()", lambda a: a.sigmoid(), [(-1000.0,), (-1.5,), (2.0,), (1000.0,)]),
    ("a - b / a", lambda a, b: a - b / a, [(0.5, -2.0), (3.0, 1.5)]),
    ("2 / a - 1", lambda a: 2 / a - 1, [(0.5,), (-3.0,)]),
]

TANGENTS = (0.75, -1.25)


def _torch_jvp(op, values):
    primals = tuple(torch.tensor(v, dtype=torch.float64) for v in values)
    tangents = tuple(torch.tensor(t, dtype=torch.float64) for t in TANGENTS[: len(values)])
    value, tangent = torch.func.jvp(op, primals, tangents)
    return value.item(), tangent.item()


def check_dual_ops(Dual: type) -> Verdict:
    """Exercise 5.4: every op of `Dual` carries the right value and tangent.

    Each op is tried at a few points (0 for relu and `** 0`, ±1000 for sigmoid) with
    tangents other than 1, against `torch.func.jvp` in float64.
    """

    def body():
        for name, op, points in DUAL_OPS:
            for values in points:
                pairs = list(zip(values, TANGENTS[: len(values)], strict=True))
                inputs = [call(f"Dual({v}, {t})", Dual, v, t) for v, t in pairs]
                args = ", ".join(
                    f"{n}=Dual({v}, {t})" for n, (v, t) in zip("ab", pairs, strict=False)
                )
                what = f"{name} at {args}"
                out = call(what, op, *inputs)
                expect(
                    hasattr(out, "data") and hasattr(out, "tangent"),
                    f"{what}: expected a Dual, got {describe(out)}",
                )
                value, tangent = _torch_jvp(op, values)
                expect(
                    all(math.isfinite(float(getattr(out, k))) for k in ("data", "tangent")),
                    f"{what}: expected finite data and tangent, got {describe(out)}",
                )
                expect_close(float(out.data), value, f"{what}: data", rtol=1e-12)
                expect_close(float(out.tangent), tangent, f"{what}: tangent", rtol=1e-12)
        return f"data and tangent match torch.func.jvp for {len(DUAL_OPS)} expressions"

    return check(
        "Exercise 5.4 (Dual)",
        body,
        hint="each tangent is the local derivative times the input's tangent: "
        "(a·b)' = a'·b + a·b', exp(a)' = exp(a)·a', log(a)' = a'/a, tanh(a)' = "
        "(1 - tanh²a)·a', relu(a)' = a' where a > 0 and 0 elsewhere, (aᵏ)' = k·aᵏ⁻¹·a'",
    )


def jacobian_cases():
    """(description, f, xs): f maps a list of n numbers to a list of m numbers.

    Written with the ops that `Dual`, the Chapter 4 `Value` and torch tensors share.
    """
    return [
        (
            "f(x) = [x0·x1 + exp(x2), tanh(x1²) - x0 / x2]",
            lambda x: [x[0] * x[1] + x[2].exp(), (x[1] ** 2).tanh() - x[0] / x[2]],
            [0.5, -1.2, 2.0],
        ),
        (
            "f(x) = [sigmoid(x0) · log(x1), relu(x0 - x1), x1 ** 3]",
            lambda x: [x[0].sigmoid() * x[1].log(), (x[0] - x[1]).relu(), x[1] ** 3],
            [1.7, 0.4],
        ),
    ]


def value_jacobian(Value, f, xs):
    """J by reverse mode with a Chapter 4 `Value` engine: one backward pass per output."""
    rows = []
    for i in range(len(f([Value(x) for x in xs]))):
        leaves = [Value(x) for x in xs]
        f(leaves)[i].backward()
        rows.append([leaf.grad for leaf in leaves])
    return np.array(rows)


def check_dual_jacobian(dual_jacobian: Callable[..., Any], Dual: type) -> Verdict:
    """Exercise 5.5: `dual_jacobian(f, xs)` is J by one forward pass of `Dual` per input.

    Compared with `jacrev` and with the Jacobian by VJPs of the Chapter 4 reference
    engine (`course.notebooks.engine().Value`); `f` must run exactly n times, on Duals.
    """
    from course.notebooks import engine

    def body():
        for what, f, xs in jacobian_cases():
            runs = []

            def counted(x, f=f, runs=runs):
                runs.append([type(v).__name__ for v in x])
                return f(x)

            got = call(what, dual_jacobian, counted, list(xs))
            expected = jacrev(lambda t, f=f: torch.stack(f(list(t))))(
                torch.tensor(xs, dtype=torch.float64)
            ).numpy()
            expect_close(got, expected, what, rtol=1e-12, dtype=False)
            by_vjps = value_jacobian(engine().Value, f, xs)
            expect_close(got, by_vjps, f"{what}: against Chapter 4's Jacobian by VJPs", rtol=1e-12)
            expect_equal(len(runs), len(xs), f"{what}: number of runs of f (one per input)")
            expect(
                all(name == Dual.__name__ for run in runs for name in run),
                f"{what}: f was called with {runs[0]}, expected a list of Duals",
            )
        return "J right on 2 functions with one forward pass per input; equal to J by VJPs"

    return check(
        "Exercise 5.5 (dual_jacobian)",
        body,
        hint="for each input j, call f on Duals whose tangents are the one-hot e_j: the "
        "outputs' tangents are column j of J; return a NumPy array of shape (m, n)",
    )
