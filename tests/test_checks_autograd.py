"""The checks of Chapter 3 pass right answers and catch wrong ones and stubs."""

import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD

from course.checks import autograd as checks
from tests.check_cases import assert_fails, assert_hint_grows, assert_passes, table_tests


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
    m = torch.where(m.isfinite(), m, 0)
    return m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))


def inf_minus_inf_lse(x):
    """Wrong where a row's maximum is ±inf: x - m is inf - inf = nan there."""
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


def tanh_by_exp(x, v):
    """Wrong at large |x|: tanh through exp gives inf / inf = nan where exp overflows."""
    tanh = (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))
    return v * (1 - tanh**2)


def jacobian_in_one_batched_call(f, x):
    """Right values, but one batched backward call instead of one pass per output."""
    y = f(x)
    seeds = torch.eye(y.numel(), dtype=y.dtype).view(-1, *y.shape)
    (J,) = torch.autograd.grad(y, x, seeds, is_grads_batched=True)
    return J.view(*y.shape, *x.shape)


def vjp_tanh_by_grad(x, v):
    """Wrong for this exercise: asks autograd."""
    x = x.detach().requires_grad_()
    return torch.autograd.grad(torch.tanh(x), x, v)[0]


def vjp_tanh_by_backward(x, v):
    """Wrong for this exercise: asks autograd, after turning recording back on."""
    with torch.enable_grad():
        x = x.detach().requires_grad_()
        torch.tanh(x).backward(v)
    return x.grad


def vjp_tanh_by_parameter(x, v):
    """Wrong for this exercise: a Parameter requires grad without being asked."""
    p = torch.nn.Parameter(x.clone())
    torch.tanh(p).backward(v)
    return p.grad


def vjp_tanh_by_dual_numbers(x, v):
    """Wrong for this exercise: autograd's forward mode (J is diagonal, so JV = vᵀJ)."""
    with fwAD.dual_level():
        return fwAD.unpack_dual(torch.tanh(fwAD.make_dual(x, v))).tangent


def through_jacobian(jacobian):
    """A VJP of tanh by contracting v with a Jacobian that `jacobian(f)(x)` makes."""

    def vjp_tanh(x, v):
        J = jacobian(torch.tanh)(x).reshape(v.numel(), -1)
        return (v.reshape(-1) @ J).reshape(x.shape)

    return vjp_tanh


ASKS_AUTOGRAD = [
    ("torch.autograd.grad", vjp_tanh_by_grad, "asked autograd for the derivative"),
    ("backward under enable_grad", vjp_tanh_by_backward, "asked autograd for the derivative"),
    ("a Parameter", vjp_tanh_by_parameter, "asked autograd for the derivative"),
    (
        "autograd.functional.vjp",
        lambda x, v: torch.autograd.functional.vjp(torch.tanh, x, v)[1],
        "asked autograd for the derivative",
    ),
    (
        "autograd.functional.jacobian",
        through_jacobian(lambda f: lambda x: torch.autograd.functional.jacobian(f, x)),
        "asked autograd for the derivative",
    ),
    (
        "func.vjp",
        lambda x, v: torch.func.vjp(torch.tanh, x)[1](v)[0],
        "asked autograd for the derivative",
    ),
    (
        "func.grad",
        lambda x, v: torch.func.grad(lambda t: (torch.tanh(t) * v).sum())(x),
        "asked autograd for the derivative",
    ),
    ("func.jacrev", through_jacobian(torch.func.jacrev), "asked autograd for the derivative"),
    ("func.jacfwd", through_jacobian(torch.func.jacfwd), "asked autograd's forward mode"),
    (
        "func.jvp",
        lambda x, v: torch.func.jvp(torch.tanh, (x,), (v,))[1],
        "asked autograd's forward mode",
    ),
    ("forward_ad", vjp_tanh_by_dual_numbers, "asked autograd's forward mode"),
]
"""Every way to have autograd compute vᵀJ of tanh for you (Exercises 3.1 to 3.3 forbid it)."""


@pytest.mark.parametrize(
    ("way", "answer", "message"), ASKS_AUTOGRAD, ids=[w[0] for w in ASKS_AUTOGRAD]
)
def test_a_vjp_that_asks_autograd_fails_whatever_the_way(way, answer, message, capsys):
    """The rule "work the formula out" holds for every entry point to autograd, not one name."""
    assert_fails(checks.check_vjp_tanh, answer, message, capsys)


def asks_autograd_for_matmul(A, B, V):
    """Wrong for 3.2: torch.func.vjp of the product."""
    return torch.func.vjp(torch.matmul, A, B)[1](V)


def asks_autograd_for_sum(x, dim, v):
    """Wrong for 3.3: torch.autograd.grad of the sum, with recording switched on."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_()
        return torch.autograd.grad(leaf.sum(dim), leaf, v)[0]


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
    ("check_vjp_tanh", vjp_tanh_by_grad, "asked autograd for the derivative"),
    ("check_vjp_tanh", lambda x, v: 1 - torch.tanh(x) ** 2, "the diagonal of J, for every v"),
    ("check_vjp_tanh", tanh_by_exp, "x = [-1000, -400, -20, 0.5, 20, 400, 1000]: 2 of 7 entries"),
    ("check_vjp_tanh", tanh_by_exp, "Hint: At large |x| your result is nan or inf"),
    ("check_vjp_matmul", lambda A, B, V: (V @ B, A @ V), "your code raised RuntimeError"),
    ("check_vjp_matmul", lambda A, B, V: (V @ B.T, V.T @ A), "grad_B: shape"),
    ("check_vjp_matmul", lambda A, B, V: V @ B.T, "expected a pair (grad_A, grad_B)"),
    ("check_vjp_matmul", asks_autograd_for_matmul, "asked autograd for the derivative"),
    ("check_vjp_sum", asks_autograd_for_sum, "asked autograd for the derivative"),
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
    ("check_jacobian_by_vjps", accumulating_jacobian, "the right row and all the rows before it"),
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
    (
        "check_jacobian_by_vjps",
        jacobian_by_functional,
        "torch.autograd.functional made the backward passes, not your code",
    ),
    ("check_jacobian_by_vjps", jacobian_by_jacrev, "torch.func made the backward passes"),
    ("check_jacobian_by_vjps", jacobian_in_one_batched_call, "passes through y: expected 2, got 1"),
    ("check_jacobian_by_vjps", jacobian_in_one_batched_call, "Hint: This exercise builds J from"),
    (
        "check_jacobian_by_vjps",
        lambda f, x: torch.func.jacfwd(f)(x),
        "asked autograd's forward mode",
    ),
    (
        "check_jacobian_by_vjps",
        lambda f, x: torch.autograd.functional.jacobian(
            f, x, vectorize=True, strategy="forward-mode"
        ),
        "asked autograd's forward mode",
    ),
    ("check_logsumexp", lse_function(naive_lse, softmax_grad), "values"),
    ("check_logsumexp", lse_function(naive_lse, softmax_grad), "subtract the same number m"),
    ("check_logsumexp", lse_function(global_max_lse, softmax_grad), "values"),
    ("check_logsumexp", lse_function(inf_minus_inf_lse, softmax_grad), "(lse -inf or inf)"),
    ("check_logsumexp", lse_function(inf_minus_inf_lse, softmax_grad), "maximum is infinite"),
    ("check_logsumexp", lse_function(stable_lse, naive_softmax_grad), "gradients"),
    ("check_logsumexp", lse_function(stable_lse, naive_softmax_grad), "the softmax of the row"),
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
        lse_function(stable_lse, lambda x, out, g: torch.exp(x - out.unsqueeze(-1))),
        "whatever grad_output it received",
    ),
    ("check_logsumexp", lse_function(stable_lse, lambda x, out, g: None), "backward returned None"),
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


test_right_answer_passes, test_stub_is_not_done_yet, test_wrong_answer_fails_and_says_why = (
    table_tests(checks, RIGHT, STUBS, WRONG)
)


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
    ("check_vjp_tanh", lambda x, v: v.mul_(1 - torch.tanh(x) ** 2)),  # in place, on its copy
    ("check_vjp_tanh", lambda x, v: v * 4 / (torch.exp(x) + torch.exp(-x)) ** 2),
    ("check_vjp_sum", lambda x, dim, v: v.unsqueeze_(dim).expand_as(x)),
    ("check_vjp_matmul", lambda A, B, V: [torch.einsum("nm,km->nk", V, B), A.T @ V]),
    ("check_vjp_sum", lambda x, dim, v: torch.broadcast_to(v.unsqueeze(dim), x.shape)),
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


def vjp_tanh_with_vmap(x, v):
    """Right: the formula, vectorised by torch.func.vmap (a transform, but no autograd)."""
    slope = torch.func.vmap(lambda t: 1 - torch.tanh(t) ** 2)(x.reshape(-1)).reshape(x.shape)
    return v * slope


def vjp_tanh_under_enable_grad(x, v):
    """Right: recording switched on, but nothing asks for a derivative."""
    with torch.enable_grad():
        return v / torch.cosh(x) ** 2


@pytest.mark.parametrize("answer", [vjp_tanh_with_vmap, vjp_tanh_under_enable_grad])
def test_a_vjp_by_hand_passes_whatever_else_it_uses(answer, capsys):
    assert_passes(checks.check_vjp_tanh, answer, capsys)


HINT_STEPS = [
    ("check_vjp_tanh", tanh_by_exp, "return v * (1 - torch.tanh(x) ** 2)"),
    ("check_jacobian_by_vjps", jacobian_in_one_batched_call, "torch.eye(y.numel(), dtype=y.dtype)"),
    ("check_vjp_tanh", lambda x, v: v * (1 - x**2), "return v * (1 - torch.tanh(x) ** 2)"),
    ("check_vjp_matmul", lambda A, B, V: (V @ B.T, V.T @ A), "return V @ B.T, A.T @ V"),
    ("check_vjp_sum", lambda x, dim, v: v.expand_as(x), "v.unsqueeze(dim).expand_as(x)"),
    (
        "check_jacobian_by_vjps",
        lambda f, x: jacobian(f, x, shaped_like_x=True),
        "torch.eye(y.numel(), dtype=y.dtype)",
    ),
    (
        "check_logsumexp",
        lse_function(naive_lse, softmax_grad),
        "m = torch.where(m.isfinite(), m, 0)",
    ),
    (
        "check_logsumexp",
        lse_function(stable_lse, naive_softmax_grad),
        "grad_output.unsqueeze(-1) * torch.exp(x - out.unsqueeze(-1))",
    ),
    ("check_clip_hook", clip_hook(clips=False), "return grad.clamp(-limit, limit)"),
]


@pytest.mark.parametrize(
    ("name", "wrong", "recipe"), HINT_STEPS, ids=[f"{h[0]}-{h[2]}" for h in HINT_STEPS]
)
def test_first_failure_points_at_the_idea_and_the_third_gives_the_recipe(
    name, wrong, recipe, capsys
):
    assert_hint_grows(getattr(checks, name), wrong, recipe, capsys)


def test_a_mismatch_beside_matching_infinities_warns_nothing(capsys):
    """Rows whose lse is ±inf, where a masked row comes out finite: the message names the
    entry, and no NumPy warning quotes the checker's code (inf - inf where both are inf)."""
    clamped = lse_function(lambda x: stable_lse(x.clamp(min=-1e9)), softmax_grad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        verdict = checks.check_logsumexp(clamped)
    assert verdict.status == "fail", "a masked row that comes out finite must fail"
    assert "expected -inf, got -1e+09" in verdict.message, verdict.message
    assert not caught, [str(w.message) for w in caught]


CHECKER_INTERNALS = sorted(
    {name for name in vars(checks) if name.startswith("_") and not name.startswith("__")}
    | {"counted", "allow_unused", "course.checks", "course/checks"}
)


@pytest.mark.parametrize(("name", "wrong", "message"), WRONG, ids=[f"{w[0]}-{w[2]}" for w in WRONG])
def test_no_message_names_the_checker_or_gives_torch_advice_meant_for_it(
    name, wrong, message, capsys
):
    """A ✗ speaks of the learner's code: not of the checker's helpers, nor torch's advice
    to the checker (a backward that returns None must not read "Set allow_unused=True")."""
    getattr(checks, name)(wrong, hint="full")
    out = capsys.readouterr().out
    named = [word for word in CHECKER_INTERNALS if word in out]
    assert not named, f"{name}: the message names the checker's {named}:\n{out}"
