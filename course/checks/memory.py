"""Checks for the exercises of Chapter 7 (what training keeps in memory).

The references are measured, not computed: saved-tensor hooks count what autograd saves
(7.1), plain autograd gives the gradients a checkpoint must reproduce (7.2),
`torch.amp.GradScaler` runs the same steps as the learner's scaler (7.3), and
`torch.utils.checkpoint` the same block as the learner's engine checkpoint (7.4).
"""

import gc
import math
import numbers
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from itertools import pairwise
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from course.checks import (
    Hint,
    Mismatch,
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    generator,
    hinted,
    learner_check,
    random_tensor,
)
from course.memory import MemoryMeter, mlp, saved_tensors, storage_bytes

# ---- Exercise 7.1: the bytes backward saves --------------------------------------------

SAVED_CASES = [
    ((784, 512, 10), 64, "relu", torch.float32),
    ((20, 30, 30, 5), 8, "tanh", torch.float64),
    ((16, 4), 3, "relu", torch.float32),
    ((10, 20, 20, 3), 5, "gelu", torch.float32),
    ((7, 9, 2), 3, "sigmoid", torch.bfloat16),
    ((12, 6, 6, 6, 2), 4, "gelu", torch.bfloat16),
]
"""(sizes, batch, activation, dtype) of Exercise 7.1: one layer, deep, every activation."""

SAVED_HINT = Hint(
    "Go layer by layer and ask what each one needs for its backward: a linear layer, for "
    "its weight's gradient; the activation, for its own derivative.",
    "A linear layer saves its input. ReLU, tanh and sigmoid save their output, which is "
    "also the next linear layer's input: one tensor, counted once. GELU's derivative needs "
    "its input, a different tensor from its output.",
    "dtype.itemsize × batch × (sizes[0] + k × sum(sizes[1:-1])), with k = 2 for GELU and "
    "k = 1 for the others; the last layer's output is not saved (sum needs nothing).",
)
SHARED_HINT = Hint(
    "You counted two tensors per hidden layer. ReLU, tanh and sigmoid keep one: their "
    "output, which the next linear layer saves too.",
    "Count storages, not saves: what two operations save is kept once; and these "
    "activations need their output for their derivative, not their input.",
    SAVED_HINT.recipe,
)
INPUT_HINT = Hint(
    "You left out a tensor that the first layer saves, though it is not an activation of "
    "the network.",
    "The first linear layer needs its input to compute its weight's gradient: the batch is "
    "saved too.",
    SAVED_HINT.recipe,
)
GELU_HINT = Hint(
    "Right for ReLU, tanh and sigmoid; GELU differs. What does GELU's derivative need?",
    "GELU's derivative is a function of its input, so GELU saves its input (the linear "
    "layer's output), and the next layer saves GELU's output: two tensors per hidden layer.",
    SAVED_HINT.recipe,
)
DTYPE_HINT = Hint(
    "The count is right for float32 and wrong for the other dtypes.",
    "A float64 number takes 8 bytes, a bfloat16 one 2: dtype.itemsize says it.",
    SAVED_HINT.recipe,
)
PARAMETERS_HINT = Hint(
    "You counted the weights. The exercise leaves them out: they live whether or not "
    "backward needs them.",
    "Count only what the forward pass creates and backward keeps.",
    SAVED_HINT.recipe,
)
WEIGHTS_INSTEAD_HINT = Hint(
    "You counted the weights instead of what the forward pass makes for backward: the "
    "weights live anyway, and what backward keeps grows with the batch.",
    "Leave the parameters out. Count, for each example of the batch, the tensors the layers "
    "save: the first layer's input and what each activation function keeps.",
    SAVED_HINT.recipe,
)
ACTIVATION_OUTPUTS_HINT = Hint(
    "You counted the batch, which the first layer saves, and nothing that the activation "
    "functions save.",
    "Each activation function keeps what its derivative needs: ReLU, tanh and sigmoid their "
    "output (which the next linear layer saves too), GELU its input as well.",
    SAVED_HINT.recipe,
)
BATCH_HINT = Hint(
    "Your count is the bytes of a single example: every saved tensor has one row per "
    "example of the batch.",
    "A saved activation of a layer of width w holds batch × w numbers.",
    SAVED_HINT.recipe,
)
BITS_HINT = Hint(
    "Your count is 8 times too large: it counts bits, not bytes.",
    "dtype.itemsize is the bytes of one number; torch.finfo(dtype).bits is its bits.",
    SAVED_HINT.recipe,
)
OUTPUT_HINT = Hint(
    "You counted the network's output, which nothing saves here.",
    "The loss is model(x).sum(), and the derivative of a sum needs no tensor, only a shape.",
    SAVED_HINT.recipe,
)


def _measured_saved_bytes(sizes, batch, activation, dtype) -> int:
    """What autograd saves for `mlp(sizes, activation, dtype)(x).sum()`, measured."""
    model = mlp(sizes, activation, dtype)
    x = torch.zeros(batch, sizes[0], dtype=dtype)
    _, saved = saved_tensors(lambda: model(x).sum())
    return storage_bytes(saved, leave_out=model.parameters())


def _mistakes(sizes, batch, activation, dtype) -> list[tuple[int, Hint]]:
    """The answer each known mistake gives for one case, with its hint."""
    hidden = sum(sizes[1:-1])
    per_layer = 2 if activation == "gelu" else 1
    size = dtype.itemsize
    right = size * batch * (sizes[0] + per_layer * hidden)
    weights = sum(m * n for m, n in pairwise(sizes))
    parameters = weights + sum(sizes[1:])
    return [
        (right + size * batch * hidden, SHARED_HINT if activation != "gelu" else GELU_HINT),
        (right - size * batch * sizes[0], INPUT_HINT),
        (size * batch * (sizes[0] + hidden), GELU_HINT),
        (4 * batch * (sizes[0] + per_layer * hidden), DTYPE_HINT),
        (right + size * parameters, PARAMETERS_HINT),
        (right + size * weights, PARAMETERS_HINT),  # the weights without the biases
        (size * parameters, WEIGHTS_INSTEAD_HINT),
        (size * weights, WEIGHTS_INSTEAD_HINT),
        (size * batch * sizes[0], ACTIVATION_OUTPUTS_HINT),
        (right // batch, BATCH_HINT),
        (8 * right, BITS_HINT),
        (right + size * batch * sizes[-1], OUTPUT_HINT),
    ]


def _whole_number(value: Any) -> bool:
    """An int, or a float, NumPy number or one-element tensor holding a whole number."""
    if isinstance(value, bool):
        return False
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            return False
        value = value.item()
    return isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()


class _RanTheNetwork(TorchDispatchMode):
    """Notes an operation that makes a (batch, width) tensor: a layer run on a batch."""

    def __init__(self, batch: int, widths) -> None:
        super().__init__()
        self.shapes = {(batch, w) for w in widths}
        self.seen: tuple | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and tuple(t.shape) in self.shapes and self.seen is None:
                self.seen = tuple(t.shape)
        return out


@learner_check
def check_saved_bytes(saved_bytes: Callable[..., Any]) -> Verdict:
    """Exercise 7.1: `saved_bytes(sizes, batch, activation, dtype)` predicts what autograd
    saves for `mlp(sizes, activation, dtype)(x).sum()`, x of shape (batch, sizes[0]),
    counting each storage once and not the weights; measured with saved-tensor hooks."""

    def body():
        for sizes, batch, activation, dtype in SAVED_CASES:
            what = f"saved_bytes({sizes}, {batch}, {activation!r}, {dtype})"
            watch = _RanTheNetwork(batch, sizes[1:])
            with watch:
                got = call(what, saved_bytes, sizes, batch, activation, dtype)
            expect(
                watch.seen is None,
                f"{what} ran a layer on a batch (it made a tensor of shape {watch.seen}): "
                "predict the bytes from the sizes, without running the network",
            )
            expect(
                _whole_number(got),
                f"{what}: expected a whole number of bytes, got {describe(got)}",
            )
            got = int(got)
            expected = _measured_saved_bytes(sizes, batch, activation, dtype)
            mistakes = _mistakes(sizes, batch, activation, dtype)
            mistake = next((h for wrong, h in mistakes if got == wrong != expected), None)
            with hinted(mistake) if mistake else nullcontext():
                expect(got == expected, f"{what}: expected {expected:,} bytes, got {got:,}")
        return f"equal to what the hooks measure on {len(SAVED_CASES)} networks"

    return check("Exercise 7.1 (saved_bytes)", body, hint=SAVED_HINT)


# ---- Exercise 7.2: a checkpoint that torch.autograd.grad sees through -------------------

CHECKPOINT_HINT = Hint(
    "Start from the chapter's Checkpoint: its forward keeps only x, its backward runs the "
    "block again with recording on. What is missing is the weights' gradients, which must "
    "leave backward as return values.",
    "Pass the block's parameters to apply() as inputs too, so that the Function returns one "
    "gradient per input: None for the block, then x's, then each parameter's. In backward, "
    "torch.autograd.grad(out, [x, *params], grad_output) computes them without touching "
    ".grad.",
    "forward(ctx, block, x, *params): save x, return block(x). backward(ctx, g): x = "
    "x.detach().requires_grad_(x.requires_grad); with torch.enable_grad(): out = "
    "ctx.block(x); grads = torch.autograd.grad(out, the inputs that require grad, g); return "
    "None and one gradient (or None) per x and parameter. checkpoint_by_hand(block, x) "
    "returns YourFunction.apply(block, x, *block.parameters()).",
)
REENTRANT_HINT = Hint(
    "Your backward gives the weights their gradients by a backward pass of its own, into "
    ".grad: torch.autograd.grad, which returns gradients instead, never sees them.",
    "Make the parameters inputs of your Function, and return their gradients from "
    "backward, as you return x's.",
    CHECKPOINT_HINT.recipe,
)
TORCH_CHECKPOINT_HINT = Hint(
    "torch.utils.checkpoint does this for you; the exercise is to write it: an "
    "autograd.Function of your own whose forward keeps only the input.",
    "Subclass torch.autograd.Function, with a forward and a backward as static methods, and "
    "call it with .apply.",
    CHECKPOINT_HINT.recipe,
)
KEEPS_HINT = Hint(
    "Your forward pass keeps the block's activations alive: nothing was saved by dropping them.",
    "Inside an autograd.Function's forward, recording is off: call the block there, and "
    "save only its input.",
    CHECKPOINT_HINT.recipe,
)
RECOMPUTE_HINT = Hint(
    "Backward must run the block a second time, with recording on, to have a graph to "
    "differentiate: the first run kept nothing.",
    "In backward, wrap the second call in torch.enable_grad() (backward runs with "
    "recording off by default) and call it on a detached copy of x that requires grad.",
    CHECKPOINT_HINT.recipe,
)
AGAIN_HINT = Hint(
    "The block ran more than once in backward: one recomputation, with recording on, gives "
    "the graph that every gradient needs.",
    "Run the block once in backward and differentiate that graph with torch.autograd.grad; "
    "torch.utils.checkpoint inside your backward runs it yet again.",
    CHECKPOINT_HINT.recipe,
)
RETURNS_HINT = Hint(
    "Your backward returned gradients that do not match the inputs of forward: autograd "
    "wants one per input, in the same order.",
    "forward(ctx, block, x, *params) has 2 + len(params) inputs: return None for the block, "
    "then x's gradient (None if x needs none), then one per parameter, in the order of "
    "block.parameters().",
    CHECKPOINT_HINT.recipe,
)
TWICE_HINT = Hint(
    "The weights' gradients came out twice as large: they were counted twice.",
    "A backward pass inside your backward fills .grad, and the gradients you return are "
    "added to .grad again: use torch.autograd.grad inside, which fills nothing.",
    CHECKPOINT_HINT.recipe,
)


def _checkpoint_case(requires_grad: bool):
    """A float64 block that counts its calls (and the grad mode of each), a head, an input."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh()).double()
    head = nn.Linear(8, 3).double()
    calls: list[bool] = []
    block.register_forward_pre_hook(lambda module, args: calls.append(torch.is_grad_enabled()))
    x = random_tensor(5, 6, seed=7).requires_grad_(requires_grad)
    return block, head, x, calls


def _reference_grads(block, head, x):
    """Gradients of x (if it requires grad) and of every weight, by plain autograd."""
    wrt = [*([x] if x.requires_grad else []), *block.parameters(), *head.parameters()]
    return torch.autograd.grad(head(block(x)).sum(), wrt)


def _by_torch_checkpoint(out: torch.Tensor) -> bool:
    """Whether `out` came from torch.utils.checkpoint rather than a Function of one's own."""
    node = out.grad_fn
    if not isinstance(node, torch.autograd.function.BackwardCFunction):
        return True
    return node._forward_cls.__module__.startswith("torch.")


def _forward_checks(checkpoint_by_hand, block, head, x, calls, what):
    """Run the learner's forward; check value, kind and kept bytes; return the output."""
    with MemoryMeter() as meter:
        out = call(what, checkpoint_by_hand, block, x)
        kept = meter.current
    expect(
        isinstance(out, torch.Tensor),
        f"{what}: expected a tensor, got {describe(out)}",
    )
    with torch.no_grad():
        expect_close(out, block(x), f"{what}: the output", rtol=1e-12, atol=1e-14)
    calls.pop()  # the reference call just above
    expect(
        out.requires_grad and out.grad_fn is not None,
        f"{what}: the output does not require grad, so no gradient can reach the block",
    )
    with hinted(TORCH_CHECKPOINT_HINT):
        expect(
            not _by_torch_checkpoint(out),
            f"{what}: the output was made by {type(out.grad_fn).__name__}, not by an "
            "autograd.Function of your own",
        )
    with hinted(KEEPS_HINT):
        expect(
            kept <= out.untyped_storage().nbytes() + x.untyped_storage().nbytes(),
            f"{what}: {kept:,} bytes are still alive after forward, more than the "
            f"block's output ({out.untyped_storage().nbytes():,} bytes) and a copy of x",
        )
        expect(
            calls == [False],
            f"{what}: in forward the block ran {len(calls)} time(s), recording "
            f"{['off' if not c else 'on' for c in calls]}; expected once, with recording off",
        )
    return out


def _backward_error_hint(error: RuntimeError) -> Hint:
    """The hint for an error that autograd raised on the learner's backward: gradients that
    do not fit forward's inputs, or (most often) a block run again without recording."""
    text = str(error)
    if "returned an invalid gradient" in text or "incorrect number of gradients" in text:
        return RETURNS_HINT
    return RECOMPUTE_HINT


def _compare(got, expected, names, what):
    """Each gradient against plain autograd (float64, rtol 1e-12)."""
    for g, e, name in zip(got, expected, names, strict=True):
        expect(g is not None, f"{what}: no gradient reached {name}")
        twice = torch.allclose(g, 2 * e, rtol=1e-12, atol=1e-14) and not torch.allclose(g, e)
        with hinted(TWICE_HINT) if twice else nullcontext():
            expect_close(g, e, f"{what}: the gradient of {name}", rtol=1e-12, atol=1e-14)


@learner_check
def check_checkpoint_by_hand(checkpoint_by_hand: Callable[..., Any]) -> Verdict:
    """Exercise 7.2: `checkpoint_by_hand(block, x)` is block(x) through an autograd.Function
    of the learner's that keeps only x, runs the block again in backward, and returns the
    parameters' gradients, so that both `.backward()` and `torch.autograd.grad` give plain
    autograd's gradients (float64, rtol 1e-12). torch.utils.checkpoint does not pass."""

    def body():
        for requires_grad in (True, False):
            block, head, x, calls = _checkpoint_case(requires_grad)
            expected = _reference_grads(block, head, x)
            calls.clear()  # the reference's call
            names = [
                *(["x"] if requires_grad else []),
                *(f"block.{n}" for n, _ in block.named_parameters()),
                *(f"head.{n}" for n, _ in head.named_parameters()),
            ]
            what = f"x {'requiring' if requires_grad else 'not requiring'} grad, .backward()"
            out = _forward_checks(checkpoint_by_hand, block, head, x, calls, what)
            wrt = [*([x] if requires_grad else []), *block.parameters(), *head.parameters()]
            try:
                head(out).sum().backward()
            except NotImplementedError:  # a RuntimeError: a backward still to write
                raise
            except RuntimeError as error:
                with hinted(_backward_error_hint(error)):
                    raise Mismatch(f"{what}: backward raised RuntimeError: {error}") from None
            with hinted(AGAIN_HINT if len(calls) > 2 else RECOMPUTE_HINT):
                expect(
                    calls == [False, True],
                    f"{what}: the block ran {len(calls)} time(s) in all, recording "
                    f"{['on' if c else 'off' for c in calls]}; expected twice: off in "
                    "forward, on in backward",
                )
            _compare([t.grad for t in wrt], expected, names, what)
            what = what.replace(".backward()", "torch.autograd.grad")
            for t in wrt:
                t.grad = None
            out = call(what, checkpoint_by_hand, block, x)
            with hinted(REENTRANT_HINT):
                try:
                    got = torch.autograd.grad(head(out).sum(), wrt)
                except NotImplementedError:
                    raise
                except RuntimeError as error:
                    raise Mismatch(f"{what}: it raised RuntimeError: {error}") from None
                filled = [n for n, t in zip(names, wrt, strict=True) if t.grad is not None]
                expect(
                    not filled,
                    f"{what}: your backward filled .grad of {', '.join(filled)}; "
                    "torch.autograd.grad must leave .grad alone",
                )
            _compare(got, expected, names, what)
        return (
            "keeps only the block's output, recomputes once in backward, gradients equal "
            "to plain autograd through .backward() and torch.autograd.grad"
        )

    return check("Exercise 7.2 (checkpoint_by_hand)", body, hint=CHECKPOINT_HINT)


# ---- Exercise 7.3: dynamic loss scaling -------------------------------------------------

SCALER_CONFIGS = [
    {"init_scale": 2.0**10, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2},
    {"init_scale": 2.0**6, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 3},
]
"""The settings Exercise 7.3 runs with, GradScaler's and the learner's alike."""
LOSS_FACTORS = [1.0, 1.0, 1.0, 1e38, 1.0, 1.0, math.nan, 1.0, 1.0, 1.0, 1.0, 1.0]
"""Each step's loss is multiplied by its factor: 1e38 overflows once scaled, NaN is NaN."""

SCALER_HINT = Hint(
    "Follow one step: the loss is multiplied by the scale before backward, so every "
    "gradient is too. What must happen before the optimizer uses them, and when must it "
    "not use them at all?",
    "step: divide every gradient by the scale; if any is inf or NaN, do not call "
    "optimizer.step(). update: after a skipped step multiply the scale by backoff_factor "
    "and restart the count of good steps; after growth_interval good steps in a row, "
    "multiply it by growth_factor and restart the count.",
    "scale(loss) returns loss * self.value; step(optimizer) divides each p.grad by "
    "self.value, sets self.found = not all(torch.isfinite(p.grad).all()), and calls "
    "optimizer.step() only if not self.found; update() does: if self.found: self.value *= "
    "backoff; self.good = 0; else: self.good += 1, and if self.good == growth_interval: "
    "self.value *= growth; self.good = 0.",
)
UNSCALE_HINT = Hint(
    "The optimizer stepped with the scaled gradients: the step was scale times too large.",
    "Between backward and optimizer.step(), divide every gradient by the current scale.",
    SCALER_HINT.recipe,
)
SKIP_HINT = Hint(
    "A step with an inf or NaN gradient must be skipped entirely: the parameters and the "
    "optimizer's state stay as they were.",
    "Check every gradient with torch.isfinite (inf and NaN alike) and call optimizer.step() "
    "only if all are finite; zeroing the gradients is not skipping (momentum still moves).",
    SCALER_HINT.recipe,
)
SCHEDULE_HINT = Hint(
    "The parameters are right; the scale took another path. Look at when it grows and "
    "when it shrinks.",
    "Shrink by backoff_factor after every skipped step; grow by growth_factor only after "
    "growth_interval good steps in a row, counting from 0 again after a growth and after a "
    "skip; use the factors given to the constructor.",
    SCALER_HINT.recipe,
)


def _scaler_model():
    """A small float32 layer, its SGD with momentum, and a batch: the same for both sides."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(6, 4, generator=generator(3))
    return model, optimizer, x


def _scaler_step(scaler, model, optimizer, x, factor) -> None:
    """One training step with a loss scaler, GradScaler's protocol."""
    loss = factor * model(x).pow(2).mean()
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _current_scale(scaler, what: str) -> float:
    """The learner's scale, read through scale(): what a loss of 1 becomes."""
    value = call(f"{what}: scale(torch.tensor(1.0))", scaler.scale, torch.tensor(1.0))
    expect(
        isinstance(value, (torch.Tensor, float, int)) and not isinstance(value, bool),
        f"{what}: scale(loss) should return the scaled loss, got {describe(value)}",
    )
    return float(value)


def _state(model, optimizer):
    """The parameters and the momentum buffers, as they are now."""
    params = [p.detach().clone() for p in model.parameters()]
    buffers = [
        optimizer.state[p]["momentum_buffer"].clone()
        if "momentum_buffer" in optimizer.state[p]
        # no buffer before the first step that was taken
        else torch.zeros_like(p)
        for p in model.parameters()
    ]
    return params, buffers


def _compare_steps(mine, theirs, what: str, skipped: bool) -> None:
    """The learner's parameters and momentum against GradScaler's run, after one step
    that GradScaler took or (`skipped`) did not take."""
    names = ["weight", "bias", "weight's momentum", "bias's momentum"]
    with hinted(SKIP_HINT if skipped else UNSCALE_HINT):
        for got, expected, name in zip(
            [*mine[0], *mine[1]], [*theirs[0], *theirs[1]], names, strict=True
        ):
            expect_close(got, expected, f"{what}: {name}", rtol=1e-5, atol=1e-7)


@learner_check
def check_loss_scaler(LossScaler: Callable[..., Any]) -> Verdict:
    """Exercise 7.3: `LossScaler(init_scale, growth_factor, backoff_factor, growth_interval)`
    with `scale(loss)`, `step(optimizer)` and `update()` trains like `torch.amp.GradScaler`
    over a sequence of steps with an overflow and a NaN: the same parameters and momentum
    after every step (rtol 1e-5) and the same scale."""

    def body():
        for config in SCALER_CONFIGS:
            settings = ", ".join(f"{k}={v:g}" for k, v in config.items())
            scaler = call(f"LossScaler({settings})", LossScaler, **config)
            reference = torch.amp.GradScaler("cpu", **config)
            mine, ref = _scaler_model(), _scaler_model()
            for step, factor in enumerate(LOSS_FACTORS):
                what = f"LossScaler({settings}), step {step} (loss × {factor:g})"
                before = _state(*ref[:2])
                _scaler_step(reference, *ref, factor)
                after = _state(*ref[:2])
                skipped = all(torch.equal(a, b) for a, b in zip(before[0], after[0], strict=True))
                call(what, _scaler_step, scaler, *mine, factor)
                _compare_steps(_state(*mine[:2]), after, what, skipped)
                got = _current_scale(scaler, what)
                with hinted(SCHEDULE_HINT):
                    expect(
                        got == reference.get_scale(),
                        f"{what}: after update() the scale should be "
                        f"{reference.get_scale():g}, got {got:g}",
                    )
        steps = len(LOSS_FACTORS)
        return (
            f"the same parameters, momentum and scale as GradScaler over {steps} steps "
            f"(an overflow and a NaN among them), with {len(SCALER_CONFIGS)} settings"
        )

    return check("Exercise 7.3 (LossScaler)", body, hint=SCALER_HINT)


# ---- Exercise 7.4: a checkpoint for the Chapter 4 engine --------------------------------

ENGINE_HINT = Hint(
    "Your checkpoint's output is one node whose parents are the inputs; what it stores is "
    "the inputs and its own numbers. Its _backward must rebuild what forward threw away.",
    "Forward: run f on Tensors made from the inputs' data (outside any graph you keep) and "
    "keep only the result's data. _backward: run f again on fresh leaf Tensors holding the "
    "inputs' data, call backward on that result with out.grad (the parameters inside f "
    "accumulate their gradients there), then add each leaf's grad into its input's grad.",
    "first = f(*(Tensor(x.data) for x in inputs)); out = Tensor(first.data, "
    "first.requires_grad or any input requires grad, inputs, 'checkpoint'); in _backward: "
    "leaves = [Tensor(x.data, requires_grad=x.requires_grad) for x in inputs]; again = "
    "f(*leaves); again.backward(out.grad); for x, leaf in zip(inputs, leaves): if "
    "x.requires_grad: x.grad += leaf.grad.",
)
ENGINE_KEEPS_HINT = Hint(
    "After forward, intermediate results of f are still alive: the checkpoint kept what "
    "it should recompute.",
    "Keep only the numbers of f's result (first.data) in a new node whose parents are the "
    "inputs, and let the first run's graph go; don't let _backward refer to it.",
    ENGINE_HINT.recipe,
)
ENGINE_ACCUMULATE_HINT = Hint(
    "An input used elsewhere too lost part of its gradient.",
    "Add into x.grad (+=), as every _backward of the engine does: other paths contribute "
    "to it too.",
    ENGINE_HINT.recipe,
)
ENGINE_LEAVES_HINT = Hint(
    "When the input is itself the result of an operation, your backward also ran through "
    "what made it: the gradients upstream of the checkpoint came out wrong.",
    "Run f again on fresh leaf Tensors that hold the inputs' numbers, so that the inner "
    "backward stops at them; then add each leaf's grad into its input's grad, and let the "
    "outer backward carry it further.",
    ENGINE_HINT.recipe,
)
ENGINE_REQUIRES_HINT = Hint(
    "The weights inside f got no gradient: your output did not require grad when no input "
    "did, so backward never reached it.",
    "The output needs a gradient if any input does or if f's result does (its weights).",
    ENGINE_HINT.recipe,
)


def _engine_block(engine, seed: int = 0):
    """Weights as engine Tensors and as torch tensors (float64, the same numbers), a block
    f(x) = tanh(tanh(x W1ᵀ + b1) W2ᵀ + b2) in each, and a log of the engine block's calls:
    for each call, weak references to its intermediate results."""
    shapes = {"W1": (5, 4), "b1": (5,), "W2": (3, 5), "b2": (3,)}
    values = {n: random_tensor(*s, seed=seed + i) for i, (n, s) in enumerate(shapes.items())}
    mine = {n: engine.Tensor(v.numpy().copy(), requires_grad=True) for n, v in values.items()}
    theirs = {n: v.clone().requires_grad_() for n, v in values.items()}
    calls: list[list] = []

    def block(x):
        h = x @ mine["W1"].T
        h2 = h + mine["b1"]
        h3 = h2.tanh()
        h4 = h3 @ mine["W2"].T
        h5 = h4 + mine["b2"]
        calls.append([weakref.ref(t) for t in (h, h2, h3, h4, h5)])
        return h5.tanh()

    def torch_block(x):
        h = torch.tanh(x @ theirs["W1"].T + theirs["b1"])
        return torch.tanh(h @ theirs["W2"].T + theirs["b2"])

    return mine, theirs, block, torch_block, calls


def _engine_case(engine, checkpoint, x_requires_grad: bool, used_twice: bool, computed: bool):
    """One run of the learner's checkpoint against torch.utils.checkpoint; messages name
    the case. `computed`: x is tanh(x0) for a leaf x0, not a leaf itself."""
    what = (
        f"x {'requiring' if x_requires_grad else 'not requiring'} grad"
        + (", x also used outside the checkpoint" if used_twice else "")
        + (", x = tanh(x0) computed from a leaf x0" if computed else "")
    )
    mine, theirs, block, torch_block, calls = _engine_block(engine)
    x_values = random_tensor(6, 4, seed=11)
    c = random_tensor(3, seed=12)
    x0 = engine.Tensor(x_values.numpy().copy(), requires_grad=x_requires_grad)
    x = x0.tanh() if computed else x0
    out = call(f"{what}: checkpoint(f, x)", checkpoint, block, x)
    expect(isinstance(out, engine.Tensor), f"{what}: expected a Tensor, got {describe(out)}")
    gc.collect()
    expect(len(calls) == 1, f"{what}: forward ran f {len(calls)} times, expected once")
    alive = sum(ref() is not None for ref in calls[0])
    with hinted(ENGINE_KEEPS_HINT):
        expect(
            alive == 0,
            f"{what}: after forward, {alive} of f's 5 intermediate results are still alive",
        )
    tx0 = x_values.clone().requires_grad_(x_requires_grad)
    tx = tx0.tanh() if computed else tx0
    expected_out = torch.utils.checkpoint.checkpoint(torch_block, tx, use_reentrant=False)
    expect_close(
        out.data, expected_out.detach().numpy(), f"{what}: output", rtol=1e-12, dtype=False
    )
    loss = (out * c.numpy()).sum()
    torch_loss = (expected_out * c).sum()
    if used_twice:  # x also meets the output downstream: that path's backward runs first
        loss = loss + (x * out.sum(axis=1, keepdims=True)).sum()
        torch_loss = torch_loss + (tx * expected_out.sum(1, keepdim=True)).sum()
    with hinted(ENGINE_REQUIRES_HINT) if not x_requires_grad else nullcontext():
        expect(loss.requires_grad, f"{what}: the loss does not require grad")
    call(f"{what}: backward", loss.backward)
    torch_loss.backward()
    expect(len(calls) == 2, f"{what}: f ran {len(calls)} times in all, expected twice")
    for name, p in theirs.items():
        with hinted(ENGINE_REQUIRES_HINT) if mine[name].grad is None else nullcontext():
            expect(mine[name].grad is not None, f"{what}: {name} got no gradient")
        expect_close(
            mine[name].grad, p.grad.numpy(), f"{what}: grad of {name}", rtol=1e-10, dtype=False
        )
    if x_requires_grad:
        hint = ENGINE_LEAVES_HINT if computed else ENGINE_ACCUMULATE_HINT if used_twice else None
        name = "x0" if computed else "x"
        with hinted(hint) if hint else nullcontext():
            expect_close(
                x0.grad, tx0.grad.numpy(), f"{what}: grad of {name}", rtol=1e-10, dtype=False
            )


@learner_check
def check_engine_checkpoint(checkpoint: Callable[..., Any]) -> Verdict:
    """Exercise 7.4: `checkpoint(f, *inputs)` for the Chapter 4 engine: the same gradients
    as `torch.utils.checkpoint` (float64, rtol 1e-10), none of f's intermediate results
    alive after forward, f run once in forward and once more in backward."""
    from course.notebooks import engine as reference_engine

    engine = reference_engine()

    def body():
        cases = [
            (True, False, False),
            (False, False, False),
            (True, True, False),
            (True, False, True),
        ]
        for x_requires_grad, used_twice, computed in cases:
            _engine_case(engine, checkpoint, x_requires_grad, used_twice, computed)
        return (
            f"gradients equal to torch.utils.checkpoint's in {len(cases)} cases; nothing of "
            "f kept after forward; f run again in backward"
        )

    return check("Exercise 7.4 (checkpoint for the engine)", body, hint=ENGINE_HINT)
