"""Checks for the exercises of Chapter 3 (autograd mechanics).

Torch is the reference: each hand-written vector-Jacobian product is compared with
`torch.autograd.grad` on the same inputs, in float64.
"""

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from course.checks import (
    Hint,
    Mismatch,
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    expect_equal,
    generator,
    hinted,
    learner_check,
    random_tensor,
)


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    """Reproducible float64 input (`seed` tells two same-shaped inputs apart)."""
    return random_tensor(*shape, seed=1000 * seed + sum(shape))


def _same(got: Any, value: torch.Tensor) -> bool:
    """Whether `got` is `value` (a tensor of its shape and dtype, close in every entry)."""
    return (
        isinstance(got, torch.Tensor)
        and got.shape == value.shape
        and got.dtype == value.dtype
        and torch.allclose(got, value)
    )


def _hinted_if(mistake: bool, hint: Hint) -> AbstractContextManager:
    """`hinted(hint)` where a known mistake was recognised; otherwise the check's hint."""
    return hinted(hint) if mistake else nullcontext()


def _torch_vjp(f, inputs: tuple, v: torch.Tensor) -> tuple:
    """vᵀJ of `f` at `inputs`, by torch: the reference for the hand-written VJPs."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    return torch.autograd.grad(f(*leaves), leaves, grad_outputs=v)


REVERSE = (
    "your code asked autograd for the derivative (it made a tensor that requires grad, "
    "as requires_grad_, backward, torch.autograd.grad, torch.autograd.functional and "
    "torch.func.grad, vjp or jacrev do)"
)
FORWARD = (
    "your code asked autograd's forward mode for the derivative (a tensor that carries a "
    "tangent, as torch.func.jvp, jacfwd and torch.autograd.forward_ad make)"
)


class _AutogradUse(TorchFunctionMode):
    """Notes every way a torch call made while it is active involves autograd.

    Reverse mode, however it is reached, needs a tensor that requires grad; forward mode
    a tensor with a tangent, in an open dual level. Looking at what each call takes and
    returns, and at the dual level it runs in, catches every
    entry point (backward, `torch.autograd.grad`, `torch.autograd.functional`, every
    `torch.func` transform, `forward_ad`) without a list of names.
    """

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []  # REVERSE and/or FORWARD, in the order first seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_leaves((args, kwargs, result)) if isinstance(t, torch.Tensor)]
        if any(t.requires_grad for t in tensors):
            self._note(REVERSE)
        if fwAD._current_level >= 0 or any(_has_tangent(t) for t in tensors):
            self._note(FORWARD)
        return result

    def _note(self, use: str) -> None:
        if use not in self.found:
            self.found.append(use)


def _has_tangent(t: torch.Tensor) -> bool:
    """Whether `t` carries a forward-mode tangent (False where that cannot be asked, as
    inside vmap: a dual level is then open, which the caller sees)."""
    try:
        return fwAD.unpack_dual(t).tangent is not None
    except RuntimeError:
        return False


def _by_hand(what: str, function, *args):
    """Call the learner's VJP and refuse it if it asked autograd, in any mode, for the answer.

    The learner's code gets copies of the tensors, so that an answer that works in place on
    them changes nothing the check compares with. A crash after autograd was asked is
    reported as the autograd use: that is the mistake.
    """
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    watch = _AutogradUse()
    try:
        with watch:
            result = call(what, function, *copies)
    except Mismatch:
        if not watch.found:
            raise
        result = None
    expect(
        not watch.found,
        f"{what}: {watch.found[0] if watch.found else ''}; this exercise asks for the formula, "
        "written with tensor operations on the inputs",
    )
    return result


VJP_TANH_HINT = Hint(
    "tanh works elementwise: output i depends on input i alone. What does that make J, and so vᵀJ?",
    "J is diagonal, with tanh′(xᵢ) on the diagonal, so vᵀJ multiplies v elementwise by "
    "tanh′(x); tanh′ can be written with tanh itself.",
    "return v * (1 - torch.tanh(x) ** 2)",
)
FORGOT_V_HINT = Hint(
    "You returned tanh′(x), the diagonal of J, for every v: vᵀJ weighs the slope of each "
    "output by the v that arrives at it.",
    "v has the shape of y = tanh(x), one weight per output.",
    "return v * (1 - torch.tanh(x) ** 2)",
)


OVERFLOW_HINT = Hint(
    "At large |x| your result is nan or inf where tanh is flat and its slope is 0: an exp in "
    "your formula overflows (exp(1000) is inf, and inf / inf is nan).",
    "torch.tanh never overflows (tanh(1000) is 1.0): write tanh′ with tanh itself, or as "
    "1 / cosh(x) ** 2, whose inf in the denominator gives 0.",
    "return v * (1 - torch.tanh(x) ** 2)",
)
LARGE = [-1000.0, -400.0, -20.0, 0.5, 20.0, 400.0, 1000.0]
"""Inputs of 3.1 where exp(x) or exp(2x) overflows in float64 and tanh′ is (nearly) 0."""


def _overflowed(got: Any, expected: torch.Tensor) -> bool:
    """Whether `got` has nan or inf where the right answer is finite."""
    return (
        isinstance(got, torch.Tensor)
        and got.shape == expected.shape
        and bool((~got.isfinite() & expected.isfinite()).any())
    )


@learner_check
def check_vjp_tanh(vjp_tanh: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Verdict:
    """Exercise 3.1: `vjp_tanh(x, v)` is vᵀJ of `y = torch.tanh(x)`, computed by hand.

    After three shapes comes x = LARGE, where a formula through exp overflows to nan.
    """
    large = torch.tensor(LARGE, dtype=torch.float64)
    cases = [(f"x of shape {shape}", _random(*shape)) for shape in [(5,), (3, 4), (2, 1, 3)]]
    cases.append((f"x = {[int(n) if n.is_integer() else n for n in LARGE]}", large))

    def body():
        for what, x in cases:
            v = _random(*x.shape, seed=1)
            got = _by_hand(what, vjp_tanh, x, v)
            (expected,) = _torch_vjp(torch.tanh, (x,), v)
            forgot = _same(got, 1 - torch.tanh(x) ** 2)
            hint = FORGOT_V_HINT if forgot else OVERFLOW_HINT
            with _hinted_if(forgot or _overflowed(got, expected), hint):
                expect_close(got, expected, what, rtol=1e-9)
        return f"matches torch.autograd.grad on {len(cases)} inputs, |x| up to 1000 included"

    return check("Exercise 3.1 (vjp_tanh)", body, hint=VJP_TANH_HINT)


VJP_MATMUL_HINT = Hint(
    "Start from the shapes: grad_A must have A's shape (n, k), grad_B B's shape (k, m), "
    "and V has Y's shape (n, m).",
    "Each gradient is a product of V with the other factor, one of the two transposed: "
    "only one such product has the shape you need.",
    "return V @ B.T, A.T @ V  ((n, m) @ (m, k) for A, (k, n) @ (n, m) for B)",
)


@learner_check
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
                isinstance(got, (tuple, list)) and len(got) == 2,
                f"{what}: expected a pair (grad_A, grad_B), got {describe(got)}",
            )
            grad_A, grad_B = _torch_vjp(torch.matmul, (A, B), V)
            expect_close(got[0], grad_A, f"{what}: grad_A", rtol=1e-9)
            expect_close(got[1], grad_B, f"{what}: grad_B", rtol=1e-9)
        return f"matches torch.autograd.grad on {len(sizes)} pairs of matrices"

    return check("Exercise 3.2 (vjp_matmul)", body, hint=VJP_MATMUL_HINT)


VJP_SUM_HINT = Hint(
    "Each element of x is added into exactly one output, with slope 1: it receives the v "
    "of the slice it was summed into.",
    "v lacks the summed dimension: put it back, with size 1, in its place (dim may be "
    "negative), then repeat v along it. expand_as alone lines v up with the last "
    "dimensions of x, whatever dim is.",
    "return v.unsqueeze(dim).expand_as(x)",
)


@learner_check
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

    return check("Exercise 3.3 (vjp_sum)", body, hint=VJP_SUM_HINT)


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


READY_MADE = {
    "torch/autograd/functional.py": "torch.autograd.functional",
    "torch/_functorch/": "torch.func",
    "torch/func/": "torch.func",
}
"""Where torch's own Jacobian makers live, and their public names: a backward pass started
from there is not the learner's."""


def _ready_made_caller() -> str | None:
    """The public name of torch's Jacobian maker on the current call stack, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        for place, public in READY_MADE.items():
            if place in name:
                return public
        frame = frame.f_back
    return None


JACOBIAN_HINT = Hint(
    "A backward pass with gradient v gives vᵀJ: one combination of the rows of J. Which v "
    "gives exactly one row?",
    "A one-hot v picks one output, so it is shaped like y, not like x; that makes one pass "
    "per element of y, each with retain_graph=True so that the graph survives for the "
    "next. torch.autograd.grad returns each row instead of adding it into x.grad.",
    "y = f(x); rows = [torch.autograd.grad(y, x, e.view(y.shape), retain_graph=True)[0] "
    "for e in torch.eye(y.numel(), dtype=y.dtype)]; "
    "return torch.stack(rows).view(*y.shape, *x.shape)",
)
PILED_UP_HINT = Hint(
    "Each of your rows is the sum of the right row and all the rows before it: something "
    "keeps what the earlier passes gave.",
    "y.backward adds its result into x.grad; it never overwrites it.",
    "set x.grad = None before each pass, or use torch.autograd.grad(y, x, one_hot, "
    "retain_graph=True)[0], which returns the row instead of adding it into x.grad",
)


PASSES_HINT = Hint(
    "This exercise builds J from backward passes that your code makes, one per element of y, "
    "each giving one row of J.",
    "One pass with a one-hot v per output: a batched call (is_grads_batched=True, vmap) "
    "makes them all as one, and a pass per element of x is forward mode's count.",
    JACOBIAN_HINT.recipe,
)


def _piled_up(got: Any, expected: torch.Tensor, rows: int) -> bool:
    """Whether `got` holds the running sums of J's rows: x.grad read without clearing it."""
    running = expected.reshape(rows, -1).cumsum(0).reshape(expected.shape)
    return rows > 1 and _same(got, running)


@learner_check
def check_jacobian_by_vjps(jacobian_by_vjps: Callable[[Callable, torch.Tensor], Any]) -> Verdict:
    """Exercise 3.4: `jacobian_by_vjps(f, x)` builds J from one backward pass per output.

    The result has shape `y.shape + x.shape` like `torch.autograd.functional.jacobian`.
    A hook on `y` counts the backward passes through it and checks that each one starts
    from the learner's code with a `gradient` shaped like `y`: a Jacobian made by
    `torch.autograd.functional.jacobian` or `torch.func` (which make the passes, or
    none, for you) does not pass, nor one made in forward mode.
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

            watch = _AutogradUse()
            with watch:
                got = call(what, jacobian_by_vjps, counted, x.detach().requires_grad_())
            expect(
                not helpers,
                f"{what}: {helpers[0] if helpers else ''} made the backward passes, not your "
                "code: make one backward pass per output yourself, with "
                "torch.autograd.grad or y.backward",
            )
            expect(
                FORWARD not in watch.found,
                f"{what}: {FORWARD}; this exercise builds J from backward passes, one per output",
            )
            expected = torch.autograd.functional.jacobian(f, x)
            y_shape = tuple(f(x).shape)
            piled_up = _piled_up(got, expected, f(x).numel())
            with _hinted_if(piled_up, PILED_UP_HINT):
                expect_close(got, expected, what, rtol=1e-9)
            with hinted(PASSES_HINT):
                expect_equal(
                    len(passes), f(x).numel(), f"{what}: number of backward passes through y"
                )
            expect(
                all(shape == y_shape for shape in passes),
                f"{what}: each backward pass must start from a gradient shaped like y "
                f"{y_shape}; got {passes}",
            )
        return "matches torch.autograd.functional.jacobian on 4 functions, one pass per output"

    return check("Exercise 3.4 (jacobian_by_vjps)", body, hint=JACOBIAN_HINT)


INF = float("inf")
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

LSE_INFINITE_ROWS = [[-INF, -INF, -INF], [INF, 0.0, 1.0], [-INF, 0.0, INF]]
"""Rows whose log-sum-exp is -inf (every entry masked) or inf: shifting by an infinite
maximum gives inf - inf = nan there, where torch gives -inf and inf."""

LSE_VALUE_HINT = Hint(
    "exp overflows to inf above about 709 (88 in float32) and underflows to 0 far below "
    "0, so the naive formula fails on rows at ±1000. log Σ exp(x) does not change if you "
    "subtract the same number m from every x of a row and add m back.",
    "Choose m for each row so that every exponent x - m is at most 0 and the largest is 0: "
    "the row's own maximum (keepdim=True keeps it lined up with x).",
    "m = x.amax(dim=-1, keepdim=True); m = torch.where(m.isfinite(), m, 0) (an infinite "
    "maximum would give inf - inf = nan); out = m.squeeze(-1) + "
    "torch.log(torch.exp(x - m).sum(dim=-1)); ctx.save_for_backward(x, out); return out",
)
LSE_INFINITE_HINT = Hint(
    "Look at a row whose maximum is infinite: all -inf (every entry masked), or one entry "
    "inf. What is x - m there?",
    "inf - inf is nan, and it spreads to the whole row; any finite m gives the same value.",
    "where the maximum is ±inf, shift by 0 instead: m = torch.where(m.isfinite(), m, 0) "
    "before exp (torch does the same); then log(0) = -inf and log(inf) = inf come out",
)
LSE_GRAD_HINT = Hint(
    "∂ lse(x)/∂xⱼ = exp(xⱼ) / Σ exp(x): the softmax of the row, weighed by that row's "
    "grad_output. At ±1000 it must be computed without overflow, like the forward.",
    "exp(x) / Σ exp(x) overflows the way the naive forward does; exp(x - lse(x)) is the "
    "same softmax with every exponent ≤ 0, from what forward saved. grad_output has the "
    "output's shape, one dimension fewer than x.",
    "x, out = ctx.saved_tensors; "
    "return grad_output.unsqueeze(-1) * torch.exp(x - out.unsqueeze(-1))",
)
FORGOT_GRAD_OUTPUT_HINT = Hint(
    "Your backward returned softmax(x) whatever grad_output it received: vᵀJ weighs each "
    "row's softmax by the grad_output of that row.",
    "grad_output has the output's shape, one dimension fewer than x: line it up with x.",
    "return grad_output.unsqueeze(-1) * torch.exp(x - out.unsqueeze(-1))",
)


def _lse_inputs(dtype: torch.dtype) -> list[tuple[str, torch.Tensor, bool]]:
    """(description, x, whether its gradient is defined) for Exercise 3.5.

    Where lse(x) is ±inf the gradient is not defined (torch gives nan): values only.
    """
    masked = [[0.0, -INF, 1.0], [-INF, 2.0, 3.0]]
    return [
        (f"x = {LSE_ROWS}", torch.tensor(LSE_ROWS, dtype=dtype), True),
        (
            "x of shape (4, 4) from randn * 10",
            random_tensor(4, 4, seed=5, dtype=dtype, scale=10),
            True,
        ),
        ("x of shape (5,) (a scalar out)", random_tensor(5, seed=6, dtype=dtype, scale=30), True),
        ("x of shape (2, 3, 4)", random_tensor(2, 3, 4, seed=7, dtype=dtype), True),
        (f"x = {masked} (masked entries)", torch.tensor(masked, dtype=dtype), True),
        (
            f"x = {LSE_INFINITE_ROWS} (lse -inf or inf)",
            torch.tensor(LSE_INFINITE_ROWS, dtype=dtype),
            False,
        ),
    ]


def _lse_backward(what: str, out: torch.Tensor, leaf: torch.Tensor, v: torch.Tensor):
    """The gradient the learner's backward gives for `v`; None from backward is a mistake."""
    expect(out.requires_grad, f"{what}: the output does not require grad")
    (grad,) = call(f"{what}: backward", torch.autograd.grad, out, leaf, v, allow_unused=True)
    expect(
        grad is not None,
        f"{what}: your backward returned None: it must return the gradient with respect to "
        "x, a tensor shaped like x",
    )
    return grad


@learner_check
def check_logsumexp(LogSumExp: Any) -> Verdict:
    """Exercise 3.5: `LogSumExp` is an `autograd.Function` for logsumexp over the last dim.

    Its values and gradients (for a random `grad_output`) must match
    `torch.logsumexp` in float32 and float64, also on rows at ±1000 mixed with
    ordinary rows, with `-inf` entries, and (values only) on rows whose result is ±inf;
    its backward must pass `gradcheck`.
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
            for i, (text, x, differentiable) in enumerate(_lse_inputs(dtype)):
                what = f"{text} in {dtype}"
                leaf = x.clone().requires_grad_()
                with hinted(LSE_VALUE_HINT if differentiable else LSE_INFINITE_HINT, what):
                    got = call(what, LogSumExp.apply, leaf)
                    expect_close(got, torch.logsumexp(x, dim=-1), f"{what}: values", rtol, atol)
                if not differentiable:
                    continue
                v = torch.randn(got.shape, generator=generator(10 + i), dtype=dtype)
                reference = x.clone().requires_grad_()
                (expected,) = torch.autograd.grad(torch.logsumexp(reference, dim=-1), reference, v)
                with hinted(LSE_GRAD_HINT, what):
                    grad = _lse_backward(what, got, leaf, v)
                    forgot = _same(grad, torch.softmax(x, dim=-1))
                    with _hinted_if(forgot, FORGOT_GRAD_OUTPUT_HINT):
                        expect_close(
                            grad,
                            expected,
                            f"{what}: gradients for a random grad_output",
                            rtol,
                            atol,
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
            "right values and gradients at ±1000 and with -inf entries, right values where "
            "the result is ±inf, in float32 and float64; gradcheck passes"
        )

    return check("Exercise 3.5 (LogSumExp)", body, hint=LSE_VALUE_HINT)


CLIP_HOOK_HINT = Hint(
    "t.register_hook(fn) calls fn(grad) with the gradient that reaches t; what fn returns "
    "replaces that gradient, and None leaves it as it was.",
    "Log the gradient as it arrived (a copy, grad.clone()), then return a new, clipped "
    "tensor; do not change grad in place. The caller needs the handle that register_hook "
    "returns to remove the hook.",
    "def hook(grad): log.append(grad.clone()); return grad.clamp(-limit, limit) — "
    "then return t.register_hook(hook)",
)


@learner_check
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

    return check("Exercise 3.6 (add_clip_hook)", body, hint=CLIP_HOOK_HINT)
