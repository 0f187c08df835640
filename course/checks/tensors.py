"""Checks for the exercises of Chapter 1 (tensors).

Besides the values, two exercises state rules that the checks enforce: 1.2 computes
strides without creating a tensor, and 1.3 and 1.6 work without a loop. Both are
watched where they can be broken: in the learner's code (its loops, comprehensions,
`map`), and in the torch calls it makes while it runs (recorded by a
`TorchFunctionMode`), whose number must not grow with the input's size.
"""

import dis
import types
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

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
    hinted,
    learner_check,
    random_tensor,
    render_hint,
)

SHAPE_RULES = {
    "x[0]": ("indexing with an integer", "an integer index removes its dimension"),
    "x[:, 0]": (
        "indexing with `:` and an integer",
        "`:` keeps a whole dimension; an integer index removes its own",
    ),
    "x[..., 1:3]": (
        "`...` and slicing",
        "`...` stands for every dimension not named; a slice keeps its dimension, with as many "
        "entries as it selects",
    ),
    "x.sum(dim=1)": ("reductions", "a reduction removes the dimension it reduces"),
    "x.sum(dim=1, keepdim=True)": (
        "reductions with keepdim",
        "`keepdim=True` keeps the reduced dimension, with size 1",
    ),
    "x.view(-1, 4)": ("`view` with -1", "-1 is the number of elements divided by the other sizes"),
    "x.permute(2, 0, 1)": ("`permute`", "`permute` lists the old dimensions in their new order"),
    "x.unsqueeze(1)": ("`unsqueeze`", "`unsqueeze(d)` inserts a dimension of size 1 at position d"),
    "x + torch.zeros(3, 1)": (
        "broadcasting",
        "shapes line up from the right; a size 1 or a missing dimension is repeated to match",
    ),
    "x @ torch.zeros(4, 5)": (
        "`@` on more than two dimensions",
        "`@` multiplies the last two dimensions as matrices; the dimensions before them are a "
        "batch, broadcast like any other",
    ),
}
"""The expressions of Exercise 1.1 (on `x = torch.zeros(2, 3, 4)`): topic and rule of each."""

SHAPE_EXPRESSIONS = list(SHAPE_RULES)
"""The expressions of Exercise 1.1, in the order the learner predicts them."""

LOOP_CALLS = {"map", "filter", "reduce", "starmap", "accumulate", "apply_along_axis", "vectorize"}
"""Names whose call is a loop in disguise."""

LEAVES_TORCH = {"tolist", "numpy", "__array__", "item", "__float__", "__int__", "__index__"}
"""Tensor methods that hand the numbers to Python or NumPy, where a loop can hide."""


def _random(*shape: int) -> torch.Tensor:
    """Reproducible float64 test input that leaves the global random state alone."""
    return random_tensor(*shape, seed=sum(shape))


# ----------------------------------------------------------------------------- rules


class TorchCalls(TorchFunctionMode):
    """Inside `with TorchCalls() as calls:`, `calls.names` lists every torch function and
    tensor method called (by name), in order; nested calls inside torch are not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def loop_in_code(function: Any) -> str | None:
    """The loop written in `function`'s code, or in a function of the learner's it calls.

    Reads the bytecode (no source needed, so it works in a notebook): a `for` or a
    comprehension iterates (`FOR_ITER`), a `while` jumps backwards, and a call of `map`
    and its kin loops for the caller. Returns a phrase for the message, or None.
    """
    seen: set[types.CodeType] = set()
    todo = [getattr(function, "__code__", None)]
    home = getattr(function, "__module__", None)
    names = getattr(function, "__globals__", {})
    while todo:
        code = todo.pop()
        if code is None or code in seen:
            continue
        seen.add(code)
        for instruction in dis.get_instructions(code):
            if instruction.opname == "FOR_ITER":
                return "a `for` loop or a comprehension"
            if "BACKWARD" in instruction.opname:
                return "a `while` loop"
        used = LOOP_CALLS.intersection(code.co_names)
        if used:
            return f"`{sorted(used)[0]}`, which loops for you"
        todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        helpers = (names.get(n) for n in code.co_names)
        todo += [
            h.__code__
            for h in helpers
            if isinstance(h, types.FunctionType) and h.__module__ == home and h is not function
        ]
    return None


def expect_no_loop(function: Any, inputs: Sequence[tuple], sizes: Sequence[str]) -> None:
    """Raise :class:`Mismatch` if `function` loops, however the loop is written.

    A loop in its code is found in the bytecode; one hidden elsewhere (a helper from a
    library, `sum()` over a tensor, a `torch.stack` of a list) shows as torch calls whose
    number grows with the input (the `inputs` differ in every size); one that takes the
    numbers out of the tensor (`.tolist()`, `.numpy()`, `.item()`) is refused outright.
    """
    found = loop_in_code(function)
    expect(found is None, f"your code has {found}; the exercise asks for no loop")
    counts = []
    for args, size in zip(inputs, sizes, strict=True):
        with TorchCalls() as calls:
            call(size, function, *args)
        left = sorted(LEAVES_TORCH.intersection(calls.names))
        expect(
            not left,
            f"{size}: your code takes the numbers out of the tensor ({', '.join(left)}); "
            "the exercise asks for whole-tensor torch operations, no loop in Python or NumPy",
        )
        counts.append(len(calls.names))
    expect(
        len(set(counts)) == 1,
        "your code makes a number of torch calls that grows with the input: "
        + ", ".join(f"{n} for {size}" for n, size in zip(counts, sizes, strict=True))
        + "; something loops over the rows or the entries",
    )


# ----------------------------------------------------------------------------- 1.1


def _as_shape(what: str, value: Any) -> tuple[int, ...]:
    """`value` as a tuple of ints (a tuple, list, torch.Size or 1-D NumPy array of ints;
    NumPy integers count)."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        value = value.tolist()
    ok = isinstance(value, (tuple, list, torch.Size)) and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) for n in value
    )
    expect(ok, f"{what}: expected a tuple of ints, got {describe(value)}")
    return tuple(int(n) for n in value)


def shape_of(expression: str) -> tuple[int, ...]:
    """The shape torch gives `expression` (one of `SHAPE_EXPRESSIONS`)."""
    namespace = {"torch": torch, "x": torch.zeros(2, 3, 4)}
    return tuple(eval(expression, namespace).shape)


@learner_check
def check_predicted_shapes(predicted_shapes: Callable[[], Any]) -> Verdict:
    """Exercise 1.1: `predicted_shapes()` lists the shape of each expression, in order.

    A wrong prediction is named with the rule it tests, but its shape is not given away.
    """

    def body():
        predicted = predicted_shapes()
        expect(
            isinstance(predicted, (list, tuple)),
            f"expected a list of shapes, got {describe(predicted)}",
        )
        expect_equal(len(predicted), len(SHAPE_EXPRESSIONS), "number of predictions")
        guesses = [_as_shape(f"prediction #{i}", g) for i, g in enumerate(predicted, start=1)]
        wrong = [
            (i, text, guess)
            for i, (text, guess) in enumerate(zip(SHAPE_EXPRESSIONS, guesses, strict=True), 1)
            if guess != shape_of(text)
        ]
        rules = Hint(
            "what each wrong one tests (Chapter 1 teaches it): "
            + "; ".join(f"#{i} {SHAPE_RULES[text][0]}" for i, text, _ in wrong),
            "run each wrong expression on x = torch.zeros(2, 3, 4), print its .shape, and "
            "find the rule that gives it",
            " ".join(f"#{i} `{text}`: {SHAPE_RULES[text][1]}." for i, text, _ in wrong),
        )
        with hinted(rules):
            expect(
                not wrong,
                f"{len(wrong)} wrong: "
                + "; ".join(f"#{i} `{text}` is not {describe(g)}" for i, text, g in wrong),
            )
        return f"all {len(SHAPE_EXPRESSIONS)} shapes predicted"

    return check(
        "Exercise 1.1 (predicted_shapes)",
        body,
        hint=Hint(
            "predicted_shapes() returns one shape for each printed expression, in order",
            "a shape is a tuple of ints: (2, 3), (5,) for one dimension, () for none",
            f"return a list of {len(SHAPE_EXPRESSIONS)} tuples, [(…), (…), …], the first "
            "for `x[0]`",
        ),
    )


# ----------------------------------------------------------------------------- 1.2

STRIDES_TYPE = Hint(
    "a stride counts elements, so it is an int",
    "`*` and `math.prod` of ints give ints; `/` gives floats, and so does a NumPy float array",
    "compute with ints (`*`, `//`), or convert at the end: tuple(int(s) for s in strides)",
)
ZERO_SIZE = Hint(
    "look at the shapes with a size 0: compare your strides with torch.empty(shape).stride()",
    "torch never multiplies a stride by 0: it treats a size 0 as if it were 1",
    "step *= max(size, 1) as you walk the shape from the right",
)


@learner_check
def check_contiguous_strides(contiguous_strides: Callable[[tuple], Any]) -> Verdict:
    """Exercise 1.2: `contiguous_strides(shape)` equals the strides of a fresh tensor.

    Zero sizes are among the shapes (torch strides them as if they were 1); NumPy
    integers are accepted; creating a tensor (which the exercise rules out) is refused.
    """
    shapes = [(2, 3, 4), (6,), (3, 1, 2), (64, 1, 28, 28), (), (2, 0, 3), (0,), (3, 4, 0)]

    def body():
        for shape in shapes:
            what = f"shape {shape}"
            with TorchCalls() as calls:
                value = call(what, contiguous_strides, shape)
            expect(
                not calls.names,
                f"{what}: your code called torch ({', '.join(sorted(set(calls.names)))}); "
                "the exercise asks for the strides without creating a tensor",
            )
            with hinted(STRIDES_TYPE):
                got = _as_shape(f"strides of {what}", value)
            with hinted(ZERO_SIZE) if 0 in shape else nullcontext():
                expect_equal(got, torch.empty(shape).stride(), f"strides of {what}")
        return f"matches torch on {len(shapes)} shapes, zero sizes included"

    return check(
        "Exercise 1.2 (contiguous_strides)",
        body,
        hint=Hint(
            "the last dimension has stride 1: its neighbours are neighbours in memory",
            "one step along a dimension skips a whole block of the dimensions after it",
            "walk the shape from the right: the stride starts at 1 and is multiplied by each "
            "size it passes (by max(size, 1), as torch does for a size 0)",
        ),
    )


# ----------------------------------------------------------------------------- 1.3

IN_PLACE = Hint(
    "your function divides in place, into the tensor it was given",
    "`a /= …` and `a.div_(…)` change the caller's tensor, and an integer tensor cannot hold "
    "the fractions",
    "return a new tensor, a / (the row sums), instead of dividing `a` itself",
)
DIVISION_DTYPE = Hint(
    "the result's type or dtype differs from what torch's division gives",
    "a / b of integer tensors is a float32 tensor (torch's default dtype), of float tensors "
    "one of their dtype",
    "return the tensor that `/` gives, without .double(), .float() or .numpy()",
)
COLUMN_SUMS = Hint(
    "your result's columns sum to 1, not its rows: you divided by the column sums",
    "dim names the dimension a sum runs along and removes: dim=0 adds down each column, "
    "dim=1 along each row",
    "a / a.sum(dim=1, keepdim=True)",
)
SCALED_ROWS = Hint(
    "each of your rows is the right row times some number: you divided each row by "
    "something other than its sum",
    "the rows must sum to 1, so divide by the plain sum of the row: not its mean (the sum "
    "divided by its length), nor the sum of absolute values (F.normalize with p=1), nor a norm",
    "a / a.sum(dim=1, keepdim=True)",
)
NO_LOOP_ROWS = Hint(
    "let torch visit the rows: an operation on the whole tensor works on every row at once",
    "one reduction gives all the row sums at once; one division, broadcast, divides each "
    "row by its own",
    "a / a.sum(dim=1, keepdim=True)",
)


def _normalize_cases() -> list[torch.Tensor]:
    """Inputs of 1.3: integers, a square matrix, one row, one column, float32."""
    return [
        torch.tensor([[1, 0, 0], [1, 1, 1], [-1, 1, 1], [2, 3, 4]]),
        torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]),
        _random(5, 7).abs() + 0.1,
        torch.tensor([[1.0, 3.0, 4.0]]),
        torch.tensor([[2.0], [-0.5], [7.0]]),
        torch.tensor([[-2.0, 0.5], [1e-3, 3.0]], dtype=torch.float32),
    ]


def _normalized(what: str, normalize_rows: Callable, a: torch.Tensor) -> Any:
    """The learner's answer for `a`, checked for leaving `a` alone; in-place errors hinted,
    and so is a mean, which torch refuses to take of integers."""
    given = a.clone()
    try:
        got = call(what, normalize_rows, given)
    except Mismatch as error:
        if "can't be cast" in str(error) or "in-place" in str(error):
            raise Mismatch(f"{error}\n  Hint: {render_hint(IN_PLACE)}") from None
        if "mean(): could not infer output dtype" in str(error):
            raise Mismatch(f"{error}\n  Hint: {render_hint(SCALED_ROWS)}") from None
        raise
    with hinted(IN_PLACE):
        expect(torch.equal(given, a), f"{what}: your function changed its input")
    return got


def _rows_mistake(got: torch.Tensor, a: torch.Tensor) -> Hint | None:
    """The hint for a recognised wrong division: by the column sums, or by a multiple of the
    row sums (a mean, a norm); None for any other answer."""
    right = a / a.sum(dim=1, keepdim=True)
    if torch.allclose(got, right):
        return None
    if torch.allclose(got, a / a.sum(dim=0)):
        return COLUMN_SUMS
    cross = got[:, :, None] * right[:, None, :]  # rows proportional: every 2x2 minor is 0
    return SCALED_ROWS if torch.allclose(cross, cross.transpose(1, 2)) else None


@learner_check
def check_normalize_rows(normalize_rows: Callable[[torch.Tensor], Any]) -> Verdict:
    """Exercise 1.3: `normalize_rows(a)` equals `a / a.sum(dim=1, keepdim=True)`, no loop.

    The square input catches `a / a.sum(dim=1)`, which broadcasts there but divides
    the columns; the input must come back unchanged (no in-place division).
    """
    cases = _normalize_cases()

    def body():
        for i, a in enumerate(cases):
            what = f"input #{i} ({a.dtype}, shape {tuple(a.shape)})"
            got = _normalized(what, normalize_rows, a)
            with hinted(DIVISION_DTYPE):
                expect(
                    isinstance(got, torch.Tensor),
                    f"{what}: expected a torch.Tensor, got {describe(got)}",
                )
                expect_equal(tuple(got.shape), tuple(a.shape), f"{what}: shape")
                expect(
                    got.dtype == (a / 1).dtype,
                    f"{what}: dtype: expected {(a / 1).dtype}, got {got.dtype}",
                )
            mistake = _rows_mistake(got, a)
            with hinted(mistake) if mistake else nullcontext():
                expect_close(got, a / a.sum(dim=1, keepdim=True), what)
        with hinted(NO_LOOP_ROWS):
            expect_no_loop(
                normalize_rows,
                [(_random(3, 4),), (_random(6, 8),)],
                ["a (3, 4) input", "a (6, 8) input"],
            )
        return f"matches torch on {len(cases)} inputs, without a loop"

    return check(
        "Exercise 1.3 (normalize_rows)",
        body,
        hint=Hint(
            "compare the shapes: the row sums must line up with the rows of a",
            "a.sum(dim=1) has shape (n,), which broadcasting lines up with the last "
            "dimension of (n, m), the columns; the sums must be a column, of shape (n, 1)",
            "a / a.sum(dim=1, keepdim=True)",
        ),
    )


# ----------------------------------------------------------------------------- 1.4

BYTES_NUDGE = (
    "element [i, j, …] starts at byte data_ptr() + (i·stride(0) + j·stride(1) + …)·"
    "element_size() and covers element_size() bytes"
)
BYTES_RECIPE = (
    "collect in a set every byte address each tensor covers (each element's start, plus 0 … "
    "element_size() − 1) and return whether the two sets meet; comparing storages, start "
    "addresses or first-to-last address ranges is not enough"
)


class MemoryCase(NamedTuple):
    """A pair for Exercise 1.4: whether `a` and `b` share an element, and the lesson."""

    text: str
    a: torch.Tensor
    b: torch.Tensor
    shared: bool
    lesson: str


def memory_cases() -> list[MemoryCase]:
    """The pairs of Exercise 1.4, each with the idea a wrong answer on it has missed."""
    x = torch.arange(12.0).view(3, 4)
    u = x.view(torch.uint8)
    d = torch.arange(6.0, dtype=torch.float64)
    c = torch.zeros(3, dtype=torch.complex64)
    n = np.arange(4.0)
    view = "a view reads the same memory, whatever its shape or strides"
    later = "a view can start later in the storage: data_ptr() is its first element's address"
    copy = (
        "a copy (clone(), torch.tensor(…), a reshape that cannot be a view) has memory of its own"
    )
    rows = "one storage is not one element: two views of it can cover different bytes"
    gaps = (
        "address ranges can interleave with no element in common: look at each element, not "
        "at the first and last address"
    )
    inside = (
        "an element covers element_size() bytes: a view with another dtype can start inside one"
    )
    units = (
        "stride() and storage_offset() count elements of the tensor's own dtype: a uint8 view "
        "counts bytes, a float32 tensor 4-byte elements"
    )
    numpy = (
        "torch.from_numpy of two overlapping slices of one array gives two storages over "
        "overlapping memory: compare addresses, not storages"
    )
    expand = "a stride of 0 reads the same element again and again"
    return [
        MemoryCase("x and x.view(4, 3)", x, x.view(4, 3), True, view),
        MemoryCase("x and x.t()", x, x.t(), True, view),
        MemoryCase("x and x[1:] (a later start in the same storage)", x, x[1:], True, later),
        MemoryCase("x and x.clone()", x, x.clone(), False, copy),
        MemoryCase("x[:1] and x[1:] (different rows of one storage)", x[:1], x[1:], False, rows),
        MemoryCase(
            "x[:, ::2] and x[:, 1::2] (interleaved columns)", x[:, ::2], x[:, 1::2], False, gaps
        ),
        MemoryCase(
            "x[:, 1:3] and x[2, 2:] (one element in common)", x[:, 1:3], x[2, 2:], True, later
        ),
        MemoryCase("x and x.reshape(-1)", x, x.reshape(-1), True, view),
        MemoryCase("x.t() and x.t().reshape(-1) (a copy)", x.t(), x.t().reshape(-1), False, copy),
        MemoryCase("x and torch.from_numpy(x.numpy())", x, torch.from_numpy(x.numpy()), True, view),
        MemoryCase("x and torch.tensor(x.numpy())", x, torch.tensor(x.numpy()), False, copy),
        MemoryCase(
            "x and x.view(torch.uint8)[:, 1::4] (the second byte of each element)",
            x,
            u[:, 1::4],
            True,
            inside,
        ),
        MemoryCase(
            "x[:, 0] and x.view(torch.uint8)[:, 4:8] (the bytes next to them)",
            x[:, 0],
            u[:, 4:8],
            False,
            units,
        ),
        MemoryCase(
            "x.view(torch.uint8)[:, 3::4] and [:, 0::4] (interleaved bytes)",
            u[:, 3::4],
            u[:, 0::4],
            False,
            gaps,
        ),
        MemoryCase(
            "d and d.view(torch.int32)[1::2] (the upper halves of float64 elements)",
            d,
            d.view(torch.int32)[1::2],
            True,
            inside,
        ),
        MemoryCase(
            "d[::2] and d.view(torch.int32)[2::4] (halves of the other elements)",
            d[::2],
            d.view(torch.int32)[2::4],
            False,
            units,
        ),
        MemoryCase(
            "d[1:2] and d.view(torch.int16)[7:8] (its last two bytes)",
            d[1:2],
            d.view(torch.int16)[7:8],
            True,
            inside,
        ),
        MemoryCase(
            "c and torch.view_as_real(c)[:, 1] (the imaginary parts of complex64 elements)",
            c,
            torch.view_as_real(c)[:, 1],
            True,
            inside,
        ),
        MemoryCase(
            "c.real and torch.view_as_real(c)[:, 1] (real and imaginary parts)",
            c.real,
            torch.view_as_real(c)[:, 1],
            False,
            gaps,
        ),
        MemoryCase(
            "x[:0] and x (an empty tensor)", x[:0], x, False, "an empty tensor has no element"
        ),
        MemoryCase(
            "x[1, 2] and x (a 0-d tensor)",
            x[1, 2],
            x,
            True,
            "a 0-d tensor has no dimension but one element, of element_size() bytes",
        ),
        MemoryCase(
            "x[:1].expand(5, 4) and x[0] (a stride of 0)", x[:1].expand(5, 4), x[0], True, expand
        ),
        MemoryCase(
            "x[:1].expand(5, 4) and x[1:] (a stride of 0)", x[:1].expand(5, 4), x[1:], False, expand
        ),
        MemoryCase(
            "torch.zeros(3) and torch.zeros(3) (equal values)",
            torch.zeros(3),
            torch.zeros(3),
            False,
            "equal values are not shared memory: the same numbers can sit in two places",
        ),
        MemoryCase(
            "torch.from_numpy(n[:3]) and torch.from_numpy(n[1:]) (two storages, one array)",
            torch.from_numpy(n[:3]),
            torch.from_numpy(n[1:]),
            True,
            numpy,
        ),
        MemoryCase(
            "torch.from_numpy(n[:2]) and torch.from_numpy(n[2:]) (two storages, side by side)",
            torch.from_numpy(n[:2]),
            torch.from_numpy(n[2:]),
            False,
            gaps,
        ),
    ]


def _as_bool(what: str, value: Any) -> bool:
    """`value` as a bool: a Python, NumPy or 0-d torch bool counts; nothing else does."""
    is_tensor = isinstance(value, torch.Tensor) and value.dtype == torch.bool
    ok = isinstance(value, (bool, np.bool_)) or (is_tensor and value.dim() == 0)
    expect(ok, f"{what}: expected a bool, got {describe(value)}")
    return bool(value)


@learner_check
def check_shares_memory(shares_memory: Callable[[torch.Tensor, torch.Tensor], Any]) -> Verdict:
    """Exercise 1.4: `shares_memory(a, b)` is True when a and b have an element in common.

    A wrong verdict on a pair gets the hint that pair teaches (a view starts later, a
    byte view starts inside an element, …), in steps that end with the general recipe.
    """

    def body():
        cases = memory_cases()
        for case in cases:
            got = _as_bool(case.text, call(case.text, shares_memory, case.a, case.b))
            with hinted(Hint(case.lesson, BYTES_NUDGE, BYTES_RECIPE)):
                expect(got == case.shared, f"{case.text}: expected {case.shared}, got {got}")
        return f"right on {len(cases)} pairs of tensors"

    return check(
        "Exercise 1.4 (shares_memory)",
        body,
        hint=Hint(
            "shares_memory(a, b) returns a bool: True when some byte belongs to an element of both",
            BYTES_NUDGE,
            BYTES_RECIPE,
        ),
    )


# ----------------------------------------------------------------------------- 1.5

EMPTY_BATCH = Hint(
    "an empty batch (N = 0) has no elements, so a -1 in a shape has nothing to be inferred from",
    "compute the second size from the sizes themselves instead of writing -1",
    "batch.flatten(start_dim=1), or batch.reshape(len(batch), math.prod(batch.shape[1:]))",
)
COPIED = Hint(
    "a contiguous batch can be flattened without copying: the result can be a view",
    "reshape and flatten return a view when the strides allow one; clone(), .contiguous() "
    "on a copy or torch.tensor(…) copy",
    "batch.flatten(start_dim=1) (a view of a contiguous batch)",
)


REORDERED = Hint(
    "each of your rows holds the right numbers in another order: you moved a dimension "
    "before merging",
    "a flattened image reads its numbers as the batch stores them: channel by channel, each "
    "channel row by row (C, then H, then W); transpose and permute change that order",
    "batch.flatten(start_dim=1), without reordering the dimensions first",
)


def _reordered(got: Any, expected: torch.Tensor) -> bool:
    """Whether `got` has `expected`'s shape and each row's numbers, in another order."""
    return (
        isinstance(got, torch.Tensor)
        and got.shape == expected.shape
        and got.dtype == expected.dtype
        and not torch.equal(got, expected)
        and torch.equal(got.sort(dim=1).values, expected.sort(dim=1).values)
    )


@learner_check
def check_flatten_images(flatten_images: Callable[[torch.Tensor], Any]) -> Verdict:
    """Exercise 1.5: `flatten_images(batch)` is `batch.flatten(start_dim=1)`.

    A contiguous batch must come back as a view; a transposed one (where `view` fails)
    must still give the right values; the sizes are not always MNIST's, and an empty
    batch (where a -1 cannot be inferred) is one of them.
    """
    mnist = _random(8, 1, 28, 28)
    cases = [
        ("a contiguous (8, 1, 28, 28) batch", mnist, True),
        ("a transposed (8, 1, 28, 28) batch", mnist.transpose(2, 3), False),
        ("a (5, 3, 4, 4) batch", _random(5, 3, 4, 4), True),
        ("a batch of one (1, 1, 28, 28) image", _random(1, 1, 28, 28), True),
        ("rows 2 to 5 of a (8, 1, 28, 28) batch", mnist[2:6], True),
        ("an empty (0, 1, 28, 28) batch", _random(0, 1, 28, 28), False),
    ]

    def body():
        for text, batch, must_share in cases:
            expected = batch.flatten(start_dim=1)
            with hinted(EMPTY_BATCH) if batch.numel() == 0 else nullcontext():
                got = call(text, flatten_images, batch)
                with hinted(REORDERED) if _reordered(got, expected) else nullcontext():
                    expect_close(got, expected, text)
            if must_share:
                with hinted(COPIED):
                    expect(got.data_ptr() == batch.data_ptr(), f"{text}: you copied it")
        return f"matches torch on {len(cases)} batches, an empty one included"

    return check(
        "Exercise 1.5 (flatten_images)",
        body,
        hint=Hint(
            "keep the first dimension, the batch, and merge all the others into one",
            "reshape copies only when it must, view fails on a transposed batch, and the "
            "sizes are not always 1, 28, 28",
            "batch.flatten(start_dim=1)",
        ),
    )


# ----------------------------------------------------------------------------- 1.6

NO_LOOP_PAIRS = Hint(
    "broadcasting can pair every row of A with every row of B at once, as a loop would",
    "give A and B each a size-1 dimension in a different place, so that their difference "
    "has shape (n, m, d)",
    "((A[:, None, :] - B[None, :, :]) ** 2).sum(dim=-1)",
)


NOT_SQUARED = Hint(
    "your entries are the distances themselves: the exercise asks for their squares",
    "torch.cdist and .norm() give sqrt(((A[i] - B[j]) ** 2).sum()); the square root is the "
    "step too many",
    "((A[:, None, :] - B[None, :, :]) ** 2).sum(dim=-1), or torch.cdist(A, B) ** 2",
)
MEAN_OVER_D = Hint(
    "your entries are the right ones divided by d: you averaged the squared differences "
    "over the coordinates",
    "the squared distance adds up the d squared differences: .sum(dim=-1), not .mean(dim=-1)",
    "((A[:, None, :] - B[None, :, :]) ** 2).sum(dim=-1)",
)


def _pairs_mistake(got: Any, expected: torch.Tensor, d: int) -> Hint | None:
    """The hint for distances that are not squared, or averaged over the d coordinates."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or got.is_complex():
        return None
    got = got.detach().to(expected.dtype)
    if torch.allclose(got, expected):
        return None
    if torch.allclose(got**2, expected):
        return NOT_SQUARED
    return MEAN_OVER_D if d > 1 and torch.allclose(got * d, expected) else None


@learner_check
def check_pairwise_sq_dists(
    pairwise_sq_dists: Callable[[torch.Tensor, torch.Tensor], Any],
) -> Verdict:
    """Exercise 1.6: `pairwise_sq_dists(A, B)[i, j]` is `((A[i] - B[j]) ** 2).sum()`, no loop."""
    sizes = [(5, 4, 3), (2, 2, 2), (1, 6, 4), (4, 1, 1)]
    cases = [(_random(n, d), _random(m, d) + 1) for n, m, d in sizes]

    def body():
        for A, B in cases:
            what = f"A of shape {tuple(A.shape)}, B of shape {tuple(B.shape)}"
            got = call(what, pairwise_sq_dists, A, B)
            expected = ((A[:, None, :] - B[None, :, :]) ** 2).sum(dim=-1)
            mistake = _pairs_mistake(got, expected, A.shape[1])
            with hinted(mistake) if mistake else nullcontext():
                expect_close(got, expected, what, rtol=1e-9)
        small, large = (_random(3, 2), _random(2, 2)), (_random(7, 5), _random(6, 5))
        with hinted(NO_LOOP_PAIRS):
            expect_no_loop(
                pairwise_sq_dists,
                [small, large],
                ["A (3, 2) and B (2, 2)", "A (7, 5) and B (6, 5)"],
            )
        return f"matches the definition on {len(cases)} pairs, without a loop"

    return check(
        "Exercise 1.6 (pairwise_sq_dists)",
        body,
        hint=Hint(
            "entry [i, j] pairs row i of A with row j of B: every row of A meets every row of B",
            "A[:, None, :] has shape (n, 1, d) and B[None, :, :] has shape (1, m, d): their "
            "difference broadcasts to (n, m, d)",
            "((A[:, None, :] - B[None, :, :]) ** 2).sum(dim=-1)",
        ),
    )
