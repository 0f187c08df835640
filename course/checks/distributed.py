"""Checks for the exercises of Chapter 6 (data parallelism with torch.distributed).

Exercise 6.1 runs the learner's hooks in two real processes of a gloo process group. A
function defined in a notebook cannot be imported by a *spawned* process (spawn starts
a fresh interpreter that imports the function by name), so this check *forks*: the two
children are copies of the notebook's kernel and inherit the learner's function as it
is. Fork exists on Linux and macOS. Each child also trains the same model with
`DistributedDataParallel`, the reference, so both are compared in the same processes.
"""

import math
import multiprocessing
from collections.abc import Callable
from typing import Any

import torch

from course import distributed as D
from course.checks import Mismatch, Verdict, call, check, describe, expect, expect_close

STEPS, BATCH = 3, 16
"""Exercise 6.1 trains this many SGD steps on global batches of this size."""


def _hooks_against_ddp(rank, world_size, add_hooks, steps, batch):
    """One rank: train with the learner's hooks, then with DDP; both parameter sets."""
    model = D.make_model()  # the same initial weights on every rank (seeded)
    try:
        add_hooks(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(steps):
            x, y = D.make_batch(batch, seed=100 + step)
            optimizer.zero_grad()
            loss = D.loss_fn(
                model, D.shard_of(x, rank, world_size), D.shard_of(y, rank, world_size)
            )
            loss.backward()
            optimizer.step()
    except NotImplementedError:
        return {"status": "todo"}
    except Exception as error:  # the learner's code crashed: report, don't hang the others
        return {"status": "error", "message": f"{type(error).__name__}: {error}"}
    dist_params = {name: p.detach().clone() for name, p in model.named_parameters()}
    return {
        "status": "ok",
        "params": dist_params,
        "ddp": D.train_ddp(rank, world_size, steps, batch),
    }


def check_data_parallel_hooks(
    add_data_parallel_hooks: Callable[..., Any], timeout: float = 60.0
) -> Verdict:
    """Exercise 6.1: hooks that average gradients over the ranks train exactly like DDP.

    Two forked ranks each take their half of every batch; after `STEPS` SGD steps the
    parameters must be identical on both ranks and equal (float64, rtol 1e-10) to what
    DistributedDataParallel gives from the same start.
    """

    def body():
        expect(
            callable(add_data_parallel_hooks),
            f"expected a function, got {describe(add_data_parallel_hooks)}",
        )
        try:  # a stub fails here, at once, without starting any process
            add_data_parallel_hooks(D.make_model())
        except NotImplementedError:
            raise
        except Exception:  # e.g. dist.get_world_size() outside a process group: fine
            pass
        expect(
            "fork" in multiprocessing.get_all_start_methods(),
            "this check forks two processes; this system cannot fork (run it on Linux or macOS)",
        )
        # DDP reaches into torch._dynamo when it wraps a model: import it once here, so the
        # forked ranks inherit it instead of each importing it during the timed run.
        import torch._dynamo

        try:
            ranks = D.launch(
                _hooks_against_ddp,
                2,
                add_data_parallel_hooks,
                STEPS,
                BATCH,
                timeout=timeout,
                start_method="fork",
            )
        except (D.RankError, TimeoutError) as error:
            raise Mismatch(
                f"running your hooks on 2 ranks failed (did every rank call all_reduce "
                f"on every gradient?):\n{str(error)[-800:]}"
            ) from None
        statuses = [r["status"] for r in ranks]
        if "todo" in statuses:
            raise NotImplementedError
        for rank, result in enumerate(ranks):
            expect(
                result["status"] == "ok", f"rank {rank}: your code raised {result.get('message')}"
            )
        mine = [r["params"] for r in ranks]
        for name, value in mine[0].items():
            expect(
                torch.equal(value, mine[1][name]),
                f"after {STEPS} steps, parameter {name} differs between rank 0 and rank 1: "
                "its gradients were not made the same on every rank",
            )
        for name, value in mine[0].items():
            expect_close(
                value,
                ranks[0]["ddp"][name],
                f"parameter {name} after {STEPS} steps, compared with DDP",
                rtol=1e-10,
                atol=1e-12,
            )
        return f"{STEPS} steps on 2 ranks: identical on both, equal to DistributedDataParallel"

    return check(
        "Exercise 6.1 (add_data_parallel_hooks)",
        body,
        hint="in a post-accumulate-grad hook on every parameter, dist.all_reduce(p.grad) "
        "sums the gradients of all ranks in place; divide by dist.get_world_size() for "
        "their mean",
    )


SHARD_CASES = [(10, 2), (12, 3), (11, 2), (7, 4), (3, 4), (5, 1)]
"""(dataset size, number of replicas) for Exercise 6.2: even and uneven splits."""


def _indices(result, what: str) -> list[int]:
    """The learner's shard as a list of Python ints (a list, tuple or integer tensor)."""
    if isinstance(result, torch.Tensor):
        expect(
            not result.is_floating_point() and result.dim() == 1,
            f"{what}: expected a 1-D integer tensor or a list of ints, got {describe(result)}",
        )
        result = result.tolist()
    expect(
        isinstance(result, (list, tuple)),
        f"{what}: expected a list of indices, got {describe(result)}",
    )
    expect(
        all(isinstance(i, int) and not isinstance(i, bool) for i in result),
        f"{what}: expected ints, got {describe(result)}",
    )
    return list(result)


def _shards(shard, n, replicas, epoch, seed=0):
    """Every rank's shard for one epoch."""
    return [
        _indices(
            call(
                f"shard({n}, {replicas}, {rank}, epoch={epoch})",
                shard,
                n,
                replicas,
                rank,
                epoch,
                seed,
            ),
            f"shard({n}, {replicas}, {rank}, epoch={epoch})",
        )
        for rank in range(replicas)
    ]


def check_shard(shard: Callable[..., Any]) -> Verdict:
    """Exercise 6.2: `shard(n, num_replicas, rank, epoch, seed)` splits like DistributedSampler.

    For each (n, replicas): every rank gets ceil(n / replicas) indices in range(n); together
    they cover range(n), and only the padding repeats; the same arguments give the same
    shards; another epoch or seed gives another order.
    """

    def body():
        for n, replicas in SHARD_CASES:
            shards = _shards(shard, n, replicas, epoch=0)
            what = f"n={n}, {replicas} replicas"
            size = math.ceil(n / replicas)
            lengths = [len(s) for s in shards]
            expect(
                lengths == [size] * replicas,
                f"{what}: expected {size} indices on every rank, got lengths {lengths} (ranks "
                "with fewer batches than the others would wait forever in an all-reduce)",
            )
            every = [i for s in shards for i in s]
            expect(
                all(0 <= i < n for i in every),
                f"{what}: an index outside range({n}): {every}",
            )
            missing = sorted(set(range(n)) - set(every))
            expect(not missing, f"{what}: indices {missing} are on no rank")
            repeats = len(every) - n
            expect(
                len(every) - len(set(every)) == repeats,
                f"{what}: the shards overlap beyond the {repeats} padding index(es): {shards}",
            )
            expect(
                _shards(shard, n, replicas, epoch=0) == shards,
                f"{what}: two calls with the same epoch gave different shards",
            )
        n, replicas = 12, 3
        first = _shards(shard, n, replicas, epoch=0)
        expect(
            _shards(shard, n, replicas, epoch=1) != first,
            f"n={n}, {replicas} replicas: epochs 0 and 1 give the same shards: the order "
            "must be reshuffled every epoch",
        )
        expect(
            _shards(shard, n, replicas, epoch=0, seed=1) != first,
            f"n={n}, {replicas} replicas: seeds 0 and 1 give the same shards: the "
            "shuffle must come from the seed",
        )
        splits = len(SHARD_CASES)
        return f"equal lengths, coverage, no overlap on {splits} splits; reshuffled per epoch"

    return check(
        "Exercise 6.2 (shard)",
        body,
        hint="shuffle range(n) with a torch.Generator seeded with seed + epoch (the same on "
        "every rank), pad it to a multiple of num_replicas with its first indices, then "
        "take every num_replicas-th index starting at rank",
    )
