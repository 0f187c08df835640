"""What the checks of Chapter 4 share: torch as the reference in float64, the diagnosis
of a wrong backward rule, a time budget for the learner's code, and a comparison of the
learner's `Tensor` with torch on one case (its graph, value, `requires_grad` and the
gradients of two backward calls).
"""

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course.checks import (
    Hint,
    Mismatch,
    describe,
    expect,
    expect_close,
    expect_equal,
    hinted,
    render_hint,
    safe_str,
)

F64 = torch.float64
DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
RTOL, ATOL = 1e-9, 1e-12

GUARD_HINT = Hint(
    "An input that does not require grad (a number, or your Tensor made without "
    "requires_grad) gets no gradient: its grad stays None, on either side of an op.",
    "Look at requires_grad before sending a gradient, in every op and for both inputs.",
    "`if self.requires_grad: self.grad += ...` and `if other.requires_grad: other.grad += ...`",
)
UNTOUCHED_HINT = Hint(
    "The inputs' grads did not change when the output's _backward() ran: the op's backward "
    "rule is not attached to its output.",
    "Define the rule as a function inside the op and store it on the output.",
    "`def _backward(): ...` then `out._backward = _backward` before `return out`",
)
ASSIGNED_HINT = Hint(
    "The grad that was there before this rule ran was lost. An input used twice, or a "
    "second backward call, adds a second term to the same grad.",
    "Grow the grad, do not replace it.",
    "`self.grad += ...` (not `self.grad = ...`), in every backward rule",
)
CHAIN_HINT = Hint(
    "The term is the local derivative alone: it must be times out.grad (the chain rule).",
    "out.grad is the derivative of the final output with respect to this op's output; "
    "multiply each input's local derivative by it.",
    "for `*`: `self.grad += other.data * out.grad`; for `exp`: `self.grad += out.data * out.grad`",
)
ASSIGNED_AND_CHAIN_HINT = Hint(
    "Two things: the grad that was there before this rule ran was lost, and the term is "
    "missing its factor out.grad (the chain rule).",
    "Grow the grad (+=), by the local derivative times out.grad.",
    "`self.grad += local_derivative * out.grad`",
)


@contextmanager
def engine_hinted(text: Hint | None, what: str = "") -> Iterator[None]:
    """:func:`course.checks.hinted`, except that a grad sent to an input that needs none
    (`None += ...`, a TypeError) gets the hint about guarding both inputs."""
    try:
        with hinted(text, what):
            yield
    except Mismatch as error:
        message = safe_str(error)
        if "your code raised TypeError" in message and "NoneType" in message:
            message = message.split("\n  Hint: ")[0] + f"\n  Hint: {render_hint(GUARD_HINT)}"
        raise Mismatch(message) from None


def diagnose_grad(got: Any, right: Any, mistakes: dict[str, Any], what: str) -> None:
    """Raise a :class:`Mismatch` naming the cause when `got` is not `right`.

    `mistakes` holds what each common mistake gives here: `"untouched"` a rule never
    attached to the output, `"assigned"` a rule that assigns (`=`) instead of adding
    (`+=`), `"unchained"` one that forgets the factor `out.grad`, `"both"` one that does
    both. A `got` that is none of them keeps the caller's hint (a wrong local
    derivative, most likely).
    """
    try:
        close(got, right, what)
    except Mismatch as error:
        for name, hint in MISTAKE_HINTS.items():
            suspect = mistakes[name]
            exact = name == "untouched"  # a tiny term added can look like none at all
            if _matches(got, suspect, exact) and not _matches(suspect, right):
                raise Mismatch(f"{safe_str(error)}\n  Hint: {render_hint(hint)}") from None
        raise


MISTAKE_HINTS = {
    "untouched": UNTOUCHED_HINT,
    "assigned": ASSIGNED_HINT,
    "unchained": CHAIN_HINT,
    "both": ASSIGNED_AND_CHAIN_HINT,
}


def _matches(got: Any, target: Any, exact: bool = False) -> bool:
    try:
        g, t = np.asarray(got, dtype=np.float64), np.asarray(target, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if g.shape != t.shape:
        return False
    if exact:
        return bool(np.array_equal(g, t))
    return bool(np.allclose(g, t, rtol=RTOL, atol=ATOL, equal_nan=True))


class _OutOfTime(BaseException):
    """Raised into the learner's code when a time budget runs out: not an `Exception`,
    so that an `except Exception` in that code cannot swallow it."""


def _stop(signum: int, frame: Any) -> None:
    raise _OutOfTime


@contextmanager
def time_budget(seconds: float, what: str, hint: Hint) -> Iterator[None]:
    """Stop the code in the block after `seconds` and report it as too slow.

    A timer signal interrupts it where there is one (the main thread on Linux and macOS,
    where notebook kernels run cells); elsewhere the code runs to its end and is reported
    as too slow afterwards if it took longer.
    """
    timer = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, _stop) if timer else None
    start = time.perf_counter()
    try:
        try:
            if timer:
                signal.setitimer(signal.ITIMER_REAL, seconds)
            yield
        finally:
            if timer:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _OutOfTime:
        pass
    finally:
        if timer:
            signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    if elapsed >= seconds:
        raise Mismatch(
            f"too slow: {what} was stopped after {seconds:g} s\n  Hint: {render_hint(hint)}"
        )


def leaf(x: Any) -> torch.Tensor:
    """A float64 torch leaf that requires grad: the reference side of a comparison."""
    return torch.tensor(x, dtype=F64, requires_grad=True)


def close(got: Any, expected: Any, what: str) -> None:
    """Your engine's number or NumPy array against torch's, in float64 (RTOL, ATOL)."""
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
        expect(
            isinstance(got, np.ndarray),
            f"{what}: expected a NumPy array (your Tensor's .data/.grad), got {describe(got)}",
        )
    expect_close(got, expected, what, RTOL, ATOL)


RECORD_HINT = Hint(
    "An op's output records its inputs in _prev, and its requires_grad is True exactly when "
    "some input requires grad: backward() relies on both, and this output has them wrong.",
    "Tensor(data, requires_grad, _prev, op): the second argument is requires_grad, not the "
    "inputs. Tensor._node(data, parents, op) builds an op's output with both set.",
    "`out = Tensor._node(self.data + other.data, (self, other), '+')`",
)


def expect_recorded(Tensor: type, out: Any, inputs: Sequence[Any], what: str) -> None:
    """`out` is a node of the learner's graph: its `requires_grad` is a bool, and every
    input that requires grad is reached from it through `_prev`."""
    flag = getattr(out, "requires_grad", None)
    expect(
        isinstance(flag, (bool, np.bool_)),
        f"{what}: the output's requires_grad is a {type(flag).__name__}, not True or False",
    )
    seen, stack = set(), [out]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        parents = getattr(node, "_prev", ())
        bad = [p for p in parents if not isinstance(p, Tensor)] if _iterable(parents) else [0]
        expect(
            not bad,
            f"{what}: a node's _prev holds {describe(parents)}, not your Tensors (its inputs)",
        )
        stack.extend(parents)
    for i, x in enumerate(inputs):
        expect(
            not x.requires_grad or id(x) in seen,
            f"{what}: input {i} is not among the output's inputs (_prev), so backward() "
            "cannot reach it",
        )


def _iterable(value: Any) -> bool:
    return isinstance(value, (tuple, list, set, frozenset))


@dataclass(frozen=True)
class TensorCase:
    """One comparison of your Tensor with torch: `ours(*inputs)` vs `theirs(*inputs)`.

    `shapes` gives one shape per input, drawn uniformly in [low, high) unless `values`
    gives the arrays; `requires_grad` says which inputs are leaves that need a gradient
    (all by default). `hint` explains a wrong value or a crash, `grad_hint` (default
    `hint`) a wrong gradient.
    """

    name: str
    ours: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...] = ()
    theirs: Callable[..., Any] | None = None
    low: float = -2.0
    high: float = 2.0
    hint: Hint | None = None
    grad_hint: Hint | None = None
    requires_grad: tuple[bool, ...] | None = None
    values: tuple[Any, ...] | None = None

    def arrays(self, generator: np.random.Generator) -> list[np.ndarray]:
        """The case's inputs, drawn from `generator` (never the global random state)."""
        if self.values is not None:
            return [np.array(v, dtype=np.float64) for v in self.values]
        return [generator.uniform(self.low, self.high, s) for s in self.shapes]

    def flags(self, n: int) -> tuple[bool, ...]:
        """Which of `n` inputs require a gradient in this case."""
        return self.requires_grad if self.requires_grad is not None else (True,) * n


def compare_case(Tensor: type, case: TensorCase, generator: np.random.Generator) -> None:
    """Compare graph, value and input grads of `case.ours(*Tensors)` with torch's.

    The backward pass runs twice, with two upstream gradients: leaf grads must hold the sum
    of both calls', as torch's do, which only happens when every rule accumulates. An input
    that does not require grad must keep `grad` None, and the output requires grad exactly
    when some input does.
    """
    arrays = case.arrays(generator)
    flags = case.flags(len(arrays))
    shapes = ", ".join(
        str(a.shape) + ("" if f else " (no grad)") for a, f in zip(arrays, flags, strict=True)
    )
    what = f"{case.name} with inputs of shape {shapes}"
    theirs = case.theirs or case.ours
    with engine_hinted(case.hint, what):
        xs = [Tensor(a.copy(), requires_grad=f) for a, f in zip(arrays, flags, strict=True)]
        ts = [
            torch.tensor(a, dtype=F64, requires_grad=f) for a, f in zip(arrays, flags, strict=True)
        ]
        out, ref = case.ours(*xs), theirs(*ts)
        expect(isinstance(out, Tensor), f"{what}: expected your Tensor, got {describe(out)}")
    with hinted(RECORD_HINT):
        if ref.requires_grad:
            expect_recorded(Tensor, out, xs, what)
        expect_equal(
            bool(out.requires_grad), ref.requires_grad, f"{what}: the output's requires_grad"
        )
    with engine_hinted(case.hint, what):
        close(out.data, ref, f"{what}: value")
    if ref.requires_grad:
        _compare_grads(case, xs, ts, out, ref, generator, what)


def _compare_grads(case, xs, ts, out, ref, generator, what) -> None:
    """Two backward calls of `out`, with different upstream gradients, against torch's
    gradients of `ref`; a wrong grad is diagnosed (see :func:`diagnose_grad`)."""
    with engine_hinted(case.grad_hint or case.hint, what):
        upstreams = [generator.standard_normal(ref.shape) for _ in range(2)]
        needed = [t for t in ts if t.requires_grad]
        first, second, ones = (
            _torch_grads(ref, needed, torch.from_numpy(u)) for u in (*upstreams, np.ones(ref.shape))
        )
        for upstream in upstreams:
            out.backward(upstream.copy())
        found = iter(zip(first, second, ones, strict=True))
        for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
            if not t.requires_grad:
                expect(
                    x.grad is None,
                    f"{what}: input {i} has requires_grad=False, so its grad must stay None; "
                    f"got {describe(x.grad)}",
                )
                continue
            g1, g2, slope = next(found)
            expect(x.grad is not None, f"{what}: input {i} has no grad after backward")
            mistakes = {"untouched": 0 * g1, "assigned": g2, "unchained": 2 * slope, "both": slope}
            diagnose_grad(
                x.grad, g1 + g2, mistakes, f"{what}: grad of input {i} after two backward calls"
            )


def _torch_grads(ref: torch.Tensor, inputs: list, upstream: torch.Tensor) -> list[np.ndarray]:
    """The gradients of `ref` (weighted by `upstream`) for `inputs`, zeros where unused."""
    grads = torch.autograd.grad(ref, inputs, upstream, retain_graph=True, allow_unused=True)
    return [
        np.zeros(t.shape) if g is None else g.numpy() for t, g in zip(inputs, grads, strict=True)
    ]


def run_cases(Tensor: type, cases: Sequence[TensorCase], generator: np.random.Generator) -> None:
    """Compare every case of `cases`, in order, drawing inputs from `generator`."""
    for case in cases:
        compare_case(Tensor, case, generator)


FLOAT32_HINT = Hint(
    "In torch a float32 input gives a float32 output, and a Python number does not change "
    "the dtype.",
    "A number that meets your Tensor becomes a Tensor of self.dtype.",
    "`other = self._wrap(other)` at the start of each binary op (_wrap uses self.dtype)",
)


def float32_cases(
    Tensor: type, cases: Sequence[TensorCase], generator: np.random.Generator
) -> None:
    """float32 in, float32 out, as in torch (a Python number does not promote)."""
    for case in cases:
        if case.values is not None or case.requires_grad is not None:
            continue
        arrays = [a.astype(np.float32) for a in case.arrays(generator)]
        what = f"{case.name} with float32 inputs of shape {', '.join(str(a.shape) for a in arrays)}"
        with engine_hinted(FLOAT32_HINT, what):
            out = case.ours(*(Tensor(a, requires_grad=True) for a in arrays))
            expect(isinstance(out, Tensor), f"{what}: expected your Tensor, got {describe(out)}")
            expect_equal(str(out.data.dtype), "float32", f"{what}: dtype of the value")
