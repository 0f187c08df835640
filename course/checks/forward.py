"""Checks for the exercises of Chapter 5 (forward mode, reverse mode and torch.func).

Torch is the reference, in float64. Where an exercise asks for a method (one JVP per input,
vmap instead of a loop, forward-over-reverse), the check also watches how the answer was
computed: the functions it hands over send their output through :class:`Tap`, an identity
`autograd.Function` that records each forward-mode (JVP) and reverse-mode (backward) pass
through it, and how many vectors each carried (more than one when `vmap` batched them).
Each way of getting the method wrong gets a hint about itself, in three steps.
"""

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import jacrev

from course.checks import (
    Hint,
    Mismatch,
    NotDoneYet,
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    expect_equal,
    hinted,
    learner_check,
)


def _first_jvp_quietly() -> None:
    """Run the process's first forward-mode product here, hiding the warning it gives.

    The first JVP imports a module of torch that calls the deprecated `torch.jit.script`:
    a FutureWarning about torch's own code, printed with the path of torch's files on
    this machine, under whichever cell happens to run forward mode first. It comes once
    per process, so running one tiny JVP now, with that one warning ignored, keeps it off
    every page that imports these checks; every other warning still shows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script", category=FutureWarning)
        torch.func.jvp(torch.sin, (torch.zeros(()),), (torch.ones(()),))


_first_jvp_quietly()


@dataclass
class Passes:
    """Every forward-mode (JVP) and reverse-mode (backward) pass through a counted output.

    `forward` has one entry per JVP and `backward` one per backward pass, in the order
    they ran: the number of vectors (tangents or cotangents) that pass carried, which is 1
    unless `vmap` batched them (`jacfwd` and `jacrev` do). `None` stands for a batch of
    torch's older vmap (`torch.autograd.functional` with `vectorize=True`), which hides
    its size.
    """

    events: list[tuple[str, int | None]] = field(default_factory=list)

    @property
    def forward(self) -> list[int | None]:
        """The vectors carried by each JVP, in order."""
        return [n for mode, n in self.events if mode == "forward"]

    @property
    def backward(self) -> list[int | None]:
        """The vectors carried by each backward pass, in order."""
        return [n for mode, n in self.events if mode == "backward"]

    @property
    def modes(self) -> list[str]:
        """`"forward"` or `"backward"` for each pass, in the order they ran."""
        return [mode for mode, _ in self.events]

    def __repr__(self) -> str:
        return f"Passes(forward={self.forward}, backward={self.backward})"


def vectors_carried(t: torch.Tensor) -> int | None:
    """How many vectors a tangent or gradient carries: 1, or the batch that vmap made.

    Each `vmap` around the pass wraps the tensor once, with its batch size; the count is
    their product. (Read through torch's private functorch wrappers: no public API says
    whether a tensor inside a transform is batched.)
    """
    wrappers = torch._C._functorch
    if wrappers.is_legacy_batchedtensor(t):
        return None
    count = 1
    while wrappers.is_functorch_wrapped_tensor(t):
        inner = wrappers.get_unwrapped(t)
        if wrappers.is_batchedtensor(t):
            count *= inner.shape[wrappers.maybe_get_bdim(t)]
        t = inner
    return count


class Tap(torch.autograd.Function):
    """The identity, recording each JVP and each backward pass through it in a `Passes`.

    Written in the `setup_context` form with a `vmap` rule, so that every `torch.func`
    transform accepts it: `jacfwd`, `jacrev` and `hessian` run, and their batched passes
    are recorded as one pass each, carrying the whole batch.
    """

    @staticmethod
    def forward(y, passes):
        """Pass `y` through unchanged (the recording happens in the derivatives)."""
        return y.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        """Keep the record for the derivative rules."""
        ctx.passes = inputs[1]

    @staticmethod
    def jvp(ctx, y_tangent, _):
        """Record one forward-mode pass; the tangent goes through unchanged."""
        ctx.passes.events.append(("forward", vectors_carried(y_tangent)))
        return y_tangent

    @staticmethod
    def backward(ctx, grad):
        """Record one backward pass; the gradient goes through unchanged."""
        ctx.passes.events.append(("backward", vectors_carried(grad)))
        return grad, None

    @staticmethod
    def vmap(info, in_dims, y, passes):
        """Under `vmap`, the identity on the batch (its passes are recorded as above)."""
        return y.clone(), in_dims[0]


def count_passes(f: Callable[..., torch.Tensor]) -> tuple[Callable[..., torch.Tensor], Passes]:
    """`(g, passes)`: `g` computes `f` and records in `passes` the passes through its output.

    A JVP (`torch.func.jvp`, `jacfwd` or `forward_ad`) that reaches the output adds to
    `passes.forward`, a backward pass that starts from it to `passes.backward`.
    """
    passes = Passes()

    def g(*args):
        return Tap.apply(f(*args), passes)

    return g, passes


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1000 * seed + sum(shape))
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def said(passes: Passes) -> str:
    """The passes in words: "3 JVPs and no backward pass", "1 JVP carrying 3 tangents"."""
    parts = []
    for carried, singular, plural, vector in [
        (passes.forward, "JVP", "JVPs", "tangents"),
        (passes.backward, "backward pass", "backward passes", "cotangents"),
    ]:
        if not carried:
            parts.append(f"no {singular}")
            continue
        text = f"{len(carried)} {singular if len(carried) == 1 else plural}"
        batches = [k for k in carried if k != 1]
        if batches:
            sizes = ", ".join("a batch of" if k is None else str(k) for k in batches)
            text += f" carrying {sizes} {vector} at once"
        parts.append(text)
    return " and ".join(parts)


def _jacobian_cases():
    """(n, m, f) for f: ℝⁿ → ℝᵐ, wide, tall, square and with one output."""
    cases = []
    for n, m in [(2, 5), (5, 2), (3, 3), (4, 1)]:
        W = _random(m, n, seed=n)
        cases.append((n, m, lambda x, W=W: torch.tanh(W @ x) * x.sum()))
    return cases


JACOBIAN = Hint(
    "J has one column per input and one row per output: a JVP along a one-hot input "
    "direction gives one of them, a VJP with a one-hot cotangent the other.",
    "jvp(f, (x,), (e_j,))[1] is J e_j, column j of J; vjp(f, x) returns (f(x), pullback), "
    "and pullback(e_i)[0] is e_iᵀ J, row i.",
    "when n ≤ m, torch.stack([jvp(f, (x,), (e,))[1] for e in torch.eye(n, dtype=x.dtype)], "
    "dim=1); otherwise y, pullback = vjp(f, x) and torch.stack([pullback(e)[0] for e in "
    "torch.eye(m, dtype=y.dtype)], dim=0).",
)
BATCHED = Hint(
    "this exercise counts the passes one by one: jacfwd and jacrev (and vmap over jvp or "
    "over a pullback) run them all as one batched pass.",
    "loop over the one-hot vectors, the rows of torch.eye, with one jvp call (or one "
    "pullback call) per vector.",
    JACOBIAN.recipe,
)
TRANSPOSED_J = Hint(
    "your numbers are J's, transposed: J has one row per output and one column per input, "
    "shape (m, n). Which way does each of your products lie in it?",
    "a JVP gives a column: stack the JVPs along dim=1 (torch.stack stacks along dim=0 "
    "unless told otherwise); a VJP gives a row: stack those along dim=0.",
    JACOBIAN.recipe,
)
WRONG_SIDE = Hint(
    "each pass gives one column (a JVP) or one row (a VJP): which does J have fewer of, "
    "columns (n inputs) or rows (m outputs)?",
    "compare n = x.numel() with m, the number of outputs (vjp(f, x) returns f(x) with "
    "its pullback), and build all of J from the smaller side only.",
    JACOBIAN.recipe,
)


def _cheaper_side(n: int, m: int) -> list[tuple[list[int], list[int]]]:
    """The (forward, backward) passes that build J from the cheaper side (both when n = m)."""
    by_jvps, by_vjps = ([1] * n, []), ([], [1] * m)
    return [by_jvps, by_vjps] if n == m else [by_jvps] if n < m else [by_vjps]


def _expect_cheaper_side(what: str, passes: Passes, n: int, m: int) -> None:
    """The passes were one JVP per input (n ≤ m) or one backward pass per output (m ≤ n)."""
    if (passes.forward, passes.backward) in _cheaper_side(n, m):
        return
    wanted = " or ".join(
        said(Passes([("forward", k) for k in fw] + [("backward", k) for k in bw]))
        for fw, bw in _cheaper_side(n, m)
    )
    message = f"{what}: passes through f: expected {wanted}, got {said(passes)}"
    batched = any(k != 1 for k in passes.forward + passes.backward)
    with hinted(BATCHED if batched else WRONG_SIDE):
        raise Mismatch(message)


def _transposed(got: object, expected: torch.Tensor) -> bool:
    """Whether `got` holds the entries of J transposed (columns stacked as rows)."""
    if not isinstance(got, torch.Tensor) or got.dim() != 2 or got.shape != expected.T.shape:
        return False
    return bool(torch.allclose(got.detach().T.double(), expected, rtol=1e-9))


@learner_check
def check_jacobian_cheaper_side(jacobian: Callable[..., Any]) -> Verdict:
    """Exercise 5.1: `jacobian(f, x)` is J (shape (m, n)), from the cheaper side.

    For n ≤ m it must take n JVPs and no backward pass; for m < n, m backward passes and
    no JVP. `jacfwd` and `jacrev` run their passes as one batched pass and are told so.
    """

    def body():
        for n, m, f in _jacobian_cases():
            what = f"f: R^{n} -> R^{m}"
            counted, passes = count_passes(f)
            x = _random(n, seed=1)
            got = call(what, jacobian, counted, x)
            expected = jacrev(f)(x)
            with hinted(TRANSPOSED_J if _transposed(got, expected) else JACOBIAN):
                expect_close(got, expected, what, rtol=1e-9)
            _expect_cheaper_side(what, passes, n, m)
        return "J right on 4 shapes, n JVPs when n ≤ m and m backward passes when m < n"

    return check("Exercise 5.1 (jacobian)", body, hint=JACOBIAN)


def _small_net(widths, seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(widths[0], widths[1]), nn.ReLU(), nn.Linear(widths[1], widths[2])
    ).double()


def per_parameter_squares(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Shape (N, P): the sum of squares of sample i's gradient for parameter j.

    By one backward pass per sample, the reference of Exercise 5.2 (its columns follow
    `model.named_parameters()`).
    """
    rows = []
    for i in range(len(X)):
        model.zero_grad()
        nn.functional.cross_entropy(model(X[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.stack([(p.grad**2).sum() for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    return torch.stack(rows)


def per_sample_norms_loop(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference: one backward pass per sample, the norm over all parameters together."""
    return per_parameter_squares(model, X, y).sum(dim=1).sqrt()


PER_SAMPLE = Hint(
    "each sample's norm comes from the gradient of that sample's loss alone, taken over "
    "every parameter of the model together.",
    "write the loss of ONE sample as a function of the parameters (functional_call runs "
    "the model with the parameters you pass), take its grad, and let vmap map it over "
    "the batch with in_dims=(None, 0, 0).",
    "params = {name: p.detach() for name, p in model.named_parameters()}; loss(params, x, "
    "t) = cross_entropy(functional_call(model, params, (x.unsqueeze(0),)), t.unsqueeze(0)); "
    "grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y); return the square root "
    "of sum(g.flatten(start_dim=1).pow(2).sum(dim=1) for g in grads.values()).",
)
ONE_SAMPLE = Hint(
    "inside vmap your function sees one sample at a time, without the batch dimension; "
    "the model's nn.Flatten takes dimension 0 for the batch.",
    "give the sample its batch dimension back inside the one-sample loss: x.unsqueeze(0), "
    "and t.unsqueeze(0) for its label.",
    PER_SAMPLE.recipe,
)
AFTER_THE_MODEL = Hint(
    "the model ran on your samples; what failed comes after it, in the loss of one sample "
    "or in the norms. Inside vmap a label has no batch dimension, while the logits of one "
    "sample have one; after vmap, every gradient has the batch dimension first.",
    "t.unsqueeze(0) gives the label the batch dimension of the logits; for the norms, "
    "g.flatten(start_dim=1) keeps each sample apart while .pow(2).sum(dim=1) adds its squares.",
    PER_SAMPLE.recipe,
)
WHOLE_BATCH = Hint(
    "you returned one number for the whole batch: your sums also ran over the batch "
    "dimension, the first of every gradient that vmap returns.",
    "sum the squares over every dimension but the first, so that each sample keeps its own "
    "number, and add those of every parameter.",
    PER_SAMPLE.recipe,
)
ONE_RUN = Hint(
    "a loop of backward passes runs the model once per sample; vmap runs your one-sample "
    "function once, over the whole batch.",
    PER_SAMPLE.nudge,
    PER_SAMPLE.recipe,
)


def _per_sample_mistake(got: object, squares: torch.Tensor, names: list[str]) -> Hint | None:
    """The hint for a known wrong formula that `got` matches, or None.

    `squares[i, j]` is the sum of squares of sample i's gradient for parameter `names[j]`.
    """
    if not (isinstance(got, torch.Tensor) and got.is_floating_point()):
        return None
    if got.dim() == 0:
        return WHOLE_BATCH
    if got.shape != squares.shape[:1]:
        return None
    if got.dtype != squares.dtype:
        return Hint(
            f"your norms are {got.dtype}, the model's parameters and X are {squares.dtype}.",
            "compute the norms from the gradients themselves, without changing their dtype.",
            PER_SAMPLE.recipe,
        )
    got = got.detach()
    close = lambda a: torch.allclose(got, a, rtol=1e-6)  # noqa: E731
    if close(squares.sum(dim=1)):
        return Hint(
            "your numbers are the squares of the norms.",
            "a norm is the square root of the sum of squares.",
            PER_SAMPLE.recipe,
        )
    if close(squares.sqrt().sum(dim=1)):
        return Hint(
            "your numbers add up one norm per parameter tensor; the norm is over all "
            "parameters together.",
            "add the squares of every parameter's gradient first, then take one square root.",
            PER_SAMPLE.recipe,
        )
    for size in range(1, len(names)):
        for subset in itertools.combinations(range(len(names)), size):
            if close(squares[:, list(subset)].sum(dim=1).sqrt()):
                left_out = [n for i, n in enumerate(names) if i not in subset]
                return Hint(
                    f"your norms leave out the gradients of {', '.join(left_out)}.",
                    "take the gradient with respect to every entry of "
                    "model.named_parameters(), weights and biases.",
                    PER_SAMPLE.recipe,
                )
    if len(got) > 1 and torch.allclose(got, got[:1].expand_as(got)):
        return Hint(
            "every sample got the same norm: that is the gradient of the whole batch's "
            "loss, not of each sample's.",
            PER_SAMPLE.nudge,
            PER_SAMPLE.recipe,
        )
    return None


def _dims(value: object) -> int | None:
    """The number of dimensions of a tensor (as a transform's function sees it), else None."""
    return value.dim() if isinstance(value, torch.Tensor) else None


def _crash_hint(input_dims: list[int | None], X: torch.Tensor) -> Hint:
    """The hint for a crash of the learner's code, from the inputs the model was called with.

    An input with one dimension fewer than `X` is a sample without its batch dimension;
    a crash after the model ran on batched inputs lies in the loss or in the norms.
    """
    if X.dim() - 1 in input_dims:
        return ONE_SAMPLE
    return AFTER_THE_MODEL if input_dims else PER_SAMPLE


@learner_check
def check_per_sample_grad_norms(per_sample_grad_norms: Callable[..., Any]) -> Verdict:
    """Exercise 5.2: `per_sample_grad_norms(model, X, y)` is ‖∇θ loss(xᵢ, yᵢ)‖ per sample.

    Compared with a loop of single-sample backward passes; a forward pre-hook counts the
    model's calls, which must not grow with the batch (vmap runs the model once), and
    records their inputs' dimensions, so that a crash is told apart: a sample without its
    batch dimension, or a failure after the model ran. A known wrong formula (squares, a
    sum of norms, parameters left out, the batch's gradient, one number for the whole
    batch) gets a hint about itself.
    """
    cases = [((12, 8, 3), (16, 3, 4)), ((20, 6, 5), (9, 20))]

    def body():
        for seed, (widths, shape) in enumerate(cases):
            model = _small_net(widths, seed)
            X = _random(*shape, seed=seed)
            y = torch.randint(
                0, widths[2], (shape[0],), generator=torch.Generator().manual_seed(seed)
            )
            squares = per_parameter_squares(model, X, y)
            calls = []  # the number of dimensions of the model's input, at each call
            handle = model.register_forward_pre_hook(
                lambda module, args, c=calls: c.append(_dims(args[0] if args else None))
            )
            what = f"a {'-'.join(map(str, widths))} MLP, X of shape {shape}"
            try:
                got = call(what, per_sample_grad_norms, model, X, y)
            except Mismatch:
                with hinted(_crash_hint(calls, X)):
                    raise
            finally:
                handle.remove()
            names = [name for name, _ in model.named_parameters()]
            with hinted(_per_sample_mistake(got, squares, names) or PER_SAMPLE):
                expect_close(got, squares.sum(dim=1).sqrt(), what, rtol=1e-8)
            with hinted(ONE_RUN):
                expect(
                    len(calls) <= 2,
                    f"{what}: your code ran the model {len(calls)} times for {shape[0]} "
                    "samples; vmap runs it once over the whole batch",
                )
        return "right norms for 2 networks and batches, the model run once per batch"

    return check("Exercise 5.2 (per_sample_grad_norms)", body, hint=PER_SAMPLE)


def _hvp_cases():
    """(description, f, shape of x). The first f is not quadratic: there ∇f(x), H v and the
    Hessian at v times x all differ, so each mistake that gives one of them is told apart
    (for a quadratic, ∇f(x) = H x)."""
    A = _random(4, 4, seed=3)
    return [
        (
            "f(x) = Σ tanh(x)² + x₀x₁³, x of shape (5,)",
            lambda x: (torch.tanh(x) ** 2).sum() + x[0] * x[1] ** 3,
            (5,),
        ),
        ("f(x) = ½ xᵀAx with A not symmetric, x of shape (4,)", lambda x: 0.5 * x @ (A @ x), (4,)),
        (
            "f(X) = log Σ exp(X @ X.T), X of shape (2, 3)",
            lambda X: torch.logsumexp(X @ X.T, dim=(0, 1)),
            (2, 3),
        ),
    ]


HVP = Hint(
    "H v is the derivative of the gradient along v: how ∇f changes when x moves along v.",
    "the gradient is a function ℝⁿ → ℝⁿ whose Jacobian is H, so H v is a JVP of that "
    "function, in the direction v.",
    "torch.func.jvp(torch.func.grad(f), (x,), (v,)) returns (∇f(x), H v): keep the second.",
)
GRADIENT_NOT_HVP = Hint(
    "your numbers are the gradient ∇f(x), not H v.",
    "jvp returns a pair: the function's value (here the gradient) and its JVP.",
    HVP.recipe,
)
SWAPPED = Hint(
    "your numbers are the Hessian at v applied to x: x and v have swapped places.",
    "jvp(func, primals, tangents): the primals say where the derivative is taken (x), the "
    "tangents in which direction (v).",
    HVP.recipe,
)
PAIR = Hint(
    "your hvp returns a pair: jvp returns the function's value and its JVP together, "
    "here ∇f(x) and H v.",
    "keep the second of the two.",
    HVP.recipe,
)
FORMED_H = Hint(
    "a JVP that carries n tangents at once builds all of H (hessian, or jacfwd of the "
    "gradient); H v needs one JVP of the gradient, whose one tangent is v.",
    HVP.nudge,
    HVP.recipe,
)
REVERSE_OVER_FORWARD = Hint(
    "a JVP went through f but no backward pass did: your code takes the gradient of a "
    "JVP (reverse-over-forward). It gives H v too, since H is symmetric, but this "
    "exercise asks for the other order: forward mode over the gradient.",
    "swap the two: the JVP goes outside, around the gradient of f.",
    HVP.recipe,
)
REVERSE_OVER_REVERSE = Hint(
    "no JVP went through f: your code takes a gradient of a gradient (reverse-over-"
    "reverse, as torch.autograd.functional.hvp does); this exercise asks for a JVP of "
    "the gradient.",
    HVP.nudge,
    HVP.recipe,
)

FINITE_DIFFERENCES = Hint(
    "two gradients and no JVP: a difference of gradients, (∇f(x + εv) − ∇f(x)) / ε, "
    "only approximates H v (up to rounding it is exact only for a quadratic f); a JVP of "
    "the gradient has no ε error.",
    HVP.nudge,
    HVP.recipe,
)


def _forward_over_reverse(passes: Passes) -> bool:
    """One unbatched JVP, followed at once by an unbatched backward pass (the gradient's).

    Other unbatched backward passes may come before or after it: a plain gradient, as
    `torch.func.linearize(grad(f), x)` computes besides its JVP.
    """
    if passes.forward != [1] or any(k != 1 for k in passes.backward):
        return False
    after = passes.modes.index("forward") + 1
    return passes.modes[after : after + 1] == ["backward"]


def _method_hint(passes: Passes) -> Hint | None:
    """The hint for the method the passes show, or None for forward-over-reverse."""
    if _forward_over_reverse(passes):
        return None
    if any(k != 1 for k in passes.forward):
        return FORMED_H
    if not passes.forward:
        return FINITE_DIFFERENCES if len(passes.backward) > 1 else REVERSE_OVER_REVERSE
    return HVP if passes.backward else REVERSE_OVER_FORWARD


def _expect_forward_over_reverse(what: str, passes: Passes) -> None:
    """One JVP through f, then the backward pass of the gradient it differentiates."""
    hint = _method_hint(passes)
    if hint is None:
        return
    with hinted(hint):
        raise Mismatch(
            f"{what}: passes through f: expected 1 JVP, then 1 backward pass (forward "
            f"mode over the gradient), got {said(passes)}"
        )


def _hvp_mistake(got: object, f: Callable, x: torch.Tensor, v: torch.Tensor) -> Hint | None:
    """The hint for a known wrong result: jvp's whole pair, ∇f(x), x and v swapped; or None.

    (A wrong result of another kind gets the hint of the method its passes show.)
    """
    if isinstance(got, (tuple, list)) and len(got) == 2:
        return PAIR
    if not (isinstance(got, torch.Tensor) and got.shape == x.shape):
        return None
    got = got.detach().double()
    if torch.allclose(got, torch.func.grad(f)(x)):
        return GRADIENT_NOT_HVP
    if torch.allclose(got, torch.func.jvp(torch.func.grad(f), (v,), (x,))[1]):
        return SWAPPED
    return None


@learner_check
def check_hvp(hvp: Callable[..., Any]) -> Verdict:
    """Exercise 5.3: `hvp(f, x, v)` is H v by forward-over-reverse (`jvp` of `grad`).

    Compared with `hessian(f)(x)` contracted with `v`; the passes through `f`'s output
    must be one unbatched JVP followed by one backward pass: the JVP reaches `f` in the
    forward pass and then rides on the backward pass of the gradient (a plain gradient
    besides, as `linearize` computes, is allowed). Reverse-over-forward (no backward pass
    through `f`), reverse-over-reverse (no JVP) and forming H (a JVP carrying n tangents)
    are each told apart, and so are jvp's whole pair, the gradient, and x and v swapped.
    """

    def body():
        for seed, (what, f, shape) in enumerate(_hvp_cases()):
            x, v = _random(*shape, seed=seed), _random(*shape, seed=seed + 10)
            H = torch.func.hessian(f)(x).reshape(x.numel(), x.numel())
            expected = (H @ v.reshape(-1)).reshape(shape)
            counted, passes = count_passes(f)
            got = call(what, hvp, counted, x, v)
            with hinted(_hvp_mistake(got, f, x, v) or _method_hint(passes) or HVP):
                expect_close(got, expected, what, rtol=1e-9)
            _expect_forward_over_reverse(what, passes)
        return "H v right on 3 functions, by one JVP through one backward pass"

    return check("Exercise 5.3 (hvp)", body, hint=HVP)


# (name, op on Duals or torch tensors, the inputs where it is tried)
DUAL_OPS = [
    ("a + b", lambda a, b: a + b, [(0.5, -2.0), (3.0, 1.5)]),
    ("a * b", lambda a, b: a * b, [(0.5, -2.0), (3.0, 1.5)]),
    ("a * a", lambda a: a * a, [(-1.5,), (2.0,)]),
    ("a ** 3", lambda a: a**3, [(-1.5,), (2.0,)]),
    ("a ** -1", lambda a: a**-1, [(-1.5,), (2.0,)]),
    ("a ** 0.5", lambda a: a**0.5, [(0.7,), (2.0,)]),
    ("a ** 0", lambda a: a**0, [(0.0,), (2.0,)]),
    ("a.exp()", lambda a: a.exp(), [(-1.5,), (2.0,)]),
    ("a.log()", lambda a: a.log(), [(0.3,), (2.0,)]),
    ("a.tanh()", lambda a: a.tanh(), [(-1.5,), (0.0,), (30.0,)]),
    ("a.relu()", lambda a: a.relu(), [(-1.5,), (0.0,), (2.0,)]),
    ("a.sigmoid()", lambda a: a.sigmoid(), [(-1000.0,), (-1.5,), (2.0,), (1000.0,)]),
    ("a - b / a", lambda a, b: a - b / a, [(0.5, -2.0), (3.0, 1.5)]),
    ("2 / a - 1", lambda a: 2 / a - 1, [(0.5,), (-3.0,)]),
]

TANGENTS = (0.75, -1.25)


def _chain_rule(expression: str, function: str, derivative: str, recipe: str) -> Hint:
    """The hint for a one-input op: its tangent is its derivative times the incoming one."""
    return Hint(
        f"the tangent of {expression} is the derivative of {function} at a's value, times "
        "a's own tangent a′ (the chain rule).",
        derivative,
        recipe,
    )


SIGMOID_RECIPE = (
    "e = math.exp(-abs(self.data)); s = 1 / (1 + e) if self.data >= 0 else e / (1 + e); "
    "Dual(s, s * (1 - s) * self.tangent)."
)
# The hint for each expression of DUAL_OPS: its tangent rule, in three steps.
DUAL_HINTS = {
    "a + b": Hint(
        "a sum's tangent: how fast a + b moves when a moves at the speed a′ and b at b′.",
        "(a + a′ε) + (b + b′ε) = (a + b) + (a′ + b′)ε.",
        "Dual(self.data + other.data, self.tangent + other.tangent).",
    ),
    "a * b": Hint(
        "a product's tangent has one term for each factor (and a value used twice, "
        "a * a, gets both terms).",
        "expand (a + a′ε)(b + b′ε) and drop ε², which is 0.",
        "Dual(self.data * other.data, self.tangent * other.data + self.data * other.tangent).",
    ),
    "a ** k": _chain_rule(
        "a ** k (k a number)",
        "aᵏ",
        "d(aᵏ)/da = k·aᵏ⁻¹.",
        "Dual(self.data ** k, k * self.data ** (k - 1) * self.tangent), with the slope 0 "
        "when k == 0.",
    ),
    "a ** 0": Hint(
        "a ** 0 is the constant 1, so its tangent is 0 everywhere, at a = 0 too; there the "
        "power rule k·aᵏ⁻¹ computes 0 · 0⁻¹, which Python refuses (ZeroDivisionError).",
        "give k == 0 its own case before using k·aᵏ⁻¹.",
        "slope = k * self.data ** (k - 1) if k != 0 else 0.0; "
        "Dual(self.data ** k, slope * self.tangent).",
    ),
    "a.exp()": _chain_rule(
        "a.exp()", "exp", "exp′(a) = exp(a).", "e = math.exp(self.data); Dual(e, e * self.tangent)."
    ),
    "a.log()": _chain_rule(
        "a.log()",
        "log",
        "log′(a) = 1/a.",
        "Dual(math.log(self.data), self.tangent / self.data).",
    ),
    "a.tanh()": _chain_rule(
        "a.tanh()",
        "tanh",
        "tanh′(a) = 1 − tanh²(a).",
        "t = math.tanh(self.data); Dual(t, (1 - t * t) * self.tangent).",
    ),
    "a.relu()": _chain_rule(
        "a.relu()",
        "relu",
        "relu′(a) is 1 where a > 0 and 0 elsewhere: at a = 0 torch takes the slope 0.",
        "Dual(max(self.data, 0.0), self.tangent if self.data > 0 else 0.0).",
    ),
    "a.sigmoid()": _chain_rule(
        "a.sigmoid()",
        "σ",
        "σ′(a) = σ(a)(1 − σ(a)).",
        SIGMOID_RECIPE,
    ),
    "composite": Hint(
        "this expression is built from your __add__ and __mul__ (with the subtraction and "
        "division written for you): a wrong rule there shows up here.",
        "(a + a′ε) + (b + b′ε) = (a + b) + (a′ + b′)ε and (a + a′ε)(b + b′ε) = ab + (a′b + ab′)ε.",
        "__add__: Dual(a + b, a′ + b′); __mul__: Dual(a·b, a′·b + a·b′).",
    ),
}
DUAL_HINTS["a * a"] = DUAL_HINTS["a * b"]
for _k in ("3", "-1", "0.5"):
    DUAL_HINTS[f"a ** {_k}"] = DUAL_HINTS["a ** k"]
DUAL_HINTS["a - b / a"] = DUAL_HINTS["2 / a - 1"] = DUAL_HINTS["composite"]
SIGMOID_OVERFLOW = Hint(
    "at a = ±1000 the textbook forms of σ need e¹⁰⁰⁰ (1 / (1 + e⁻ᵃ) at a = −1000, "
    "eᵃ / (1 + eᵃ) at a = 1000), far beyond the largest float (about 1.8e308): compute σ "
    "from an exponential that never exceeds 1.",
    "e = exp(−|a|) is at most 1: σ(a) = 1 / (1 + e) for a ≥ 0 and e / (1 + e) for a < 0; "
    "then σ′ = σ(1 − σ).",
    SIGMOID_RECIPE,
)
# The general hint of Exercise 5.4: every rule, sigmoid's too, in its recipe.
DUAL_RULES = Hint(
    "every op's tangent is its derivative at the input's value, times the input's tangent "
    "(the chain rule); a product's has one term per factor.",
    "(a + a′ε)(b + b′ε) = ab + (a′b + ab′)ε, and g(a + a′ε) = g(a) + g′(a)·a′ε for any smooth g.",
    "(a + b)′ = a′ + b′; (a·b)′ = a′·b + a·b′; (aᵏ)′ = k·aᵏ⁻¹·a′ (0 when k = 0); "
    "exp(a)′ = exp(a)·a′; log(a)′ = a′/a; tanh(a)′ = (1 − tanh²a)·a′; relu(a)′ = a′ "
    "where a > 0, else 0; σ(a)′ = σ(a)(1 − σ(a))·a′, with σ computed from exp(−|a|).",
)
RETURN_A_DUAL = Hint(
    "each op returns a new Dual: a value and, beside it, its tangent.",
    "build the result with Dual(value, tangent).",
    "e.g. __add__: return Dual(self.data + other.data, self.tangent + other.tangent).",
)
# The methods of Exercise 5.4, each with a call that runs it.
DUAL_METHODS = {
    "__add__": lambda a, b: a + b,
    "__mul__": lambda a, b: a * b,
    "__pow__": lambda a, b: a**2,
    "exp": lambda a, b: a.exp(),
    "log": lambda a, b: a.log(),
    "tanh": lambda a, b: a.tanh(),
    "relu": lambda a, b: a.relu(),
    "sigmoid": lambda a, b: a.sigmoid(),
}


def unwritten_methods(Dual: type) -> list[str]:
    """The methods of `Dual` (Exercise 5.4) that still raise `NotImplementedError`."""
    missing = []
    for name, run in DUAL_METHODS.items():
        try:
            run(Dual(0.5, 0.75), Dual(2.0, -1.25))
        except NotImplementedError:
            missing.append(name)
        except Exception:  # written, but wrong: the check says how
            pass
    return missing


def _not_done(missing: list[str], exercise: str = "") -> NotDoneYet:
    """ "not done yet", naming the methods of `Dual` that still raise."""
    if len(missing) == len(DUAL_METHODS):
        return NotDoneYet(f"None of Dual's methods{exercise} is written yet.")
    names = ", ".join(f"Dual.{name}" for name in missing)
    verb = "raises" if len(missing) == 1 else "raise"
    return NotDoneYet(f"{names}{exercise} still {verb} NotImplementedError.")


def _torch_jvp(op, values):
    primals = tuple(torch.tensor(v, dtype=torch.float64) for v in values)
    tangents = tuple(torch.tensor(t, dtype=torch.float64) for t in TANGENTS[: len(values)])
    value, tangent = torch.func.jvp(op, primals, tangents)
    return value.item(), tangent.item()


def _check_dual_op(Dual: type, name: str, op: Callable, values: tuple) -> None:
    """One expression of DUAL_OPS at one point: a Dual with torch's value and tangent."""
    pairs = list(zip(values, TANGENTS[: len(values)], strict=True))
    inputs = [call(f"Dual({v}, {t})", Dual, v, t) for v, t in pairs]
    args = ", ".join(f"{n}=Dual({v}, {t})" for n, (v, t) in zip("ab", pairs, strict=False))
    what = f"{name} at {args}"
    hint = DUAL_HINTS[name]
    if name == "a.sigmoid()" and abs(values[0]) >= 1000:
        hint = SIGMOID_OVERFLOW
    with hinted(hint):
        out = call(what, op, *inputs)
    with hinted(RETURN_A_DUAL):
        expect(
            hasattr(out, "data") and hasattr(out, "tangent"),
            f"{what}: expected a Dual, got {describe(out)}",
        )
    value, tangent = _torch_jvp(op, values)
    with hinted(hint):
        expect(
            all(math.isfinite(float(getattr(out, k))) for k in ("data", "tangent")),
            f"{what}: expected finite data and tangent, got {describe(out)}",
        )
        expect_close(float(out.data), value, f"{what}: data", rtol=1e-12)
        expect_close(float(out.tangent), tangent, f"{what}: tangent", rtol=1e-12)


@learner_check
def check_dual_ops(Dual: type) -> Verdict:
    """Exercise 5.4: every op of `Dual` carries the right value and tangent.

    Each op is tried at a few points (0 for relu and `** 0`, ±1000 for sigmoid) with
    tangents other than 1, against `torch.func.jvp` in float64; a failure gets the hint
    of its own op. The ops already written are checked even while others still raise
    `NotImplementedError`; the verdict then says "not done yet" and names those.
    """

    def body():
        missing = unwritten_methods(Dual)
        for name, op, points in DUAL_OPS:
            for values in points:
                try:
                    _check_dual_op(Dual, name, op, values)
                except NotImplementedError:
                    if not missing:
                        raise
        if missing:
            raise _not_done(missing)
        return f"data and tangent match torch.func.jvp for {len(DUAL_OPS)} expressions"

    return check("Exercise 5.4 (Dual)", body, hint=DUAL_RULES)


def jacobian_cases():
    """(description, f, xs): f maps a list of n numbers to a list of m numbers.

    Written with the ops that `Dual`, the Chapter 4 `Value` and torch tensors share.
    """
    return [
        (
            "f(x) = [x0·x1 + exp(x2), tanh(x1²) - x0 / x2]",
            lambda x: [x[0] * x[1] + x[2].exp(), (x[1] ** 2).tanh() - x[0] / x[2]],
            [0.5, -1.2, 2.0],
        ),
        (
            "f(x) = [sigmoid(x0) · log(x1), relu(x0 - x1), x1 ** 3]",
            lambda x: [x[0].sigmoid() * x[1].log(), (x[0] - x[1]).relu(), x[1] ** 3],
            [1.7, 0.4],
        ),
    ]


def value_jacobian(Value, f, xs):
    """J by reverse mode with a Chapter 4 `Value` engine: one backward pass per output."""
    rows = []
    for i in range(len(f([Value(x) for x in xs]))):
        leaves = [Value(x) for x in xs]
        f(leaves)[i].backward()
        rows.append([leaf.grad for leaf in leaves])
    return np.array(rows)


DUAL_JACOBIAN = Hint(
    "column j of J says how every output moves when input j alone moves: the outputs' "
    "tangents when input j has tangent 1 and every other input tangent 0.",
    "run f once per input j, on Duals whose tangents are the one-hot e_j, and collect "
    "the outputs' tangents as column j.",
    "columns = [[out.tangent for out in f([Dual(x, float(i == j)) for i, x in "
    "enumerate(xs)])] for j in range(len(xs))]; return np.array(columns).T.",
)
EXTRA_RUNS = Hint(
    "f ran more often than once per input: one run with one-hot tangents gives a whole "
    "column, every output's tangent, so no other run is needed (not even one to learn m).",
    "collect the n columns in a list; each has m entries, and np.array(columns).T puts "
    "them in place.",
    DUAL_JACOBIAN.recipe,
)
TRANSPOSED = Hint(
    "J has one row per output and one column per input; each run of f gives a column.",
    "you stacked the columns as rows: transpose.",
    DUAL_JACOBIAN.recipe,
)


@learner_check
def check_dual_jacobian(dual_jacobian: Callable[..., Any], Dual: type) -> Verdict:
    """Exercise 5.5: `dual_jacobian(f, xs)` is J by one forward pass of `Dual` per input.

    Compared with `jacrev` and with the Jacobian by VJPs of the Chapter 4 reference
    engine (`course.notebooks.engine().Value`); `f` must run exactly n times, on Duals.
    While `Dual` (Exercise 5.4) still has methods that raise, "not done yet" names them.
    """
    from course.notebooks import engine

    def body():
        for what, f, xs in jacobian_cases():
            runs = []

            def counted(x, f=f, runs=runs):
                runs.append([type(v).__name__ for v in x])
                return f(x)

            try:
                got = call(what, dual_jacobian, counted, list(xs))
            except NotImplementedError:
                missing = unwritten_methods(Dual)
                if missing and runs:  # dual_jacobian is written: Dual is not, yet
                    raise _not_done(missing, " (Exercise 5.4)") from None
                raise
            expected = jacrev(lambda t, f=f: torch.stack(f(list(t))))(
                torch.tensor(xs, dtype=torch.float64)
            ).numpy()
            shape = np.shape(got) if isinstance(got, np.ndarray) else None
            with hinted(TRANSPOSED if shape == expected.T.shape else DUAL_JACOBIAN):
                expect_close(got, expected, what, rtol=1e-12, dtype=False)
            by_vjps = value_jacobian(engine().Value, f, xs)
            expect_close(got, by_vjps, f"{what}: against Chapter 4's Jacobian by VJPs", rtol=1e-12)
            with hinted(EXTRA_RUNS if len(runs) > len(xs) else DUAL_JACOBIAN):
                expect_equal(len(runs), len(xs), f"{what}: number of runs of f (one per input)")
            expect(
                all(name == Dual.__name__ for run in runs for name in run),
                f"{what}: f was called with {runs[0]}, expected a list of Duals",
            )
        return "J right on 2 functions with one forward pass per input; equal to J by VJPs"

    return check("Exercise 5.5 (dual_jacobian)", body, hint=DUAL_JACOBIAN)
