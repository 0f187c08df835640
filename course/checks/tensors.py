"""Checks for the exercises of Chapter 1 (tensors)."""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from course.checks import (
    Mismatch,
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    expect_equal,
    hinted,
    random_tensor,
)

SHAPE_EXPRESSIONS = [
    "x[0]",
    "x[:, 0]",
    "x[..., 1:3]",
    "x.sum(dim=1)",
    "x.sum(dim=1, keepdim=True)",
    "x.view(-1, 4)",
    "x.permute(2, 0, 1)",
    "x.unsqueeze(1)",
    "x + torch.zeros(3, 1)",
    "x @ torch.zeros(4, 5)",
]
"""The expressions of Exercise 1.1, all on `x = torch.zeros(2, 3, 4)`."""


def _random(*shape: int) -> torch.Tensor:
    """Reproducible float64 test input that leaves the global random state alone."""
    return random_tensor(*shape, seed=sum(shape))


def _as_shape(what: str, value: Any) -> tuple[int, ...]:
    """`value` as a tuple of ints (a tuple, list or torch.Size), or a clear mismatch."""
    ok = isinstance(value, (tuple, list, torch.Size)) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in value
    )
    expect(ok, f"{what}: expected a tuple of ints, got {describe(value)}")
    return tuple(value)


def shape_of(expression: str) -> tuple[int, ...]:
    """The shape torch gives `expression` (one of `SHAPE_EXPRESSIONS`)."""
    namespace = {"torch": torch, "x": torch.zeros(2, 3, 4)}
    return tuple(eval(expression, namespace).shape)


def check_predicted_shapes(predicted_shapes: Callable[[], Any]) -> Verdict:
    """Exercise 1.1: `predicted_shapes()` lists the shape of each expression, in order.

    A wrong prediction is named but its answer is not given away: run the expression.
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
            f"#{i} `{text}` is not {describe(guess)}"
            for i, (text, guess) in enumerate(zip(SHAPE_EXPRESSIONS, guesses, strict=True), start=1)
            if guess != shape_of(text)
        ]
        expect(not wrong, f"{len(wrong)} wrong: " + "; ".join(wrong))
        return f"all {len(SHAPE_EXPRESSIONS)} shapes predicted"

    return check(
        "Exercise 1.1 (predicted_shapes)",
        body,
        hint="run a wrong expression and work out why it has that shape",
    )


def check_contiguous_strides(contiguous_strides: Callable[[tuple], Any]) -> Verdict:
    """Exercise 1.2: `contiguous_strides(shape)` equals the strides of a fresh tensor."""
    shapes = [(2, 3, 4), (6,), (3, 1, 2), (64, 1, 28, 28), ()]

    def body():
        for shape in shapes:
            got = _as_shape(f"shape {shape}", call(f"shape {shape}", contiguous_strides, shape))
            expect_equal(got, torch.empty(shape).stride(), f"strides of shape {shape}")
        return f"matches torch on {len(shapes)} shapes"

    return check(
        "Exercise 1.2 (contiguous_strides)",
        body,
        hint="the last dimension has stride 1; each stride is the next one times the next size",
    )


def check_normalize_rows(normalize_rows: Callable[[torch.Tensor], Any]) -> Verdict:
    """Exercise 1.3: `normalize_rows(a)` equals `a / a.sum(dim=1, keepdim=True)`.

    The square input catches `a / a.sum(dim=1)`, which broadcasts there but divides
    the columns; the input must come back unchanged (no in-place division).
    """
    cases = [
        torch.tensor([[1, 0, 0], [1, 1, 1], [-1, 1, 1], [2, 3, 4]]),
        torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]),
        _random(5, 7).abs() + 0.1,
        torch.tensor([[-2.0, 0.5], [1e-3, 3.0]], dtype=torch.float32),
    ]
    in_place = (
        "don't divide in place (a /= ..., a.div_(...)): it changes the caller's tensor, and "
        "an integer tensor cannot hold the fractions; return a new tensor, a / (row sums)"
    )

    def body():
        for i, a in enumerate(cases):
            what = f"input #{i} ({a.dtype}, shape {tuple(a.shape)})"
            given = a.clone()
            try:
                got = call(what, normalize_rows, given)
            except Mismatch as error:
                if "can't be cast" in str(error) or "in-place" in str(error):
                    raise Mismatch(f"{error}\n  Hint: {in_place}") from None
                raise
            with hinted(in_place):
                expect(torch.equal(given, a), f"{what}: your function changed its input")
            with hinted(
                "a / b of integer tensors is a float32 tensor (torch's default dtype), of "
                "float tensors one of their dtype: keep torch's, don't convert"
            ):
                expect(
                    isinstance(got, torch.Tensor),
                    f"{what}: expected a torch.Tensor, got {describe(got)}",
                )
                expect_equal(tuple(got.shape), tuple(a.shape), f"{what}: shape")
                expect(
                    got.dtype == (a / 1).dtype,
                    f"{what}: dtype: expected {(a / 1).dtype}, got {got.dtype}",
                )
            expect_close(got, a / a.sum(dim=1, keepdim=True), what)
        return f"matches torch on {len(cases)} inputs"

    return check(
        "Exercise 1.3 (normalize_rows)",
        body,
        hint="the row sums must be a column of shape (n, 1): use keepdim=True in the sum",
    )


def memory_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, bool]]:
    """Pairs for Exercise 1.4: (description, a, b, whether a and b share an element)."""
    x = torch.arange(12.0).view(3, 4)
    u = x.view(torch.uint8)
    d = torch.arange(6.0, dtype=torch.float64)
    c = torch.zeros(3, dtype=torch.complex64)
    n = np.arange(4.0)
    return [
        ("x and x.view(4, 3)", x, x.view(4, 3), True),
        ("x and x.t()", x, x.t(), True),
        ("x and x[1:] (a later start in the same storage)", x, x[1:], True),
        ("x and x.clone()", x, x.clone(), False),
        ("x[:1] and x[1:] (different rows of one storage)", x[:1], x[1:], False),
        ("x[:, ::2] and x[:, 1::2] (interleaved columns)", x[:, ::2], x[:, 1::2], False),
        ("x[:, 1:3] and x[2, 2:] (one element in common)", x[:, 1:3], x[2, 2:], True),
        ("x and x.reshape(-1)", x, x.reshape(-1), True),
        ("x.t() and x.t().reshape(-1) (a copy)", x.t(), x.t().reshape(-1), False),
        ("x and torch.from_numpy(x.numpy())", x, torch.from_numpy(x.numpy()), True),
        ("x and torch.tensor(x.numpy())", x, torch.tensor(x.numpy()), False),
        (
            "x and x.view(torch.uint8)[:, 1::4] (the second byte of each element)",
            x,
            u[:, 1::4],
            True,
        ),
        (
            "x[:, 0] and x.view(torch.uint8)[:, 4:8] (the bytes next to them)",
            x[:, 0],
            u[:, 4:8],
            False,
        ),
        (
            "x.view(torch.uint8)[:, 3::4] and [:, 0::4] (interleaved bytes)",
            u[:, 3::4],
            u[:, 0::4],
            False,
        ),
        (
            "d and d.view(torch.int32)[1::2] (the upper halves of float64 elements)",
            d,
            d.view(torch.int32)[1::2],
            True,
        ),
        (
            "d[::2] and d.view(torch.int32)[2::4] (halves of the other elements)",
            d[::2],
            d.view(torch.int32)[2::4],
            False,
        ),
        (
            "d[1:2] and d.view(torch.int16)[7:8] (its last two bytes)",
            d[1:2],
            d.view(torch.int16)[7:8],
            True,
        ),
        (
            "c and torch.view_as_real(c)[:, 1] (the imaginary parts of complex64 elements)",
            c,
            torch.view_as_real(c)[:, 1],
            True,
        ),
        (
            "c.real and torch.view_as_real(c)[:, 1] (real and imaginary parts)",
            c.real,
            torch.view_as_real(c)[:, 1],
            False,
        ),
        ("x[:0] and x (an empty tensor)", x[:0], x, False),
        ("x[1, 2] and x (a 0-d tensor)", x[1, 2], x, True),
        ("x[:1].expand(5, 4) and x[0] (a stride of 0)", x[:1].expand(5, 4), x[0], True),
        ("x[:1].expand(5, 4) and x[1:] (a stride of 0)", x[:1].expand(5, 4), x[1:], False),
        ("torch.zeros(3) and torch.zeros(3) (equal values)", torch.zeros(3), torch.zeros(3), False),
        (
            "torch.from_numpy(n[:3]) and torch.from_numpy(n[1:]) (two storages, one array)",
            torch.from_numpy(n[:3]),
            torch.from_numpy(n[1:]),
            True,
        ),
        (
            "torch.from_numpy(n[:2]) and torch.from_numpy(n[2:]) (two storages, side by side)",
            torch.from_numpy(n[:2]),
            torch.from_numpy(n[2:]),
            False,
        ),
    ]


def check_shares_memory(shares_memory: Callable[[torch.Tensor, torch.Tensor], Any]) -> Verdict:
    """Exercise 1.4: `shares_memory(a, b)` is True when a and b have an element in common."""

    def body():
        cases = memory_cases()
        for text, a, b, expected in cases:
            got = call(text, shares_memory, a, b)
            expect(isinstance(got, bool), f"{text}: expected a bool, got {describe(got)}")
            if got != expected:
                raise Mismatch(f"{text}: expected {expected}, got {got}")
        return f"right on {len(cases)} pairs of tensors"

    return check(
        "Exercise 1.4 (shares_memory)",
        body,
        hint="compare the bytes the elements occupy: element [i, j, …] covers the bytes "
        "from data_ptr() + (i * stride(0) + j * stride(1) + …) * element_size() for "
        "element_size() bytes. One storage is not enough (x[:1], x[1:]), nor are "
        "overlapping address ranges (x[:, ::2], x[:, 1::2]), nor equal start addresses "
        "(a byte view can start inside an element)",
    )


def check_flatten_images(flatten_images: Callable[[torch.Tensor], Any]) -> Verdict:
    """Exercise 1.5: `flatten_images(batch)` is `batch.reshape(len(batch), -1)`.

    A contiguous batch must come back as a view; a transposed one (where `view` fails)
    must still give the right values; the sizes are not always MNIST's.
    """
    mnist = _random(8, 1, 28, 28)
    cases = [
        ("a contiguous (8, 1, 28, 28) batch", mnist, True),
        ("a transposed (8, 1, 28, 28) batch", mnist.transpose(2, 3), False),
        ("a (5, 3, 4, 4) batch", _random(5, 3, 4, 4), True),
        ("a batch of one (1, 1, 28, 28) image", _random(1, 1, 28, 28), True),
    ]

    def body():
        for text, batch, must_share in cases:
            got = call(text, flatten_images, batch)
            expect_close(got, batch.reshape(len(batch), -1), text)
            if must_share:
                expect(got.data_ptr() == batch.data_ptr(), f"{text}: you copied it; use a view")
        return f"matches torch on {len(cases)} batches"

    return check(
        "Exercise 1.5 (flatten_images)",
        body,
        hint="keep the first dimension and let -1 infer the rest; reshape copies only "
        "when it must, view fails on a transposed batch",
    )


def check_pairwise_sq_dists(
    pairwise_sq_dists: Callable[[torch.Tensor, torch.Tensor], Any],
) -> Verdict:
    """Exercise 1.6: `pairwise_sq_dists(A, B)[i, j]` is `((A[i] - B[j]) ** 2).sum()`."""
    sizes = [(5, 4, 3), (2, 2, 2), (1, 6, 4)]
    cases = [(_random(n, d), _random(m, d)) for n, m, d in sizes]

    def body():
        for A, B in cases:
            what = f"A of shape {tuple(A.shape)}, B of shape {tuple(B.shape)}"
            got = call(what, pairwise_sq_dists, A, B)
            expect_close(got, torch.cdist(A, B) ** 2, what, rtol=1e-9)
        return f"matches torch.cdist(A, B) ** 2 on {len(cases)} pairs"

    return check(
        "Exercise 1.6 (pairwise_sq_dists)",
        body,
        hint="A[:, None, :] has shape (n, 1, d) and B[None, :, :] has shape (1, m, d): "
        "their difference broadcasts to (n, m, d); sum its squares over the last dimension",
    )
