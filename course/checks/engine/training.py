"""Checks of Part 3 of Chapter 4, training on MNIST: Exercises 4.7 and 4.8, the run beside
torch, the accuracy on the test set and the step time.
"""

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course.checks import Verdict, call, check, describe, expect, expect_close, expect_equal, rng
from course.checks.engine.cases import DTYPES, TensorCase, close, compare_case, engine_hinted
from course.threads import same_threads

# --- Part 3: training ----------------------------------------------------------------------


LOG_SOFTMAX_HINT = "log_softmax(x) = x - log(exp(x).sum(axis=-1, keepdims=True))"
SHIFT_HINT = (
    "exp overflows for large logits: subtract m = x.data.max(axis=-1, keepdims=True) "
    "first (a constant: the result does not change)"
)
LOG_SOFTMAX_GRAD_HINT = (
    "build log_softmax from your Tensor's ops only (the max shift may be a constant): a "
    "term computed from x.data, like np.log(np.exp(x.data).sum(...)), gets no gradient"
)
PICK_HINT = (
    "the mean over rows of -log_softmax(x)[rows, targets] with rows = np.arange(len(x)); "
    "a one-hot product turns a -inf logit into nan (-inf * 0)"
)
HUGE = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -999.0, -1001.0]])
MASKED = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf], [-np.inf, 3.0, 0.0]])


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
        for logits, t in (
            (generator.standard_normal((8, 10)) * 3, generator.integers(0, 10, 8)),
            (generator.standard_normal((5, 3)), np.array([2, 2, 0, 2, 1])),
            (HUGE, np.array([2, 1])),
            (MASKED, np.array([0, 1, 2])),
        ):
            case = TensorCase(
                f"cross_entropy(x, targets={t.tolist()})",
                lambda x, t=t: cross_entropy(x, t.copy()),
                theirs=lambda x, t=t: F.cross_entropy(x, torch.from_numpy(t)),
                values=(logits,),
                hint=PICK_HINT,
            )
            compare_case(Tensor, case, generator)
        return "log_softmax and cross_entropy match torch, also on logits of ±1000 and -inf"

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
        torch_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
        for step in range(1, 4):
            optimizer.zero_grad()
            (model(Tensor(x)) ** 2).mean().backward()
            optimizer.step()
            torch_optimizer.zero_grad()
            (reference(torch.from_numpy(x)) ** 2).mean().backward()
            torch_optimizer.step()
            for i, (p, q) in enumerate(
                zip(model.parameters(), reference.parameters(), strict=False)
            ):
                what = f"parameter {i} after SGD step {step} (lr=0.1, momentum=0.9)"
                close(p.data, q, what)

    def body():
        with engine_hinted(
            "weight (out_features, in_features) uniform in ±1/sqrt(in_features), the "
            "same for bias; x @ weight.T + bias; ReLU between layers",
            "MLP",
        ):
            model, reference, x = layers()
        with engine_hinted(
            "v = momentum * v + p.grad, then p.data -= lr * v (in place, one v per parameter)",
            "SGD",
        ):
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


def check_matches_torch(
    first_steps: Callable[[type], tuple], cross_entropy: Callable[..., Any], Tensor: type
) -> Verdict:
    """Train the learner's MLP and torch's copy of it on the same batches in float64.

    `first_steps(dtype)` returns `(model, optimizer, batches)`; every step's loss must
    match torch's to `rtol=1e-10`.
    """

    def body():
        model, optimizer, batches = first_steps(np.float64)
        reference, torch_optimizer = _torch_twin(model, optimizer)
        rows = []
        for step, (x, y) in enumerate(batches, start=1):
            ours = _engine_step(model, optimizer, cross_entropy, Tensor, x, y)
            theirs = _torch_step(reference, torch_optimizer, x, y)
            expect_close(ours, theirs, f"the loss at step {step}", rtol=1e-10, atol=0)
            rows.append(f"  step {step:2d}: yours {ours:.10f}   torch {theirs:.10f}")
        shown = [*rows[:3], "  ...", *rows[-2:]]
        return f"{len(rows)} steps follow torch's losses to 1e-10:\n" + "\n".join(shown)

    return check("Your MLP beside torch's (float64)", body)


def check_mnist_training(
    train: Callable[[], Any],
    Tensor: type,
    X_test: np.ndarray,
    y_test: np.ndarray,
    threshold: float = 0.97,
) -> Verdict:
    """`train()` returns a model of your engine, trained; its accuracy on the test set is
    at least `threshold`.

    The accuracy is computed here, from the logits `model(Tensor(X_test)).data`: a number
    handed back by the training code could be anything.
    """

    def body():
        start = time.perf_counter()
        model = call("train()", train)
        seconds = time.perf_counter() - start
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

    return check(
        "Training on MNIST",
        body,
        hint="train() must return the trained model; the float64 side-by-side check above "
        "finds a wrong gradient first",
    )


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
    first_steps: Callable[[type], tuple],
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
        lines, steps = [], 0
        for dtype in (np.float32, np.float64):
            model, optimizer, batches = first_steps(dtype)
            reference, torch_optimizer = _torch_twin(model, optimizer)

            def engine_step(x, y, model=model, optimizer=optimizer):
                return _engine_step(model, optimizer, cross_entropy, Tensor, x, y)

            def torch_step(x, y, reference=reference, optimizer=torch_optimizer):
                return _torch_step(reference, optimizer, x, y)

            _median_step(torch_step, batches, repeats=1)  # warm-up
            ours = _median_step(engine_step, batches)
            theirs = _median_step(torch_step, batches)
            ratios[np.dtype(dtype).name] = ours / theirs
            steps = 3 * len(batches)
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
