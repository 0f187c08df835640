"""course.memory: the meters count what they say, the models are the chapter's, and the
checkpoint curve follows its formula."""

import torch
from torch import nn

from course.distributed import Ranks
from course.memory import (
    MemoryMeter,
    checkpoint_curve,
    deep_mlp,
    fsdp_adam,
    mlp,
    mnist_cnn,
    saved_tensors,
    storage_bytes,
)


def test_saved_tensors_sees_what_each_operation_saves():
    x = torch.randn(3, 4, requires_grad=True)
    out, saved = saved_tensors(lambda: (x.exp() * 2).sum())
    assert out.item() == (x.exp() * 2).sum().item()
    assert len(saved) == 1, f"exp saves its result, the product by 2 nothing: {saved}"
    assert torch.equal(saved[0], x.exp())


def test_storage_bytes_counts_a_storage_once_and_leaves_out_what_it_is_told():
    a, b = torch.zeros(10), torch.zeros(3, dtype=torch.float64)
    assert storage_bytes([a, a[2:], a.view(2, 5), b]) == 40 + 24, "views share a's storage"
    assert storage_bytes([a, b], leave_out=[a[1:]]) == 24, "a view leaves its storage out"


def test_the_meter_counts_new_storages_until_they_are_freed():
    x = torch.randn(100)  # made before: not counted
    with MemoryMeter() as meter:
        y = x * 2  # 400 new bytes
        view = y[:10]  # a view: no new memory
        y.add_(1)  # in place: no new memory
        z = torch.cat([y, y])  # 800 new bytes
        assert meter.current == 1200
        assert meter.peak == 1200
        del y, z
        assert meter.current == 400, "z is freed; y lives on through its view"
        del view
        assert meter.current == 0
    assert meter.peak == 1200


def test_the_meter_sees_what_the_graph_keeps_and_backward_frees():
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(4, 8)
    with MemoryMeter() as meter:
        loss = torch.tanh(x @ w).sum()
        kept = meter.current
        loss.backward()
        del loss
    assert kept == 4 * 8 * 4 + 4, "tanh's output (the product is freed) and the loss"
    assert meter.current == 8 * 8 * 4, "only w's new gradient is left"


def test_the_models_have_the_chapters_shapes():
    assert sum(p.numel() for p in mnist_cnn().parameters()) == 18_378
    net = mlp((5, 7, 3), "gelu", torch.float64)
    assert [type(m) for m in net] == [nn.Linear, nn.GELU, nn.Linear]
    assert net[0].weight.dtype == torch.float64
    assert torch.equal(mlp((5, 7, 3))[0].weight, mlp((5, 7, 3))[0].weight), "seeded"
    deep = deep_mlp(4, 6)
    assert len(deep) == 4
    assert all(isinstance(block, nn.Sequential) for block in deep)


def test_the_checkpoint_curve_follows_k_minus_1_plus_n_over_k():
    depth, width, batch = 8, 16, 32
    points = checkpoint_curve(depth, width, batch, segments=(2, 4, 8), repeats=1)
    layer = batch * width * 4
    plain, *cut = points
    assert plain.segments == 0
    assert [p.segments for p in cut] == [2, 4, 8]
    constant = plain.peak - depth * layer
    forward = depth * 2 * batch * width * width
    for p in cut:
        k = p.segments
        assert p.peak == (k - 1 + depth // k) * layer + constant, k
        assert (p.flops - plain.flops) * k == forward * (k - 1), k
        assert p.seconds > 0


def _fsdp_where_the_accelerator_is_a_gpu(rank, world_size, steps, batch):
    """`fsdp_adam` in a rank whose accelerator answers cuda, as on a machine with a GPU
    (fully_shard's default mesh asks torch._C._get_accelerator)."""
    torch._C._get_accelerator = lambda: torch.device("cuda")
    result = fsdp_adam(rank, world_size, steps, batch)
    return result["kind"], str(next(iter(result["params"].values())).device)


def test_fsdp_adam_stays_on_the_cpu_where_a_gpu_is_the_accelerator():
    with Ranks(world_size=2, timeout=60, start_method="fork") as ranks:
        got = ranks.run(_fsdp_where_the_accelerator_is_a_gpu, 1, 16)
    assert got == [("DTensor", "cpu")] * 2, got
