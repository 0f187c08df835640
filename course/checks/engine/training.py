"""Checks of Part 3 of Chapter 4, training on MNIST: Exercises 4.7 and 4.8, the run beside
torch, the accuracy on the test set and the step time.
"""

import copy
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course.checks import (
    Hint,
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    expect_equal,
    hinted,
    learner_check,
    rng,
)
from course.checks.engine.cases import (
    DTYPES,
    TensorCase,
    _matches,
    close,
    compare_case,
    engine_hinted,
)
from course.threads import same_threads

LOG_SOFTMAX_HINT = Hint(
    "log_softmax(x) = x - log(sum(exp(x))), the sum over the last axis, one per row.",
    "Sum with axis=-1 and keepdims=True, so that the log of the sum broadcasts against each row.",
    "`x - x.exp().sum(axis=-1, keepdims=True).log()`, with the max shift of the next cases",
)
SHIFT_HINT = Hint(
    "exp overflows for a logit near 1000, and for a row near -1000 every exp underflows to "
    "0, whose log is -inf (a row with -inf needs care too); but log_softmax(x) = "
    "log_softmax(x - m) for any m that is constant along the row.",
    "Subtract each row's own maximum, taken from x.data (a constant), before exp: every "
    "exponent is then at most 0, and the largest is exactly 0.",
    "`shifted = x - x.data.max(axis=-1, keepdims=True)` and "
    "`shifted - shifted.exp().sum(axis=-1, keepdims=True).log()`",
)
LOG_SOFTMAX_GRAD_HINT = Hint(
    "The values are right but the gradient is not: part of the formula was computed "
    "outside your Tensor's ops, so no gradient flows through it.",
    "A term computed from x.data, like np.log(np.exp(x.data).sum(...)), is a constant to "
    "your engine; only the max shift may be one.",
    "the log-sum-exp from Tensor ops: `(x - m).exp().sum(axis=-1, keepdims=True).log()`",
)
PICK_HINT = Hint(
    "cross_entropy is the mean over the batch of -log_softmax(x) at each row's target.",
    "Pick one entry per row with indexing, logp[rows, targets], rows = np.arange(len(targets)).",
    "`-log_softmax(logits)[np.arange(len(targets)), targets].mean()`",
)
MASKED_HINT = Hint(
    "A logit of -inf (a masked class) gives a finite loss in torch; a one-hot product "
    "gives nan there, since -inf * 0 is nan.",
    "Pick the target entries with indexing instead of multiplying by a one-hot matrix.",
    PICK_HINT.recipe,
)
ONE_EXAMPLE_HINT = Hint(
    "F.cross_entropy also takes one example: logits of shape (C,) and a 0-d target.",
    "With one row there is no batch axis to index or to average over.",
    "`if logits.data.ndim == 1: return -log_softmax(logits)[targets]`",
)
HUGE = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -999.0, -1001.0]])
MASKED = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf], [-np.inf, 3.0, 0.0]])


@learner_check
def check_cross_entropy(
    log_softmax: Callable[[Any], Any], cross_entropy: Callable[[Any, np.ndarray], Any], Tensor: type
) -> Verdict:
    """Exercise 4.7: `log_softmax` and `cross_entropy` vs torch, huge and -inf logits."""

    def body():
        generator = rng(2)
        random_logits = generator.standard_normal((4, 5)) * 3

        def torch_log_softmax(x):
            return F.log_softmax(x, dim=-1)

        for logits, hint in (
            (random_logits, LOG_SOFTMAX_HINT),
            (random_logits[0], LOG_SOFTMAX_HINT),
            (HUGE, SHIFT_HINT),
            (MASKED, SHIFT_HINT),
        ):
            case = TensorCase(
                "log_softmax(x)",
                lambda x: log_softmax(x),
                theirs=torch_log_softmax,
                values=(logits,),
                hint=hint,
                grad_hint=LOG_SOFTMAX_GRAD_HINT,
            )
            compare_case(Tensor, case, generator)
        for logits, t, hint in (
            (generator.standard_normal((8, 10)) * 3, generator.integers(0, 10, 8), PICK_HINT),
            (generator.standard_normal((5, 3)), np.array([2, 2, 0, 2, 1]), PICK_HINT),
            (HUGE, np.array([2, 1]), SHIFT_HINT),
            (MASKED, np.array([0, 1, 2]), MASKED_HINT),
            (generator.standard_normal(4) * 3, np.array(3), ONE_EXAMPLE_HINT),
        ):
            case = TensorCase(
                f"cross_entropy(x, targets={t.tolist()})",
                lambda x, t=t: cross_entropy(x, t.copy()),
                theirs=lambda x, t=t: F.cross_entropy(x, torch.from_numpy(t)),
                values=(logits,),
                hint=hint,
            )
            compare_case(Tensor, case, generator)
        return (
            "log_softmax and cross_entropy match torch, also on logits of ±1000 and -inf, "
            "and on one example"
        )

    return check("Exercise 4.7 (log_softmax, cross_entropy)", body)


def _torch_mlp(model) -> torch.nn.Sequential:
    """An `nn.Sequential` of Linear and ReLU layers holding copies of `model`'s weights."""
    params = [p.data for p in model.parameters()]
    expect(
        len(params) % 2 == 0,
        f"MLP.parameters(): expected weight, bias, weight, bias, ...; got {len(params)} tensors",
    )
    layers = []
    for weight, bias in zip(params[::2], params[1::2], strict=False):
        expect(
            weight.ndim == 2 and bias.shape == weight.shape[:1],
            "MLP.parameters(): expected "
            f"weight (out, in) then bias (out,); got {weight.shape} and {bias.shape}",
        )
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=DTYPES[weight.dtype])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(bias))
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


MLP_HINT = Hint(
    "torch's Linear computes x @ weight.T + bias, with weight of shape (out_features, "
    "in_features); an MLP has a ReLU between each two layers and none after the last.",
    "Apply the layers in order; relu every output but the last layer's.",
    "Linear: `return x @ self.weight.T + self.bias`; MLP: `for layer in self.layers[:-1]: "
    "x = layer(x).relu()`, then `return self.layers[-1](x)`",
)
SGD_HINT = Hint(
    "torch.optim.SGD with momentum keeps one velocity per parameter: v = momentum * v + "
    "grad, then p = p - lr * v (no factor 1 - momentum).",
    "Change v and p.data in place, so that the velocity carries over to the next step.",
    "`for p, v in zip(self.parameters, self.velocities): v *= self.momentum; "
    "v += p.grad; p.data -= self.lr * v`",
)
NO_MOMENTUM_HINT = Hint(
    "Your parameters moved as plain SGD (momentum 0) moves them: no velocity carried over "
    "from the step before.",
    "`v = self.momentum * v + p.grad` makes a new array and leaves self.velocities as they "
    "were; change each velocity in place (`v *= ...`, `v += ...`).",
    SGD_HINT.recipe,
)


@learner_check
def check_mlp_sgd(MLP: type, SGD: type, Tensor: type) -> Verdict:
    """Exercise 4.8: `MLP` forward, `Linear`'s initialisation, and `SGD` with momentum."""

    def layers():
        generator = rng(3)
        model = MLP([50, 30, 4], generator, np.float64)
        shapes = [p.data.shape for p in model.parameters()]
        expect_equal(
            shapes,
            [(30, 50), (30,), (4, 30), (4,)],
            "shapes of MLP([50, 30, 4]).parameters() (torch's layout: weight (out, in), "
            "bias (out,))",
        )
        for p, fan_in in zip(model.parameters(), (50, 50, 30, 30), strict=False):
            bound = 1 / math.sqrt(fan_in)
            expect(
                np.abs(p.data).max() <= bound and p.data.std() > bound / 3,
                f"a parameter of shape {p.data.shape}: expected uniform in ±1/sqrt({fan_in}) "
                f"= ±{bound:.3f}, got values in [{p.data.min():.3f}, {p.data.max():.3f}]",
            )
            expect(p.requires_grad, f"a parameter of shape {p.data.shape} needs requires_grad")
        reference = _torch_mlp(model)
        x = generator.standard_normal((6, 50))
        out = model(Tensor(x))
        expect(isinstance(out, Tensor), f"MLP(x): expected your Tensor, got {describe(out)}")
        close(
            out.data,
            reference(torch.from_numpy(x)),
            "MLP([50, 30, 4]) on a batch of 6 (Linear, ReLU, Linear)",
        )
        return model, reference, x

    def sgd(model, reference, x):
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        plain = copy.deepcopy(reference)  # what a step that loses the velocity gives
        torch_optimizers = [
            torch.optim.SGD(net.parameters(), lr=0.1, momentum=m)
            for net, m in ((reference, 0.9), (plain, 0.0))
        ]
        for step in range(1, 4):
            optimizer.zero_grad()
            (model(Tensor(x)) ** 2).mean().backward()
            optimizer.step()
            for net, torch_optimizer in zip((reference, plain), torch_optimizers, strict=True):
                torch_optimizer.zero_grad()
                (net(torch.from_numpy(x)) ** 2).mean().backward()
                torch_optimizer.step()
            for i, (p, q, r) in enumerate(
                zip(model.parameters(), reference.parameters(), plain.parameters(), strict=False)
            ):
                what = f"parameter {i} after SGD step {step} (lr=0.1, momentum=0.9)"
                no_momentum = step > 1 and _matches(p.data, r.detach().numpy())
                with hinted(NO_MOMENTUM_HINT) if no_momentum else nullcontext():
                    close(p.data, q, what)

    def body():
        with engine_hinted(MLP_HINT, "MLP"):
            model, reference, x = layers()
        with engine_hinted(SGD_HINT, "SGD"):
            sgd(model, reference, x)
        return "MLP matches nn.Sequential, and 3 SGD steps with momentum match torch.optim.SGD"

    return check("Exercise 4.8 (Linear, MLP, SGD)", body)


def _torch_twin(model, optimizer):
    reference = _torch_mlp(model)
    torch_optimizer = torch.optim.SGD(
        reference.parameters(), lr=optimizer.lr, momentum=optimizer.momentum
    )
    return reference, torch_optimizer


def _torch_step(reference, optimizer, x, y) -> float:
    loss = F.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _engine_step(model, optimizer, cross_entropy, Tensor, x, y) -> float:
    loss = cross_entropy(model(Tensor(x)), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.data.item()


def _stubs_first(new_model: Callable[[type], tuple], cross_entropy: Callable, Tensor: type):
    """One training step of a fresh model on two rows of zeros, before any data is loaded.

    Every exercise the MNIST run needs takes part in it, so an exercise not done yet is
    reported as "not done yet" before MNIST is looked for (or downloaded). Any other
    error is left for the run itself to report, where the message can name the step.
    """
    try:
        model, optimizer = new_model(np.float32)
        width = model.parameters()[0].data.shape[-1]
        x = np.zeros((2, width), np.float32)
        _engine_step(model, optimizer, cross_entropy, Tensor, x, np.array([0, 1]))
    except NotImplementedError:
        raise
    except Exception:  # reported by the run itself, with the step that fails
        return


MATCH_HINT = Hint(
    "Your losses leave torch's: the model starts from the same weights and sees the same "
    "batches, so a gradient, the loss or the optimizer step differs.",
    "If the loss at step 1 differs, the forward pass or cross_entropy does; if a later "
    "one does, a gradient or the SGD step does. The checks of 4.5 to 4.8 test each piece.",
    "Run the checks of Exercises 4.5 to 4.8 again and fix the first one that fails; the "
    "losses then follow torch's.",
)


@learner_check
def check_matches_torch(
    new_model: Callable[[type], tuple],
    batches: Callable[[type], list],
    cross_entropy: Callable[..., Any],
    Tensor: type,
) -> Verdict:
    """Train the learner's MLP and torch's copy of it on the same batches in float64.

    `new_model(dtype)` returns `(model, optimizer)`, `batches(dtype)` the `(x, y)` pairs
    (called only once the engine's exercises are done); every step's loss must match
    torch's to `rtol=1e-10`.
    """

    def body():
        _stubs_first(new_model, cross_entropy, Tensor)
        model, optimizer = new_model(np.float64)
        reference, torch_optimizer = _torch_twin(model, optimizer)
        rows = []
        for step, (x, y) in enumerate(batches(np.float64), start=1):
            ours = _engine_step(model, optimizer, cross_entropy, Tensor, x, y)
            theirs = _torch_step(reference, torch_optimizer, x, y)
            expect_close(ours, theirs, f"the loss at step {step}", rtol=1e-10, atol=0)
            rows.append(f"  step {step:2d}: yours {ours:.10f}   torch {theirs:.10f}")
        shown = [*rows[:3], "  ...", *rows[-2:]]
        return f"{len(rows)} steps follow torch's losses to 1e-10:\n" + "\n".join(shown)

    return check("Your MLP beside torch's (float64)", body, hint=MATCH_HINT)


TRAINING_HINT = Hint(
    "train() must return the trained model, whose logits on the test images give the accuracy.",
    "The float64 side-by-side check above finds a wrong gradient first; if it passes, "
    "look at the learning rate, the epochs and the data train() uses.",
    "train a 784-128-10 MLP for five epochs, batch 128, SGD with lr=0.05 and momentum=0.9, "
    "and return it",
)


@learner_check
def check_mnist_training(
    train: Callable[[], Any],
    test_set: Callable[[], tuple[np.ndarray, np.ndarray]],
    new_model: Callable[[type], tuple],
    cross_entropy: Callable[..., Any],
    Tensor: type,
    threshold: float = 0.97,
) -> Verdict:
    """`train()` returns a model of your engine, trained; its accuracy on the test images
    and labels that `test_set()` returns is at least `threshold`.

    `new_model` and `cross_entropy` make one tiny step first, so that an exercise not
    done yet is reported before any data is loaded. The accuracy is computed here, from
    the logits `model(Tensor(X_test)).data`: a number handed back by the training code
    could be anything.
    """

    def body():
        _stubs_first(new_model, cross_entropy, Tensor)
        start = time.perf_counter()
        model = call("train()", train)
        seconds = time.perf_counter() - start
        X_test, y_test = test_set()
        out = call("model(Tensor(X_test))", model, Tensor(np.asarray(X_test)))
        logits = np.asarray(getattr(out, "data", None))
        expected = (len(X_test), 10)
        expect(
            logits.dtype.kind == "f" and logits.shape == expected,
            f"model(Tensor(X_test)).data: expected logits of shape {expected}, got "
            f"{describe(getattr(out, 'data', out))}",
        )
        expect(np.isfinite(logits).all(), "the logits are not all finite: training diverged")
        accuracy = float((logits.argmax(axis=1) == np.asarray(y_test)).mean())
        expect(accuracy >= threshold, f"test accuracy {accuracy:.2%}, below {threshold:.0%}")
        return (
            f"test accuracy {accuracy:.2%} (at least {threshold:.0%}), trained in {seconds:.1f} s"
        )

    return check("Training on MNIST", body, hint=TRAINING_HINT)


def _median_step(step, batches, repeats=3) -> float:
    """The median time of one training step over `repeats` passes through `batches`."""
    times = []
    for _ in range(repeats):
        for x, y in batches:
            start = time.perf_counter()
            step(x, y)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def compare_step_time(
    new_model: Callable[[type], tuple],
    batches: Callable[[type], list],
    cross_entropy: Callable[..., Any],
    Tensor: type,
    threads: int = 1,
) -> dict[str, float] | None:
    """Time one training step of the learner's engine and of torch, in float32 and float64.

    Both run with the same number of threads (torch's pool and NumPy's BLAS alike, see
    `course.threads`): otherwise the ratio compares thread counts, not engines.
    """
    ratios = {}

    def body():
        _stubs_first(new_model, cross_entropy, Tensor)
        lines, steps = [], 0
        for dtype in (np.float32, np.float64):
            model, optimizer = new_model(dtype)
            data = batches(dtype)
            reference, torch_optimizer = _torch_twin(model, optimizer)

            def engine_step(x, y, model=model, optimizer=optimizer):
                return _engine_step(model, optimizer, cross_entropy, Tensor, x, y)

            def torch_step(x, y, reference=reference, optimizer=torch_optimizer):
                return _torch_step(reference, optimizer, x, y)

            _median_step(torch_step, data, repeats=1)  # warm-up
            ours = _median_step(engine_step, data)
            theirs = _median_step(torch_step, data)
            ratios[np.dtype(dtype).name] = ours / theirs
            steps = 3 * len(data)
            lines.append(
                f"  {np.dtype(dtype).name}: yours {ours * 1e3:.2f} ms, torch {theirs * 1e3:.2f} ms"
                f" per step: {ours / theirs:.2f}× torch's time"
            )
        return f"one training step, median of {steps}, {threads} thread(s) each:\n" + "\n".join(
            lines
        )

    with same_threads(threads):
        check("Step time of your engine beside torch's", body)
    return ratios or None
