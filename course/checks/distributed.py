"""Checks for the exercises of Chapter 6 (data parallelism with torch.distributed).

Exercise 6.1 runs the learner's hooks in real processes of a gloo process group, on 2
ranks and then on 3. A function defined in a notebook cannot be imported by a *spawned*
process (spawn starts a fresh interpreter that imports the function by name), so this
check *forks*: the children are copies of the notebook's kernel and inherit the
learner's function as it is. Fork exists on Linux and macOS. Each child first trains the
same model with `DistributedDataParallel`, the reference, then with the learner's hooks.
When one rank waits in a collective that another never called, the launcher sees it
(`course.distributed.CallLog`) and the verdict says so within seconds.
"""

import inspect
import math
import multiprocessing
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from course import distributed as D
from course.checks import (
    Hint,
    Mismatch,
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    hinted,
    learner_check,
)

STEPS, BATCH = 3, 12
"""Exercise 6.1 trains this many SGD steps on global batches of this size."""
WORLD_SIZES = (2, 3)
"""Exercise 6.1 runs on this many ranks, one after the other (BATCH splits evenly)."""
STARTUP = 10.0
"""Seconds the forked ranks get to start, on top of the collectives' timeout."""

HOOKS_HINT = Hint(
    "each rank's backward gives the gradient of its own shard only; every rank must "
    "step with the gradient of the whole batch, the same on every rank.",
    "a collective combines one tensor from every rank, in place: which one gives every "
    "rank the sum of the shards' gradients, and what turns that sum into their mean?",
    "in a hook registered with p.register_post_accumulate_grad_hook on every parameter "
    "p, call dist.all_reduce(p.grad) (the sum over the ranks, in place), then divide "
    "p.grad by dist.get_world_size(); return the list of the handles",
)
SUM_HINT = Hint(
    "all_reduce leaves in p.grad the sum over the ranks, not their mean.",
    "DDP's gradient is the gradient of the mean loss over the whole batch.",
    "after dist.all_reduce(p.grad), divide p.grad by dist.get_world_size()",
)
RANKS_DIFFER_HINT = Hint(
    "a gradient that is not combined across the ranks stays different on each rank, "
    "and so do the weights it updates.",
    "is there a hook on every parameter, weights and biases alike, and does each one leave "
    "the sum over the ranks in p.grad itself (not in a copy, not in the parameter), on "
    "every rank (all_reduce, not reduce), before it returns (an async_op=True call has "
    "not finished until its wait())?",
    "loop over model.parameters() and register the averaging hook on each one",
)
COLLECTIVE_HINT = Hint(
    "a collective waits until every rank of the group has called it: every rank must "
    "call the same collectives, in the same order, on tensors of the same size.",
    "look for anything in your hook that depends on the rank (dist.get_rank()) or that "
    "can raise or return early on some rank.",
    "call dist.all_reduce(p.grad) unconditionally in every hook, on every rank, then "
    "divide p.grad by dist.get_world_size()",
)
WORLD_SIZE_HINT = Hint(
    "your hooks are right on 2 ranks only: something in them assumes 2 ranks.",
    "the number of ranks is a property of the process group, asked for at run time; a "
    "collective combines every rank at once, where a send to 'the other rank' reaches one.",
    "call dist.all_reduce(p.grad) (every rank, however many) and divide p.grad by "
    "dist.get_world_size(), not by a number",
)
STUCK_HINT = Hint(
    "a hook runs once per parameter in every backward pass and must return; yours kept "
    "its rank busy.",
    "look for a loop or a wait in your hook that never ends.",
    "in each hook, call dist.all_reduce(p.grad) once, then divide p.grad by "
    "dist.get_world_size(), and return",
)
HANDLES_HINT = Hint(
    "the exercise asks for the handles: whoever called your function may want to "
    "remove the hooks again with handle.remove().",
    "register_post_accumulate_grad_hook returns a handle; keep the one of every hook.",
    "return [p.register_post_accumulate_grad_hook(average) for p in model.parameters()]",
)
GENERATOR_HINT = Hint(
    "you returned a generator: the hooks in it are registered only when someone "
    "iterates it, so nobody registered them.",
    "a list comprehension runs at once; a generator expression waits.",
    "return [p.register_post_accumulate_grad_hook(average) for p in model.parameters()]",
)


def _handles(returned) -> tuple[list | None, str | None]:
    """The handles a learner's function returned (a list, tuple or dict of them), or
    None and what is wrong with what it returned instead."""
    handles = list(returned.values()) if isinstance(returned, dict) else returned
    if not isinstance(handles, (list, tuple)):
        return None, f"your function returned {describe(returned)}: return the handles"
    junk = [h for h in handles if not callable(getattr(h, "remove", None))]
    if junk:
        return None, (
            f"your function returned {type(junk[0]).__name__} objects among the handles: "
            "return what register_post_accumulate_grad_hook returns"
        )
    return list(handles), None


def _state(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _grads(model) -> dict:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _backward(model, x, y, rank: int, world_size: int) -> None:
    """Backward of the mean loss over this rank's shard of the batch `(x, y)`."""
    D.loss_fn(model, D.shard_of(x, rank, world_size), D.shard_of(y, rank, world_size)).backward()


def _learner_run(rank, world_size, add_hooks, steps, batch) -> dict:
    """One rank: the learner's hooks on its shard of every batch, then their removal."""
    model = D.make_model()  # the same initial weights on every rank (seeded)
    returned = add_hooks(model)
    if inspect.isgenerator(returned):  # nothing was registered: say so at once
        return {"status": "generator"}
    handles, problem = _handles(returned)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        optimizer.zero_grad()
        _backward(model, *D.make_batch(batch, seed=100 + step), rank, world_size)
        if step == 0:
            first = _grads(model)
        optimizer.step()
    run = {"status": "ok", "grads": first, "params": _state(model), "handles": problem}
    if handles is not None:
        run["after removal"] = _after_removal(model, handles, rank, world_size, batch)
    return run


def _after_removal(model, handles, rank, world_size, batch) -> dict:
    """Remove the learner's hooks with their handles; what one more backward does then."""
    for handle in handles:
        handle.remove()
    plain = D.make_model()  # the same weights, never hooked
    plain.load_state_dict(model.state_dict())
    x, y = D.make_batch(batch, seed=99)
    before = D.collectives_called()
    for net in (model, plain):
        net.zero_grad()
        _backward(net, x, y, rank, world_size)
    pairs = zip(model.parameters(), plain.parameters(), strict=True)
    return {
        "collectives": D.collectives_called() - before,
        "changed": any(not torch.equal(p.grad, q.grad) for p, q in pairs),
        "handles": len(handles),
    }


def _hooks_against_ddp(rank, world_size, add_hooks, steps, batch):
    """One rank: train with DDP (the reference), then with the learner's hooks."""
    reference = D.train_ddp(rank, world_size, steps, batch)
    try:
        return {"ddp": reference, **_learner_run(rank, world_size, add_hooks, steps, batch)}
    except NotImplementedError:
        return {"status": "todo"}
    except Exception as error:  # the learner's code crashed: report, don't hang the others
        return {"status": "error", "message": f"{type(error).__name__}: {error}"}


def _run_ranks(add_hooks, world_size: int, timeout: float) -> list[dict]:
    """What every rank of a forked group of `world_size` returned; a verdict on failure."""

    def notice() -> None:
        print(
            f"… your hooks have kept the {world_size} ranks busy for {D.NOTICE:g} s (the "
            f"{STEPS} steps take well under a second); the check stops them after "
            f"{timeout + STARTUP:g} s"
        )

    try:
        return D.launch(
            _hooks_against_ddp,
            world_size,
            add_hooks,
            STEPS,
            BATCH,
            timeout=timeout,
            start_method="fork",
            startup=STARTUP,
            notice=notice,
        )
    except D.RankError as error:
        for rank, result in sorted(error.results.items()):
            if rank not in error.waited:  # a rank that waited in vain failed because of it
                _expect_ran(rank, result, world_size)  # the learner's error: it caused the rest
        with hinted(COLLECTIVE_HINT):
            expect(error.diagnosis is None, f"on {world_size} ranks, {error.diagnosis}")
        rank, why = sorted(error.errors.items())[0]
        if "Traceback" in why:  # torch's own error: name it, leave its internals out
            why = f"it failed with a {why.strip().splitlines()[-1].split(':')[0]}"
        with hinted(STUCK_HINT):
            what = f"on {world_size} ranks your hooks did not finish: rank {rank}: {why}"
            raise Mismatch(what) from None


def _expect_ran(rank: int, result: dict, world_size: int) -> None:
    """Raise what a rank's run of the learner's code says went wrong, if anything."""
    if result["status"] == "todo":
        raise NotImplementedError
    if result["status"] == "generator":
        with hinted(GENERATOR_HINT):
            raise Mismatch("your function returned a generator, not the handles")
    expect(
        result["status"] == "ok",
        f"on {world_size} ranks, rank {rank}: your code raised {result.get('message')}",
    )


def _expect_same_on_every_rank(ranks: list[dict], world_size: int) -> None:
    with hinted(RANKS_DIFFER_HINT):
        for rank, result in enumerate(ranks[1:], start=1):
            for name, value in ranks[0]["params"].items():
                expect(
                    torch.equal(value, result["params"][name]),
                    f"on {world_size} ranks, after {STEPS} steps, parameter {name} differs "
                    f"between rank 0 and rank {rank}: its gradients were not made the same "
                    "on every rank",
                )


def _expect_mean_gradient(grads: dict, world_size: int) -> None:
    """The first step's gradients are those of the mean loss over the whole batch."""
    model = D.make_model()
    D.loss_fn(model, *D.make_batch(BATCH, seed=100)).backward()
    for name, p in model.named_parameters():
        got, expected = grads[name], p.grad
        if torch.allclose(got, expected, rtol=1e-10, atol=1e-12):
            continue
        what = f"on {world_size} ranks, the gradient of {name} after the first backward"
        if torch.allclose(got, world_size * expected, rtol=1e-10, atol=1e-12):
            with hinted(SUM_HINT):
                raise Mismatch(
                    f"{what} is {world_size} times the gradient of the mean loss: "
                    "it is the sum over the ranks"
                )
        if world_size != 2 and torch.allclose(got, world_size / 2 * expected, rtol=1e-10):
            with hinted(WORLD_SIZE_HINT):
                raise Mismatch(
                    f"{what} is {world_size / 2:g} times the gradient of the mean loss: your "
                    f"hooks were right on 2 ranks, not on {world_size} ranks"
                )
        expect_close(got, expected, f"{what}, compared with the gradient of the mean loss")


def _expect_handles_remove_hooks(run: dict) -> None:
    """The learner returned handles, and removing them removes every hook."""
    with hinted(HANDLES_HINT):
        expect(run["handles"] is None, str(run["handles"]))
        removal = run["after removal"]
        expect(
            removal["collectives"] == 0 and not removal["changed"],
            f"after removing the {removal['handles']} handles your function returned, "
            f"your hooks still ran in a backward pass ({removal['collectives']} collective "
            "call(s)): return the handle of every hook you registered",
        )


def _check_world_size(add_hooks, world_size: int, timeout: float) -> None:
    ranks = _run_ranks(add_hooks, world_size, timeout)
    for rank, result in enumerate(ranks):
        _expect_ran(rank, result, world_size)
    _expect_same_on_every_rank(ranks, world_size)
    _expect_mean_gradient(ranks[0]["grads"], world_size)
    for name, value in ranks[0]["params"].items():
        expect_close(
            value,
            ranks[0]["ddp"][name],
            f"on {world_size} ranks, parameter {name} after {STEPS} steps, compared with DDP",
            rtol=1e-10,
            atol=1e-12,
        )
    _expect_handles_remove_hooks(ranks[0])


@learner_check
def check_data_parallel_hooks(
    add_data_parallel_hooks: Callable[..., Any], timeout: float = 20.0
) -> Verdict:
    """Exercise 6.1: hooks that average gradients over the ranks train like DDP.

    On 2 ranks, then on 3, each rank takes its share of every batch; the first step's
    gradients must be those of the mean loss over the whole batch, the parameters after
    `STEPS` SGD steps identical on every rank and equal (float64, rtol 1e-10) to what
    DistributedDataParallel gives from the same start, and the handles returned must
    remove every hook. `timeout` bounds each collective's wait, in seconds.
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
            "this check forks processes; this system cannot fork (run it on Linux or macOS)",
        )
        # DDP reaches into torch._dynamo when it wraps a model: import it once here, so the
        # forked ranks inherit it instead of each importing it during the timed run.
        import torch._dynamo  # noqa: F401

        first, *others = WORLD_SIZES
        _check_world_size(add_data_parallel_hooks, first, timeout)
        for world_size in others:  # right on 2 ranks: what fails now assumes 2 ranks
            with hinted(WORLD_SIZE_HINT, f"on {world_size} ranks"):
                _check_world_size(add_data_parallel_hooks, world_size, timeout)
        sizes = " and ".join(map(str, WORLD_SIZES))
        return (
            f"{STEPS} steps on {sizes} ranks: identical on every rank, equal to "
            "DistributedDataParallel's to within float64's rounding (rtol 1e-10); the "
            "handles remove the hooks"
        )

    return check("Exercise 6.1 (add_data_parallel_hooks)", body, hint=HOOKS_HINT)


SHARD_CASES = [(10, 2), (12, 3), (11, 2), (7, 4), (3, 4), (5, 1), (2, 5), (1, 3)]
"""(dataset size, number of replicas) for Exercise 6.2: even and uneven splits, and
datasets smaller than the padding they need (2 indices padded to 5, 1 to 3)."""

SHARD_HINT = Hint(
    "DistributedSampler cuts one shuffled order, the same on every rank, into "
    "num_replicas interleaved shares of equal length.",
    "the shuffle may depend on seed and epoch, never on the rank; when num_replicas does "
    "not divide n, the order is padded with its own first indices.",
    "shuffle range(n) with a torch.Generator seeded with seed + epoch (the same on every "
    "rank), pad it to a multiple of num_replicas with its first indices, then take every "
    "num_replicas-th index starting at rank",
)
LENGTH_HINT = Hint(
    "every rank must get ceil(n / num_replicas) indices: with one batch more than the "
    "others, a rank would wait in that batch's all-reduce until the timeout.",
    "pad the shuffled order with its own first indices up to a multiple of num_replicas; "
    "when n is smaller than the padding, that takes the order more than once.",
    "total = ceil(n / num_replicas) * num_replicas; repeat the order until it has total "
    "indices, then take every num_replicas-th index starting at rank",
)
TYPE_HINT = Hint(
    "indices are integers: a list of ints, or a 1-D integer tensor or NumPy array.",
    "torch.randperm and np.random.permutation give integers already; keep them so.",
    "return order[rank:total:num_replicas] from an integer order, without converting it",
)


def _indices(result, what: str) -> list[int]:
    """The learner's shard as a list of Python ints.

    Accepted: a list or tuple of integers (Python, NumPy or 0-d integer tensors), a 1-D
    integer tensor, a 1-D integer NumPy array.
    """
    with hinted(TYPE_HINT):
        if isinstance(result, (torch.Tensor, np.ndarray)):
            integer = result.dtype not in (torch.bool, np.bool_) and (
                not result.dtype.is_floating_point and not result.dtype.is_complex
                if isinstance(result, torch.Tensor)
                else np.issubdtype(result.dtype, np.integer)
            )
            expect(
                result.ndim == 1 and integer,
                f"{what}: expected integer indices in one dimension, got {describe(result)}",
            )
            return [int(i) for i in result.tolist()]
        expect(
            isinstance(result, (list, tuple)),
            f"{what}: expected a list of indices, got {describe(result)}",
        )
        bad = [i for i in result if not _is_index(i)]
        expect(
            not bad,
            f"{what}: expected integer indices, got {describe(bad[0]) if bad else ''} "
            f"({_kind(bad[0]) if bad else ''}) in {describe(result)}",
        )
    return [operator.index(i) for i in result]


def _is_index(value: object) -> bool:
    """An integer, but not a bool: Python, NumPy or a 0-d integer tensor."""
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, torch.Tensor) and value.dtype == torch.bool
    ):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _kind(value: object) -> str:
    dtype = getattr(value, "dtype", None)
    return f"{type(value).__name__} of dtype {dtype}" if dtype is not None else type(value).__name__


def _shards(shard, n, replicas, epoch, seed=0):
    """Every rank's shard for one epoch."""
    what = lambda rank: f"shard({n}, {replicas}, {rank}, epoch={epoch})"  # noqa: E731
    return [
        _indices(call(what(rank), shard, n, replicas, rank, epoch, seed), what(rank))
        for rank in range(replicas)
    ]


def _expect_a_split(shards: list[list[int]], n: int, replicas: int) -> None:
    """Equal lengths, indices in range, every index on some rank, overlap only padding."""
    what = f"n={n}, {replicas} replicas"
    size = math.ceil(n / replicas)
    lengths = [len(s) for s in shards]
    with hinted(LENGTH_HINT):
        expect(
            lengths == [size] * replicas,
            f"{what}: expected {size} {'index' if size == 1 else 'indices'} on every "
            f"rank, got lengths {lengths}",
        )
    every = [i for s in shards for i in s]
    expect(all(0 <= i < n for i in every), f"{what}: an index outside range({n}): {every}")
    missing = sorted(set(range(n)) - set(every))
    expect(not missing, f"{what}: indices {missing} are on no rank")
    repeats = len(every) - n
    expect(
        len(every) - len(set(every)) == repeats,
        f"{what}: the shards overlap beyond the {repeats} padding index(es): {shards}",
    )


@learner_check
def check_shard(shard: Callable[..., Any]) -> Verdict:
    """Exercise 6.2: `shard(n, num_replicas, rank, epoch, seed)` splits like DistributedSampler.

    For each (n, replicas), datasets smaller than their padding included: every rank gets
    ceil(n / replicas) indices in range(n); together they cover range(n), and only the
    padding repeats; the same arguments give the same shards; another epoch or seed gives
    another order. Integer indices of any kind (Python, NumPy, torch) are accepted.
    """

    def body():
        for n, replicas in SHARD_CASES:
            shards = _shards(shard, n, replicas, epoch=0)
            _expect_a_split(shards, n, replicas)
            expect(
                _shards(shard, n, replicas, epoch=0) == shards,
                f"n={n}, {replicas} replicas: two calls with the same epoch gave different shards",
            )
        n, replicas = 12, 3
        first = _shards(shard, n, replicas, epoch=0)
        expect(
            any(s != sorted(s) for s in first),
            f"n={n}, {replicas} replicas: every rank's indices come in increasing order, "
            f"{first}: the order was not shuffled",
        )
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

    return check("Exercise 6.2 (shard)", body, hint=SHARD_HINT)
