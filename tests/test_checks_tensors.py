"""The checks of Chapter 1 pass right answers and catch wrong ones and stubs."""

import numpy as np
import pytest
import torch

from course.checks import tensors as checks
from tests.check_cases import assert_fails, assert_not_done_yet, assert_passes


def stub(*args):
    raise NotImplementedError("Exercise 1.x is not done yet")


RIGHT_SHAPES = [
    (3, 4),
    (2, 4),
    (2, 3, 2),
    (2, 4),
    (2, 1, 4),
    (6, 4),
    (4, 2, 3),
    (2, 1, 3, 4),
    (2, 3, 4),
    (2, 3, 5),
]


def contiguous_strides(shape):
    return tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))


def shares_memory(a, b):
    return bool(np.shares_memory(a.numpy(), b.numpy()))


def in_place_for_floats(a):
    if a.is_floating_point():
        return a.div_(a.sum(dim=1, keepdim=True))
    return a / a.sum(dim=1, keepdim=True)


def element_offsets(t):
    offsets = torch.zeros((), dtype=torch.long)
    for size, stride in zip(t.shape, t.stride(), strict=True):
        offsets = offsets[..., None] + torch.arange(size) * stride
    return offsets.reshape(-1)


def start_addresses_meet(a, b):
    """A tempting wrong answer: compare the start address of each element only."""

    def starts(t):
        return set((t.data_ptr() + element_offsets(t) * t.element_size()).tolist())

    return not starts(a).isdisjoint(starts(b))


def element_indices_meet(a, b):
    """Wrong: element positions in the storage, ignoring that dtypes differ in size."""

    def positions(t):
        return set((t.storage_offset() + element_offsets(t)).tolist())

    same = a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    return same and not positions(a).isdisjoint(positions(b))


def byte_intervals_meet(a, b):
    """Right but unusual: sorted [start, end) byte intervals, merged and swept."""

    def intervals(t):
        starts = t.data_ptr() + element_offsets(t) * t.element_size()
        return [(s, s + t.element_size(), id(t)) for s in starts.tolist()]

    events = sorted(intervals(a) + [(s, e, -1) for s, e, _ in intervals(b)])
    open_a = open_b = -1
    for start, end, owner in events:
        if owner == -1:
            if start < open_a:
                return True
            open_b = max(open_b, end)
        else:
            if start < open_b:
                return True
            open_a = max(open_a, end)
    return False


RIGHT = {
    "check_predicted_shapes": lambda: RIGHT_SHAPES,
    "check_contiguous_strides": contiguous_strides,
    "check_normalize_rows": lambda a: a / a.sum(dim=1, keepdim=True),
    "check_shares_memory": shares_memory,
    "check_flatten_images": lambda batch: batch.flatten(start_dim=1),
    "check_pairwise_sq_dists": lambda A, B: (
        (A * A).sum(1, keepdim=True) + (B * B).sum(1) - 2 * A @ B.T
    ),
}

WRONG = [
    ("check_predicted_shapes", lambda: RIGHT_SHAPES[:-1], "number of predictions"),
    ("check_predicted_shapes", lambda: [(2, 4)] * 4 + RIGHT_SHAPES[4:], "#1 `x[0]`"),
    ("check_contiguous_strides", lambda shape: (1,) * len(shape), "strides of shape (2, 3, 4)"),
    ("check_contiguous_strides", lambda shape: None, "expected a tuple of ints, got None"),
    ("check_contiguous_strides", lambda shape: (12.0, 4.0, 1.0), "expected a tuple of ints"),
    ("check_predicted_shapes", lambda: None, "expected a list of shapes, got None"),
    ("check_predicted_shapes", lambda: [3] * 10, "prediction #1: expected a tuple of ints"),
    (
        "check_contiguous_strides",
        lambda shape: tuple(int(np.prod(shape[:i])) for i in range(len(shape))),
        "expected (12, 4, 1)",
    ),
    ("check_normalize_rows", lambda a: a / a.sum(dim=0), "input #0"),
    (
        "check_normalize_rows",
        lambda a: a / a.sum(dim=1),
        "input #0 (torch.int64, shape (4, 3)): your code raised",
    ),
    (
        "check_normalize_rows",
        lambda a: a.div_(a.sum(dim=1, keepdim=True)),
        "Hint: don't divide in place",
    ),
    ("check_normalize_rows", in_place_for_floats, "your function changed its input"),
    ("check_normalize_rows", in_place_for_floats, "Hint: don't divide in place"),
    (
        "check_normalize_rows",
        lambda a: (a / a.sum(dim=1, keepdim=True)).double(),
        "dtype: expected torch.float32, got torch.float64",
    ),
    (
        "check_normalize_rows",
        lambda a: (a / a.sum(dim=1, keepdim=True)).numpy(),
        "expected a torch.Tensor, got array",
    ),
    ("check_normalize_rows", lambda a: None, "expected a torch.Tensor, got None"),
    ("check_normalize_rows", lambda a: a / a.abs().sum(dim=1, keepdim=True), "input #0"),
    (
        "check_normalize_rows",
        lambda a: a.copy_(a / a.sum(dim=1, keepdim=True)),
        "changed its input",
    ),
    (
        "check_normalize_rows",
        lambda a: torch.div(a, a.sum(dim=1, keepdim=True), rounding_mode="floor"),
        "input #0",
    ),
    ("check_shares_memory", lambda a, b: a.data_ptr() == b.data_ptr(), "x and x[1:]"),
    (
        "check_shares_memory",
        lambda a, b: a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr(),
        "x[:1] and x[1:]",
    ),
    ("check_shares_memory", lambda a, b: address_ranges_overlap(a, b), "interleaved columns"),
    (
        "check_shares_memory",
        lambda a, b: (
            a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() and shares_memory(a, b)
        ),
        "two storages, one array",
    ),
    ("check_shares_memory", lambda a, b: torch.equal(a, b), "x and x.view(4, 3)"),
    ("check_shares_memory", lambda a, b: start_addresses_meet(a, b), "the second byte of each"),
    ("check_shares_memory", lambda a, b: element_indices_meet(a, b), "the bytes next to them"),
    ("check_shares_memory", lambda a, b: None, "expected a bool, got None"),
    ("check_shares_memory", lambda a, b: np.True_, "expected a bool"),
    (
        "check_flatten_images",
        lambda batch: batch.view(len(batch), -1),
        "transposed (8, 1, 28, 28) batch: your code raised RuntimeError",
    ),
    ("check_flatten_images", lambda batch: batch.reshape(-1, 784), "(5, 3, 4, 4) batch"),
    ("check_flatten_images", lambda batch: batch.clone().flatten(1), "you copied it"),
    (
        "check_pairwise_sq_dists",
        lambda A, B: ((A - B) ** 2).sum(dim=-1),
        "(5, 3), B of shape (4, 3): your code raised",
    ),
    ("check_pairwise_sq_dists", lambda A, B: torch.cdist(A, B), "largest difference"),
    (
        "check_pairwise_sq_dists",
        lambda A, B: ((A[None, :, :] - B[:, None, :]) ** 2).sum(dim=-1),
        "shape: expected (5, 4), got (4, 5)",
    ),
]


def address_ranges_overlap(a, b):
    """A tempting wrong answer: compare [first byte, last byte] ranges only."""

    def span(t):
        last = sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True))
        return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes(name, capsys):
    assert_passes(getattr(checks, name), RIGHT[name], capsys)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_stub_is_not_done_yet(name, capsys):
    assert_not_done_yet(getattr(checks, name), stub, capsys)


@pytest.mark.parametrize(("name", "wrong", "message"), WRONG, ids=[f"{w[0]}-{w[2]}" for w in WRONG])
def test_wrong_answer_fails_and_says_why(name, wrong, message, capsys):
    assert_fails(getattr(checks, name), wrong, message, capsys)


def test_predicted_shapes_does_not_give_the_answer_away(capsys):
    checks.check_predicted_shapes(lambda: [(9, 9), *RIGHT_SHAPES[1:]])
    out = capsys.readouterr().out
    assert "#1 `x[0]` is not (9, 9)" in out, out
    assert "(3, 4)" not in out, out


def test_shape_expressions_match_the_published_answers():
    shapes = [checks.shape_of(e) for e in checks.SHAPE_EXPRESSIONS]
    assert shapes == RIGHT_SHAPES, f"the expressions' shapes changed: {shapes}"


@pytest.mark.parametrize("case", checks.memory_cases(), ids=lambda c: c[0])
def test_memory_cases_agree_with_numpy(case):
    text, a, b, expected = case
    assert np.shares_memory(a.numpy(), b.numpy()) == expected, f"{text}: NumPy disagrees"


RIGHT_BUT_UNUSUAL = [
    ("check_shares_memory", byte_intervals_meet),
    ("check_normalize_rows", lambda a: a * a.sum(dim=1, keepdim=True).reciprocal()),
    ("check_normalize_rows", lambda a: torch.div(a, a.sum(-1).unsqueeze(-1))),
]


@pytest.mark.parametrize(("name", "answer"), RIGHT_BUT_UNUSUAL)
def test_right_but_unusual_answer_passes(name, answer, capsys):
    assert_passes(getattr(checks, name), answer, capsys)
