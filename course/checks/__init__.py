"""Check cells: compare a learner's code with torch and print a one-line verdict.

A check cell calls one ``check_*`` function with the learner's code. It prints

- ``✓ Exercise 1.3 (normalize_rows): …`` when the code agrees with the reference,
- ``✗ Exercise 1.3 (normalize_rows): …`` with what differed and a hint when it does not,
- ``… Exercise 1.3 (normalize_rows): not done yet …`` while the stub still raises
  ``NotImplementedError``,

and never a traceback. The test suite runs the very same functions; the environment
variable ``COURSE_CHECKS`` tells them how strict to be:

- unset (a learner's notebook): only print;
- ``strict`` (chapters and solutions under test): a check that does not pass raises;
- ``stubs`` (generated exercises under test): a check that is not "not done yet" raises,
  which proves every exercise ships as an unsolved stub.
"""

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

MODE_ENV = "COURSE_CHECKS"

SYMBOLS = {"pass": "✓", "fail": "✗", "todo": "…"}


class Mismatch(AssertionError):
    """Raised inside a check when the learner's answer differs; the message says how."""


class CheckError(AssertionError):
    """Raised in ``strict`` or ``stubs`` mode when a verdict is not the expected one."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``status`` is ``"pass"``, ``"fail"`` or ``"todo"``."""

    task: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def __str__(self) -> str:
        return f"{SYMBOLS[self.status]} {self.task}: {self.message}"

    def _ipython_display_(self) -> None:
        """Print nothing when returned as a cell's value: `check` printed it already."""


def check(task: str, body: Callable[[], str], hint: str = "") -> Verdict:
    """Run ``body`` (which raises :class:`Mismatch` on a wrong answer) and print a verdict.

    ``task`` names the exercise, e.g. ``"Exercise 1.3 (normalize_rows)"``; ``body``
    returns what was checked on success ("matches torch on 4 inputs"); ``hint`` is
    printed under a failure.
    """
    try:
        verdict = Verdict(task, "pass", body())
    except NotImplementedError:
        verdict = Verdict(
            task,
            "todo",
            "not done yet.\n  Replace the `raise NotImplementedError(...)` line with "
            "your code,\n  run that cell, then run this check again.",
        )
    except Mismatch as error:
        verdict = Verdict(task, "fail", _with_hint(str(error), hint))
    except Exception as error:  # the learner's code crashed: report it, don't raise
        verdict = Verdict(
            task, "fail", _with_hint(f"your code raised {type(error).__name__}: {error}", hint)
        )
    print(verdict)
    _enforce(verdict)
    return verdict


def _with_hint(message: str, hint: str) -> str:
    return f"{message}\n  Hint: {hint}" if hint else message


def _enforce(verdict: Verdict) -> None:
    mode = os.environ.get(MODE_ENV, "")
    if mode == "strict" and not verdict.passed:
        raise CheckError(f"{verdict} (COURSE_CHECKS=strict: every check must pass)")
    if mode == "stubs" and verdict.status != "todo":
        raise CheckError(
            f"{verdict} (COURSE_CHECKS=stubs: an exercise notebook must ship unsolved)"
        )
    if mode not in ("", "strict", "stubs"):
        raise CheckError(f"{MODE_ENV}={mode!r}: expected unset, 'strict' or 'stubs'")


def call(what: str, function, *args):
    """``function(*args)``; a crash becomes a :class:`Mismatch` that names the input.

    A stub's ``NotImplementedError`` passes through, so the verdict says "not done yet".
    """
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except Exception as error:
        raise Mismatch(f"{what}: your code raised {type(error).__name__}: {error}") from error


def describe(value) -> str:
    """A short, one-line description of a value for a verdict message."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        kind = "tensor" if isinstance(value, torch.Tensor) else "array"
        shape = tuple(value.shape)
        body = np.array2string(
            np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value),
            precision=4,
            separator=", ",
            threshold=12,
            edgeitems=2,
        ).replace("\n", "")
        return f"{kind} of shape {shape} {body}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def expect(condition: bool, message: str) -> None:
    """Raise :class:`Mismatch` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Mismatch(message)


def expect_equal(got, expected, what: str) -> None:
    """``got == expected`` for plain values (ints, tuples, strings, bools)."""
    expect(got == expected, f"{what}: expected {describe(expected)}, got {describe(got)}")


def expect_close(got, expected, what: str, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """``got`` matches ``expected`` in type, shape and value (within rtol/atol).

    Works for torch tensors, NumPy arrays and Python numbers; the message names the
    first thing that differs: the kind, the shape, or the largest difference and where.
    """
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        expect(
            isinstance(got, (torch.Tensor, np.ndarray)),
            f"{what}: expected a {type(expected).__name__}, got {describe(got)}",
        )
        expect_equal(tuple(got.shape), tuple(expected.shape), f"{what}: shape")
        g = _as_float64(got)
        e = _as_float64(expected)
        ok = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            diff = np.where(ok, 0.0, np.abs(g - e))
            where = np.unravel_index(np.nanargmax(np.nan_to_num(diff, nan=np.inf)), diff.shape)
            index = tuple(int(i) for i in where)
            raise Mismatch(
                f"{what}: expected {describe(expected)}, got {describe(got)}; "
                f"largest difference at index {index}: expected {e[where]:.6g}, "
                f"got {g[where]:.6g}"
            )
        return
    expect(
        isinstance(got, (int, float, np.floating, np.integer))
        or (isinstance(got, torch.Tensor) and got.numel() == 1),
        f"{what}: expected a number, got {describe(got)}",
    )
    value = float(got)
    expect(
        math.isclose(value, float(expected), rel_tol=rtol, abs_tol=atol),
        f"{what}: expected {float(expected):.6g}, got {value:.6g}",
    )


def _as_float64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.to(torch.float64) if not x.is_complex() else x
        return x.numpy()
    return np.asarray(x, dtype=np.float64)
