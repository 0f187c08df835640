"""The checks of Chapter 6 pass right answers and catch wrong ones, junk and stubs."""

import torch
import torch.distributed as dist

from course.checks import distributed as checks
from tests.check_cases import assert_fails, assert_not_done_yet, assert_passes


def stub(*args):
    raise NotImplementedError("Exercise 6.x is not done yet")


def hooks(reduce=True, divide=True, only_weights=False, only_rank0=False, op=None, crash=False):
    """add_data_parallel_hooks, right by default; the keyword arguments inject mistakes."""

    def add_data_parallel_hooks(model):
        def average(p):
            if crash:
                raise TypeError("unsupported operand")
            if reduce and (not only_rank0 or dist.get_rank() == 0):
                dist.all_reduce(p.grad, op=op or dist.ReduceOp.SUM)
            if divide:
                p.grad /= dist.get_world_size()

        return [
            p.register_post_accumulate_grad_hook(average)
            for name, p in model.named_parameters()
            if not only_weights or name.endswith("weight")
        ]

    return add_data_parallel_hooks


def test_data_parallel_hooks_pass_a_right_answer(capsys):
    assert_passes(checks.check_data_parallel_hooks, hooks(), capsys)


def test_data_parallel_hooks_report_a_stub(capsys):
    assert_not_done_yet(checks.check_data_parallel_hooks, stub, capsys)


def test_data_parallel_hooks_catch_a_sum_instead_of_a_mean(capsys):
    assert_fails(checks.check_data_parallel_hooks, hooks(divide=False), "compared with DDP", capsys)


def test_data_parallel_hooks_catch_a_max_instead_of_a_sum(capsys):
    wrong = hooks(op=dist.ReduceOp.MAX)
    assert_fails(checks.check_data_parallel_hooks, wrong, "compared with DDP", capsys)


def test_data_parallel_hooks_catch_local_gradients(capsys):
    message = "differs between rank 0 and rank 1"
    assert_fails(checks.check_data_parallel_hooks, hooks(reduce=False), message, capsys)
    assert_fails(checks.check_data_parallel_hooks, hooks(only_weights=True), message, capsys)


def test_data_parallel_hooks_report_a_crash_in_the_hook(capsys):
    message = "your code raised TypeError: unsupported operand"
    assert_fails(checks.check_data_parallel_hooks, hooks(crash=True), message, capsys)


def test_data_parallel_hooks_catch_a_rank_that_never_joins(capsys):
    """Only rank 0 all-reduces: it waits for rank 1 until the timeout, then the check fails."""
    verdict = checks.check_data_parallel_hooks(hooks(only_rank0=True), timeout=4)
    out = capsys.readouterr().out
    assert verdict.status == "fail", out
    assert "running your hooks on 2 ranks failed" in out, out
    assert "Hint:" in out, out


def test_data_parallel_hooks_refuse_junk(capsys):
    assert_fails(checks.check_data_parallel_hooks, 42, "expected a function", capsys)


def shard(n, num_replicas, rank, epoch, seed=0, *, by_rank=False, pad=True, use_epoch=True):
    """A DistributedSampler-like shard, right by default; keywords inject mistakes."""
    mixed = seed + (epoch if use_epoch else 0) + (rank if by_rank else 0)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(mixed)).tolist()
    total = -(-n // num_replicas) * num_replicas
    while pad and len(order) < total:
        order += order[: total - len(order)]
    return order[rank::num_replicas]


def test_shard_passes_a_right_answer(capsys):
    assert_passes(checks.check_shard, shard, capsys)


def test_shard_passes_a_tensor_answer(capsys):
    answer = lambda *args: torch.tensor(shard(*args))  # noqa: E731
    assert_passes(checks.check_shard, answer, capsys)


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


def test_shard_refuses_junk(capsys):
    assert_fails(checks.check_shard, lambda *a: None, "expected a list of indices", capsys)
    assert_fails(checks.check_shard, lambda *a: [0.0, 1.0], "expected ints", capsys)
    assert_fails(checks.check_shard, lambda n, *a: list(range(n + 1)), "expected", capsys)
    assert_fails(checks.check_shard, "shard", "expected a function", capsys)
