"""Checks for the exercises of Chapter 3 (autograd mechanics).

Torch is the reference: each hand-written vector-Jacobian product is compared with
`torch.autograd.grad` on the same inputs, in float64.
"""

import sys
from collections.abc import Callable
from typing import Any

import torch

from course.checks import (
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    expect_equal,
    generator,
    hinted,
    random_tensor,
)


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    """Reproducible float64 input (`seed` tells two same-shaped inputs apart)."""
    return random_tensor(*shape, seed=1000 * seed + sum(shape))


def _torch_vjp(f, inputs: tuple, v: torch.Tensor) -> tuple:
    """vᵀJ of `f` at `inputs`, by torch: the reference for the hand-written VJPs."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    return torch.autograd.grad(f(*leaves), leaves, grad_outputs=v)


def _by_hand(what: str, function, *args):
    """Call the learner's VJP with recording off, so that it cannot lean on autograd."""
    with torch.no_grad():
        return call(what, function, *args)


def check_vjp_tanh(vjp_tanh: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Verdict:
    """Exercise 3.1: `vjp_tanh(x, v)` is vᵀJ of `y = torch.tanh(x)`."""
    shapes = [(5,), (3, 4), (2, 1, 3)]

    def body():
        for shape in shapes:
            x, v = _random(*shape), _random(*shape, seed=1)
            got = _by_hand(f"x of shape {shape}", vjp_tanh, x, v)
            (expected,) = _torch_vjp(torch.tanh, (x,), v)
            expect_close(got, expected, f"x of shape {shape}", rtol=1e-9)
        return f"matches torch.autograd.grad on {len(shapes)} shapes"

    return check(
        "Exercise 3.1 (vjp_tanh)",
        body,
        hint="J is diagonal with tanh'(x) = 1 - tanh(x)² on it, so vᵀJ is an elementwise "
        "product with v",
    )


def check_vjp_matmul(vjp_matmul: Callable[..., tuple]) -> Verdict:
    """Exercise 3.2: `vjp_matmul(A, B, V)` is (vᵀJ for A, vᵀJ for B) of `Y = A @ B`.

    Every matrix has a different number of rows and columns, so a missing or misplaced
    transpose fails on shapes (or values) rather than passing by accident.
    """
    sizes = [(2, 3, 4), (5, 1, 2), (1, 4, 3)]

    def body():
        for n, k, m in sizes:
            A, B, V = _random(n, k), _random(k, m, seed=1), _random(n, m, seed=2)
            what = f"A of shape {(n, k)}, B of shape {(k, m)}"
            got = _by_hand(what, vjp_matmul, A, B, V)
            expect(
                isinstance(got, tuple) and len(got) == 2,
                f"{what}: expected a tuple (grad_A, grad_B), got {describe(got)}",
            )
            grad_A, grad_B = _torch_vjp(torch.matmul, (A, B), V)
            expect_close(got[0], grad_A, f"{what}: grad_A", rtol=1e-9)
            expect_close(got[1], grad_B, f"{what}: grad_B", rtol=1e-9)
        return f"matches torch.autograd.grad on {len(sizes)} pairs of matrices"

    return check(
        "Exercise 3.2 (vjp_matmul)",
        body,
        hint="grad_A must have A's shape (n, k) and grad_B B's shape (k, m): find the one "
        "product of V with B or A (transposed) that has that shape",
    )


def check_vjp_sum(vjp_sum: Callable[..., torch.Tensor]) -> Verdict:
    """Exercise 3.3: `vjp_sum(x, dim, v)` is vᵀJ of `y = x.sum(dim)`.

    The square case catches `v.expand_as(x)`, which lines `v` up with the last
    dimension whatever `dim` is.
    """
    cases = [((3, 4), 0), ((3, 4), 1), ((3, 3), 1), ((2, 3, 4), 1), ((2, 3, 4), -1), ((5,), 0)]

    def body():
        for shape, dim in cases:
            x = _random(*shape)
            v = _random(*x.sum(dim).shape, seed=1)
            what = f"x of shape {shape}, dim={dim}"
            got = _by_hand(what, vjp_sum, x, dim, v)
            (expected,) = _torch_vjp(lambda t, d=dim: t.sum(d), (x,), v)
            expect_close(got, expected, what, rtol=1e-12)
        return f"matches torch.autograd.grad on {len(cases)} cases"

    return check(
        "Exercise 3.3 (vjp_sum)",
        body,
        hint="every x element of a slice gets that slice's v: put the summed dimension back "
        "with unsqueeze(dim), then expand to x's shape",
    )


def _jacobian_cases():
    """(description, f, x) with outputs shaped unlike their inputs."""
    W = _random(2, 3)
    return [
        ("f(x) = W @ x, x of shape (3,), y of shape (2,)", lambda x: W @ x, _random(3)),
        (
            "f(x) = outer(x, x[:2]).sin(), x of shape (4,), y of shape (4, 2)",
            lambda x: torch.outer(x, x[:2]).sin(),
            _random(4),
        ),
        (
            "f(x) = x.sum(dim=0) ** 2, x of shape (2, 3), y of shape (3,)",
            lambda x: x.sum(0) ** 2,
            _random(2, 3),
        ),
        ("f(x) = (x ** 3).sum(), a scalar", lambda x: (x**3).sum(), _random(2, 2)),
    ]


READY_MADE = ("torch/autograd/functional.py", "torch/_functorch/", "torch/func/")
"""Where torch's own Jacobian makers live: a backward pass started from there is not yours."""


def _ready_made_caller() -> str | None:
    """The file of torch's Jacobian maker on the current call stack, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        if any(part in name for part in READY_MADE):
            return name.split("site-packages/")[-1]
        frame = frame.f_back
    return None


def check_jacobian_by_vjps(jacobian_by_vjps: Callable[[Callable, torch.Tensor], Any]) -> Verdict:
    """Exercise 3.4: `jacobian_by_vjps(f, x)` builds J from one backward pass per output.

    The result has shape `y.shape + x.shape` like `torch.autograd.functional.jacobian`.
    A hook on `y` counts the backward passes through it and checks that each one starts
    from the learner's code with a `gradient` shaped like `y`: a Jacobian made by
    `torch.autograd.functional.jacobian` or `torch.func` (which make the passes, or
    none, for you) does not pass.
    """

    def body():
        for what, f, x in _jacobian_cases():
            passes, helpers = [], []

            def hook(grad, passes=passes, helpers=helpers):
                passes.append(tuple(grad.shape))
                caller = _ready_made_caller()
                if caller is not None:
                    helpers.append(caller)

            def counted(t, f=f, hook=hook):
                y = f(t)
                if isinstance(y, torch.Tensor) and y.requires_grad:
                    y.register_hook(hook)
                return y

            got = call(what, jacobian_by_vjps, counted, x.detach().requires_grad_())
            expect(
                not helpers,
                f"{what}: the backward passes were made by torch ({helpers[0] if helpers else ''})"
                ": make one backward pass per output yourself, with torch.autograd.grad or "
                "y.backward, not with torch.autograd.functional.jacobian or torch.func",
            )
            expected = torch.autograd.functional.jacobian(f, x)
            expect_close(got, expected, what, rtol=1e-9)
            y_shape = tuple(f(x).shape)
            expect_equal(len(passes), f(x).numel(), f"{what}: number of backward passes through y")
            expect(
                all(shape == y_shape for shape in passes),
                f"{what}: each backward pass must start from a gradient shaped like y "
                f"{y_shape}; got {passes}",
            )
        return "matches torch.autograd.functional.jacobian on 4 functions, one pass per output"

    return check(
        "Exercise 3.4 (jacobian_by_vjps)",
        body,
        hint="run backward once per output element with a one-hot `gradient` shaped like "
        "y (not like x), keep the graph with retain_graph=True, and reshape the stacked rows "
        "to y.shape + x.shape",
    )


LSE_ROWS = [
    [-1000.0, -1000.0, -1001.0],
    [1000.0, 999.0, 0.0],
    [0.0, 1.0, 2.0],
    [-50.0, 50.0, 0.0],
    [88.0, 89.0, 90.0],
    [1e-3, -1e-3, 0.0],
]
"""Rows where the naive log(exp(x).sum()) overflows (e¹⁰⁰⁰; e⁸⁹ in float32) or underflows
(e⁻¹⁰⁰⁰ is 0, and log 0 = -inf), next to ordinary ones: one max for the whole tensor is not
enough (Exercise 3.5)."""

LSE_VALUE_HINT = (
    "subtract each row's maximum m = x.amax(dim=-1, keepdim=True) before exp, then add it "
    "back: lse(x) = m + log(Σ exp(x - m)), so that every exponent is at most 0"
)
LSE_GRAD_HINT = (
    "the gradient is softmax(x) = exp(x - lse(x)) (save x and the output in forward: it "
    "never overflows), times grad_output.unsqueeze(-1) (one grad_output per row)"
)


def _lse_inputs(dtype: torch.dtype) -> list[tuple[str, torch.Tensor]]:
    masked = [[0.0, -torch.inf, 1.0], [-torch.inf, 2.0, 3.0]]
    return [
        (f"x = {LSE_ROWS}", torch.tensor(LSE_ROWS, dtype=dtype)),
        ("x of shape (4, 4) from randn * 10", random_tensor(4, 4, seed=5, dtype=dtype, scale=10)),
        ("x of shape (5,) (a scalar out)", random_tensor(5, seed=6, dtype=dtype, scale=30)),
        ("x of shape (2, 3, 4)", random_tensor(2, 3, 4, seed=7, dtype=dtype)),
        (f"x = {masked} (masked entries)", torch.tensor(masked, dtype=dtype)),
    ]


def check_logsumexp(LogSumExp: Any) -> Verdict:
    """Exercise 3.5: `LogSumExp` is an `autograd.Function` for logsumexp over the last dim.

    Its values and gradients (for a random `grad_output`) must match
    `torch.logsumexp` in float32 and float64, also on rows at ±1000 mixed with
    ordinary rows, and with `-inf` entries; its backward must pass `gradcheck`.
    """

    def body():
        expect(
            isinstance(LogSumExp, type) and issubclass(LogSumExp, torch.autograd.Function),
            f"expected a subclass of torch.autograd.Function, got {describe(LogSumExp)}",
        )
        for dtype in (torch.float64, torch.float32):
            # float32: an output near 1000 is rounded by 1000 * 2⁻²⁴ ≈ 6e-5, and exp(x - out)
            # carries that relative error into the gradient
            rtol, atol = (1e-9, 1e-12) if dtype == torch.float64 else (2e-4, 1e-6)
            for i, (text, x) in enumerate(_lse_inputs(dtype)):
                what = f"{text} in {dtype}"
                leaf = x.clone().requires_grad_()
                with hinted(LSE_VALUE_HINT, what):
                    got = call(what, LogSumExp.apply, leaf)
                    expect_close(got, torch.logsumexp(x, dim=-1), f"{what}: values", rtol, atol)
                v = torch.randn(got.shape, generator=generator(10 + i), dtype=dtype)
                reference = x.clone().requires_grad_()
                (expected,) = torch.autograd.grad(torch.logsumexp(reference, dim=-1), reference, v)
                with hinted(LSE_GRAD_HINT, what):
                    expect(got.requires_grad, f"{what}: the output does not require grad")
                    (grad,) = call(f"{what}: backward", torch.autograd.grad, got, leaf, v)
                    expect_close(
                        grad, expected, f"{what}: gradients for a random grad_output", rtol, atol
                    )
        x64 = _random(3, 4).requires_grad_()
        with hinted(LSE_GRAD_HINT):
            call(
                "gradcheck on a float64 input of shape (3, 4)",
                torch.autograd.gradcheck,
                LogSumExp.apply,
                (x64,),
            )
        return (
            "right values and gradients at ±1000 and with -inf entries, in float32 and "
            "float64; gradcheck passes"
        )

    return check("Exercise 3.5 (LogSumExp)", body, hint=LSE_VALUE_HINT)


def check_clip_hook(add_clip_hook: Callable[..., Any]) -> Verdict:
    """Exercise 3.6: `add_clip_hook(t, limit, log)` logs each gradient and clips it.

    Tried on a non-leaf (the clipped gradient flows on to the leaf) and on a leaf (it is
    what lands in `.grad`); after `handle.remove()` a backward pass is left alone.
    """
    limit = 1.0
    upstream = torch.tensor([0.5, -4.0, 2.0], dtype=torch.float64)
    clipped = upstream.clamp(-limit, limit)

    def body():
        for where in ("a non-leaf h = 3 * x", "a leaf x"):
            x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
            h = 3 * x if where.startswith("a non-leaf") else x
            scale = 3.0 if h is not x else 1.0
            log = []
            handle = call(where, add_clip_hook, h, limit, log)
            expect(
                hasattr(handle, "remove"),
                f"{where}: return the handle that register_hook gives, got {describe(handle)}",
            )
            loss = (h * upstream).sum()
            loss.backward(retain_graph=True)
            expect_equal(len(log), 1, f"{where}: number of gradients logged after one backward")
            expect_close(log[0], upstream, f"{where}: the logged gradient (before clipping)")
            expect_close(x.grad, scale * clipped, f"{where}: x.grad with the hook")
            handle.remove()
            x.grad = None
            loss.backward()
            expect_equal(len(log), 1, f"{where}: number of gradients logged after remove()")
            expect_close(x.grad, scale * upstream, f"{where}: x.grad after remove()")
        return "logs and clips on a non-leaf and on a leaf; remove() turns it off"

    return check(
        "Exercise 3.6 (add_clip_hook)",
        body,
        hint="register a function that appends grad.clone() to log and returns "
        "grad.clamp(-limit, limit) (a new tensor: don't change grad in place); return the "
        "handle that register_hook gives you",
    )
