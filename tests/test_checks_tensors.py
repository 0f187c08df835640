"""The checks of Chapter 1 pass right answers and catch wrong ones and stubs."""

import functools
import math

import numpy as np
import pytest
import torch

from course.checks import tensors as checks
from tests.check_cases import assert_hint_grows, assert_passes, table_tests


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
    return tuple(math.prod(max(n, 1) for n in shape[i + 1 :]) for i in range(len(shape)))


def naive_strides(shape):
    """The product of the later sizes: right unless a size is 0 (torch uses max(size, 1))."""
    return tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))


def numpy_strides(shape):
    """Right, as NumPy integers (np.int64), which the check accepts."""
    if not shape:
        return ()
    sizes = np.maximum(np.array([*shape[1:], 1], dtype=np.int64), 1)
    return tuple(np.cumprod(sizes[::-1])[::-1])


def shares_memory(a, b):
    return bool(np.shares_memory(a.numpy(), b.numpy()))


def in_place_for_floats(a):
    if a.is_floating_point():
        return a.div_(a.sum(dim=1, keepdim=True))
    return a / a.sum(dim=1, keepdim=True)


def l1_normalize(a):
    """Wrong: F.normalize with p=1 divides by the sum of absolute values."""
    return torch.nn.functional.normalize(a / 1, p=1, dim=1)


def by_the_mean(a):
    """Wrong: divides by the row's mean (converted first, as torch takes no mean of ints)."""
    a = a / 1
    return a / a.mean(dim=1, keepdim=True)


def channels_last(batch):
    """Wrong: the right numbers in each row, in (H, W, C) order instead of (C, H, W)."""
    return batch.permute(0, 2, 3, 1).reshape(len(batch), -1)


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


def address_ranges_overlap(a, b):
    """A tempting wrong answer: compare [first byte, last byte] ranges only."""

    def span(t):
        last = sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True))
        return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def same_storage(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# Loops, written every way the "no loop" rule of 1.3 and 1.6 must catch.


def rows_in_a_for_loop(a):
    out = torch.empty_like(a / 1)
    for i in range(len(a)):
        out[i] = a[i] / a[i].sum()
    return out


def rows_in_a_while_loop(a):
    rows, i = [], 0
    while i < len(a):
        rows.append(a[i] / a[i].sum())
        i += 1
    return torch.stack(rows)


def _one_row(row):
    return row / row.sum()


def rows_by_a_helper(a):
    """The loop sits in a helper of the learner's own, not in the function checked."""
    return _stack_rows(a)


def _stack_rows(a):
    return torch.stack([_one_row(row) for row in a])


class RowByRow:
    """A callable object whose loop no bytecode of a function shows: only its torch calls."""

    def __call__(self, a):
        return torch.stack([r / r.sum() for r in a])


class PairsRowByRow:
    def __call__(self, A, B):
        return torch.stack([((r - B) ** 2).sum(-1) for r in A])


def through_numpy(a):
    """No loop in sight, but the numbers leave torch (NumPy could loop over them)."""
    values = a.numpy()
    return torch.from_numpy(values / values.sum(1, keepdims=True)).to((a / 1).dtype)


def through_a_list(a):
    sums = torch.tensor([sum(r) for r in a.tolist()], dtype=a.dtype)
    return a / sums[:, None]


def builtin_sum_of_columns(a):
    """`sum()` over a tensor iterates over its rows in Python: sums the columns here."""
    return a / sum(a.T)[:, None]


def pairs_over_the_dimension(A, B):
    return sum((A[:, None, k] - B[None, :, k]) ** 2 for k in range(A.shape[1]))


def pairs_with_map(A, B):
    return torch.stack(list(map(lambda r: ((r - B) ** 2).sum(-1), A)))


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
    ("check_predicted_shapes", lambda: None, "expected a list of shapes, got None"),
    ("check_predicted_shapes", lambda: [3] * 10, "prediction #1: expected a tuple of ints"),
    ("check_contiguous_strides", lambda shape: (1,) * len(shape), "strides of shape (2, 3, 4)"),
    ("check_contiguous_strides", lambda shape: None, "expected a tuple of ints, got None"),
    ("check_contiguous_strides", lambda shape: (12.0, 4.0, 1.0), "a stride counts elements"),
    (
        "check_contiguous_strides",
        lambda shape: tuple(int(np.prod(shape[:i])) for i in range(len(shape))),
        "expected (12, 4, 1)",
    ),
    ("check_contiguous_strides", naive_strides, "strides of shape (2, 0, 3): expected (3, 3, 1)"),
    ("check_contiguous_strides", naive_strides, "look at the shapes with a size 0"),
    (
        "check_contiguous_strides",
        lambda shape: torch.empty(shape).stride(),
        "your code called torch (empty, stride); the exercise asks for the strides without",
    ),
    (
        "check_contiguous_strides",
        lambda shape: np.empty(shape).strides,
        "strides of shape (2, 3, 4): expected (12, 4, 1), got (96, 32, 8)",
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
        "Hint: your function divides in place",
    ),
    ("check_normalize_rows", in_place_for_floats, "your function changed its input"),
    ("check_normalize_rows", in_place_for_floats, "Hint: your function divides in place"),
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
    ("check_normalize_rows", l1_normalize, "Hint: each of your rows is the right row times"),
    ("check_normalize_rows", by_the_mean, "Hint: each of your rows is the right row times"),
    ("check_normalize_rows", lambda a: a / a.mean(dim=1, keepdim=True), "mean(): could not"),
    ("check_normalize_rows", lambda a: a / a.mean(dim=1, keepdim=True), "right row times"),
    ("check_normalize_rows", lambda a: a / a.sum(dim=0), "Hint: your result's columns sum to 1"),
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
    ("check_normalize_rows", rows_in_a_for_loop, "your code has a `for` loop or a comprehension"),
    ("check_normalize_rows", rows_in_a_while_loop, "your code has a `while` loop"),
    (
        "check_normalize_rows",
        lambda a: torch.stack([r / r.sum() for r in a]),
        "your code has a `for` loop or a comprehension",
    ),
    (
        "check_normalize_rows",
        lambda a: torch.stack(list(map(_one_row, a))),
        "`map`, which loops for you",
    ),
    (
        "check_normalize_rows",
        lambda a: torch.stack(functools.reduce(lambda rows, r: [*rows, _one_row(r)], a, [])),
        "`reduce`, which loops for you",
    ),
    ("check_normalize_rows", rows_by_a_helper, "your code has a `for` loop or a comprehension"),
    (
        "check_normalize_rows",
        RowByRow(),
        "torch calls that grows with the input: 9 for a (3, 4) input, 15 for a (6, 8) input",
    ),
    (
        "check_normalize_rows",
        through_numpy,
        "a (3, 4) input: your code takes the numbers out of the",
    ),
    ("check_normalize_rows", through_a_list, "your code has a `for` loop or a comprehension"),
    ("check_normalize_rows", builtin_sum_of_columns, "grows with the input"),
    ("check_normalize_rows", RowByRow(), "Hint: let torch visit the rows"),
    ("check_shares_memory", lambda a, b: a.data_ptr() == b.data_ptr(), "x and x[1:]"),
    ("check_shares_memory", same_storage, "x[:1] and x[1:]"),
    ("check_shares_memory", same_storage, "Hint: one storage is not one element"),
    ("check_shares_memory", address_ranges_overlap, "interleaved columns"),
    ("check_shares_memory", address_ranges_overlap, "Hint: address ranges can interleave"),
    (
        "check_shares_memory",
        lambda a, b: same_storage(a, b) and shares_memory(a, b),
        "two storages, one array",
    ),
    ("check_shares_memory", lambda a, b: torch.equal(a, b), "x and x.view(4, 3)"),
    ("check_shares_memory", start_addresses_meet, "the second byte of each"),
    ("check_shares_memory", start_addresses_meet, "Hint: an element covers element_size()"),
    ("check_shares_memory", element_indices_meet, "the bytes next to them"),
    ("check_shares_memory", element_indices_meet, "Hint: stride() and storage_offset() count"),
    ("check_shares_memory", lambda a, b: None, "expected a bool, got None"),
    ("check_shares_memory", lambda a, b: 1, "expected a bool, got 1"),
    ("check_shares_memory", lambda a, b: torch.tensor([True]), "expected a bool, got tensor"),
    (
        "check_flatten_images",
        lambda batch: batch.view(len(batch), -1),
        "transposed (8, 1, 28, 28) batch: your code raised RuntimeError",
    ),
    ("check_flatten_images", lambda batch: batch.reshape(-1, 784), "(5, 3, 4, 4) batch"),
    ("check_flatten_images", lambda batch: batch.clone().flatten(1), "you copied it"),
    ("check_flatten_images", channels_last, "(5, 3, 4, 4) batch: 230 of 240 entries differ"),
    ("check_flatten_images", channels_last, "Hint: each of your rows holds the right numbers"),
    (
        "check_flatten_images",
        lambda batch: batch.transpose(2, 3).flatten(1),
        "Hint: each of your rows holds the right numbers in another order",
    ),
    (
        "check_flatten_images",
        lambda batch: batch.reshape(len(batch), -1),
        "an empty (0, 1, 28, 28) batch: your code raised RuntimeError: cannot reshape tensor "
        "of 0 elements",
    ),
    (
        "check_flatten_images",
        lambda batch: batch.reshape(len(batch), -1),
        "Hint: an empty batch (N = 0) has no elements",
    ),
    (
        "check_flatten_images",
        lambda batch: batch.contiguous().view(batch.shape[0], -1),
        "an empty (0, 1, 28, 28) batch",
    ),
    (
        "check_pairwise_sq_dists",
        lambda A, B: ((A - B) ** 2).sum(dim=-1),
        "(5, 3), B of shape (4, 3): your code raised",
    ),
    ("check_pairwise_sq_dists", lambda A, B: torch.cdist(A, B), "largest difference"),
    ("check_pairwise_sq_dists", lambda A, B: torch.cdist(A, B), "the distances themselves"),
    (
        "check_pairwise_sq_dists",
        lambda A, B: ((A[:, None] - B[None]) ** 2).mean(dim=-1),
        "Hint: your entries are the right ones divided by d",
    ),
    ("check_pairwise_sq_dists", lambda A, B: A @ B.T, "largest difference"),
    (
        "check_pairwise_sq_dists",
        lambda A, B: ((A[None, :, :] - B[:, None, :]) ** 2).sum(dim=-1),
        "shape: expected (5, 4), got (4, 5)",
    ),
    (
        "check_pairwise_sq_dists",
        lambda A, B: torch.stack([((A[i] - B) ** 2).sum(-1) for i in range(len(A))]),
        "your code has a `for` loop or a comprehension",
    ),
    ("check_pairwise_sq_dists", pairs_over_the_dimension, "a `for` loop or a comprehension"),
    ("check_pairwise_sq_dists", pairs_with_map, "`map`, which loops for you"),
    ("check_pairwise_sq_dists", PairsRowByRow(), "torch calls that grows with the input"),
    ("check_pairwise_sq_dists", PairsRowByRow(), "Hint: broadcasting can pair every row"),
]


test_right_answer_passes, test_stub_is_not_done_yet, test_wrong_answer_fails_and_says_why = (
    table_tests(checks, RIGHT, dict.fromkeys(RIGHT, stub), WRONG)
)


RIGHT_BUT_UNUSUAL = [
    ("check_predicted_shapes", lambda: [np.array(shape, dtype=np.int64) for shape in RIGHT_SHAPES]),
    ("check_contiguous_strides", numpy_strides),
    ("check_contiguous_strides", lambda shape: np.array(contiguous_strides(shape), dtype=np.int64)),
    ("check_shares_memory", lambda a, b: np.bool_(shares_memory(a, b))),
    ("check_shares_memory", lambda a, b: torch.tensor(shares_memory(a, b))),
    ("check_contiguous_strides", lambda shape: list(contiguous_strides(shape))),
    ("check_shares_memory", byte_intervals_meet),
    ("check_normalize_rows", lambda a: a * a.sum(dim=1, keepdim=True).reciprocal()),
    ("check_normalize_rows", lambda a: torch.div(a, a.sum(-1).unsqueeze(-1))),
    ("check_normalize_rows", lambda a: (a.T / a.sum(1)).T),
    ("check_normalize_rows", lambda a: torch.vmap(lambda row: row / row.sum())(a)),
    ("check_flatten_images", lambda batch: batch.reshape(len(batch), math.prod(batch.shape[1:]))),
    ("check_flatten_images", torch.nn.Flatten()),
    ("check_pairwise_sq_dists", lambda A, B: torch.cdist(A, B) ** 2),
    ("check_pairwise_sq_dists", lambda A, B: torch.vmap(lambda a: ((a - B) ** 2).sum(-1))(A)),
    (
        "check_pairwise_sq_dists",
        lambda A, B: (A.unsqueeze(1) - B.unsqueeze(0)).pow(2).sum(2),
    ),
]


@pytest.mark.parametrize(("name", "answer"), RIGHT_BUT_UNUSUAL)
def test_right_but_unusual_answer_passes(name, answer, capsys):
    assert_passes(getattr(checks, name), answer, capsys)


# One plausible wrong answer per exercise, and the recipe its hint ends with: the first ✗
# points at the idea without the recipe, the third gives it, and so does hint="full".
PROGRESSIVE = [
    (
        "check_predicted_shapes",
        lambda: [(9, 9), *RIGHT_SHAPES[1:6], (2, 3, 4), *RIGHT_SHAPES[7:]],
        "an integer index removes its dimension",
    ),
    (
        "check_contiguous_strides",
        lambda shape: tuple(reversed(contiguous_strides(shape))),
        "walk the shape from the right",
    ),
    ("check_contiguous_strides", naive_strides, "max(size, 1)"),
    ("check_normalize_rows", lambda a: a / a.sum(dim=0), "a / a.sum(dim=1, keepdim=True)"),
    ("check_normalize_rows", l1_normalize, "a / a.sum(dim=1, keepdim=True)"),
    ("check_normalize_rows", by_the_mean, "a / a.sum(dim=1, keepdim=True)"),
    ("check_normalize_rows", RowByRow(), "a / a.sum(dim=1, keepdim=True)"),
    (
        "check_normalize_rows",
        lambda a: a.div_(a.sum(dim=1, keepdim=True)),
        "return a new tensor, a / (the row sums)",
    ),
    ("check_shares_memory", same_storage, "collect in a set every byte address"),
    ("check_shares_memory", start_addresses_meet, "collect in a set every byte address"),
    (
        "check_flatten_images",
        lambda batch: batch.reshape(len(batch), -1),
        "batch.flatten(start_dim=1)",
    ),
    ("check_flatten_images", lambda batch: batch.clone().flatten(1), "batch.flatten(start_dim=1)"),
    ("check_flatten_images", channels_last, "batch.flatten(start_dim=1), without reordering"),
    ("check_pairwise_sq_dists", lambda A, B: torch.cdist(A, B), "A[:, None, :] - B[None, :, :]"),
    ("check_pairwise_sq_dists", PairsRowByRow(), "A[:, None, :] - B[None, :, :]"),
    (
        "check_pairwise_sq_dists",
        lambda A, B: ((A[:, None] - B[None]) ** 2).mean(dim=-1),
        ".sum(dim=-1)",
    ),
]


@pytest.mark.parametrize(
    ("name", "wrong", "recipe"), PROGRESSIVE, ids=[f"{p[0]}-{p[2]}" for p in PROGRESSIVE]
)
def test_the_first_failure_points_at_the_idea_and_the_third_gives_the_recipe(
    name, wrong, recipe, capsys
):
    assert_hint_grows(getattr(checks, name), wrong, recipe, capsys)


@pytest.mark.parametrize(
    ("name", "wrong", "recipe"), PROGRESSIVE, ids=[f"{p[0]}-{p[2]}" for p in PROGRESSIVE]
)
def test_hint_full_gives_the_recipe_at_once(name, wrong, recipe, capsys):
    message = getattr(checks, name)(wrong, hint="full").message
    assert recipe in message.partition("Recipe:")[2], (
        f"{name}: no recipe with hint='full': {message}"
    )


def test_predicted_shapes_does_not_give_the_answer_away(capsys):
    wrong = [(9, 9), *RIGHT_SHAPES[1:]]
    for _ in range(3):
        message = checks.check_predicted_shapes(lambda: wrong).message
        assert "#1 `x[0]` is not (9, 9)" in message, message
        assert "(3, 4)" not in message, message


def test_predicted_shapes_names_the_topic_of_each_wrong_one(capsys):
    wrong = [*RIGHT_SHAPES[:2], (2, 3, 4), *RIGHT_SHAPES[3:6], (2, 3, 4), *RIGHT_SHAPES[7:]]
    message = checks.check_predicted_shapes(lambda: wrong).message
    assert "#3 `...` and slicing; #7 `permute`" in message, message


def test_shape_expressions_match_the_published_answers():
    shapes = [checks.shape_of(e) for e in checks.SHAPE_EXPRESSIONS]
    assert shapes == RIGHT_SHAPES, f"the expressions' shapes changed: {shapes}"


@pytest.mark.parametrize("case", checks.memory_cases(), ids=lambda c: c.text)
def test_memory_cases_agree_with_numpy(case):
    assert np.shares_memory(case.a.numpy(), case.b.numpy()) == case.shared, (
        f"{case.text}: NumPy disagrees"
    )


@pytest.mark.parametrize("shape", [(2, 0, 3), (0,), (3, 4, 0), (0, 0), (1, 0, 1)])
def test_torch_strides_a_zero_size_as_if_it_were_one(shape):
    """What the check of 1.2 expects (and the solution says) for a shape with a size 0."""
    assert torch.empty(shape).stride() == contiguous_strides(shape), shape


def test_a_loop_free_answer_makes_the_same_torch_calls_at_every_size():
    """The loop rule cannot fire on a right answer: its count of calls does not grow."""
    counts = []
    for shape in [(3, 4), (6, 8), (50, 2)]:
        with checks.TorchCalls() as calls:
            _ = torch.ones(shape) / torch.ones(shape).sum(dim=1, keepdim=True)
        counts.append(len(calls.names))
    assert len(set(counts)) == 1, counts
