"""The checks of Chapter 2 pass a right answer, fail each typical wrong one, spot a stub."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course.checks import mnist as checks


def stub(*args):
    raise NotImplementedError("Exercise 2.x is not done yet")


def verdict(check, *functions, expected: str, says: str = ""):
    """Run ``check`` on ``functions``; assert its status, and that its message says ``says``."""
    result = check(*functions)
    assert result.status == expected, f"expected {expected!r}, got: {result}"
    assert says in result.message, f"the verdict should mention {says!r}: {result}"
    return result


def net_of(*layers):
    return lambda: nn.Sequential(nn.Flatten(), *layers)


def right_net():
    return net_of(
        nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )()


@pytest.mark.parametrize(
    ("make_net", "says"),
    [
        (net_of(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)), "linear layers"),
        (net_of(nn.Linear(784, 128), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)), "output"),
        (
            net_of(
                nn.Linear(784, 128),
                nn.ReLU(),
                nn.Linear(128, 64),
                nn.ReLU(),
                nn.Linear(64, 10),
                nn.ReLU(),
            ),
            "output",
        ),
        (
            net_of(
                nn.Linear(784, 128), nn.Sigmoid(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
            ),
            "output",
        ),
        (lambda: "not a network", "nn.Module"),
    ],
    ids=["wrong shape", "missing relu", "relu at the end", "sigmoid", "not a module"],
)
def test_make_net_catches(make_net, says):
    verdict(checks.check_make_net, make_net, expected="fail", says=says)


class Reordered(nn.Module):
    """Right: the layers are registered last-first, and used first-last."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(64, 10)
        self.hidden = nn.Linear(128, 64)
        self.first = nn.Linear(784, 128)

    def forward(self, x):
        x = F.relu(self.first(x.flatten(1)))
        return self.out(F.relu(self.hidden(x)))


class BareParameters(nn.Module):
    """Right: no nn.Linear at all; weights stored (in, out) and used as x @ W + b."""

    def __init__(self):
        super().__init__()
        self.w = nn.ParameterList(
            nn.Parameter(torch.randn(i, o) / i**0.5) for i, o in [(784, 128), (128, 64), (64, 10)]
        )
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(o)) for o in (128, 64, 10))

    def forward(self, x):
        x = x.reshape(len(x), -1)
        for i, (w, b) in enumerate(zip(self.w, self.b, strict=True)):
            x = x @ w + b
            x = x.relu() if i < 2 else x
        return x


class SwappedUse(Reordered):
    """Wrong: applies ReLU before the first layer instead of after it."""

    def forward(self, x):
        x = self.first(F.relu(x.flatten(1)))
        return self.out(F.relu(self.hidden(F.relu(x))))


class Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = right_net()

    def forward(self, x):
        raise ValueError("broken")


@pytest.mark.parametrize("make_net", [Reordered, BareParameters], ids=["reordered", "bare"])
def test_make_net_judges_what_the_network_computes(make_net):
    verdict(checks.check_make_net, make_net, expected="pass", says="109,386")


@pytest.mark.parametrize(
    ("make_net", "says"),
    [
        (SwappedUse, "output for"),
        (Raises, "net(x) for 5 random images: your code raised ValueError"),
        (lambda: None, "expected an nn.Module, got None"),
        (lambda: 1 / 0, "make_net(): your code raised ZeroDivisionError"),
    ],
    ids=["relu misplaced", "forward raises", "None", "raises"],
)
def test_make_net_rejects_junk(make_net, says):
    verdict(checks.check_make_net, make_net, expected="fail", says=says)


def test_make_net_leaves_the_global_generator_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    checks.check_make_net(right_net)
    assert torch.equal(torch.rand(3), expected)


def test_make_net_passes_and_spots_stub():
    verdict(checks.check_make_net, right_net, expected="pass", says="109,386")
    verdict(checks.check_make_net, stub, expected="todo")


def naive_softmax(z):
    return z.exp() / z.exp().sum(dim=1, keepdim=True)


def stable_softmax(z):
    z = z - z.max(dim=1, keepdim=True).values
    return naive_softmax(z)


def test_softmax():
    verdict(checks.check_softmax, stable_softmax, expected="pass")
    verdict(checks.check_softmax, lambda z: torch.softmax(z, dim=1), expected="pass")
    verdict(checks.check_softmax, naive_softmax, expected="fail", says="logits #2")
    verdict(checks.check_softmax, lambda z: torch.softmax(z, dim=0), expected="fail", says="#0")
    verdict(checks.check_softmax, lambda z: z.exp(), expected="fail")
    verdict(checks.check_softmax, stub, expected="todo")


def logsumexp_ce(z, y):
    log_p = z - torch.logsumexp(z, dim=1, keepdim=True)
    return -log_p[torch.arange(len(y)), y].mean()


def shifted_ce(z, y):
    return logsumexp_ce(z - z.max(dim=1, keepdim=True).values, y)


@pytest.mark.parametrize(
    ("cross_entropy", "says"),
    [
        (lambda z, y: -stable_softmax(z)[torch.arange(len(y)), y].log().mean(), "logits #4"),
        (lambda z, y: logsumexp_ce(z, y) * len(y), "logits #0"),
        (lambda z, y: -logsumexp_ce(z, y), "logits #0"),
        (lambda z, y: F.cross_entropy(z, (y + 1) % z.shape[1]), "logits #0"),
        (lambda z, y: logsumexp_ce(z, y).item(), "gradients can flow"),
        (lambda z, y: logsumexp_ce(z.detach(), y), "gradients can flow"),
    ],
    ids=["log of softmax", "sum not mean", "sign", "wrong label", "float", "detached"],
)
def test_cross_entropy_catches(cross_entropy, says):
    verdict(checks.check_cross_entropy, cross_entropy, expected="fail", says=says)


def test_cross_entropy_passes_and_spots_stub():
    for right in (logsumexp_ce, shifted_ce, F.cross_entropy):
        verdict(checks.check_cross_entropy, right, expected="pass")
    verdict(checks.check_cross_entropy, stub, expected="todo")


def test_accuracy():
    def right(z, y):
        return (z.argmax(dim=1) == y).float().mean().item()

    verdict(checks.check_accuracy, right, expected="pass")
    verdict(checks.check_accuracy, lambda z, y: (z.argmax(1) == y).float().mean(), expected="pass")
    verdict(checks.check_accuracy, lambda z, y: 100 * right(z, y), expected="fail", says="case #0")
    verdict(checks.check_accuracy, lambda z, y: (z.argmax(0) == y).float().mean(), expected="fail")
    verdict(checks.check_accuracy, lambda z, y: (z.argmax(1) == y).sum(), expected="fail")
    verdict(checks.check_accuracy, stub, expected="todo")


def no_zero_grad(net, optimizer, images, labels):
    loss = F.cross_entropy(net(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def no_step(net, optimizer, images, labels):
    loss = F.cross_entropy(net(images), labels)
    optimizer.zero_grad()
    loss.backward()
    return loss.item()


def returns_tensor(net, optimizer, images, labels):
    checks.reference_step(net, optimizer, images, labels)
    return F.cross_entropy(net(images), labels)


def loss_after_step(net, optimizer, images, labels):
    checks.reference_step(net, optimizer, images, labels)
    return F.cross_entropy(net(images), labels).item()


@pytest.mark.parametrize(
    ("train_step", "says"),
    [
        (no_zero_grad, "after step 2"),
        (no_step, "after step 1"),
        (returns_tensor, "Python float"),
        (loss_after_step, "loss returned by step 1"),
    ],
    ids=["no zero_grad", "no step", "returns tensor", "loss after step"],
)
def test_train_step_catches(train_step, says):
    verdict(checks.check_train_step, train_step, expected="fail", says=says)


def test_train_step_passes_and_spots_stub():
    verdict(checks.check_train_step, checks.reference_step, expected="pass")
    verdict(checks.check_train_step, stub, expected="todo")


def test_training_passes_and_spots_stubs():
    def accuracy(z, y):
        return (z.argmax(dim=1) == y).float().mean().item()

    verdict(
        checks.check_training,
        right_net,
        checks.reference_step,
        accuracy,
        expected="pass",
        says="test accuracy",
    )
    verdict(checks.check_training, stub, checks.reference_step, accuracy, expected="todo")


def test_training_catches_a_step_that_does_not_learn():
    def accuracy(z, y):
        return (z.argmax(dim=1) == y).float().mean().item()

    verdict(checks.check_training, right_net, no_step, accuracy, expected="fail", says="93%")
