"""Check cells: compare a learner's code with torch and print a one-line verdict.

A check cell calls one `check_*` function with the learner's code. It prints

- `✓ Exercise 1.3 (normalize_rows): …` when the code agrees with the reference,
- `✗ Exercise 1.3 (normalize_rows): …` with what differed and a hint when it does not,
- `… Exercise 1.3 (normalize_rows): not done yet …` while the stub still raises
  `NotImplementedError`,

and never a traceback.

Hints grow with repeated tries, per exercise, for the life of the kernel (a
:class:`Hint` has three steps): the first ✗ says what differed and points at the idea,
the second ✗ of the same exercise adds a nudge, the third (or a check called with
`hint="full"`) gives the recipe. A hint specific to the mistake found wins over the
check's general one.

The test suite runs the very same functions; the environment
variable `COURSE_CHECKS` tells them how strict to be:

- unset (a learner's notebook): only print;
- `strict` (chapters and solutions under test): a check that does not pass raises;
- `stubs` (generated exercises under test): a check that is not "not done yet" raises,
  which proves every exercise ships as an unsolved stub.
"""

import contextvars
import functools
import math
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

MODE_ENV = "COURSE_CHECKS"

SYMBOLS = {"pass": "✓", "fail": "✗", "todo": "…"}


class Mismatch(AssertionError):
    """Raised inside a check when the learner's answer differs; the message says how."""


class NotDoneYet(NotImplementedError):
    """Raised inside a check when part of an answer is written: the message says which
    part still raises `NotImplementedError` (the verdict is "not done yet", naming it)."""


class CheckError(AssertionError):
    """Raised in `strict` or `stubs` mode when a verdict is not the expected one."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: `status` is `"pass"`, `"fail"` or `"todo"`."""

    task: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        """Whether the check found nothing wrong."""
        return self.status == "pass"

    def __str__(self) -> str:
        return f"{SYMBOLS[self.status]} {self.task}: {self.message}"

    def _ipython_display_(self) -> None:
        """Print nothing when returned as a cell's value: `check` printed it already."""


@dataclass(frozen=True)
class Hint:
    """A hint in three steps, shown one more at each ✗ of the same exercise.

    `idea` (first ✗) points at the idea without giving the answer away; `nudge`
    (second ✗) narrows it down; `recipe` (third ✗, or `hint="full"`) says how to do it.
    """

    idea: str
    nudge: str = ""
    recipe: str = ""

    def at(self, level: int) -> str:
        """The text shown at the `level`-th ✗ (1, 2, 3 or more)."""
        parts = [self.idea]
        if level >= 2 and self.nudge:
            parts.append(f"Nudge: {self.nudge}")
        if level >= 3 and self.recipe:
            parts.append(f"Recipe: {self.recipe}")
        text = "\n  ".join(parts)
        if level < 3 and (self.recipe or (level < 2 and self.nudge)):
            text += "\n  (Another ✗ here shows more of this hint.)"
        return text


HintText = str | Hint

_failures: dict[str, int] = {}  # task -> the ✗ it has had in this kernel
_level: contextvars.ContextVar[int] = contextvars.ContextVar("hint_level", default=1)
_full: contextvars.ContextVar[bool] = contextvars.ContextVar("hint_full", default=False)


def reset_hints() -> None:
    """Forget every earlier ✗: the next failure of each exercise shows its first hint."""
    _failures.clear()


def hint_level(task: str) -> int:
    """The step of the hint that the next ✗ of `task` shows (1, 2 or 3)."""
    return 3 if _full.get() else min(_failures.get(task, 0) + 1, 3)


def render_hint(hint: HintText) -> str:
    """The text of `hint` at the step of the ✗ being reported now."""
    return hint.at(_level.get()) if isinstance(hint, Hint) else hint


def learner_check(function: Callable[..., Verdict]) -> Callable[..., Verdict]:
    """Let a learner ask a check for its whole hint: `check_…(…, hint="full")`."""

    @functools.wraps(function)
    def wrapper(*args: Any, hint: str | None = None, **kwargs: Any) -> Verdict:
        if hint not in (None, "full"):
            raise ValueError(f'hint={hint!r}: leave it out, or ask for hint="full"')
        token = _full.set(hint == "full")
        try:
            return function(*args, **kwargs)
        finally:
            _full.reset(token)

    return wrapper


def check(task: str, body: Callable[[], str], hint: HintText = "") -> Verdict:
    """Run `body` (which raises :class:`Mismatch` on a wrong answer) and print a verdict.

    `task` names the exercise, e.g. `"Exercise 1.3 (normalize_rows)"`; `body`
    returns what was checked on success ("matches torch on 4 inputs"); `hint` is
    printed under a failure, one step more at each ✗ of the same task (see :class:`Hint`).
    """
    token = _level.set(hint_level(task))
    try:
        verdict = _verdict(task, body, hint)
    finally:
        _level.reset(token)
    if verdict.status == "fail":
        _failures[task] = _failures.get(task, 0) + 1
    print(verdict)
    _enforce(verdict)
    return verdict


def _verdict(task: str, body: Callable[[], str], hint: HintText) -> Verdict:
    try:
        with isolated_random_state():
            verdict = Verdict(task, "pass", str(body()))
    except NotImplementedError as error:
        what = f" {safe_str(error)}" if isinstance(error, NotDoneYet) else ""
        verdict = Verdict(
            task,
            "todo",
            f"not done yet.{what}\n  Replace the `raise NotImplementedError(...)` line with "
            "your code,\n  run that cell, then run this check again.",
        )
    except Mismatch as error:
        verdict = Verdict(task, "fail", _with_hint(safe_str(error), hint))
    except Exception as error:  # the learner's code crashed: report it, don't raise
        verdict = Verdict(task, "fail", _with_hint(f"your code raised {raised(error)}", hint))
    return verdict


def safe_str(value: object) -> str:
    """`str(value)`, or a placeholder when the learner's `__str__` itself raises."""
    try:
        return str(value)
    except Exception as error:  # a learner's exception or object with a broken __str__
        return f"<{type(value).__name__} whose str() raised {type(error).__name__}>"


def raised(error: BaseException) -> str:
    """`"TypeError: message"` for a verdict, safe against a broken `__str__`."""
    return f"{type(error).__name__}: {safe_str(error)}"


def rng(seed: int) -> np.random.Generator:
    """A local NumPy generator: checks never touch (or reseed) the global random state."""
    return np.random.default_rng(seed)


def generator(seed: int) -> torch.Generator:
    """A local torch generator (CPU): checks never touch (or reseed) the global one."""
    return torch.Generator().manual_seed(seed)


def random_tensor(
    *shape: int, seed: int = 0, dtype: torch.dtype = torch.float64, scale: float = 1.0
) -> torch.Tensor:
    """Reproducible normal test input from a local generator (the global state stays put)."""
    return torch.randn(shape, generator=generator(seed), dtype=dtype) * scale


@contextmanager
def isolated_random_state() -> Iterator[None]:
    """Leave the global random state of torch, NumPy and `random` as it was found.

    A check that must let the learner's code draw from the global generator (e.g. the
    weights that `make_net()` initialises) seeds it inside this block; the learner's own
    sequence continues afterwards as if the check had not run.
    """
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


@contextmanager
def hinted(text: HintText, what: str = "") -> Iterator[None]:
    """Give a mismatch (or a crash of the learner's code) inside the block its own hint.

    For a check whose failures have different causes: the hint names the cause of the
    one that happened, and the check's general hint is not added after it. `what`
    names the input in the message of a crash.
    """
    try:
        yield
    except Mismatch as error:
        raise Mismatch(_with_hint(safe_str(error), text)) from None
    except (NotImplementedError, RecursionError):
        raise
    except Exception as error:
        raise Mismatch(_with_hint(f"{what}: your code raised {raised(error)}", text)) from None


def _with_hint(message: str, hint: HintText) -> str:
    if not hint or "\n  Hint: " in message:  # the first, most specific hint wins
        return message
    return f"{message}\n  Hint: {render_hint(hint)}"


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


def call(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    """`function(*args)`; a crash becomes a :class:`Mismatch` that names the input.

    A stub's `NotImplementedError` passes through, so the verdict says "not done yet".
    """
    expect(callable(function), f"{what}: expected a function, got {describe(function)}")
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:
        raise Mismatch(f"{what}: your code raised {raised(error)}") from error


def describe(value: object) -> str:
    """A short, one-line description of a value for a verdict message."""
    try:
        return _describe(value)
    except Exception as error:  # a learner object whose repr raises
        return f"<{type(value).__name__} whose repr() raised {type(error).__name__}>"


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor) and value.is_complex():
        return f"complex tensor of shape {tuple(value.shape)}"
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
        dtype = str(value.dtype)
        return f"{kind} of shape {shape} and dtype {dtype} {body}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def expect(condition: bool, message: str) -> None:
    """Raise :class:`Mismatch` with `message` unless `condition` holds."""
    if not condition:
        raise Mismatch(message)


def expect_equal(got: object, expected: object, what: str) -> None:
    """`got == expected` for plain values (ints, tuples, strings, bools)."""
    expect(got == expected, f"{what}: expected {describe(expected)}, got {describe(got)}")


def expect_close(
    got: object,
    expected: object,
    what: str,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    *,
    dtype: bool = True,
) -> None:
    """`got` matches `expected` in type, shape, dtype and value (within rtol/atol).

    Works for torch tensors, NumPy arrays and Python numbers. A torch.Tensor is expected
    where torch gives one (a NumPy array is accepted only where NumPy is expected, or with
    `dtype=False`, for the arrays of the Chapter 4 engine); with `dtype` two torch
    tensors must have the same dtype. Infinities must match in sign and place; NaN matches
    only NaN. The message names the first thing that differs: the kind, the shape, the
    dtype, or the largest difference and where.
    """
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        kinds = (torch.Tensor, np.ndarray) if not dtype else type(expected)
        name = "torch.Tensor" if isinstance(expected, torch.Tensor) else "NumPy array"
        expect(isinstance(got, kinds), f"{what}: expected a {name}, got {describe(got)}")
        expect_equal(tuple(got.shape), tuple(expected.shape), f"{what}: shape")
        if dtype:
            expect(
                got.dtype == expected.dtype,
                f"{what}: dtype: expected {expected.dtype}, got {got.dtype}",
            )
        expect(
            not (isinstance(got, torch.Tensor) and got.is_complex()),
            f"{what}: expected real numbers, got {describe(got)}",
        )
        g = _as_float64(got)
        e = _as_float64(expected)
        ok = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            raise Mismatch(_differences(what, g, e, ok, f"{expected.dtype}"))
        return
    number = isinstance(got, (int, float, np.floating, np.integer)) and not isinstance(got, bool)
    if isinstance(got, (torch.Tensor, np.ndarray)):
        number = (got.numel() if isinstance(got, torch.Tensor) else got.size) == 1 and _real(got)
    expect(number, f"{what}: expected a number, got {describe(got)}")
    value, target = float(got), float(expected)
    same = value == target or (math.isnan(value) and math.isnan(target))
    expect(
        same or math.isclose(value, target, rel_tol=rtol, abs_tol=atol),
        f"{what}: expected {target:.6g}, got {value:.6g}",
    )


def _differences(what: str, got: np.ndarray, expected: np.ndarray, ok: np.ndarray, dtype: str):
    """Which entries differ: how many, the first few, and the largest difference.

    Each number is printed with as many digits as it takes to tell the two apart, so
    "expected" and "got" never read the same; whole arrays are not printed.
    """
    bad = np.argwhere(~ok)
    shape = tuple(got.shape)
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: those entries are ok
        diff = np.where(ok, 0.0, np.abs(got - expected))
    largest = np.unravel_index(np.nanargmax(np.nan_to_num(diff, nan=np.inf)), diff.shape)

    def entry(where: tuple) -> str:
        e, g = _distinct(float(expected[where]), float(got[where]))
        return f"{tuple(int(i) for i in where)}: expected {e}, got {g}"

    first = [f"at {entry(tuple(i))}" for i in bad[:3]]
    message = (
        f"{what}: {len(bad)} of {ok.size} entries differ (shape {shape}, {dtype}); "
        f"first: {'; '.join(first)}"
    )
    return f"{message}; largest difference at index {entry(tuple(largest))}"


def _distinct(a: float, b: float) -> tuple[str, str]:
    """`a` and `b` with the fewest significant digits (at least 6) that tell them apart."""
    for digits in range(6, 18):
        left, right = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if left != right:
            return left, right
    return f"{a!r}", f"{b!r}"


def _real(x: torch.Tensor | np.ndarray) -> bool:
    return not (x.is_complex() if isinstance(x, torch.Tensor) else np.iscomplexobj(x))


def _as_float64(x: object) -> np.ndarray:
    try:
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().to(torch.float64).numpy()
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise Mismatch(f"expected real numbers, got {describe(x)} ({raised(error)})") from None
