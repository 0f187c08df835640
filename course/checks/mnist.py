"""Checks for the exercises of Chapter 2 (neural networks on MNIST).

Each check compares the learner's function with PyTorch's own: `nn.Sequential` for the
network, softmax and cross-entropy computed in float64, `argmax` for accuracy, and a
reference training step run side by side on a copy of the same network. Each typical
mistake gets a hint about its own cause, in three steps (`course.checks.Hint`).
"""

import copy
import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from course.checks import (
    Hint,
    Mismatch,
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    expect_equal,
    generator,
    hinted,
    learner_check,
    random_tensor,
    safe_str,
)
from course.data import DATA_ROOT, MnistDataError, check_mnist
from course.mnist import batches, to_tensors

SHAPE = [(784, 128), (128, 64), (64, 10)]
"""The (in, out) sizes of the linear layers of Exercise 2.1's network."""

NET_RECIPE = (
    "return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), "
    "nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))"
)
NET_HINTS = {
    "module": Hint(
        "make_net() must return the network itself: an nn.Module, built anew at each call.",
        "Put the layers in an nn.Sequential(...) inside make_net and return it (not a list "
        "of layers, a class or None).",
        NET_RECIPE,
    ),
    "sizes": Hint(
        "The linear layers' sizes must chain from the 784 pixels to the 10 logits: each "
        "layer's in_features is the previous layer's out_features.",
        "Three nn.Linear layers: 784 → 128, 128 → 64 and 64 → 10.",
        NET_RECIPE,
    ),
    "count": Hint(
        "Count the parameters: every nn.Linear(n_in, n_out) holds n_in × n_out weights and "
        "n_out biases, and nothing else in this network has parameters.",
        "Keep the biases (no bias=False) and add no other layer that has parameters.",
        NET_RECIPE,
    ),
    "crash": Hint(
        "The network receives a batch of images of shape (N, 1, 28, 28); its first linear "
        "layer needs each image as one row of 784 numbers.",
        "Start with nn.Flatten(), which turns (N, 1, 28, 28) into (N, 784).",
        NET_RECIPE,
    ),
    "activations": Hint(
        "The layers have the right sizes, so look at what sits between them: a ReLU after "
        "each hidden layer, and nothing after the last.",
        "The last layer's outputs are logits, which may be negative: no ReLU (or softmax) "
        "after it; and no other activation than ReLU.",
        NET_RECIPE,
    ),
}
"""The hints of Exercise 2.1, one per mistake (`activations` is the general one)."""


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


def _net_inputs() -> list[tuple[str, torch.Tensor]]:
    """Images for Exercise 2.1: random, large, and a batch of one."""
    return [
        ("5 random images", random_tensor(5, 1, 28, 28, seed=1, dtype=torch.float32)),
        (
            "3 images scaled by 100",
            random_tensor(3, 1, 28, 28, seed=2, dtype=torch.float32, scale=100),
        ),
        ("a batch of one image", random_tensor(1, 1, 28, 28, seed=3, dtype=torch.float32)),
    ]


@learner_check
def check_make_net(make_net: Callable[[], Any]) -> Verdict:
    """Exercise 2.1: `make_net()` is 784 → 128 → 64 → 10 with ReLUs, as a module.

    Judged by what it computes: its parameters, found by shape, are copied into the
    reference `nn.Sequential`, and both must give the same logits on random images,
    on large ones, and on a batch of one.
    """

    def body():
        torch.manual_seed(0)  # inside check(): the learner's global state is restored after
        net = call("make_net()", make_net)
        with hinted(NET_HINTS["module"]):
            expect(isinstance(net, nn.Module), f"expected an nn.Module, got {describe(net)}")
        count = sum(p.numel() for p in net.parameters())
        expected = sum(i * o + o for i, o in SHAPE)
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        with hinted(NET_HINTS["sizes"]):
            if linears:
                got = sorted((m.in_features, m.out_features) for m in linears)
                expect_equal(got, sorted(SHAPE), "linear layers (in, out)")
        with hinted(NET_HINTS["count"]):
            expect_equal(count, expected, "number of parameters")
            reference = _reference_from(_weights_by_role(net))
        for what, x in _net_inputs():
            with torch.no_grad(), hinted(NET_HINTS["crash"]):
                y = call(f"net(x) for {what}", net, x.clone())
            expected = reference(x)
            # float32 sums in another order (x @ W vs a Linear) differ by rounding
            atol = 1e-5 * (1 + expected.abs().max().item())
            expect_close(y, expected, f"output for {what}", rtol=1e-5, atol=atol)
        return f"{count:,} parameters, outputs match the reference"

    return check("Exercise 2.1 (make_net)", body, hint=NET_HINTS["activations"])


BUILTIN_NAMES = {
    "softmax": "softmax",
    "_softmax": "softmax",
    "log_softmax": "log_softmax",
    "_log_softmax": "log_softmax",
    "nll_loss": "nll_loss",
    "nll_loss_forward": "nll_loss",
    "nll_loss2d_forward": "nll_loss",
    "nll_loss_nd": "nll_loss",
    "cross_entropy_loss": "cross_entropy",
}
"""PyTorch's operators for softmax, log-softmax and cross-entropy, and what a learner
calls them. Every way of calling them (`F.softmax`, `torch.softmax`, `Tensor.softmax`,
`nn.Softmax`, `F.softmin`, `torch.special.softmax`, `F.log_softmax(...).exp()`,
`F.cross_entropy`, `nn.CrossEntropyLoss`, `F.nll_loss` …) runs one of them."""

SOFTMAX_OPS = frozenset(op for op, name in BUILTIN_NAMES.items() if "softmax" in name)
CROSS_ENTROPY_OPS = frozenset(BUILTIN_NAMES)


class _Operators(TorchDispatchMode):
    """Records the name of every PyTorch operator that runs while the mode is active."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@contextmanager
def _operators() -> Iterator[set[str]]:
    """The names of the operators the code inside the block runs (the set fills up)."""
    mode = _Operators()
    with mode:
        yield mode.names


def _run_without(ops: frozenset, hint: Hint, what: str, function: Callable, *args) -> Any:
    """`function(*args)`; a ✗ with `hint` if it ran any of PyTorch's operators `ops`."""
    with _operators() as ran:
        got = call(what, function, *args)
    used = sorted({BUILTIN_NAMES[op] for op in ran & ops})
    if used:
        with hinted(hint):
            raise Mismatch(f"{what}: your code calls PyTorch's own {' and '.join(used)}")
    return got


def softmax_cases() -> list[torch.Tensor]:
    """Logits for the softmax and cross-entropy checks.

    Random float32 and float64; rows near ±1000 (where `exp` overflows to inf or
    underflows to 0 in float32) beside a row near 0, so that one shift for the whole
    batch does not do; a row whose mean is far from its max; and float64 logits near
    10,000, beyond float64's `exp` too.
    """
    return [
        random_tensor(4, 10, seed=0, dtype=torch.float32),
        random_tensor(3, 5, seed=1, dtype=torch.float64, scale=5),
        torch.tensor([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]]),
        torch.tensor([[-1000.0, -1000.0, -1002.0]]),
        torch.tensor([[-500.0, 500.0, 0.0, 499.0]]),
        torch.tensor([[1e4, 1e4 + 1, -1e4], [2.0, 1.0, 0.5]], dtype=torch.float64),
    ]


def float_tolerance(logits: torch.Tensor) -> float:
    """A relative tolerance that every correct formula meets on `logits`.

    Softmax and log-softmax subtract logits of size up to `max|z|` from each other (or
    from their logsumexp), and each rounding there costs up to `eps · max|z|`: e.g.
    `torch.exp(z - torch.logsumexp(z, 1, keepdim=True))` near 1000 in float32 is off
    by about 1e-4 relative, as correct as `F.softmax` itself. Four such roundings.
    """
    eps = torch.finfo(logits.dtype).eps
    return 4 * eps * (1 + logits.abs().max().item())


SOFTMAX_RECIPE = (
    "shifted = logits - logits.max(dim=1, keepdim=True).values; e = shifted.exp(); "
    "return e / e.sum(dim=1, keepdim=True)"
)
SOFTMAX_HINTS = {
    "general": Hint(
        "Softmax turns each row into positive numbers that sum to 1: e^z_k divided by the "
        "sum of e^z_j over the same row.",
        "Exponentiate, then divide by the row sums: sum over dim=1 with keepdim=True, so "
        "that the (N, 1) sums broadcast over the row.",
        SOFTMAX_RECIPE,
    ),
    "overflow": Hint(
        "Your result has nan or inf where softmax has finite numbers: torch.exp overflows "
        "to inf above about 88 in float32 (709 in float64), and inf / inf is nan.",
        "Softmax does not change when the same number is subtracted from every logit of "
        "a row: choose it so that no exponent is positive, row by row (one number for the "
        "whole batch is too small for some rows and too large for others).",
        SOFTMAX_RECIPE,
    ),
    "large": Hint(
        "Your softmax is right for small logits but not for these large ones, where "
        "torch.exp alone overflows: softmax depends only on the differences between a "
        "row's logits, and clamping or rescaling the logits changes those differences.",
        "Subtract the same number from every logit of a row, chosen so that no exponent is "
        "positive, row by row: the differences, and softmax, stay as they were.",
        SOFTMAX_RECIPE,
    ),
    "axis": Hint(
        "Each column of your result sums to 1, not each row: the sum runs over the wrong "
        "dimension.",
        "The classes are along dim=1 (a row per image): sum over dim=1, keepdim=True.",
        SOFTMAX_RECIPE,
    ),
    "builtin": Hint(
        "The exercise is to build softmax yourself, from torch.exp and a sum; PyTorch's "
        "softmax is what your function is compared with.",
        "Use torch.exp and .sum (torch.logsumexp is fine too); no softmax or log_softmax "
        "in any form (F., torch., Tensor., nn.).",
        SOFTMAX_RECIPE,
    ),
}
"""The hints of Exercise 2.2, one per mistake."""


def _expected_dtype(got: Any, logits: torch.Tensor) -> torch.dtype:
    """The dtype a right answer has: the logits', or float64 for an answer computed in
    float64 and returned so (more precise, and just as right)."""
    if isinstance(got, torch.Tensor) and got.dtype == torch.float64:
        return torch.float64
    return logits.dtype


def _softmax_mistake(got: Any, expected: torch.Tensor, logits: torch.Tensor) -> Hint:
    """The hint for the mistake `got` shows: overflow, logits changed to avoid it (a
    finite but wrong result where `exp` of the logits overflows), the wrong axis, or the
    general one."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return SOFTMAX_HINTS["general"]
    got = got.detach().to(torch.float64)
    if not got.isfinite().all():
        return SOFTMAX_HINTS["overflow"]
    if logits.abs().max().item() > math.log(torch.finfo(logits.dtype).max):
        return SOFTMAX_HINTS["large"]
    ones = torch.ones(1, dtype=torch.float64)
    if torch.allclose(got.sum(dim=0), ones, atol=1e-4) and not torch.allclose(
        got.sum(dim=1), ones, atol=1e-4
    ):
        return SOFTMAX_HINTS["axis"]
    return SOFTMAX_HINTS["general"]


@learner_check
def check_softmax(softmax: Callable[[torch.Tensor], Any]) -> Verdict:
    """Exercise 2.2: `softmax(logits)` equals softmax computed in float64, returned in
    the logits' dtype or in float64.

    Within `float_tolerance`, so every correct float32 formula passes; PyTorch's own
    softmax, in any of its forms, does not (the exercise is to build it).
    """
    cases = softmax_cases()

    def body():
        for i, logits in enumerate(cases):
            got = _run_without(
                SOFTMAX_OPS,
                SOFTMAX_HINTS["builtin"],
                f"softmax(logits #{i})",
                softmax,
                logits.clone(),
            )
            expected = F.softmax(logits.double(), dim=1).to(_expected_dtype(got, logits))
            tiny = torch.finfo(logits.dtype).tiny  # below it, float32 may flush to 0
            with hinted(_softmax_mistake(got, expected, logits)):
                expect_close(got, expected, f"logits #{i}", rtol=float_tolerance(logits), atol=tiny)
        return f"matches softmax on {len(cases)} inputs, huge logits included"

    return check("Exercise 2.2 (softmax)", body, hint=SOFTMAX_HINTS["general"])


CROSS_ENTROPY_RECIPE = (
    "log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True); "
    "return -log_p[torch.arange(len(labels)), labels].mean()"
)
CROSS_ENTROPY_HINTS = {
    "general": Hint(
        "The loss is the mean over the rows of −log p_y: the log-probability that each row "
        "gives its own label, negated, then averaged.",
        "Compute log p for every class at once, z − logsumexp(z) per row, then pick row i's "
        "entry in column labels[i] with log_p[torch.arange(n), labels].",
        CROSS_ENTROPY_RECIPE,
    ),
    "graph": Hint(
        "Return the loss as a tensor computed from the logits, so that backward() can reach "
        "them: .item(), float(), .detach() or torch.tensor(...) cut that link.",
        "Keep every step in torch operations on `logits` and return the 0-d tensor.",
        CROSS_ENTROPY_RECIPE,
    ),
    "underflow": Hint(
        "Your loss is inf or nan for large or confident logits: e^1000 overflows to inf, "
        "and a probability such as e^−1000 rounds to 0, whose log is −inf.",
        "Compute log p directly, log p_k = z_k − log Σ_j e^z_j (torch.logsumexp computes "
        "the last term safely), instead of the log of a softmax.",
        CROSS_ENTROPY_RECIPE,
    ),
    "epsilon": Hint(
        "Your loss is smaller than the right one, and by far the most where a row gives its "
        "label a tiny probability: a small number added inside the log, or a clamp, stands "
        "in for a probability that rounded to 0, so −log p_y stops near −log ε where it "
        "should be, say, 1000.",
        "Take the log of no probability at all: log p_k = z_k − log Σ_j e^z_j is finite for "
        "any logits, and torch.logsumexp computes the last term without overflow.",
        CROSS_ENTROPY_RECIPE,
    ),
    "sum": Hint(
        "Your loss is the number of rows times the expected one: a sum over the rows, "
        "where the loss is their mean.",
        "Average over the rows: .mean() instead of .sum().",
        CROSS_ENTROPY_RECIPE,
    ),
    "sign": Hint(
        "Your loss has the opposite sign: −log p_y is positive, since log p_y ≤ 0.",
        "Negate the mean of the picked log-probabilities.",
        CROSS_ENTROPY_RECIPE,
    ),
    "builtin": Hint(
        "The exercise is to compute the loss yourself; F.cross_entropy is what your "
        "function is compared with.",
        "Use torch.logsumexp, indexing and .mean(); no cross_entropy, nll_loss, softmax or "
        "log_softmax in any form (F., torch., Tensor., nn.).",
        CROSS_ENTROPY_RECIPE,
    ),
}
"""The hints of Exercise 2.3, one per mistake."""


def _cross_entropy_mistake(got: Any, expected: torch.Tensor, rows: int) -> Hint:
    """The hint for the mistake `got` shows: log of 0, a sum, the sign, an epsilon in the
    log, or the general one.

    An epsilon (or a clamp) makes every loss a little smaller, and a confident row's loss
    (above 20, a probability below 2e-9) far smaller."""
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        return CROSS_ENTROPY_HINTS["general"]
    value, target = got.detach().double().item(), expected.double().item()
    if not torch.isfinite(torch.tensor(value)):
        return CROSS_ENTROPY_HINTS["underflow"]
    for mistake, factor in (("sum", rows), ("sign", -1)):
        if abs(value - factor * target) <= 1e-3 * abs(factor * target) and target != 0:
            return CROSS_ENTROPY_HINTS[mistake]
    if 0 <= value < target and (target - value <= 1e-3 * target or target > 20):
        return CROSS_ENTROPY_HINTS["epsilon"]
    return CROSS_ENTROPY_HINTS["general"]


def _cross_entropy_cases() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Logits and labels: the softmax cases with random labels, and confident rows."""
    local = generator(1)
    cases = softmax_cases()
    labels = [torch.randint(0, len(z[0]), (len(z),), generator=local) for z in cases]
    cases.append(torch.tensor([[0.0, 1000.0], [1000.0, 0.0], [3.0, -3.0]]))
    labels.append(torch.tensor([0, 0, 1]))  # confident and wrong: a loss of 1000
    return cases, labels


@learner_check
def check_cross_entropy(cross_entropy: Callable[[torch.Tensor, torch.Tensor], Any]) -> Verdict:
    """Exercise 2.3: `cross_entropy(logits, labels)` is the loss computed in float64
    (returned in the logits' dtype or in float64), within `float_tolerance`, and its
    gradient is `F.cross_entropy`'s."""
    cases, labels = _cross_entropy_cases()
    builtin = CROSS_ENTROPY_HINTS["builtin"]

    def body():
        leaf = cases[0].clone().requires_grad_()
        loss = _run_without(
            CROSS_ENTROPY_OPS, builtin, "logits #0", cross_entropy, leaf, labels[0].clone()
        )
        with hinted(CROSS_ENTROPY_HINTS["graph"]):
            expect(
                isinstance(loss, torch.Tensor) and loss.requires_grad,
                f"expected a tensor that gradients can flow through, got {describe(loss)}",
            )
        for i, (logits, y) in enumerate(zip(cases, labels, strict=True)):
            what = f"logits #{i}"
            got = _run_without(
                CROSS_ENTROPY_OPS, builtin, what, cross_entropy, logits.clone(), y.clone()
            )
            expected = F.cross_entropy(logits.double(), y).to(_expected_dtype(got, logits))
            tolerance = float_tolerance(logits)
            with hinted(_cross_entropy_mistake(got, expected, len(y))):
                expect_close(got, expected, what, rtol=tolerance, atol=tolerance)
        (got_grad,) = torch.autograd.grad(loss, leaf)
        (expected_grad,) = torch.autograd.grad(F.cross_entropy(leaf, labels[0]), leaf)
        expect_close(got_grad, expected_grad, "gradient for logits #0", rtol=1e-5, atol=1e-7)
        return f"matches the cross-entropy on {len(cases)} inputs, and its gradient"

    return check("Exercise 2.3 (cross_entropy)", body, hint=CROSS_ENTROPY_HINTS["general"])


ACCURACY_RECIPE = "return (logits.argmax(dim=1) == labels).float().mean().item()"
ACCURACY_HINTS = {
    "general": Hint(
        "A row's guess is the position of its largest logit; accuracy is the fraction of "
        "rows whose guess equals their label.",
        "argmax over dim=1 gives one guess per row; compare the guesses with the labels "
        "and average the result (booleans become 1.0 and 0.0 with .float()).",
        ACCURACY_RECIPE,
    ),
    "percent": Hint(
        "Your value is 100 times the expected one: return a fraction between 0 and 1, not "
        "a percentage.",
        "Leave out the factor 100.",
        ACCURACY_RECIPE,
    ),
    "integer": Hint(
        "Your value is a whole number where the fraction lies between 0 and 1: an integer "
        "division, or a conversion to int, rounds it down.",
        "Divide with / (true division), not //, and keep the result a float; or take the "
        "mean of the matches as floats.",
        ACCURACY_RECIPE,
    ),
    "count": Hint(
        "Your value is the number of rows guessed right, not the fraction of them.",
        "Divide by the number of rows, or take the mean of the matches as floats.",
        ACCURACY_RECIPE,
    ),
}
"""The hints of Exercise 2.4, one per mistake."""


def _accuracy_mistake(got: Any, expected: float, rows: int) -> Hint:
    """The hint for an accuracy that is a percentage, a count or rounded down to an
    integer, else the general one."""
    try:
        value = float(got)
    except (TypeError, ValueError, RuntimeError):
        return ACCURACY_HINTS["general"]
    for mistake, factor in (("percent", 100), ("count", rows)):
        if expected and abs(value - factor * expected) < 1e-6 * factor:
            return ACCURACY_HINTS[mistake]
    integer = isinstance(got, numbers.Integral) or (
        isinstance(got, torch.Tensor) and not got.is_floating_point() and not got.is_complex()
    )
    if integer and value == 0 and 0 < expected < 1:
        return ACCURACY_HINTS["integer"]
    return ACCURACY_HINTS["general"]


@learner_check
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
            got = call(f"accuracy for case #{i}", accuracy, z.clone(), y.clone())
            with hinted(_accuracy_mistake(got, expected, len(y))):
                expect_close(got, expected, f"case #{i}")
        return f"matches the argmax reference on {len(cases)} cases"

    return check("Exercise 2.4 (accuracy)", body, hint=ACCURACY_HINTS["general"])


def reference_step(net, optimizer, images, labels) -> float:
    """One training step, as in Chapter 2; returns the minibatch's loss before the step."""
    loss = F.cross_entropy(net(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


STEP_RECIPE = (
    "loss = F.cross_entropy(net(images), labels); optimizer.zero_grad(); "
    "loss.backward(); optimizer.step(); return loss.item()"
)
STEP_HINTS = {
    "general": Hint(
        "One step: the loss of this minibatch, then clear the old gradients, compute the "
        "new ones, and let the optimizer update the parameters.",
        "Four calls in this order: F.cross_entropy on net(images) and labels, "
        "optimizer.zero_grad(), loss.backward(), optimizer.step().",
        STEP_RECIPE,
    ),
    "float": Hint(
        "The step returns the loss as a Python float, the number itself, not a tensor (a "
        "tensor would keep the whole step's graph alive in a list of losses).",
        "loss.item() turns a one-element tensor into a float.",
        STEP_RECIPE,
    ),
    "loss": Hint(
        "The loss you return is this minibatch's loss after the update, not before it.",
        "Return the loss you called backward on, computed once from net(images) before "
        "optimizer.step().",
        STEP_RECIPE,
    ),
    "which_loss": Hint(
        "The loss you return is not the cross-entropy of this minibatch's logits: look at "
        "which loss function you call, on what, and how it reduces the batch.",
        "F.cross_entropy(net(images), labels) takes the raw logits (it applies log-softmax "
        "itself: no softmax before it; F.nll_loss alone expects log-probabilities) and "
        "averages over the minibatch (no reduction='sum').",
        STEP_RECIPE,
    ),
    "accumulated": Hint(
        "From step 2 on, your parameters' .grad holds this step's gradient plus the earlier "
        "steps': backward adds to what .grad holds, it does not overwrite it.",
        "Clear the gradients in every step, before loss.backward(): optimizer.zero_grad().",
        STEP_RECIPE,
    ),
    "cleared": Hint(
        "The optimizer stepped with gradients of zero: they were cleared after backward "
        "computed them and before the step used them.",
        "Call optimizer.zero_grad() before loss.backward(), not between backward and step.",
        STEP_RECIPE,
    ),
    "no_backward": Hint(
        "After your step the parameters have no gradients: nothing computed them.",
        "loss.backward() computes the gradient of the loss for every parameter.",
        STEP_RECIPE,
    ),
    "own_update": Hint(
        "Your step changes the parameters itself, not through the optimizer it is given; "
        "that optimizer may do more than subtract lr × grad (this one has momentum).",
        "Let the optimizer update the parameters: optimizer.step().",
        STEP_RECIPE,
    ),
    "no_update": Hint(
        "Your step leaves the parameters as they were: computing the gradients does not "
        "change the parameters by itself.",
        "optimizer.step() moves the parameters, with the gradients that backward computed.",
        STEP_RECIPE,
    ),
}
"""The hints of Exercise 2.5, one per mistake."""


@contextmanager
def _watch(net: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[set[str]]:
    """A set that gets `"backward"` once a backward pass writes a gradient of `net`, and
    `"step"` once `optimizer.step()` runs."""
    seen: set[str] = set()
    handles = [
        p.register_post_accumulate_grad_hook(lambda _: seen.add("backward"))
        for p in net.parameters()
    ]
    handles.append(optimizer.register_step_post_hook(lambda *_: seen.add("step")))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _loss_mistake(got: Any, net: nn.Module, images, labels) -> Hint:
    """The hint for a returned loss that differs from the reference's: the loss after the
    update (`net` has stepped), or another loss function."""
    with torch.no_grad():
        after = F.cross_entropy(net(images), labels).item()
    if isinstance(got, float) and math.isclose(got, after, rel_tol=1e-5):
        return STEP_HINTS["loss"]
    return STEP_HINTS["which_loss"]


def _step_mistake(net, before, ref_grads, seen: set[str]) -> Hint:
    """The hint for a step whose parameters differ from the reference's after it.

    `before` are the parameters before the step, `ref_grads` the reference's gradients
    of every step so far (the last is this step's), `seen` what the learner's step ran
    (`_watch`).
    """
    if "backward" not in seen:
        return STEP_HINTS["no_backward"]
    grads = [p.grad for p in net.parameters()]
    if all(g is None or not g.any() for g in grads):
        return STEP_HINTS["cleared"]
    unchanged = all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))
    if "step" not in seen:
        return STEP_HINTS["no_update" if unchanged else "own_update"]
    summed = [sum(step) for step in zip(*ref_grads, strict=True)]
    if len(ref_grads) > 1 and all(
        torch.allclose(g, s, rtol=1e-4, atol=1e-6) for g, s in zip(grads, summed, strict=True)
    ):
        return STEP_HINTS["accumulated"]
    return STEP_HINTS["general"]


@learner_check
def check_train_step(train_step: Callable[..., Any], steps: int = 3) -> Verdict:
    """Exercise 2.5: `train_step` updates a network exactly as the reference step does.

    SGD with momentum, so that a step taken with the wrong gradients shows in the
    parameters; a ✗ says what the learner's step did to the gradients and parameters.
    """

    def body():
        torch.manual_seed(0)  # the two nets' initial weights; restored after check()
        images = random_tensor(steps, 8, 1, 28, 28, seed=4, dtype=torch.float32)
        labels = torch.randint(0, 10, (steps, 8), generator=generator(5))
        nets = [nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))]
        nets.append(copy.deepcopy(nets[0]))
        mine, ref = (torch.optim.SGD(n.parameters(), lr=0.1, momentum=0.9) for n in nets)
        ref_grads = []
        for step in range(steps):
            before = [p.detach().clone() for p in nets[0].parameters()]
            with _watch(nets[0], mine) as seen:
                got = call(
                    f"step {step + 1}", train_step, nets[0], mine, images[step], labels[step]
                )
            expected = reference_step(nets[1], ref, images[step], labels[step])
            ref_grads.append([p.grad.clone() for p in nets[1].parameters()])
            with hinted(STEP_HINTS["float"]):
                expect(
                    isinstance(got, float),
                    f"step {step + 1}: expected the loss as a Python float, got {describe(got)}",
                )
            with hinted(_loss_mistake(got, nets[0], images[step], labels[step])):
                expect_close(got, expected, f"loss returned by step {step + 1}", rtol=1e-5)
            with hinted(_step_mistake(nets[0], before, ref_grads, seen)):
                pairs = zip(nets[0].named_parameters(), nets[1].parameters(), strict=True)
                for (name, p), q in pairs:
                    what = f"parameter {name} after step {step + 1}"
                    expect_close(p, q, what, rtol=1e-5, atol=1e-7)
        return f"same losses and parameters as the reference in {steps} steps"

    return check("Exercise 2.5 (train_step)", body, hint=STEP_HINTS["general"])


TRAINING_THRESHOLD = 0.93
"""The test accuracy that one epoch of Exercise 2.1's network must reach."""

TRAINING_BATCH_SIZE = 64

TRAINING_HINT = Hint(
    "Run the checks of Exercises 2.1, 2.4 and 2.5 first: this one puts those three "
    "functions together, and each must pass alone.",
    "If each passes alone, look at what your functions keep between calls: make_net() "
    "must build a new network each time, train_step must use the net and optimizer it "
    "is given.",
    "make_net() returns a new nn.Sequential; train_step(net, optimizer, images, labels) "
    "does one step with that optimizer and returns loss.item(); accuracy(logits, labels) "
    "returns (logits.argmax(dim=1) == labels).float().mean().item().",
)

DATA_HINT = Hint(
    "This is about the data, not your code: connect to the internet and run the check "
    "again (torchvision downloads MNIST, about 12 MB, once), or copy the four MNIST files "
    "into the folder named above."
)


def _probe(make_net, train_step, accuracy) -> None:
    """Call each function once on a tiny input, so that a stub says "not done yet" before
    MNIST is loaded (and perhaps downloaded). Only a stub's `NotImplementedError` leaves
    here; any other failure shows again, with its message, in the real run."""
    images = random_tensor(2, 1, 28, 28, seed=6, dtype=torch.float32)
    labels = torch.tensor([3, 7])
    for function, args in (
        (make_net, ()),
        (accuracy, (torch.eye(10)[:2], labels)),
        (train_step, None),
    ):
        try:
            if args is None:  # a throwaway network, so the real run starts afresh
                net = copy.deepcopy(make_net())
                args = (net, torch.optim.SGD(net.parameters(), lr=0.0), images, labels)
            function(*args)
        except NotImplementedError:
            raise
        except Exception:  # reported by the real run, with the data it needs
            pass


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (the count is restored afterwards).

    The epoch's matrices are small (64 images at a time), so more threads gain little,
    and on a machine whose cores are busy with other programs they wait for each other:
    on two busy cores the epoch took 10 s on one thread and 99 s on two.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_mnist(root: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """MNIST's training and test sets as tensors, from `root` (downloaded there if absent).

    A damaged copy, or no copy and no network, becomes one message that says so.
    """
    try:
        check_mnist(root)
        return [
            to_tensors(torchvision.datasets.MNIST(root=root, train=train, download=True))
            for train in (True, False)
        ]
    except MnistDataError as error:
        raise Mismatch(f"MNIST: {safe_str(error)}") from None
    except (RuntimeError, OSError) as error:
        reason = safe_str(error).strip().splitlines()[-1]
        raise Mismatch(
            f"MNIST is not in {Path(root) / 'MNIST' / 'raw'} and could not be downloaded ({reason})"
        ) from None


@learner_check
def check_training(
    make_net: Callable[[], Any],
    train_step: Callable[..., Any],
    accuracy: Callable[..., Any],
    batch_size: int = TRAINING_BATCH_SIZE,
    threshold: float = TRAINING_THRESHOLD,
) -> Verdict:
    """Exercises 2.1, 2.4 and 2.5 together: one epoch on MNIST reaches 93 % test accuracy.

    Stubs are reported first, before any data is loaded. Then trains `make_net()` with
    `train_step` and Adam for one epoch on the 60,000 training images (seconds on a
    CPU), and compares `accuracy` on the 10,000 test images with the reference.
    """

    def body():
        _probe(make_net, train_step, accuracy)
        with hinted(DATA_HINT):
            (X_train, y_train), (X_test, y_test) = _load_mnist(DATA_ROOT)
        torch.manual_seed(0)  # make_net() draws from the global generator; restored after
        net = call("make_net()", make_net)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        with one_thread():
            for images, labels in batches(X_train, y_train, batch_size, generator(0)):
                call("train_step", train_step, net, optimizer, images, labels)
        with torch.no_grad():
            logits = net(X_test)
        expected = (logits.argmax(dim=1) == y_test).float().mean().item()
        got = call("accuracy", accuracy, logits, y_test)
        with hinted(_accuracy_mistake(got, expected, len(y_test))):
            expect_close(got, expected, "accuracy on the test set")
        expect(
            expected >= threshold,
            f"test accuracy {expected:.2%} after one epoch, expected ≥ {threshold:.0%}",
        )
        return f"one epoch on {len(y_train):,} images, {expected:.2%} test accuracy"

    return check("Exercises 2.1, 2.4 and 2.5 together", body, hint=TRAINING_HINT)
