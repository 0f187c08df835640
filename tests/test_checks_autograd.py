"""The checks of Chapter 3 pass right answers and catch wrong ones and stubs."""

import pytest
import torch

from course.checks import autograd as checks
from tests.check_cases import assert_fails, assert_not_done_yet, assert_passes


def stub(*args):
    raise NotImplementedError("Exercise 3.x is not done yet")


class StubLogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError("Exercise 3.5 is not done yet")

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Exercise 3.5 is not done yet")


def lse_function(forward, backward):
    """A Function from a forward formula and a backward(x, out, grad_output) formula."""

    class LogSumExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            out = forward(x)
            ctx.save_for_backward(x, out)
            return out

        @staticmethod
        def backward(ctx, grad_output):
            x, out = ctx.saved_tensors
            return backward(x, out, grad_output)

    return LogSumExp


def stable_lse(x):
    m = x.amax(dim=-1, keepdim=True)
    return m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))


def naive_lse(x):
    return torch.log(torch.exp(x).sum(dim=-1))


def global_max_lse(x):
    """Partly stable: one maximum for the whole tensor, so a low row underflows."""
    m = x.max()
    return m + torch.log(torch.exp(x - m).sum(dim=-1))


def softmax_grad(x, out, g):
    return g.unsqueeze(-1) * torch.exp(x - out.unsqueeze(-1))


def naive_softmax_grad(x, out, g):
    return g.unsqueeze(-1) * torch.exp(x) / torch.exp(x).sum(dim=-1, keepdim=True)


def logaddexp_lse(x):
    """Right but unusual: a running torch.logaddexp over the last dimension."""
    out = x[..., 0]
    for i in range(1, x.shape[-1]):
        out = torch.logaddexp(out, x[..., i])
    return out


def jacobian_by_functional(f, x):
    """Wrong for this exercise: torch makes the backward passes."""
    return torch.autograd.functional.jacobian(f, x)


def jacobian_by_jacrev(f, x):
    """Wrong for this exercise: torch.func makes the Jacobian."""
    return torch.func.jacrev(f)(x)


def jacobian(f, x, *, shaped_like_x=False, retain_graph=True):
    """One backward per output; the keyword arguments inject the two classic mistakes."""
    y = f(x)
    seeds = torch.eye(x.numel() if shaped_like_x else y.numel(), dtype=y.dtype)
    shape = x.shape if shaped_like_x else y.shape
    rows = [
        torch.autograd.grad(y, x, seed.view(shape), retain_graph=retain_graph)[0] for seed in seeds
    ]
    return torch.stack(rows).view(*y.shape, *x.shape)


def accumulating_jacobian(f, x):
    """Wrong: backward adds into x.grad, and the rows are read without zeroing it."""
    y = f(x)
    rows = []
    for seed in torch.eye(y.numel(), dtype=y.dtype):
        y.backward(seed.view(y.shape), retain_graph=True)
        rows.append(x.grad.clone())
    return torch.stack(rows).view(*y.shape, *x.shape)


def clip_hook(clip_first=False, returns_handle=True, clips=True):
    """add_clip_hook, right by default; the keyword arguments inject mistakes."""

    def add_clip_hook(t, limit, log):
        def hook(grad):
            clipped = grad.clamp(-limit, limit)
            log.append(clipped if clip_first else grad.clone())
            return clipped if clips else None

        handle = t.register_hook(hook)
        return handle if returns_handle else None

    return add_clip_hook


def vjp_tanh_by_autograd(x, v):
    """Wrong for this exercise: asks autograd, which the check switches off."""
    x = x.detach().requires_grad_()
    return torch.autograd.grad(torch.tanh(x), x, v)[0]


RIGHT = {
    "check_vjp_tanh": lambda x, v: v / torch.cosh(x) ** 2,
    "check_vjp_matmul": lambda A, B, V: (V @ B.mT, A.mT @ V),
    "check_vjp_sum": lambda x, dim, v: v.unsqueeze(dim) * torch.ones_like(x),
    "check_jacobian_by_vjps": jacobian,
    "check_logsumexp": lse_function(stable_lse, softmax_grad),
    "check_clip_hook": clip_hook(),
}

STUBS = {name: stub for name in RIGHT} | {"check_logsumexp": StubLogSumExp}

WRONG = [
    ("check_vjp_tanh", lambda x, v: 1 - torch.tanh(x) ** 2, "x of shape (5,)"),
    ("check_vjp_tanh", lambda x, v: v * (1 - x**2), "largest difference"),
    ("check_vjp_tanh", vjp_tanh_by_autograd, "your code raised RuntimeError"),
    ("check_vjp_matmul", lambda A, B, V: (V @ B, A @ V), "your code raised RuntimeError"),
    ("check_vjp_matmul", lambda A, B, V: (V @ B.T, V.T @ A), "grad_B: shape"),
    ("check_vjp_matmul", lambda A, B, V: V @ B.T, "expected a tuple"),
    ("check_vjp_sum", lambda x, dim, v: v.expand_as(x), "dim=1: your code raised"),
    ("check_vjp_sum", lambda x, dim, v: torch.ones_like(x), "x of shape (3, 4), dim=0"),
    (
        "check_vjp_sum",
        lambda x, dim, v: v.expand_as(x) if x.shape == (3, 3) else v.unsqueeze(dim).expand_as(x),
        "x of shape (3, 3), dim=1",
    ),
    (
        "check_jacobian_by_vjps",
        lambda f, x: jacobian(f, x, shaped_like_x=True),
        "your code raised RuntimeError",
    ),
    (
        "check_jacobian_by_vjps",
        lambda f, x: jacobian(f, x, retain_graph=False),
        "your code raised RuntimeError",
    ),
    ("check_jacobian_by_vjps", accumulating_jacobian, "largest difference"),
    (
        "check_jacobian_by_vjps",
        lambda f, x: jacobian(f, x).reshape(*x.shape, -1),
        "shape: expected (2, 3), got (3, 2)",
    ),
    (
        "check_jacobian_by_vjps",
        lambda f, x: torch.stack([jacobian(f, x) for _ in range(2)])[0],
        "number of backward passes through y: expected 2, got 4",
    ),
    ("check_jacobian_by_vjps", jacobian_by_functional, "the backward passes were made by torch"),
    ("check_jacobian_by_vjps", jacobian_by_jacrev, "x of shape (3,)"),
    ("check_logsumexp", lse_function(naive_lse, softmax_grad), "values"),
    ("check_logsumexp", lse_function(naive_lse, softmax_grad), "subtract each row's maximum"),
    ("check_logsumexp", lse_function(global_max_lse, softmax_grad), "values"),
    ("check_logsumexp", lse_function(stable_lse, naive_softmax_grad), "gradients"),
    ("check_logsumexp", lse_function(stable_lse, naive_softmax_grad), "exp(x - lse(x))"),
    (
        "check_logsumexp",
        lse_function(stable_lse, lambda x, out, g: g * torch.exp(x - out.unsqueeze(-1))),
        "backward: your code raised RuntimeError",
    ),
    (
        "check_logsumexp",
        lse_function(stable_lse, lambda x, out, g: torch.exp(x - out.unsqueeze(-1))),
        "gradients for a random grad_output",
    ),
    (
        "check_logsumexp",
        lse_function(lambda x: stable_lse(x.double()), softmax_grad),
        "dtype: expected torch.float32, got torch.float64",
    ),
    (
        "check_logsumexp",
        lse_function(lambda x: stable_lse(x).unsqueeze(-1), softmax_grad),
        "shape",
    ),
    ("check_logsumexp", torch.logsumexp, "expected a subclass of torch.autograd.Function"),
    ("check_clip_hook", clip_hook(clips=False), "a non-leaf h = 3 * x: x.grad with the hook"),
    ("check_clip_hook", clip_hook(clip_first=True), "the logged gradient (before clipping)"),
    ("check_clip_hook", clip_hook(returns_handle=False), "return the handle"),
]


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes(name, capsys):
    assert_passes(getattr(checks, name), RIGHT[name], capsys)


@pytest.mark.parametrize("name", sorted(STUBS))
def test_stub_is_not_done_yet(name, capsys):
    assert_not_done_yet(getattr(checks, name), STUBS[name], capsys)


@pytest.mark.parametrize(("name", "wrong", "message"), WRONG, ids=[f"{w[0]}-{w[2]}" for w in WRONG])
def test_wrong_answer_fails_and_says_why(name, wrong, message, capsys):
    assert_fails(getattr(checks, name), wrong, message, capsys)


def jacobian_by_backward(f, x):
    """Right but unusual: y.backward per output, x.grad read and reset each time."""
    y = f(x)
    rows = []
    for i in range(y.numel()):
        x.grad = None
        seed = torch.zeros(y.numel(), dtype=y.dtype)
        seed[i] = 1
        y.backward(seed.view(y.shape), retain_graph=True)
        rows.append(x.grad.clone())
    return torch.stack(rows).reshape(*y.shape, *x.shape)


RIGHT_BUT_UNUSUAL = [
    ("check_jacobian_by_vjps", jacobian_by_backward),
    ("check_logsumexp", lse_function(logaddexp_lse, softmax_grad)),
    (
        "check_logsumexp",
        lse_function(
            lambda x: torch.logsumexp(x, dim=-1),
            lambda x, out, g: g[..., None] * torch.softmax(x, dim=-1),
        ),
    ),
]


@pytest.mark.parametrize(("name", "answer"), RIGHT_BUT_UNUSUAL)
def test_right_but_unusual_answer_passes(name, answer, capsys):
    assert_passes(getattr(checks, name), answer, capsys)
