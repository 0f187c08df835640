"""What the checks of Chapter 4 share: torch as the reference in float64, and a
comparison of the learner's `Tensor` with torch on one case (value, `requires_grad` and
the gradients of two backward calls).
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course.checks import Mismatch, describe, expect, expect_close, expect_equal, hinted, safe_str

F64 = torch.float64
DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
RTOL, ATOL = 1e-9, 1e-12


@contextmanager
def engine_hinted(text: str, what: str = "") -> Iterator[None]:
    """:func:`course.checks.hinted`, except that a grad sent to an input that needs none
    (`None += ...`, a TypeError) gets the hint about guarding both inputs."""
    try:
        with hinted(text, what):
            yield
    except Mismatch as error:
        message = safe_str(error)
        if "your code raised TypeError" in message and "NoneType" in message:
            message = message.split("\n  Hint: ")[0] + f"\n  Hint: {GUARD_HINT}"
        raise Mismatch(message) from None


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


GUARD_HINT = (
    "send a gradient only to an input that requires_grad, in every op and for both inputs: "
    "`if self.requires_grad: ...` and `if other.requires_grad: ...` (a number, or your "
    "Tensor without requires_grad, on either side of an op gets no grad)"
)


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
    hint: str = ""
    grad_hint: str | None = None
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
    """Compare value and input grads of `case.ours(*Tensors)` with torch's.

    The backward pass runs twice with the same upstream gradient: leaf grads must double,
    as torch's do, which only happens when every rule accumulates. An input that does not
    require grad must keep `grad` None, and the output requires grad exactly when some
    input does.
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
        close(out.data, ref, f"{what}: value")
        expect_equal(
            bool(out.requires_grad), ref.requires_grad, f"{what}: the output's requires_grad"
        )
    if not ref.requires_grad:
        return
    with engine_hinted(case.grad_hint or case.hint, what):
        upstream = generator.standard_normal(ref.shape)
        needed = [t for t in ts if t.requires_grad]
        grads = iter(
            torch.autograd.grad(ref, needed, torch.from_numpy(upstream), allow_unused=True)
        )
        for _ in range(2):
            out.backward(upstream.copy())
        for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
            if not t.requires_grad:
                expect(
                    x.grad is None,
                    f"{what}: input {i} has requires_grad=False, so its grad must stay None; "
                    f"got {describe(x.grad)}",
                )
                continue
            g = next(grads)
            expected = torch.zeros_like(t) if g is None else 2 * g
            expect(x.grad is not None, f"{what}: input {i} has no grad after backward")
            close(
                x.grad,
                expected,
                f"{what}: grad of input {i} after two backward calls (leaf grads accumulate)",
            )


def run_cases(Tensor: type, cases: Sequence[TensorCase], generator: np.random.Generator) -> None:
    """Compare every case of `cases`, in order, drawing inputs from `generator`."""
    for case in cases:
        compare_case(Tensor, case, generator)


def float32_cases(
    Tensor: type, cases: Sequence[TensorCase], generator: np.random.Generator
) -> None:
    """float32 in, float32 out, as in torch (a Python number does not promote)."""
    for case in cases:
        if case.values is not None or case.requires_grad is not None:
            continue
        arrays = [a.astype(np.float32) for a in case.arrays(generator)]
        what = f"{case.name} with float32 inputs of shape {', '.join(str(a.shape) for a in arrays)}"
        with engine_hinted(
            "keep the dtype: a number becomes your Tensor of self.dtype (self._wrap)", what
        ):
            out = case.ours(*(Tensor(a, requires_grad=True) for a in arrays))
            expect(isinstance(out, Tensor), f"{what}: expected your Tensor, got {describe(out)}")
            expect_equal(str(out.data.dtype), "float32", f"{what}: dtype of the value")
