"""The checks of Chapter 7 pass right answers (also written differently), report stubs,
and catch plausible wrong answers with a hint about their cause, in steps."""

from itertools import pairwise

import numpy as np
import pytest
import torch
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from course.checks import memory as checks
from course.memory import saved_tensors, storage_bytes
from course.notebooks import engine as reference_engine
from tests.check_cases import assert_hint_grows, table_tests

Tensor = reference_engine().Tensor


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 7.x is not done yet")


# ---- 7.1 ---------------------------------------------------------------------------------


def saved_bytes(sizes, batch, activation, dtype, *, mistake=None):
    """Right by default; `mistake` names a plausible wrong count."""
    per_layer = 2 if activation == "gelu" and mistake != "gelu like relu" else 1
    if mistake == "twice":
        per_layer = 2
    size = 4 if mistake == "four bytes" else dtype.itemsize
    first = 0 if mistake == "no input" else sizes[0]
    total = size * batch * (first + per_layer * sum(sizes[1:-1]))
    if mistake == "output":
        total += size * batch * sizes[-1]
    if mistake == "weights":
        total += size * sum(m * n + n for m, n in pairwise(sizes))
    if mistake == "weights without biases":
        total += size * sum(m * n for m, n in pairwise(sizes))
    if mistake == "weights instead":
        total = size * sum(m * n + n for m, n in pairwise(sizes))
    if mistake == "only the input":
        total = size * batch * sizes[0]
    if mistake == "one example":
        total //= batch
    if mistake == "bits":
        total *= 8
    return total


def saved_bytes_by_layers(sizes, batch, activation, dtype):
    """Right, written differently: a loop over the layers, NumPy integers, finfo bits."""
    bytes_per_number = np.int64(torch.finfo(dtype).bits // 8)
    total = np.int64(batch) * sizes[0] * bytes_per_number  # the first layer's input
    for width in sizes[1:-1]:
        kept = 2 if activation == "gelu" else 1  # GELU keeps its input and its output
        total += kept * batch * width * bytes_per_number
    return float(total)


def saved_bytes_measured(sizes, batch, activation, dtype):
    """Runs the network instead of predicting: refused."""
    from course.memory import mlp

    model = mlp(sizes, activation, dtype)
    _, saved = saved_tensors(lambda: model(torch.zeros(batch, sizes[0], dtype=dtype)).sum())
    return storage_bytes(saved, leave_out=model.parameters())


def wrong_count(mistake):
    return lambda *args: saved_bytes(*args, mistake=mistake)


# ---- 7.2 ---------------------------------------------------------------------------------


class Reentrant(torch.autograd.Function):
    """The chapter's Checkpoint: the weights' gradients go into .grad, not out."""

    @staticmethod
    def forward(ctx, block, x):
        ctx.block = block
        ctx.save_for_backward(x)
        return block(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        x = x.detach().requires_grad_(x.requires_grad)
        with torch.enable_grad():
            out = ctx.block(x)
        torch.autograd.backward(out, grad_output)
        return None, x.grad


def function_checkpoint(*, enable_grad=True, keep=False, inner_backward=False, x_grad=True):
    """checkpoint_by_hand with a Function of its own; right by default, keywords inject
    mistakes: no enable_grad in backward, forward keeps the graph, an inner backward that
    also fills .grad, no gradient returned for x."""

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, block, x, *params):
            ctx.block = block
            ctx.save_for_backward(x)
            if keep:
                with torch.enable_grad():
                    leaf = x.detach().requires_grad_(x.requires_grad)
                    ctx.graph = (leaf, block(leaf))
                return ctx.graph[1].detach()
            return block(x)

        @staticmethod
        def backward(ctx, grad_output):
            if keep:
                leaf, out = ctx.graph
            else:
                (x,) = ctx.saved_tensors
                leaf = x.detach().requires_grad_(x.requires_grad)
                with torch.enable_grad() if enable_grad else torch.no_grad():
                    out = ctx.block(leaf)
            inputs = [leaf, *ctx.block.parameters()]
            needed = [t for t in inputs if t.requires_grad]
            grads = iter(torch.autograd.grad(out, needed, grad_output, retain_graph=True))
            if inner_backward:
                torch.autograd.backward(out, grad_output, inputs=list(ctx.block.parameters()))
            result = [next(grads) if t.requires_grad else None for t in inputs]
            if not x_grad:
                result[0] = None
            return None, *result

    return lambda block, x: Function.apply(block, x, *block.parameters())


def returning(order):
    """checkpoint_by_hand whose backward returns the parameters' gradients `order`ed
    (reversed, or only x's): gradients that do not fit forward's inputs."""

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, block, x, *params):
            ctx.block = block
            ctx.save_for_backward(x)
            return block(x)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            x = x.detach().requires_grad_()
            with torch.enable_grad():
                out = ctx.block(x)
            gx, *gp = torch.autograd.grad(out, [x, *ctx.block.parameters()], grad_output)
            return (None, gx, *gp[::-1]) if order == "reversed" else (None, gx)

    return lambda block, x: Function.apply(block, x, *block.parameters())


class RecomputesTwice(torch.autograd.Function):
    """Recomputes, then differentiates torch.utils.checkpoint of the block: a third run."""

    @staticmethod
    def forward(ctx, block, x, *params):
        ctx.block = block
        ctx.save_for_backward(x)
        return block(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        x = x.detach().requires_grad_(x.requires_grad)
        with torch.enable_grad():
            ctx.block(x)  # a recomputation it does not use
            out = torch_checkpoint(ctx.block, x, use_reentrant=False)
        inputs = [x, *ctx.block.parameters()]
        grads = iter(torch.autograd.grad(out, [t for t in inputs if t.requires_grad], grad_output))
        return None, *(next(grads) if t.requires_grad else None for t in inputs)


class ByVjp(torch.autograd.Function):
    """Right, written differently: torch.func.vjp of a functional call of the block."""

    @staticmethod
    def forward(ctx, block, x, *params):
        ctx.block = block
        ctx.save_for_backward(x, *params)
        return block(x)

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        names = [name for name, _ in ctx.block.named_parameters()]

        def f(x, *ps):
            return torch.func.functional_call(ctx.block, dict(zip(names, ps, strict=True)), (x,))

        _, vjp = torch.func.vjp(f, x, *params)
        return None, *vjp(grad_output)


# ---- 7.3 ---------------------------------------------------------------------------------


class Scaler:
    """A LossScaler, right by default; keyword arguments inject mistakes."""

    def __init__(
        self,
        init_scale=2.0**16,
        growth_factor=2.0,
        backoff_factor=0.5,
        growth_interval=2000,
        *,
        unscale=True,
        skip=True,
        nan=True,
        backoff=True,
        reset_on_skip=True,
        constants=False,
        zero_instead=False,
    ):
        if constants:  # ignores what it is given
            growth_factor, backoff_factor, growth_interval = 2.0, 0.5, 2
        self.value, self.good, self.found = init_scale, 0, False
        self.growth, self.back, self.interval = growth_factor, backoff_factor, growth_interval
        self.unscale, self.skip, self.nan, self.backoff = unscale, skip, nan, backoff
        self.reset_on_skip, self.zero_instead = reset_on_skip, zero_instead

    def scale(self, loss):
        return loss * self.value

    def step(self, optimizer):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.unscale:
            for g in grads:
                g.div_(self.value)
        test = torch.isfinite if self.nan else (lambda g: ~torch.isinf(g))
        self.found = not all(test(g).all() for g in grads)
        if self.found and self.zero_instead:
            for g in grads:
                g.zero_()
            optimizer.step()
        elif not self.found or not self.skip:
            optimizer.step()

    def update(self):
        if self.found:
            if self.backoff:
                self.value *= self.back
            if self.reset_on_skip:
                self.good = 0
            return
        self.good += 1
        if self.good == self.interval:
            self.value *= self.growth
            self.good = 0


class TensorScaler:
    """Right, written differently: the scale a tensor, unscaled by its reciprocal, the good
    steps counted with a modulo, the finite test stacked."""

    def __init__(self, init_scale, growth_factor, backoff_factor, growth_interval):
        self.s = torch.tensor(float(init_scale), dtype=torch.float64)
        self.factors = (growth_factor, backoff_factor, growth_interval)
        self.streak, self.skipped = 0, False

    def scale(self, loss):
        return loss * self.s.float()

    def step(self, optimizer):
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        inverse = (1 / self.s).float()
        for p in params:
            p.grad.mul_(inverse)
        self.skipped = not bool(torch.stack([p.grad.isfinite().all() for p in params]).all())
        if not self.skipped:
            optimizer.step()

    def update(self):
        growth, backoff, interval = self.factors
        if self.skipped:
            self.s, self.streak = self.s * backoff, 0
            return
        self.streak += 1
        if self.streak % interval == 0:
            self.s, self.streak = self.s * growth, 0


def scaler(**mistake):
    return lambda *args, **kwargs: Scaler(*args, **kwargs, **mistake)


# ---- 7.4 ---------------------------------------------------------------------------------


def engine_checkpoint(f, *inputs, accumulate=True, inputs_only=False, ones=False, into_x=True):
    """checkpoint for the engine, right by default; keywords inject mistakes."""
    first = f(*(Tensor(x.data) for x in inputs))
    needs = any(x.requires_grad for x in inputs)
    out = Tensor(first.data, needs if inputs_only else needs or first.requires_grad, inputs)

    def _backward():
        leaves = [Tensor(x.data, requires_grad=x.requires_grad) for x in inputs]
        again = f(*leaves)
        again.backward(np.ones_like(out.grad) if ones else out.grad)
        for x, leaf in zip(inputs, leaves, strict=True):
            if x.requires_grad and into_x:
                if accumulate:
                    x.grad += leaf.grad
                else:
                    x.grad = leaf.grad

    out._backward = _backward
    return out


def engine_checkpoint_keeping(f, *inputs):
    """Backpropagates through the first run's graph, which it keeps: nothing is saved."""
    leaves = [Tensor(x.data, requires_grad=x.requires_grad) for x in inputs]
    first = f(*leaves)
    out = Tensor(first.data, True, inputs)

    def _backward():
        first.backward(out.grad)
        for x, leaf in zip(inputs, leaves, strict=True):
            if x.requires_grad:
                x.grad += leaf.grad

    out._backward = _backward
    return out


def engine_checkpoint_on_the_inputs(f, *inputs):
    """Runs f again on the inputs themselves in backward: for an input that is itself
    computed, the inner backward also runs through what made it."""
    first = f(*(Tensor(x.data) for x in inputs))
    out = Tensor(first.data, True, inputs)

    def _backward():
        f(*inputs).backward(out.grad)

    out._backward = _backward
    return out


def engine_checkpoint_from_the_inputs(f, *inputs):
    """Right, written differently: the first run of f on the inputs themselves, of which
    only the numbers are kept (nothing refers to that graph afterwards)."""
    data = f(*inputs).data
    out = Tensor(data, True, inputs, "checkpoint")

    def _backward():
        leaves = [Tensor(x.data, requires_grad=x.requires_grad) for x in inputs]
        f(*leaves).backward(out.grad)
        for x, leaf in zip(inputs, leaves, strict=True):
            if x.requires_grad:
                x.grad += leaf.grad

    out._backward = _backward
    return out


def engine_checkpoint_in_place(f, *inputs):
    """Right, written differently: f's result node itself becomes the checkpoint node."""
    out = f(*(Tensor(x.data) for x in inputs))
    out.requires_grad = out.requires_grad or any(x.requires_grad for x in inputs)
    out._prev, out._op = tuple(inputs), "checkpoint"

    def _backward():
        leaves = [Tensor(x.data, requires_grad=x.requires_grad) for x in inputs]
        f(*leaves).backward(out.grad)
        for x, leaf in zip(inputs, leaves, strict=True):
            if x.requires_grad:
                x.grad = x.grad + leaf.grad

    out._backward = _backward
    return out


def engine_mistake(**mistake):
    return lambda f, *inputs: engine_checkpoint(f, *inputs, **mistake)


# ---- the tables --------------------------------------------------------------------------

RIGHT = {
    "check_saved_bytes": saved_bytes,
    "check_checkpoint_by_hand": function_checkpoint(),
    "check_loss_scaler": Scaler,
    "check_engine_checkpoint": engine_checkpoint,
}
OTHER_RIGHT = [
    ("check_saved_bytes", saved_bytes_by_layers),
    ("check_checkpoint_by_hand", lambda block, x: ByVjp.apply(block, x, *block.parameters())),
    ("check_loss_scaler", TensorScaler),
    ("check_engine_checkpoint", engine_checkpoint_in_place),
    ("check_engine_checkpoint", engine_checkpoint_from_the_inputs),
]


class ForwardOnly(torch.autograd.Function):
    """7.2 half done: the forward written, the backward still a stub."""

    @staticmethod
    def forward(ctx, block, x, *params):
        return block(x)

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Exercise 7.2 is not done yet")


STUBS = {name: stub for name in RIGHT}
WRONG = [
    ("check_saved_bytes", wrong_count("twice"), "two tensors per hidden layer"),
    ("check_saved_bytes", wrong_count("no input"), "the first layer saves"),
    ("check_saved_bytes", wrong_count("gelu like relu"), "GELU differs"),
    ("check_saved_bytes", wrong_count("four bytes"), "wrong for the other dtypes"),
    ("check_saved_bytes", wrong_count("weights"), "You counted the weights"),
    ("check_saved_bytes", wrong_count("output"), "You counted the network's output"),
    ("check_saved_bytes", wrong_count("weights without biases"), "You counted the weights"),
    ("check_saved_bytes", wrong_count("weights instead"), "weights instead of what"),
    ("check_saved_bytes", wrong_count("only the input"), "nothing that the activation"),
    ("check_saved_bytes", wrong_count("one example"), "bytes of a single example"),
    ("check_saved_bytes", wrong_count("bits"), "it counts bits"),
    ("check_saved_bytes", saved_bytes_measured, "ran a layer on a batch"),
    ("check_saved_bytes", lambda *args: "331776", "expected a whole number of bytes"),
    ("check_saved_bytes", lambda *args: 1.5, "expected a whole number of bytes"),
    (
        "check_checkpoint_by_hand",
        lambda block, x: Reentrant.apply(block, x),
        "never sees them",
    ),
    (
        "check_checkpoint_by_hand",
        lambda block, x: torch_checkpoint(block, x, use_reentrant=False),
        "not by an autograd.Function of your own",
    ),
    (
        "check_checkpoint_by_hand",
        lambda block, x: torch_checkpoint(block, x, use_reentrant=True),
        "torch.utils.checkpoint does this for you",
    ),
    ("check_checkpoint_by_hand", function_checkpoint(keep=True), "still alive after forward"),
    (
        "check_checkpoint_by_hand",
        function_checkpoint(enable_grad=False),
        "Backward must run the block a second time",
    ),
    (
        "check_checkpoint_by_hand",
        function_checkpoint(inner_backward=True),
        "counted twice",
    ),
    ("check_checkpoint_by_hand", function_checkpoint(x_grad=False), "no gradient reached x"),
    (
        "check_checkpoint_by_hand",
        lambda block, x: RecomputesTwice.apply(block, x, *block.parameters()),
        "ran more than once in backward",
    ),
    ("check_checkpoint_by_hand", returning("reversed"), "do not match the inputs of forward"),
    ("check_checkpoint_by_hand", returning("x only"), "do not match the inputs of forward"),
    ("check_checkpoint_by_hand", lambda block, x: block(x), "not by an autograd.Function"),
    ("check_checkpoint_by_hand", lambda block, x: 3.0, "expected a tensor"),
    ("check_loss_scaler", scaler(unscale=False), "scale times too large"),
    ("check_loss_scaler", scaler(skip=False), "must be skipped entirely"),
    ("check_loss_scaler", scaler(nan=False), "got nan"),
    ("check_loss_scaler", scaler(zero_instead=True), "state stay as they were"),
    ("check_loss_scaler", scaler(backoff=False), "the scale took another path"),
    ("check_loss_scaler", scaler(reset_on_skip=False), "the scale took another path"),
    ("check_loss_scaler", scaler(constants=True), "growth_factor=4"),
    ("check_engine_checkpoint", engine_checkpoint_keeping, "intermediate results are still alive"),
    ("check_engine_checkpoint", engine_mistake(accumulate=False), "lost part of its gradient"),
    (
        "check_engine_checkpoint",
        engine_mistake(inputs_only=True),
        "The weights inside f got no gradient",
    ),
    ("check_engine_checkpoint", engine_mistake(ones=True), "grad of W1"),
    ("check_engine_checkpoint", engine_mistake(into_x=False), "grad of x"),
    ("check_engine_checkpoint", engine_checkpoint_on_the_inputs, "also ran through what made it"),
    ("check_engine_checkpoint", lambda f, *inputs: f(*inputs), "still alive"),
    ("check_engine_checkpoint", lambda f, *inputs: inputs[0].data, "expected a Tensor"),
]

tests = table_tests(checks, RIGHT, STUBS, WRONG)
test_right_answer_passes, test_stub_is_not_done_yet, test_wrong_answer_fails_and_says_why = tests


@pytest.mark.parametrize(("name", "answer"), OTHER_RIGHT, ids=[n for n, _ in OTHER_RIGHT])
def test_a_right_answer_written_differently_passes(name, answer, capsys):
    verdict = getattr(checks, name)(answer)
    assert verdict.passed, f"{name} rejected a right answer: {capsys.readouterr().out}"


# One plausible wrong answer per exercise and the recipe its hint ends with: the first ✗
# points at the idea without the recipe, the third gives it.
PROGRESSIVE = [
    ("check_saved_bytes", wrong_count("twice"), "k = 2 for GELU"),
    ("check_checkpoint_by_hand", lambda block, x: Reentrant.apply(block, x), "apply(block, x,"),
    ("check_loss_scaler", scaler(skip=False), "optimizer.step() only if not self.found"),
    ("check_engine_checkpoint", engine_mistake(accumulate=False), "x.grad += leaf.grad"),
]


@pytest.mark.parametrize(("name", "wrong", "recipe"), PROGRESSIVE, ids=[p[0] for p in PROGRESSIVE])
def test_the_first_failure_points_at_the_idea_and_the_third_gives_the_recipe(
    name, wrong, recipe, capsys
):
    assert_hint_grows(getattr(checks, name), wrong, recipe, capsys)


def test_a_message_names_no_internals(capsys):
    """A ✗ speaks of the learner's code, not of the checker's helpers."""
    for name, answer, _ in WRONG:
        getattr(checks, name)(answer)
        out = capsys.readouterr().out
        for internal in ("_RanTheNetwork", "MemoryMeter", "_engine_block", "_scaler_step"):
            assert internal not in out, f"{name}: {internal} in {out}"


def test_the_scaler_sequence_overflows_once_and_is_nan_once():
    """GradScaler skips exactly the steps whose loss factor is 1e38 or NaN, in each setting
    (so the check's step-by-step comparison tests skipping where the text says)."""
    for config in checks.SCALER_CONFIGS:
        reference = torch.amp.GradScaler("cpu", **config)
        model, optimizer, x = checks._scaler_model()
        skipped = []
        for factor in checks.LOSS_FACTORS:
            before = [p.detach().clone() for p in model.parameters()]
            checks._scaler_step(reference, model, optimizer, x, factor)
            skipped.append(
                all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
            )
        assert [i for i, s in enumerate(skipped) if s] == [3, 6], (config, skipped)


def test_a_backward_still_to_write_is_not_done_yet(capsys):
    half_done = lambda block, x: ForwardOnly.apply(block, x, *block.parameters())  # noqa: E731
    verdict = checks.check_checkpoint_by_hand(half_done)
    assert verdict.status == "todo", capsys.readouterr().out
