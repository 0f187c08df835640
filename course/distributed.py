"""Chapter 6: data parallelism with `torch.distributed` on CPUs (gloo over 127.0.0.1).

Worker functions live here, not in the notebook, because a process started with the
`spawn` method imports the function it runs by name: it must be importable from a file.
:func:`launch` starts one process per rank, joins them with a deadline and returns what
each rank's worker returned; whatever happens, no process is left running.

The same module is also a script for `torchrun` (see `main`)::

    torchrun --standalone --nproc-per-node 2 -m course.distributed
"""

import contextlib
import io
import os
import queue as queue_module
import socket
import sys
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

IN, HIDDEN, OUT = 20, 32, 4
"""The small network of the chapter: IN inputs, one hidden layer, OUT classes."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` of 127.0.0.1 again: no process holds it.

    `SO_REUSEADDR`, as servers (torch's TCPStore among them) set it, ignores the
    connections that the kernel keeps a while in TIME_WAIT after a process ended.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


STARTUP = 30.0
"""Seconds allowed, on top of the collectives' timeout, for the ranks to start."""
NOTICE = 10.0
"""Seconds of waiting after which :meth:`Ranks.collect` calls its `notice`, once."""
GRACE = 5.0
"""Seconds the other ranks get to report their own error once one rank has failed."""
SETTLE = 3.0
"""Seconds a running rank gets to enter the collective the others wait in, once one rank
is known never to call it, so that the message names every rank that waits (a rank may
be a moment behind the others on a loaded machine)."""


class RankError(RuntimeError):
    """One or more ranks failed.

    The message says first, in plain words, which collective could not complete when the
    ranks' calls tell (:meth:`CallLog.mismatch`), then what happened to each failing rank.
    `errors` maps those ranks to that text, `results` holds what the others returned,
    `diagnosis` is the plain-words line (or None) and `waited` the ranks that waited in
    vain (their own errors are its consequence, not its cause).
    """

    def __init__(self, world_size: int, errors: dict, results: dict, why: "Diagnosis | None"):
        self.errors, self.results = errors, results
        self.diagnosis = why.text if why else None
        self.waited = why.waited if why else ()
        report = "\n".join(f"--- rank {r}: {errors[r]}" for r in sorted(errors))
        head = f"{len(errors)} of {world_size} ranks failed"
        super().__init__("\n".join(filter(None, [self.diagnosis, head, report])))


def _ranks(ranks: list[int]) -> str:
    """`rank 1`, `ranks 1 and 2`, `ranks 0, 1 and 3`."""
    if len(ranks) == 1:
        return f"rank {ranks[0]}"
    return f"ranks {', '.join(map(str, ranks[:-1]))} and {ranks[-1]}"


COLLECTIVES = {
    "BROADCAST": "broadcast",
    "ALLREDUCE": "all_reduce",
    "REDUCE": "reduce",
    "ALLGATHER": "all_gather",
    "REDUCE_SCATTER": "reduce_scatter",
    "ALLTOALL": "all_to_all",
    "BARRIER": "barrier",
    "SCATTER": "scatter",
    "GATHER": "gather",
}
"""The collectives a :class:`CallLog` records: torch's hook name -> the function's name."""
CODES = tuple(COLLECTIVES.values())
SIZED = frozenset({"broadcast", "all_reduce", "reduce"})
"""Collectives whose tensor has the same number of elements on every rank."""
EVERYONE = frozenset({"all_reduce", "all_gather", "reduce_scatter", "all_to_all", "barrier"})
"""Collectives that no rank can leave before every rank has called them."""


class Diagnosis(NamedTuple):
    """Why the ranks' collectives cannot all complete: the words, and who waited in vain."""

    text: str
    waited: tuple[int, ...]
    absent: tuple[int, ...] = ()
    """The ranks that never called the collective the others wait in (if that is why)."""


class CallLog:
    """Which collectives each rank has called, in memory shared with the launcher.

    Each rank registers a pre-hook on its process group (`ProcessGroup.register_pre_hook`:
    torch calls it before every collective is issued, however the code called it, DDP's
    own included) that appends the collective's name and size. The launcher compares the
    ranks' calls to say which rank skipped a collective, instead of waiting for the
    timeout. A rank keeps its last :data:`KEEP` calls; point-to-point sends and receives
    are not collectives and are not logged.
    """

    KEEP = 64

    def __init__(self, context, world_size: int):
        self.world_size = world_size
        self._row = 1 + 2 * self.KEEP  # the count, then (name code, numel) per call
        self._cells = context.Array("q", world_size * self._row, lock=False)

    def record_on(self, rank: int, group) -> None:
        """In rank `rank`'s process: log every collective `group` issues from now on."""
        global _CALLS
        base = rank * self._row
        _CALLS = (self, rank)

        def record(args) -> None:
            name = COLLECTIVES.get(args.name.name)
            if name is None:
                return
            count = self._cells[base]
            slot = base + 1 + 2 * (count % self.KEEP)
            self._cells[slot] = CODES.index(name)
            self._cells[slot + 1] = sum(t.numel() for t in args.input_tensors)
            self._cells[base] = count + 1  # last: the launcher reads only complete calls

        group.register_pre_hook(0, record)

    def count(self, rank: int) -> int:
        """How many collectives rank `rank` has called."""
        return self._cells[rank * self._row]

    def call(self, rank: int, index: int) -> tuple[str, int] | None:
        """Rank `rank`'s call number `index` (from 0): (name, numel), or None if not kept."""
        if not self.count(rank) - self.KEEP <= index < self.count(rank):
            return None
        slot = rank * self._row + 1 + 2 * (index % self.KEEP)
        return CODES[self._cells[slot]], self._cells[slot + 1]

    def mismatch(self, ended, final: bool = False) -> Diagnosis | None:
        """Why the ranks' collectives cannot all complete, in plain words; or None.

        Either two ranks made different calls at the same place in their sequences
        (another collective, or another size); or a rank in `ended` (its task over)
        called fewer collectives than another, which waits for it in vain; or a rank in
        `ended` gave up waiting in an all-rank collective that a running rank has not
        called. With `final`, every rank has stopped: any rank that called more than
        another waited in vain.
        """
        counts = [self.count(rank) for rank in range(self.world_size)]
        for index in range(max(max(counts) - self.KEEP, 0), min(counts)):
            calls = [self.call(rank, index) for rank in range(self.world_size)]
            everyone = tuple(range(self.world_size))
            for rank, (name, size) in enumerate(calls):
                first, first_size = calls[0]
                if name != first:
                    return Diagnosis(
                        f"rank 0 called {first} where rank {rank} called {name}: every rank "
                        "must call the same collectives in the same order",
                        everyone,
                    )
                if name in SIZED and size != first_size:
                    return Diagnosis(
                        f"rank 0 called {name} on {first_size:,} numbers where rank {rank} "
                        f"called it on {size:,}: every rank must pass a tensor of the same size",
                        everyone,
                    )
        ended = set(range(self.world_size)) if final else set(ended)
        stuck = self._stuck(counts, ended, final)
        if stuck is None:
            return None
        absent, waiting, index = stuck
        call = self.call(waiting[0], index)
        name = call[0] if call else "a collective"
        over = final or ended & set(waiting)
        verb = "waited" if over else ("wait" if len(waiting) > 1 else "waits")
        return Diagnosis(
            f"{_ranks(absent)} never called {name}: every rank must call every collective "
            f"({_ranks(waiting)} {verb} in it)",
            tuple(waiting),
            tuple(absent),
        )

    def _stuck(self, counts: list[int], ended: set[int], final: bool):
        """(ranks that never called it, ranks that waited, the call's index), or None."""
        if ended:
            fewest = min(counts[rank] for rank in ended)
            absent = [rank for rank in sorted(ended) if counts[rank] == fewest]
            waiting = [
                rank
                for rank in range(self.world_size)
                if counts[rank] > fewest and (final or rank not in ended)
            ]
            if waiting:
                return absent, waiting, fewest
        running = [rank for rank in range(self.world_size) if rank not in ended]
        if running:
            fewest = min(counts[rank] for rank in running)
            absent = [rank for rank in running if counts[rank] == fewest]
            gave_up = [
                rank
                for rank in sorted(ended)
                if counts[rank] > fewest and (self.call(rank, fewest) or ("",))[0] in EVERYONE
            ]
            if gave_up:
                return absent, gave_up, fewest
        return None


_CALLS: tuple[CallLog, int] | None = None
"""In a rank's process: its :class:`CallLog` and its rank."""


def collectives_called() -> int:
    """In a rank's process: how many collectives this rank has called so far."""
    if _CALLS is None:
        raise RuntimeError("collectives_called() runs in a rank started by Ranks or launch")
    log, rank = _CALLS
    return log.count(rank)


def _serve(rank, world_size, port, timeout, first, tasks, results, parent, log):
    """One rank: join the process group, then run tasks until told to stop.

    `first` is a task `(worker, args)` handed over when the process starts (under
    `fork` it is inherited, never pickled); the others arrive on `tasks`. A rank whose
    launcher (process `parent`) has died stops by itself. Each result
    goes back as bytes written by `torch.save`. A failing task reports its traceback and
    ends the process, which closes its connections: a rank waiting for it in a
    collective then fails at once instead of waiting for the timeout. Every collective
    the rank calls is written to `log` (:class:`CallLog`), which the launcher reads.
    """
    torch.set_num_threads(1)  # one core per rank: the ranks share the machine
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout),
    )
    log.record_on(rank, dist.distributed_c10d._get_default_group())
    failed = False
    try:
        task = first if first is not None else _next_task(tasks, parent)
        while task is not None:
            worker, args = task
            try:
                buffer = io.BytesIO()
                torch.save(worker(rank, world_size, *args), buffer)
            except BaseException:
                results.put((rank, "error", traceback.format_exc()))
                failed = True
                return
            results.put((rank, "ok", buffer.getvalue()))
            task = _next_task(tasks, parent)
    finally:
        dist.destroy_process_group()
        results.close()
        results.join_thread()  # every result has reached the pipe
        # Nothing is left to clean up: skip the interpreter's teardown of torch, which
        # takes seconds (and, under fork, the kernel's own exit handlers).
        os._exit(1 if failed else 0)


def _next_task(tasks, parent: int):
    """The next task, or None (stop) once the launching process `parent` is gone."""
    while True:
        try:
            return tasks.get(timeout=1.0)
        except queue_module.Empty:
            if os.getppid() != parent:  # orphaned: the kernel or script that started us died
                return None


class Ranks:
    """`world_size` processes in one gloo process group on 127.0.0.1, kept for many tasks.

    Starting a process and importing torch takes seconds; a task takes milliseconds. So
    the ranks start once and :meth:`run` sends them one task after another. Use it as a
    context manager: leaving the block (or any failure) stops every process. `timeout`
    bounds each collective's wait, `startup` the processes' start (both in seconds).
    """

    def __init__(
        self, world_size=2, *, timeout=60.0, start_method="spawn", first=None, startup=STARTUP
    ):
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive int, got {world_size!r}")
        context = mp.get_context(start_method)
        self.world_size, self.timeout, self.startup = world_size, timeout, startup
        self.port = free_port()
        self.calls = CallLog(context, world_size)
        self._tasks = [context.Queue() for _ in range(world_size)]
        results = context.Queue()
        self._results = results
        self.processes = [
            context.Process(
                target=_serve,
                args=(
                    rank,
                    world_size,
                    self.port,
                    timeout,
                    first,
                    self._tasks[rank],
                    self._results,
                    os.getpid(),
                    self.calls,
                ),
                daemon=True,  # never outlives the notebook's kernel
            )
            for rank in range(world_size)
        ]
        for process in self.processes:
            process.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, worker: Callable, *args):
        """`worker(rank, world_size, *args)` on every rank; the list of their results.

        `worker` must be importable (a function of a module) under `spawn`.
        """
        for queue in self._tasks:
            queue.put((worker, args))
        return self.collect()

    def collect(self, notice: Callable[[], None] | None = None) -> list:
        """Wait for every rank's result; raise :class:`RankError` if any rank fails.

        The wait is bounded: `timeout` for the collectives plus `startup` seconds for the
        processes to start. It ends at once when the ranks' collectives can no longer
        all complete (:meth:`CallLog.mismatch`: a rank that has finished never called
        what another waits in). Once a rank has failed, the others get :data:`GRACE`
        seconds to report how they failed before they are stopped. If the wait passes
        :data:`NOTICE` seconds, `notice()` is called once (to say why nothing happens).
        """
        start = time.monotonic()
        deadline = start + self.timeout + self.startup
        results, errors, diagnosis = {}, {}, None
        while len(results) + len(errors) < self.world_size:
            if errors:  # the others fail fast once a rank is gone; give them a moment
                deadline = min(deadline, time.monotonic() + GRACE)
            diagnosis = self.calls.mismatch(set(results) | set(errors))
            if diagnosis:
                diagnosis = self._settle(diagnosis, set(results) | set(errors))
            if diagnosis or time.monotonic() > deadline:
                missing = set(range(self.world_size)) - set(results) - set(errors)
                reason = self._stop_reason(diagnosis, sorted(errors))
                errors.update({r: reason for r in missing})
                break
            if notice and time.monotonic() - start > NOTICE:
                notice()
                notice = None  # once
            if not self._receive(results, errors):
                self._reap(results, errors)
        if errors:
            self.close(patience=0)
            diagnosis = diagnosis or self.calls.mismatch(range(self.world_size), final=True)
            raise RankError(self.world_size, errors, results, diagnosis)
        return [results[r] for r in range(self.world_size)]

    def _settle(self, diagnosis: Diagnosis, ended: set) -> Diagnosis:
        """The diagnosis once every running rank has entered the call, or :data:`SETTLE`
        seconds have passed: a rank still on its way in is named among those that wait."""
        until = time.monotonic() + SETTLE
        while time.monotonic() < until:
            late = [
                rank
                for rank, process in enumerate(self.processes)
                if rank not in ended
                and rank not in diagnosis.waited
                and rank not in diagnosis.absent
                and process.is_alive()
            ]
            if not late:
                break
            time.sleep(0.05)
            diagnosis = self.calls.mismatch(ended) or diagnosis
        return diagnosis

    def _receive(self, results: dict, errors: dict) -> bool:
        """File one rank's answer, if one arrives within 50 ms; whether one did."""
        try:
            rank, status, payload = self._results.get(timeout=0.05)
        except queue_module.Empty:
            return False
        if status == "ok":
            results[rank] = torch.load(io.BytesIO(payload), weights_only=False)
        else:
            errors[rank] = payload
        return True

    def _reap(self, results: dict, errors: dict) -> None:
        """File the answers of the ranks that have exited, and an error for those without."""
        dead = [r for r, p in enumerate(self.processes) if not p.is_alive()]
        while self._receive(results, errors):  # what the dead sent before they exited
            pass
        for rank in dead:
            if rank not in results and rank not in errors:
                code = self.processes[rank].exitcode
                errors[rank] = f"exited with code {code} without answering"

    def _stop_reason(self, diagnosis: "Diagnosis | None", failed: list[int]) -> str:
        """Why a rank that has not answered is being stopped."""
        if diagnosis:
            return "stopped: the ranks' collectives could no longer all complete"
        if failed:
            return f"still running {GRACE:g} s after rank(s) {failed} failed: stopped"
        return f"no answer within {self.timeout + self.startup:g} s: stopped"

    def close(self, patience: float = 10.0) -> None:
        """Ask every rank to stop, then terminate (and reap) any still alive after
        `patience` seconds (0 after a failure: a broken group is not worth waiting for).
        """
        for queue, process in zip(self._tasks, self.processes, strict=True):
            if process.is_alive():
                queue.put(None)
        for process in self.processes:
            process.join(timeout=patience)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


def launch(
    worker: Callable,
    world_size: int = 2,
    *args,
    timeout=60.0,
    start_method="spawn",
    startup=STARTUP,
    notice: Callable[[], None] | None = None,
):
    """Start `world_size` ranks, run `worker(rank, world_size, *args)` once, stop them.

    Under `fork` (Linux, macOS) the children inherit `worker` and `args` as they
    are, so even a function defined in a notebook works; `spawn` needs `worker`
    importable from a module. `timeout`, `startup` and `notice`: see :class:`Ranks`
    and :meth:`Ranks.collect`.
    """
    first = (worker, args)
    ranks = Ranks(
        world_size, timeout=timeout, start_method=start_method, first=first, startup=startup
    )
    with ranks:
        return ranks.collect(notice)


# ---- the model and data every demonstration shares ------------------------------------


def make_model(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """The chapter's network, initialised from `seed`: the same on every rank."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, OUT))
    return model.to(dtype)


IGNORED = -100
"""The label that `cross_entropy` leaves out by default (its `ignore_index`)."""


def make_batch(size: int, seed: int = 1, dtype: torch.dtype = torch.float64, ignored: int = 0):
    """A reproducible global batch `(x, y)`: random inputs and class labels.

    The first `ignored` labels are :data:`IGNORED` (examples the loss leaves out).
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, IN, generator=generator, dtype=dtype)
    y = torch.randint(0, OUT, (size,), generator=generator)
    y[:ignored] = IGNORED
    return x, y


def shard_of(tensor: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank `rank`'s contiguous slice of a batch whose size `world_size` divides."""
    if len(tensor) % world_size:
        raise ValueError(f"batch of {len(tensor)} does not split into {world_size} equal shards")
    size = len(tensor) // world_size
    return tensor[rank * size : (rank + 1) * size]


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the examples given."""
    return nn.functional.cross_entropy(model(x), y)


def train_single(steps: int, batch: int, lr: float = 0.1, seed: int = 0) -> dict:
    """One process, the whole global batch each step: the reference for data parallelism."""
    model = make_model(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        x, y = make_batch(batch, seed=100 + step)
        optimizer.zero_grad()
        loss_fn(model, x, y).backward()
        optimizer.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# ---- workers (each runs on every rank inside a process group) -------------------------


def collectives(rank: int, world_size: int) -> dict:
    """all_reduce, broadcast and all_gather on small tensors; what this rank ends up with."""
    summed = torch.tensor([rank + 1.0, 10.0 * rank])
    dist.all_reduce(summed)  # default op: SUM, result on every rank
    shared = torch.tensor([42.0, 7.0]) if rank == 0 else torch.zeros(2)
    dist.broadcast(shared, src=0)
    gathered = [torch.zeros(1) for _ in range(world_size)]
    dist.all_gather(gathered, torch.tensor([float(rank) ** 2]))
    return {
        "all_reduce": summed,
        "broadcast": shared,
        "all_gather": torch.cat(gathered),
        "backend": dist.get_backend(),
    }


def late_arrival(rank: int, world_size: int, delay: float) -> dict:
    """Seconds this rank spends in a broadcast from rank 0, then in an all_reduce, when
    every rank but 0 calls each of them `delay` seconds late: whether a collective
    returns before every rank has called it."""
    spent = {}
    for name in ("broadcast", "all_reduce"):
        if rank != 0:
            time.sleep(delay)
        start = time.perf_counter()
        if name == "broadcast":
            dist.broadcast(torch.zeros(4), src=0)
        else:
            dist.all_reduce(torch.zeros(4))
        spent[name] = time.perf_counter() - start
    return spent


def grads_by_hand(rank: int, world_size: int, batch: int) -> dict:
    """Data parallelism by hand: local backward on a shard, then all_reduce / world_size."""
    model = make_model()
    x, y = make_batch(batch)
    loss_fn(model, shard_of(x, rank, world_size), shard_of(y, rank, world_size)).backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= world_size
    return {name: p.grad for name, p in model.named_parameters()}


def grads_ignoring(rank: int, world_size: int, batch: int, ignored: int, global_count: bool):
    """:func:`grads_by_hand` on a batch whose first `ignored` labels the loss leaves out.

    Each rank's mean divides by the count of its own labels that count. With
    `global_count`, each rank divides its sum by the count over the whole batch instead
    (all-reduced), times `world_size`, which the averaging divides by again.
    """
    model = make_model()
    x, y = make_batch(batch, ignored=ignored)
    x, y = shard_of(x, rank, world_size), shard_of(y, rank, world_size)
    if global_count:
        count = (y != IGNORED).sum()
        dist.all_reduce(count)  # the labels that count, over every rank
        loss = nn.functional.cross_entropy(model(x), y, reduction="sum") / count * world_size
    else:
        loss = loss_fn(model, x, y)  # a mean over this shard's own count
    loss.backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= world_size
    return {name: p.grad for name, p in model.named_parameters()}


def train_ddp(rank: int, world_size: int, steps: int, batch: int, lr: float = 0.1) -> dict:
    """`steps` of SGD with DistributedDataParallel, each rank on its shard of each batch.

    Rank 1 starts from different weights on purpose: DDP broadcasts rank 0's when it
    wraps the model, so the ranks still begin equal.
    """
    model = nn.parallel.DistributedDataParallel(make_model(seed=rank))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        x, y = make_batch(batch, seed=100 + step)
        optimizer.zero_grad()
        loss_fn(model, shard_of(x, rank, world_size), shard_of(y, rank, world_size)).backward()
        optimizer.step()
    return {name: p.detach().clone() for name, p in model.module.named_parameters()}


def mnist_net(widths: tuple[int, int, int] = (784, 512, 10)) -> nn.Sequential:
    """Chapter 2's network (784-512-10, float32), initialised from seed 0.

    Other `widths` give the same layers with other sizes.
    """
    torch.manual_seed(0)
    inputs, hidden, outputs = widths
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


@contextlib.contextmanager
def native_stderr_off():
    """Silence what C++ code writes to this process's stderr (file descriptor 2).

    With `find_unused_parameters=True` and no unused parameter, DDP's reducer warns so on
    stderr from C++, not through Python's warnings, at a moment that varies from run to run:
    the page's outputs would vary with it. The warning is expected there, and explained."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def ddp_events(
    rank: int,
    world_size: int,
    bucket_cap_mb: float | None = None,
    widths=(784, 512, 10),
    find_unused_parameters: bool = False,
) -> dict:
    """The order in which gradients become ready and DDP starts each bucket's all-reduce.

    On Chapter 2's network (or another `widths`): a post-accumulate-grad hook on every
    parameter logs "ready"; a communication hook (DDP calls it once every gradient of a
    bucket is ready) logs the bucket, then all-reduces it as DDP's default does. Two
    backward passes: DDP rebuilds its buckets after the first, in the order the
    gradients actually arrived. `bucket_cap_mb` and `find_unused_parameters` go to DDP.
    """
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    model = mnist_net(widths)
    names = {p: name for name, p in model.named_parameters()}
    ddp = nn.parallel.DistributedDataParallel(
        model, bucket_cap_mb=bucket_cap_mb, find_unused_parameters=find_unused_parameters
    )
    # What DDP left in the parameters' own lists of post-accumulate-grad hooks: nothing.
    python_hooks = sum(len(p._post_accumulate_grad_hooks or {}) for p in names)
    events = []
    for p in names:
        p.register_post_accumulate_grad_hook(lambda p: events.append(f"ready {names[p]}"))

    def logging_allreduce(state, bucket):
        params = ", ".join(names[p] for p in bucket.parameters())
        events.append(f"all-reduce bucket {bucket.index()} ({bucket.buffer().numel():,}): {params}")
        return allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, logging_allreduce)
    passes = []
    with native_stderr_off() if find_unused_parameters else contextlib.nullcontext():
        for step in range(2):
            events.clear()
            x = torch.randn(8, widths[0], generator=torch.Generator().manual_seed(step))
            y = torch.arange(8) % widths[-1]
            loss_fn(ddp, shard_of(x, rank, world_size), shard_of(y, rank, world_size)).backward()
            passes.append(list(events))
    return {
        "passes": passes,
        "parameters": {n: p.numel() for p, n in names.items()},
        "DDP's Python hooks": python_hooks,
    }


def accumulate_no_sync(rank: int, world_size: int, micro: int, batch: int) -> dict:
    """Gradient accumulation over `micro` micro-batches, all-reducing only on the last.

    Returns the gradients after the un-synced passes (local, different on each rank),
    after the last pass (averaged), and how many bucket all-reduces each phase ran.
    """
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    ddp = nn.parallel.DistributedDataParallel(make_model())
    calls = []

    def counting_allreduce(state, bucket):
        calls.append(bucket.index())
        return allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, counting_allreduce)
    x, y = make_batch(batch)
    chunks = list(zip(x.chunk(micro), y.chunk(micro), strict=True))

    def micro_backward(xc, yc):
        # each micro-batch's loss is scaled so that the sum is the mean over the batch
        (
            loss_fn(ddp, shard_of(xc, rank, world_size), shard_of(yc, rank, world_size)) / micro
        ).backward()

    with ddp.no_sync():
        for xc, yc in chunks[:-1]:
            micro_backward(xc, yc)
    local = {name: p.grad.clone() for name, p in ddp.module.named_parameters()}
    calls_in_no_sync = len(calls)
    micro_backward(*chunks[-1])
    synced = {name: p.grad.clone() for name, p in ddp.module.named_parameters()}
    return {
        "local": local,
        "synced": synced,
        "all-reduces inside no_sync": calls_in_no_sync,
        "all-reduces on the last pass": len(calls) - calls_in_no_sync,
    }


def throughput(rank: int, world_size: int, batch: int, steps: int, threads: int = 1) -> dict:
    """Examples per second of DDP training on Chapter 2's network (784-512-10, float32).

    `batch` is the global batch; each rank computes `batch // world_size` of it. The
    data is random (speed does not depend on the pixels). With `world_size` 1, DDP is
    skipped: plain single-process training.
    """
    torch.set_num_threads(threads)
    model = mnist_net()
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch // world_size, 784)
    y = torch.randint(0, 10, (batch // world_size,))

    def step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(3):  # warm up (DDP rebuilds its buckets after the first step)
        step()
    if world_size > 1:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    return {"examples/s": steps * batch / seconds, "seconds": seconds}


def single_throughput(batch: int, steps: int, threads: int) -> float:
    """:func:`throughput` in this process, without a process group (examples/s)."""
    before = torch.get_num_threads()
    try:
        return throughput(0, 1, batch, steps, threads)["examples/s"]
    finally:
        torch.set_num_threads(before)


def uneven_batches(rank: int, world_size: int, join: bool, by_initial: bool = True) -> dict:
    """DDP where rank 0 has 3 batches and every other rank 2, under `Join` or not.

    Under `Join`, a rank that has run out of batches keeps answering the others'
    all-reduces (with zeros) until every rank is done; at the end, DDP copies the
    parameters of the rank that finished last to the others. The sum is divided by
    `world_size`, or with `by_initial` False by the number of ranks still training.
    """
    from torch.distributed.algorithms import Join

    model = nn.parallel.DistributedDataParallel(make_model())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [make_batch(8, seed=100 + step) for step in range(3 if rank == 0 else 2)]
    with Join([model], enable=join, divide_by_initial_world_size=by_initial):
        for x, y in batches:
            optimizer.zero_grad()
            loss_fn(model, shard_of(x, rank, world_size), shard_of(y, rank, world_size)).backward()
            optimizer.step()
    return {
        "batches": len(batches),
        "params": {name: p.detach().clone() for name, p in model.module.named_parameters()},
    }


def sync_batch_norm(rank: int, world_size: int) -> str:
    """What `SyncBatchNorm` does in training on CPU tensors in a process group: the error."""
    try:
        nn.SyncBatchNorm(4)(torch.randn(8, 4))
    except ValueError as error:
        return str(error)
    return "no error"


def fail_on_rank(rank: int, world_size: int, bad_rank: int, mode: str = "raise") -> None:
    """For the cleanup tests: `bad_rank` raises, hangs or returns (`mode` "raise", "hang",
    "skip") instead of joining the others' all_reduce."""
    if rank == bad_rank:
        if mode == "raise":
            raise RuntimeError(f"rank {rank} failed on purpose")
        if mode == "skip":
            return
        time.sleep(3600)
    dist.all_reduce(torch.ones(1))


def main() -> None:
    """The `torchrun` entry point: the same DDP training, configured by the environment.

    torchrun starts one process per rank and sets `RANK`, `WORLD_SIZE`,
    `MASTER_ADDR` and `MASTER_PORT`; `init_process_group` reads them (`env://`).
    """
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank, world_size = dist.get_rank(), dist.get_world_size()
    try:
        params = train_ddp(rank, world_size, steps=5, batch=32)
        flat = torch.cat([p.flatten() for p in params.values()])
        gathered = [torch.zeros_like(flat) for _ in range(world_size)]
        dist.all_gather(gathered, flat)
        expected = torch.cat([p.flatten() for p in train_single(5, 32).values()])
        if rank == 0:
            same = all(torch.equal(g, gathered[0]) for g in gathered)
            close = (gathered[0] - expected).abs().max().item() < 1e-15
            print(f"world size {world_size}, {os.environ['MASTER_ADDR']}:", end=" ")
            print(f"ranks identical: {same}, equal to one process within 1e-15: {close}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
