"""The checks of Chapter 6 pass right answers and catch wrong ones, junk and stubs.

Exercise 6.1's check forks real ranks: each test here that calls it starts processes, so
the wrong answers are chosen to be told apart by one call each.
"""

import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

from course.checks import distributed as checks
from tests.check_cases import assert_fails, assert_not_done_yet, assert_passes

RECIPE_61 = "dist.all_reduce(p.grad)"
"""Words of Exercise 6.1's recipe that no earlier step of its hint may contain."""
RECIPE_62 = "take every num_replicas-th index"
"""Words of Exercise 6.2's recipe that no earlier step of its hint may contain."""


def stub(*args):
    raise NotImplementedError("Exercise 6.x is not done yet")


def hooks(
    reduce=True,
    divide=True,
    only_weights=False,
    only_rank=None,
    op=None,
    crash=False,
    by_two=False,
    broadcast_on=None,
    returns="list",
):
    """add_data_parallel_hooks, right by default; the keyword arguments inject mistakes."""

    def add_data_parallel_hooks(model):
        def average(p):
            if crash:
                raise TypeError("unsupported operand")
            if broadcast_on is not None and dist.get_rank() == broadcast_on:
                dist.broadcast(p.grad, src=0)
            elif reduce and (only_rank is None or dist.get_rank() == only_rank):
                dist.all_reduce(p.grad, op=op or dist.ReduceOp.SUM)
            if by_two:
                p.grad /= 2
            elif divide:
                p.grad /= dist.get_world_size()

        named = [
            (name, p)
            for name, p in model.named_parameters()
            if not only_weights or name.endswith("weight")
        ]
        if returns == "generator":
            return (p.register_post_accumulate_grad_hook(average) for _, p in named)
        handles = {name: p.register_post_accumulate_grad_hook(average) for name, p in named}
        return {
            "list": list(handles.values()),
            "tuple": tuple(handles.values()),
            "dict": handles,
            "none": None,
            "weights only": [h for name, h in handles.items() if name.endswith("weight")],
            "parameters": list(model.parameters()),
        }[returns]

    return add_data_parallel_hooks


def says(out: str, *pieces: str, lacks: tuple[str, ...] = ()) -> None:
    """`out` contains every one of `pieces` and none of `lacks`."""
    missing = [piece for piece in pieces if piece not in out]
    present = [piece for piece in lacks if piece in out]
    assert not missing, f"{missing} not in the verdict:\n{out}"
    assert not present, f"{present} in the verdict:\n{out}"


def fails_fast(wrong, capsys, within=20.0, **kwargs):
    """The verdict on `wrong` and how long it took; it must be a ✗."""
    start = time.monotonic()
    verdict = checks.check_data_parallel_hooks(wrong, **kwargs)
    elapsed = time.monotonic() - start
    out = capsys.readouterr().out
    assert verdict.status == "fail", out
    assert elapsed < within, f"the verdict took {elapsed:.1f} s:\n{out}"
    for internal in ("Traceback", "^^^", "GLHF", ".py", "RankError"):
        assert internal not in out, f"{internal!r} in a learner's verdict:\n{out}"
    return out


def test_data_parallel_hooks_pass_a_right_answer(capsys):
    assert_passes(checks.check_data_parallel_hooks, hooks(), capsys)


def test_data_parallel_hooks_pass_handles_returned_as_a_tuple_or_a_dict(capsys):
    for returns in ("tuple", "dict"):
        assert_passes(checks.check_data_parallel_hooks, hooks(returns=returns), capsys)


def test_data_parallel_hooks_report_a_stub(capsys):
    assert_not_done_yet(checks.check_data_parallel_hooks, stub, capsys)


def test_data_parallel_hooks_catch_a_sum_instead_of_a_mean(capsys):
    out = fails_fast(hooks(divide=False), capsys)
    says(out, "2 times", "the sum over the ranks")


def test_data_parallel_hooks_catch_a_max_instead_of_a_sum(capsys):
    wrong = hooks(op=dist.ReduceOp.MAX)
    assert_fails(checks.check_data_parallel_hooks, wrong, "gradient of the mean loss", capsys)


def test_data_parallel_hooks_catch_a_division_by_two_on_three_ranks(capsys):
    out = fails_fast(hooks(by_two=True), capsys, within=40)
    says(out, "right on 2 ranks", "3 ranks")


def test_data_parallel_hooks_pass_an_all_gather_and_a_mean(capsys):
    """A right answer written differently: every rank's gradient gathered, then averaged."""

    def add_data_parallel_hooks(model):
        def average(p):
            parts = [torch.empty_like(p.grad) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, p.grad)
            p.grad.copy_(torch.stack(parts).mean(0))

        return [p.register_post_accumulate_grad_hook(average) for p in model.parameters()]

    assert_passes(checks.check_data_parallel_hooks, add_data_parallel_hooks, capsys)


def test_data_parallel_hooks_say_that_an_exchange_with_the_other_rank_assumes_2_ranks(capsys):
    """Each rank sends its gradient to `1 - rank`: right on 2 ranks; on 3, rank 2 has no
    partner (torch waits for rank -1 until the timeout). The hint names the assumption."""

    def add_data_parallel_hooks(model):
        def average(p):
            other, theirs = 1 - dist.get_rank(), torch.empty_like(p.grad)
            request = dist.isend(p.grad.clone(), other)
            dist.recv(theirs, other)
            request.wait()
            p.grad.add_(theirs).div_(2)

        return [p.register_post_accumulate_grad_hook(average) for p in model.parameters()]

    out = fails_fast(add_data_parallel_hooks, capsys, within=30, timeout=4)
    says(out, "on 3 ranks, rank 2: your code raised", "something in them assumes 2 ranks")


def test_data_parallel_hooks_catch_a_reduce_to_one_rank(capsys):
    """reduce leaves the sum on rank 0 only: the ranks drift apart; the hint says why."""

    def add_data_parallel_hooks(model):
        def average(p):
            dist.reduce(p.grad, dst=0)
            p.grad /= dist.get_world_size()

        return [p.register_post_accumulate_grad_hook(average) for p in model.parameters()]

    out = fails_fast(add_data_parallel_hooks, capsys, hint="full")
    says(out, "differs between rank 0 and rank 1", "all_reduce, not reduce")


def test_data_parallel_hooks_catch_local_gradients(capsys):
    message = "differs between rank 0 and rank 1"
    assert_fails(checks.check_data_parallel_hooks, hooks(reduce=False), message, capsys)
    assert_fails(checks.check_data_parallel_hooks, hooks(only_weights=True), message, capsys)


def test_data_parallel_hooks_report_a_crash_in_the_hook(capsys):
    message = "your code raised TypeError: unsupported operand"
    assert_fails(checks.check_data_parallel_hooks, hooks(crash=True), message, capsys)


@pytest.mark.parametrize(("only_rank", "absent", "waiting"), [(0, 1, 0), (1, 0, 1)])
def test_data_parallel_hooks_say_at_once_which_rank_never_called_all_reduce(
    capsys, only_rank, absent, waiting
):
    """Only one rank all-reduces: ✗ in seconds, in plain words, not after the timeout."""
    out = fails_fast(hooks(only_rank=only_rank), capsys)
    assert f"rank {absent} never called all_reduce" in out, out
    assert "every rank must call every collective" in out, out
    assert f"rank {waiting} waits in it" in out, out


def test_data_parallel_hooks_say_which_collectives_differ_between_ranks(capsys):
    out = fails_fast(hooks(broadcast_on=1), capsys)
    assert "rank 0 called all_reduce where rank 1 called broadcast" in out, out


def test_data_parallel_hooks_check_the_handles_they_return(capsys):
    out = fails_fast(hooks(returns="none"), capsys)
    says(out, "returned None", "handles")
    out = fails_fast(hooks(returns="parameters"), capsys)
    says(out, "handles", "Parameter")
    out = fails_fast(hooks(returns="weights only"), capsys)
    says(out, "after removing the 2 handles", "your hooks still ran")
    out = fails_fast(hooks(returns="generator"), capsys)
    assert "generator" in out, out


def test_data_parallel_hooks_give_their_hint_in_steps(capsys):
    wrong = hooks(divide=False)
    first = fails_fast(wrong, capsys)
    says(
        first,
        "Hint:",
        lacks=(
            RECIPE_61,
            "Nudge",
        ),
    )
    second = fails_fast(wrong, capsys)
    says(second, "Nudge:", lacks=(RECIPE_61,))
    third = fails_fast(wrong, capsys)
    says(third, "Recipe:", "dist.get_world_size()")


def test_data_parallel_hooks_give_the_whole_hint_when_asked(capsys):
    out = fails_fast(hooks(only_rank=0), capsys, hint="full")
    says(out, "Recipe:", RECIPE_61)


def test_data_parallel_hooks_report_a_rank_that_never_answers(capsys):
    """A hook that sleeps on rank 1: rank 0's all_reduce times out; the verdict says why."""

    def add_data_parallel_hooks(model):
        def average(p):
            if dist.get_rank() == 1:
                time.sleep(3600)
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()

        return [p.register_post_accumulate_grad_hook(average) for p in model.parameters()]

    out = fails_fast(add_data_parallel_hooks, capsys, within=30, timeout=4)
    assert "rank 1 never called all_reduce" in out, out


def test_data_parallel_hooks_say_why_they_wait_for_a_hook_that_never_returns(capsys):
    """No collective is missing, the hooks just never return: a notice, then a ✗."""

    def add_data_parallel_hooks(model):
        def average(p):
            time.sleep(3600)

        return [p.register_post_accumulate_grad_hook(average) for p in model.parameters()]

    out = fails_fast(add_data_parallel_hooks, capsys, within=25, timeout=4)
    says(out, "… your hooks have kept the 2 ranks busy for 10 s", "the check stops them")
    says(out, "your hooks did not finish", "no answer within 14 s", "must return")


def test_data_parallel_hooks_refuse_junk(capsys):
    assert_fails(checks.check_data_parallel_hooks, 42, "expected a function", capsys)


def shard(
    n,
    num_replicas,
    rank,
    epoch,
    seed=0,
    *,
    by_rank=False,
    pad=True,
    pad_once=False,
    use_epoch=True,
):
    """A DistributedSampler-like shard, right by default; keywords inject mistakes."""
    mixed = seed + (epoch if use_epoch else 0) + (rank if by_rank else 0)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(mixed)).tolist()
    total = -(-n // num_replicas) * num_replicas
    if pad_once:
        order += order[: total - n]
    while pad and not pad_once and len(order) < total:
        order += order[: total - len(order)]
    return order[rank::num_replicas]


def numpy_shard(n, num_replicas, rank, epoch, seed=0):
    """A right answer written with NumPy: an ndarray of np.int64 indices."""
    order = np.random.default_rng(seed + epoch).permutation(n)
    total = -(-n // num_replicas) * num_replicas
    return np.resize(order, total)[rank::num_replicas]


def test_shard_passes_a_right_answer(capsys):
    assert_passes(checks.check_shard, shard, capsys)


def test_shard_passes_a_tensor_answer(capsys):
    answer = lambda *args: torch.tensor(shard(*args), dtype=torch.long)  # noqa: E731
    assert_passes(checks.check_shard, answer, capsys)


def test_shard_passes_numpy_indices(capsys):
    assert_passes(checks.check_shard, numpy_shard, capsys)
    listed = lambda *args: list(numpy_shard(*args))  # noqa: E731  (np.int64 items)
    assert_passes(checks.check_shard, listed, capsys)
    tensors = lambda *args: list(torch.tensor(shard(*args)))  # noqa: E731  (0-d tensors)
    assert_passes(checks.check_shard, tensors, capsys)


def test_shard_passes_distributed_sampler_itself(capsys):
    def sampler(n, num_replicas, rank, epoch, seed=0):
        s = torch.utils.data.DistributedSampler(
            range(n), num_replicas=num_replicas, rank=rank, seed=seed
        )
        s.set_epoch(epoch)
        return list(s)

    assert_passes(checks.check_shard, sampler, capsys)


def test_shard_reports_a_stub(capsys):
    assert_not_done_yet(checks.check_shard, stub, capsys)


def test_shard_catches_a_shuffle_per_rank(capsys):
    wrong = lambda *args: shard(*args, by_rank=True)  # noqa: E731
    assert_fails(checks.check_shard, wrong, "n=10, 2 replicas", capsys)


def test_shard_catches_missing_padding(capsys):
    wrong = lambda *args: shard(*args, pad=False)  # noqa: E731
    assert_fails(checks.check_shard, wrong, "expected 6 indices on every rank", capsys)
    assert "forever" not in checks.check_shard(wrong).message


def test_shard_catches_padding_that_runs_out_of_data(capsys):
    """Padding once from the order works while n is at least the padding; not below."""
    wrong = lambda *args: shard(*args, pad_once=True)  # noqa: E731
    assert_fails(checks.check_shard, wrong, "n=2, 5 replicas", capsys)


def test_shard_catches_an_order_never_shuffled(capsys):
    def unshuffled(n, num_replicas, rank, epoch, seed=0):
        total = -(-n // num_replicas) * num_replicas
        return [i % n for i in range(total)][rank::num_replicas]

    assert_fails(checks.check_shard, unshuffled, "the order was not shuffled", capsys)


def test_shard_catches_a_forgotten_epoch(capsys):
    wrong = lambda *args: shard(*args, use_epoch=False)  # noqa: E731
    assert_fails(checks.check_shard, wrong, "epochs 0 and 1 give the same shards", capsys)


def test_shard_catches_a_forgotten_seed(capsys):
    def wrong(n, num_replicas, rank, epoch, seed=0):
        return shard(n, num_replicas, rank, epoch)

    assert_fails(checks.check_shard, wrong, "seeds 0 and 1 give the same shards", capsys)


def test_shard_catches_contiguous_blocks_without_overlap_check(capsys):
    def blocks(n, num_replicas, rank, epoch, seed=0):
        size = -(-n // num_replicas)
        return list(range(rank * size, min(n, (rank + 1) * size)))

    assert_fails(checks.check_shard, blocks, "indices on every rank", capsys)


def test_shard_gives_its_hint_in_steps(capsys):
    wrong = lambda *args: shard(*args, use_epoch=False)  # noqa: E731
    first = checks.check_shard(wrong).message
    says(
        first,
        "Hint:",
        lacks=(
            RECIPE_62,
            "Nudge",
        ),
    )
    second = checks.check_shard(wrong).message
    says(second, "Nudge:", lacks=(RECIPE_62,))
    third = checks.check_shard(wrong).message
    says(third, "Recipe:", RECIPE_62)


def test_shard_says_what_type_the_indices_must_have(capsys):
    out = checks.check_shard(lambda *a: [float(i) for i in shard(*a)]).message
    says(out, "expected integer indices", "float")
    out = checks.check_shard(lambda *a: np.array(shard(*a), dtype=float)).message
    says(out, "expected integer indices", "float64")
    out = checks.check_shard(lambda *a: torch.tensor(shard(*a), dtype=torch.float32)).message
    says(out, "expected integer indices", "float32")


def test_shard_refuses_junk(capsys):
    assert_fails(checks.check_shard, lambda *a: None, "expected a list of indices", capsys)
    assert_fails(checks.check_shard, lambda *a: [True, False], "expected integer indices", capsys)
    assert_fails(checks.check_shard, lambda n, *a: list(range(n + 1)), "expected", capsys)
    assert_fails(checks.check_shard, "shard", "expected a function", capsys)
