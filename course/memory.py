"""Chapter 7: what a training step keeps in memory, measured, and the code that keeps less.

Two meters. `saved_tensors` lists what autograd saves for backward: a saved-tensor hook
sees each tensor as it is saved. `MemoryMeter` follows every tensor that torch operations
allocate inside its block, from its allocation until it is freed, and keeps the peak: it
sees what the hooks cannot (a tensor that `torch.utils.checkpoint` holds by reference,
what backward allocates and frees, what a recomputation costs).

Then the models of the chapter, the measurement of checkpointing a deep MLP in
segments (`checkpoint_curve`, which `tools/bench.py` can call too), and the workers of
sharding: Adam with ZeRO by hand, with `DistributedDataParallel` and with FSDP's
`fully_shard`, each run on every rank of a `course.distributed.Ranks` group.
"""

import math
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.checkpoint import checkpoint_sequential
from torch.utils.flop_counter import FlopCounterMode

from course.distributed import loss_fn, make_batch, make_model, shard_of
from course.threads import same_threads

# ---- meters -----------------------------------------------------------------------------


def saved_tensors(fn: Callable, *args) -> tuple[object, list[torch.Tensor]]:
    """`fn(*args)` and the list of every tensor autograd saved for backward meanwhile."""
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn(*args)
    return out, saved


def storage_bytes(tensors: Iterable[torch.Tensor], leave_out: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages behind `tensors`, without those of `leave_out`.

    Two tensors that share memory (a tensor and its view, or one tensor saved by two
    operations) count once; `leave_out` is typically the parameters, which live anyway.
    """
    skip = {t.untyped_storage().data_ptr() for t in leave_out}
    sizes = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(n for pointer, n in sizes.items() if pointer not in skip)


class MemoryMeter(TorchDispatchMode):
    """Bytes of the tensors that torch operations allocate inside the block, while alive.

    Every operation passes through `__torch_dispatch__`; an output whose storage is new
    (not one of the operation's inputs, as a view's or an in-place result's is) is counted
    until Python and autograd both let go of it, when a finalizer subtracts it again.
    `current` is the count now, `peak` the largest it has been. Tensors made before the
    block (parameters, the batch) are not counted: they are there anyway.
    """

    def __init__(self):
        super().__init__()
        self.current = self.peak = 0
        self._alive: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self._count(tensor.untyped_storage(), inputs)
        return out

    def _count(self, storage, inputs: set[int]) -> None:
        pointer, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or pointer in inputs or pointer in self._alive:
            return
        self._alive.add(pointer)
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, pointer, size)

    def _free(self, pointer: int, size: int) -> None:
        self._alive.discard(pointer)
        self.current -= size


# ---- models -----------------------------------------------------------------------------

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def mlp(sizes, activation: str = "relu", dtype: torch.dtype = torch.float32, seed: int = 0):
    """Linear layers of the given sizes with `activation` between each two (none after
    the last), initialised from `seed`."""
    torch.manual_seed(seed)
    layers = []
    for fan_in, fan_out in pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers[:-1]).to(dtype)


def mnist_cnn(channels: int = 16, seed: int = 0) -> nn.Sequential:
    """Chapter 2's CNN (`course.mnist.make_cnn`), initialised from `seed`."""
    from course.mnist import make_cnn  # imports torchvision (1–2 s): only where it is needed

    torch.manual_seed(seed)
    return make_cnn(channels)


def deep_mlp(depth: int, width: int, seed: int = 0) -> nn.Sequential:
    """`depth` blocks of Linear(width, width) → Tanh: a Sequential of blocks, so that
    `checkpoint_sequential` cuts it between blocks."""
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(depth)])


# ---- checkpointing in segments ----------------------------------------------------------


@dataclass(frozen=True)
class CheckpointPoint:
    """One forward and backward of `deep_mlp` cut into `segments` (0: no checkpoint)."""

    segments: int
    peak: int
    flops: int
    seconds: float


def checkpoint_curve(
    depth: int = 36,
    width: int = 128,
    batch: int = 512,
    segments: Iterable[int] = (1, 2, 3, 4, 6, 9, 12, 18, 36),
    repeats: int = 2,
) -> list[CheckpointPoint]:
    """Peak memory, FLOPs and time of a step of `deep_mlp(depth, width)` on `batch` rows,
    without checkpointing (segments 0) and with `checkpoint_sequential` in each number of
    segments.

    The gradients are allocated beforehand, so that the peak counts what the step itself
    keeps: activations, recomputed activations and backward's temporaries. The time is
    the best of `repeats` steps on one thread.
    """
    net = deep_mlp(depth, width)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(1))

    def step(k: int) -> None:
        out = net(x) if k == 0 else checkpoint_sequential(net, k, x, use_reentrant=False)
        out.sum().backward()

    points = []
    with same_threads(1):
        for k in (0, *segments):
            with MemoryMeter() as meter:
                step(k)
            with FlopCounterMode(display=False) as flops:
                step(k)
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                step(k)
                seconds.append(time.perf_counter() - start)
            points.append(CheckpointPoint(k, meter.peak, flops.get_total_flops(), min(seconds)))
    return points


# ---- sharding (workers: each runs on every rank of a process group) ---------------------


def _train(model, optimizer, rank: int, world_size: int, steps: int, batch: int) -> None:
    """`steps` of the chapter's data-parallel loop: each rank on its shard of each batch."""
    for step in range(steps):
        x, y = make_batch(batch, seed=100 + step)
        optimizer.zero_grad()
        loss_fn(model, shard_of(x, rank, world_size), shard_of(y, rank, world_size)).backward()
        optimizer.step()


def _state_numel(optimizer) -> int:
    """How many numbers the optimizer keeps for its parameters (not the step counters)."""
    return sum(
        (v.to_local() if hasattr(v, "to_local") else v).numel()
        for state in optimizer.state.values()
        for name, v in state.items()
        if name != "step"
    )


def ddp_adam(rank: int, world_size: int, steps: int, batch: int, lr: float = 0.01) -> dict:
    """The reference: Adam on a DistributedDataParallel model, full state on every rank."""
    model = nn.parallel.DistributedDataParallel(make_model())
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    _train(model, optimizer, rank, world_size, steps, batch)
    return {
        "params": {n: p.detach().clone() for n, p in model.module.named_parameters()},
        "optimizer state": _state_numel(optimizer),
    }


def zero_adam(rank: int, world_size: int, steps: int, batch: int, lr: float = 0.01) -> dict:
    """ZeRO by hand: the parameters as one flat vector cut into `world_size` shards.

    Every rank runs forward and backward on its part of the batch as in data parallelism;
    then `reduce_scatter` leaves each rank the summed gradient of its own shard only, its
    Adam updates that shard (so it keeps the moments of that shard only), and
    `all_gather` hands every rank the whole updated vector.
    """
    model = make_model()
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    size = math.ceil(n / world_size)  # the vector is padded to world_size equal shards
    flat = torch.zeros(size * world_size, dtype=torch.float64)
    flat[:n] = parameters_to_vector(params).detach()
    shard = nn.Parameter(flat[rank * size : (rank + 1) * size].clone())
    optimizer = torch.optim.Adam([shard], lr=lr)
    for step in range(steps):
        x, y = make_batch(batch, seed=100 + step)
        model.zero_grad()
        loss_fn(model, shard_of(x, rank, world_size), shard_of(y, rank, world_size)).backward()
        grads = torch.zeros_like(flat)
        grads[:n] = parameters_to_vector([p.grad for p in params])
        shard.grad = torch.empty_like(shard)
        dist.reduce_scatter_single(shard.grad, grads)  # the sum over ranks, of my shard only
        shard.grad /= world_size
        optimizer.step()
        dist.all_gather_single(flat, shard.detach())  # every rank's shard, in rank order
        vector_to_parameters(flat[:n], params)
    return {
        "params": {name: p.detach().clone() for name, p in model.named_parameters()},
        "optimizer state": _state_numel(optimizer),
        "gradient shard": shard.grad.numel(),
    }


def fsdp_adam(rank: int, world_size: int, steps: int, batch: int, lr: float = 0.01) -> dict:
    """Adam on a model whose parameters `fully_shard` (FSDP2) splits across the ranks.

    The mesh is the CPU's, named: by default `fully_shard` takes the machine's
    accelerator, and on a machine with a GPU it would move the model there.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = fully_shard(make_model(), mesh=init_device_mesh("cpu", (world_size,)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    _train(model, optimizer, rank, world_size, steps, batch)
    return {
        "params": {n: p.full_tensor() for n, p in model.named_parameters()},
        "local": {n: tuple(p.to_local().shape) for n, p in model.named_parameters()},
        "kind": type(next(model.parameters())).__name__,
        "optimizer state": _state_numel(optimizer),
    }


def sharded_adam(rank: int, world_size: int, steps: int, batch: int) -> dict:
    """The three trainings, one after the other on the same ranks."""
    return {
        "ddp": ddp_adam(rank, world_size, steps, batch),
        "zero": zero_adam(rank, world_size, steps, batch),
        "fsdp": fsdp_adam(rank, world_size, steps, batch),
    }
