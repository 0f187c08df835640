"""Checks for the exercises of Chapter 2 (neural networks on MNIST).

Each check compares the learner's function with PyTorch's own: `nn.Sequential` for the
network, `F.softmax`, `F.cross_entropy`, `argmax` for accuracy, and a reference
training step run side by side on a copy of the same network.
"""

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from course.checks import (
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    expect_equal,
    generator,
    random_tensor,
)
from course.data import DATA_ROOT
from course.mnist import batches, to_tensors

SHAPE = [(784, 128), (128, 64), (64, 10)]
"""The (in, out) sizes of the linear layers of Exercise 2.1's network."""


def reference_net(linears) -> nn.Sequential:
    """Exercise 2.1's network: flatten, then `linears` with a ReLU between each two."""
    layers = [nn.Flatten()]
    for linear in linears:
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _weights_by_role(net: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of each of the three layers of `net`, found by shape, not by order.

    The layer sizes differ, so each parameter's shape says which layer it belongs to and
    whether it is a weight (`(out, in)`, or `(in, out)` for a net that computes
    `x @ W`) or a bias; a network that registers its layers in another order than it
    uses them, or holds bare `nn.Parameter`s, is judged by what it computes.
    """
    params = [p.detach() for p in net.parameters()]
    shapes = [tuple(p.shape) for p in params]
    weights = []
    for n_in, n_out in SHAPE:
        found = {}
        for role, shape, transpose in (
            ("weight", (n_out, n_in), False),
            ("weight", (n_in, n_out), True),
            ("bias", (n_out,), False),
        ):
            if role in found or shapes.count(shape) == 0:
                continue
            expect(
                shapes.count(shape) == 1,
                f"parameters: {shapes.count(shape)} of shape {shape}, expected one for the "
                f"{n_in} → {n_out} layer",
            )
            p = params[shapes.index(shape)]
            found[role] = p.T if transpose else p
        expect(
            set(found) == {"weight", "bias"},
            f"parameters: no weight ({n_out}, {n_in}) and bias ({n_out},) for a {n_in} → "
            f"{n_out} layer; got shapes {shapes}",
        )
        weights.append((found["weight"], found["bias"]))
    return weights


def _reference_from(weights: list[tuple[torch.Tensor, torch.Tensor]]) -> nn.Sequential:
    linears = []
    for weight, bias in weights:
        linear = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        linears.append(linear)
    return reference_net(linears)


def check_make_net(make_net: Callable[[], Any]) -> Verdict:
    """Exercise 2.1: `make_net()` is 784 → 128 → 64 → 10 with ReLUs, as a module.

    Judged by what it computes: its parameters, found by shape, are copied into the
    reference `nn.Sequential`, and both must give the same logits on random images,
    on large ones, and on a batch of one.
    """

    def body():
        torch.manual_seed(0)  # inside check(): the learner's global state is restored after
        net = call("make_net()", make_net)
        expect(isinstance(net, nn.Module), f"expected an nn.Module, got {describe(net)}")
        count = sum(p.numel() for p in net.parameters())
        expected = sum(i * o + o for i, o in SHAPE)
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if linears:
            got = sorted((m.in_features, m.out_features) for m in linears)
            expect_equal(got, sorted(SHAPE), "linear layers (in, out)")
        expect_equal(count, expected, "number of parameters")
        reference = _reference_from(_weights_by_role(net))
        for what, x in (
            ("5 random images", random_tensor(5, 1, 28, 28, seed=1, dtype=torch.float32)),
            (
                "3 images scaled by 100",
                random_tensor(3, 1, 28, 28, seed=2, dtype=torch.float32, scale=100),
            ),
            ("a batch of one image", random_tensor(1, 1, 28, 28, seed=3, dtype=torch.float32)),
        ):
            with torch.no_grad():
                y = call(f"net(x) for {what}", net, x.clone())
                expected = reference(x)
                # float32 sums in another order (x @ W vs a Linear) differ by rounding
                atol = 1e-5 * (1 + expected.abs().max().item())
                expect_close(y, expected, f"output for {what}", rtol=1e-5, atol=atol)
        return f"{count:,} parameters, outputs match the reference"

    return check(
        "Exercise 2.1 (make_net)",
        body,
        hint="nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), …): a ReLU after "
        "each hidden layer, none after the last",
    )


def softmax_cases() -> list[torch.Tensor]:
    """Logits for the softmax and cross-entropy checks: random, float64, huge, tiny."""
    return [
        random_tensor(4, 10, seed=0, dtype=torch.float32),
        random_tensor(3, 5, seed=1, dtype=torch.float64, scale=5),
        torch.tensor([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]]),
        torch.tensor([[-1000.0, -1000.0, -1002.0]]),
    ]


def check_softmax(softmax: Callable[[torch.Tensor], Any]) -> Verdict:
    """Exercise 2.2: `softmax(logits)` equals `F.softmax(logits, dim=1)`."""
    cases = softmax_cases()

    def body():
        for i, logits in enumerate(cases):
            got = softmax(logits.clone())
            expect_close(got, F.softmax(logits, dim=1), f"logits #{i}", rtol=1e-5, atol=1e-7)
        return f"matches F.softmax on {len(cases)} inputs, huge logits included"

    return check(
        "Exercise 2.2 (softmax)",
        body,
        hint="exp(z) / exp(z).sum(dim=1, keepdim=True); subtract each row's max from z first, "
        "so that exp cannot overflow (the result does not change)",
    )


def check_cross_entropy(cross_entropy: Callable[[torch.Tensor, torch.Tensor], Any]) -> Verdict:
    """Exercise 2.3: `cross_entropy(logits, labels)` equals `F.cross_entropy`, gradient too."""
    local = generator(1)
    cases = softmax_cases()
    labels = [torch.randint(0, len(z[0]), (len(z),), generator=local) for z in cases]
    cases.append(torch.tensor([[0.0, 1000.0], [1000.0, 0.0], [3.0, -3.0]]))
    labels.append(torch.tensor([0, 0, 1]))  # confident and wrong: a loss of 1000

    def body():
        logits = cases[0].clone().requires_grad_()
        got = cross_entropy(logits, labels[0])
        expect(
            isinstance(got, torch.Tensor) and got.requires_grad,
            f"expected a tensor that gradients can flow through, got {describe(got)}",
        )
        (got_grad,) = torch.autograd.grad(got, logits)
        (expected_grad,) = torch.autograd.grad(F.cross_entropy(logits, labels[0]), logits)
        expect_close(got_grad, expected_grad, "gradient for logits #0", rtol=1e-5, atol=1e-7)
        for i, (logits, y) in enumerate(zip(cases, labels, strict=True)):
            got = cross_entropy(logits.clone(), y.clone())
            # float32 rounds z - logsumexp(z) near ±1000 to about 1e-4: a tolerance for that
            expect_close(got, F.cross_entropy(logits, y), f"logits #{i}", rtol=1e-4, atol=1e-5)
        return f"matches F.cross_entropy on {len(cases)} inputs, and its gradient"

    return check(
        "Exercise 2.3 (cross_entropy)",
        body,
        hint="log-softmax is z - logsumexp(z) per row (torch.logsumexp, or subtract the row "
        "max before exp); pick each row's label with logp[torch.arange(n), labels], negate, "
        "average; taking log of softmax fails on confident logits",
    )


def check_accuracy(accuracy: Callable[[torch.Tensor, torch.Tensor], Any]) -> Verdict:
    """Exercise 2.4: `accuracy(logits, labels)` is the fraction of rows guessed right."""
    local = generator(2)
    logits = torch.randn(6, 10, generator=local)
    guesses = logits.argmax(dim=1)
    cases = [
        (logits, torch.cat([guesses[:4], (guesses[4:] + 1) % 10])),
        (logits, guesses),
        (logits, (guesses + 3) % 10),
        (torch.randn(100, 10, dtype=torch.float64, generator=local), torch.arange(100) % 10),
    ]

    def body():
        for i, (z, y) in enumerate(cases):
            expected = (z.argmax(dim=1) == y).float().mean().item()
            expect_close(accuracy(z.clone(), y.clone()), expected, f"case #{i}")
        return f"matches the argmax reference on {len(cases)} cases"

    return check(
        "Exercise 2.4 (accuracy)",
        body,
        hint="the guess is the largest logit of each row (argmax over dim=1); return a "
        "fraction between 0 and 1, not a percentage",
    )


def reference_step(net, optimizer, images, labels) -> float:
    """One training step, as in Chapter 2; returns the minibatch's loss before the step."""
    loss = F.cross_entropy(net(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def check_train_step(train_step: Callable[..., Any], steps: int = 3) -> Verdict:
    """Exercise 2.5: `train_step` updates a network exactly as the reference step does."""

    def body():
        torch.manual_seed(0)  # the two nets' initial weights; restored after check()
        images = random_tensor(steps, 8, 1, 28, 28, seed=4, dtype=torch.float32)
        labels = torch.randint(0, 10, (steps, 8), generator=generator(5))
        nets = [nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))]
        nets.append(copy.deepcopy(nets[0]))
        mine, ref = (torch.optim.SGD(n.parameters(), lr=0.1, momentum=0.9) for n in nets)
        for step in range(steps):
            got = train_step(nets[0], mine, images[step], labels[step])
            expected = reference_step(nets[1], ref, images[step], labels[step])
            expect(
                isinstance(got, float),
                f"step {step + 1}: expected the loss as a Python float, got {describe(got)}",
            )
            expect_close(got, expected, f"loss returned by step {step + 1}", rtol=1e-5)
            for (name, p), q in zip(nets[0].named_parameters(), nets[1].parameters(), strict=True):
                expect_close(p, q, f"parameter {name} after step {step + 1}", rtol=1e-5, atol=1e-7)
        return f"same losses and parameters as the reference in {steps} steps"

    return check(
        "Exercise 2.5 (train_step)",
        body,
        hint="loss = F.cross_entropy(net(images), labels); optimizer.zero_grad(); "
        "loss.backward(); optimizer.step(); return loss.item()",
    )


TRAINING_THRESHOLD = 0.93
"""The test accuracy that one epoch of Exercise 2.1's network must reach."""

TRAINING_BATCH_SIZE = 64


def check_training(
    make_net: Callable[[], Any],
    train_step: Callable[..., Any],
    accuracy: Callable[..., Any],
    batch_size: int = TRAINING_BATCH_SIZE,
    threshold: float = TRAINING_THRESHOLD,
) -> Verdict:
    """Exercises 2.1, 2.4 and 2.5 together: one epoch on MNIST reaches 93 % test accuracy.

    Trains `make_net()` with `train_step` and Adam for one epoch on the 60,000
    training images (about a second on a CPU), then compares `accuracy` on the 10,000
    test images with the reference.
    """

    def body():
        (X_train, y_train), (X_test, y_test) = (
            to_tensors(torchvision.datasets.MNIST(root=DATA_ROOT, train=t, download=True))
            for t in (True, False)
        )
        torch.manual_seed(0)  # make_net() draws from the global generator; restored after
        net = make_net()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        for images, labels in batches(X_train, y_train, batch_size, generator(0)):
            train_step(net, optimizer, images, labels)
        with torch.no_grad():
            logits = net(X_test)
        expected = (logits.argmax(dim=1) == y_test).float().mean().item()
        expect_close(accuracy(logits, y_test), expected, "accuracy on the test set")
        expect(
            expected >= threshold,
            f"test accuracy {expected:.2%} after one epoch, expected ≥ {threshold:.0%}",
        )
        return f"one epoch on {len(y_train):,} images, {expected:.2%} test accuracy"

    return check(
        "Exercises 2.1, 2.4 and 2.5 together",
        body,
        hint="each exercise's own check passes first; then look at what differs here",
    )
