"""The checks of Chapter 2 pass a right answer, fail each typical wrong one, spot a stub."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from course.checks import mnist as checks
from course.checks import reset_hints


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


RIGHT_SOFTMAXES = {
    "shift by the max": stable_softmax,
    "exp minus logsumexp": lambda z: torch.exp(z - torch.logsumexp(z, 1, keepdim=True)),
    "one over a sum of ratios": lambda z: 1 / torch.exp(z.unsqueeze(1) - z.unsqueeze(2)).sum(2),
    "amax, times the reciprocal": lambda z: (lambda e: e * (1 / e.sum(-1, keepdim=True)))(
        torch.exp(z - torch.amax(z, -1, True))
    ),
    "in place, on its input": lambda z: (lambda e: e / e.sum(dim=1, keepdim=True))(
        z.sub_(z.max(1, keepdim=True).values).exp_()
    ),
    "a loop over the rows": lambda z: torch.stack(
        [torch.exp(r - r.max()) / torch.exp(r - r.max()).sum() for r in z]
    ),
    "in float64, returned so": lambda z: stable_softmax(z.double()),
    "in float64, cast back": lambda z: stable_softmax(z.double()).to(z.dtype),
}


@pytest.mark.parametrize("softmax", RIGHT_SOFTMAXES.values(), ids=RIGHT_SOFTMAXES.keys())
def test_softmax_accepts_every_correct_formula(softmax):
    verdict(checks.check_softmax, softmax, expected="pass")


def test_the_tolerance_is_what_a_correct_float32_formula_needs():
    """The logsumexp form is off by ~1e-4 near 1000 in float32: more than 1e-5, within ours."""
    z = torch.tensor([[1000.0, 1001.0, 999.0]])
    got = RIGHT_SOFTMAXES["exp minus logsumexp"](z).double()
    exact = torch.softmax(z.double(), 1)
    error = ((got - exact).abs() / exact).max().item()
    assert 1e-5 < error < checks.float_tolerance(z), error


BUILTIN_SOFTMAXES = {
    "F.softmax": lambda z: F.softmax(z, dim=1),
    "torch.softmax": lambda z: torch.softmax(z, dim=1),
    "Tensor.softmax": lambda z: z.softmax(1),
    "nn.Softmax": lambda z: nn.Softmax(dim=1)(z),
    "torch.special.softmax": lambda z: torch.special.softmax(z, 1),
    "F.softmin": lambda z: F.softmin(-z, dim=1),
    "log_softmax().exp()": lambda z: F.log_softmax(z, dim=1).exp(),
    "Tensor.log_softmax": lambda z: z.log_softmax(1).exp(),
    "nn.LogSoftmax": lambda z: nn.LogSoftmax(dim=1)(z).exp(),
    "torch.ops.aten": lambda z: torch.ops.aten._softmax(z, 1, False),
}


@pytest.mark.parametrize("softmax", BUILTIN_SOFTMAXES.values(), ids=BUILTIN_SOFTMAXES.keys())
def test_softmax_refuses_pytorchs_own_in_every_form(softmax):
    result = verdict(checks.check_softmax, softmax, expected="fail", says="PyTorch's own")
    assert checks.SOFTMAX_HINTS["builtin"].idea in result.message, result


def global_max_softmax(z):
    return naive_softmax(z - z.max())


def mean_shift_softmax(z):
    return naive_softmax(z - z.mean(dim=1, keepdim=True))


@pytest.mark.parametrize(
    ("softmax", "says", "mistake"),
    [
        (naive_softmax, "logits #2", "overflow"),
        (global_max_softmax, "logits #2", "overflow"),
        (mean_shift_softmax, "logits #4", "overflow"),
        (lambda z: naive_softmax(z.double()) if z.dtype == torch.float64 else stable_softmax(z),
         "logits #5", "overflow"),
        (lambda z: torch.exp(z - torch.logsumexp(z, 0, keepdim=True)), "#0", "axis"),
        (lambda z: z.exp(), "logits #0", "general"),
        (lambda z: naive_softmax(z.clamp(max=80)), "logits #2", "large"),
        (lambda z: naive_softmax(z / 100), "logits #0", "general"),
    ],
    ids=["naive", "one max for the batch", "mean shift", "naive in float64", "dim 0", "no sum",
         "logits clamped", "logits scaled"],
)  # fmt: skip
def test_softmax_catches_each_mistake_with_its_cause(softmax, says, mistake):
    result = verdict(checks.check_softmax, softmax, expected="fail", says=says)
    assert checks.SOFTMAX_HINTS[mistake].idea in result.message, result


def test_softmax_spots_a_stub():
    verdict(checks.check_softmax, stub, expected="todo")


def logsumexp_ce(z, y):
    log_p = z - torch.logsumexp(z, dim=1, keepdim=True)
    return -log_p[torch.arange(len(y)), y].mean()


def shifted_ce(z, y):
    return logsumexp_ce(z - z.max(dim=1, keepdim=True).values, y)


def gather_ce(z, y):
    m = z.max(dim=1, keepdim=True).values
    log_p = z - m - torch.log(torch.exp(z - m).sum(dim=1, keepdim=True))
    return -log_p.gather(1, y.unsqueeze(1)).mean()


def one_hot_ce(z, y):
    log_p = z - torch.logsumexp(z, dim=1, keepdim=True)
    return -(log_p * F.one_hot(y, z.shape[1]).to(z.dtype)).sum() / len(y)


@pytest.mark.parametrize(
    ("cross_entropy", "says", "mistake"),
    [
        (lambda z, y: -stable_softmax(z)[torch.arange(len(y)), y].log().mean(), "logits #4",
         "underflow"),
        (lambda z, y: -(z - z.exp().sum(1, keepdim=True).log())[torch.arange(len(y)), y].mean(),
         "logits #2", "underflow"),
        (lambda z, y: logsumexp_ce(z, y) * len(y), "logits #0", "sum"),
        (lambda z, y: -(stable_softmax(z)[torch.arange(len(y)), y] + 1e-9).log().mean(),
         "logits #1", "epsilon"),
        (lambda z, y: -stable_softmax(z)[torch.arange(len(y)), y].clamp_min(1e-12).log().mean(),
         "logits #4", "epsilon"),
        (lambda z, y: -logsumexp_ce(z, y), "logits #0", "sign"),
        (lambda z, y: logsumexp_ce(z, (y + 1) % z.shape[1]), "logits #0", "general"),
        (lambda z, y: logsumexp_ce(z, y).item(), "gradients can flow", "graph"),
        (lambda z, y: logsumexp_ce(z.detach(), y), "gradients can flow", "graph"),
        (F.cross_entropy, "PyTorch's own", "builtin"),
        (lambda z, y: nn.CrossEntropyLoss()(z, y), "PyTorch's own", "builtin"),
        (lambda z, y: F.nll_loss(z - torch.logsumexp(z, 1, keepdim=True), y), "nll_loss",
         "builtin"),
        (lambda z, y: -F.log_softmax(z, 1)[torch.arange(len(y)), y].mean(), "log_softmax",
         "builtin"),
    ],
    ids=["log of softmax", "naive logsumexp", "sum not mean", "log of p + eps", "log of clamped p",
         "sign", "wrong label", "float",
         "detached", "F.cross_entropy", "nn.CrossEntropyLoss", "F.nll_loss", "log_softmax"],
)  # fmt: skip
def test_cross_entropy_catches_each_mistake_with_its_cause(cross_entropy, says, mistake):
    result = verdict(checks.check_cross_entropy, cross_entropy, expected="fail", says=says)
    assert checks.CROSS_ENTROPY_HINTS[mistake].idea in result.message, result


def float64_ce(z, y):
    return logsumexp_ce(z.double(), y)


def loop_ce(z, y):
    return torch.stack([torch.logsumexp(z[i], 0) - z[i, y[i]] for i in range(len(y))]).mean()


@pytest.mark.parametrize(
    "right", [logsumexp_ce, shifted_ce, gather_ce, one_hot_ce, float64_ce, loop_ce]
)
def test_cross_entropy_accepts_every_correct_formula(right):
    verdict(checks.check_cross_entropy, right, expected="pass")


def test_cross_entropy_spots_a_stub():
    verdict(checks.check_cross_entropy, stub, expected="todo")


def right_accuracy(z, y):
    return (z.argmax(dim=1) == y).float().mean().item()


def test_accuracy_accepts_right_answers_of_any_number_type():
    verdict(checks.check_accuracy, right_accuracy, expected="pass")
    verdict(checks.check_accuracy, lambda z, y: (z.argmax(1) == y).float().mean(), expected="pass")
    verdict(
        checks.check_accuracy,
        lambda z, y: np.mean(z.argmax(1).numpy() == y.numpy()),
        expected="pass",
    )
    verdict(checks.check_accuracy, stub, expected="todo")


@pytest.mark.parametrize(
    ("accuracy", "says", "mistake"),
    [
        (lambda z, y: 100 * right_accuracy(z, y), "case #0", "percent"),
        (lambda z, y: (z.argmax(1) == y).sum(), "case #0", "count"),
        (lambda z, y: (z.argmax(0) == y[: z.shape[1]]).float().mean(), "case #0", "general"),
        (lambda z, y: (z.argmin(1) == y).float().mean(), "case #0", "general"),
        (lambda z, y: (z.argmax(1) == y).sum().item() // len(y), "case #0", "integer"),
        (lambda z, y: (z.argmax(1) == y).sum() // len(y), "case #0", "integer"),
    ],
    ids=["percentage", "count", "argmax over dim 0", "argmin", "// on ints", "// on a tensor"],
)
def test_accuracy_catches_each_mistake_with_its_cause(accuracy, says, mistake):
    result = verdict(checks.check_accuracy, accuracy, expected="fail", says=says)
    assert checks.ACCURACY_HINTS[mistake].idea in result.message, result


def loss_of(net, images, labels):
    return F.cross_entropy(net(images), labels)


def no_zero_grad(net, optimizer, images, labels):
    loss = loss_of(net, images, labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def zero_grad_before_step(net, optimizer, images, labels):
    loss = loss_of(net, images, labels)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def no_backward(net, optimizer, images, labels):
    loss = loss_of(net, images, labels)
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def no_step(net, optimizer, images, labels):
    loss = loss_of(net, images, labels)
    optimizer.zero_grad()
    loss.backward()
    return loss.item()


def own_update(net, optimizer, images, labels):
    loss = loss_of(net, images, labels)
    optimizer.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.1 * p.grad
    return loss.item()


def returns_tensor(net, optimizer, images, labels):
    checks.reference_step(net, optimizer, images, labels)
    return loss_of(net, images, labels)


def loss_after_step(net, optimizer, images, labels):
    checks.reference_step(net, optimizer, images, labels)
    return loss_of(net, images, labels).item()


def step_with(loss_function):
    """A right step, except that its loss is `loss_function(logits, labels)`."""

    def train_step(net, optimizer, images, labels):
        loss = loss_function(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return train_step


@pytest.mark.parametrize(
    ("train_step", "says", "mistake"),
    [
        (no_zero_grad, "after step 2", "accumulated"),
        (zero_grad_before_step, "after step 1", "cleared"),
        (no_backward, "after step 1", "no_backward"),
        (no_step, "after step 1", "no_update"),
        (own_update, "after step 2", "own_update"),
        (returns_tensor, "Python float", "float"),
        (loss_after_step, "loss returned by step 1", "loss"),
        (step_with(lambda z, y: F.cross_entropy(F.softmax(z, 1), y)), "loss returned",
         "which_loss"),
        (step_with(F.nll_loss), "loss returned by step 1", "which_loss"),
        (step_with(lambda z, y: F.cross_entropy(z, y, reduction="sum")), "loss returned",
         "which_loss"),
    ],
    ids=["no zero_grad", "zero_grad between backward and step", "no backward", "no step",
         "own update", "returns tensor", "loss after step", "softmax first", "nll_loss on logits",
         "sum"],
)  # fmt: skip
def test_train_step_catches_each_mistake_with_its_cause(train_step, says, mistake):
    result = verdict(checks.check_train_step, train_step, expected="fail", says=says)
    assert checks.STEP_HINTS[mistake].idea in result.message, result


def clears_at_the_end(net, optimizer, images, labels):
    loss = loss_of(net, images, labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def clears_through_the_module(net, optimizer, images, labels):
    net.zero_grad()
    loss = loss_of(net, images, labels)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@pytest.mark.parametrize(
    "train_step",
    [checks.reference_step, clears_at_the_end, clears_through_the_module],
    ids=["reference", "zero_grad after step", "net.zero_grad and float()"],
)
def test_train_step_accepts_right_steps_written_differently(train_step):
    verdict(checks.check_train_step, train_step, expected="pass")


def test_train_step_spots_a_stub():
    verdict(checks.check_train_step, stub, expected="todo")


def test_training_passes_and_spots_stubs():
    verdict(
        checks.check_training,
        right_net,
        checks.reference_step,
        right_accuracy,
        expected="pass",
        says="test accuracy",
    )
    verdict(checks.check_training, stub, checks.reference_step, right_accuracy, expected="todo")


def test_training_catches_a_step_that_does_not_learn():
    verdict(checks.check_training, right_net, no_step, right_accuracy, expected="fail", says="93%")


def test_training_says_why_the_accuracy_differs():
    def percentage(z, y):
        return 100 * right_accuracy(z, y)

    result = verdict(
        checks.check_training, right_net, checks.reference_step, percentage, expected="fail"
    )
    assert checks.ACCURACY_HINTS["percent"].idea in result.message, result


def test_training_leaves_the_thread_count_alone():
    before = torch.get_num_threads()
    with checks.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No MNIST copy where the check looks, and no network: every download is refused."""
    monkeypatch.setattr(checks, "DATA_ROOT", tmp_path)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    return tmp_path


@pytest.mark.parametrize(
    "functions",
    [
        (stub, stub, stub),
        (right_net, stub, right_accuracy),
        (right_net, checks.reference_step, stub),
    ],
    ids=["every stub", "train_step a stub", "accuracy a stub"],
)
def test_training_offline_says_not_done_yet_before_any_download(offline, functions):
    verdict(checks.check_training, *functions, expected="todo")
    assert not any(offline.iterdir()), "nothing is downloaded while a stub is left"


def test_training_offline_says_in_one_message_that_mnist_is_missing(offline):
    result = verdict(
        checks.check_training,
        right_net,
        checks.reference_step,
        right_accuracy,
        expected="fail",
        says="MNIST is not in",
    )
    assert "could not be downloaded" in result.message, result
    assert checks.DATA_HINT.idea in result.message, result
    assert "Traceback" not in result.message, result
    assert "Tried http" not in result.message, result


FIRST_MISTAKES = [
    ("make_net", checks.check_make_net, net_of(nn.Linear(784, 128), nn.Linear(128, 64),
     nn.ReLU(), nn.Linear(64, 10)), checks.NET_RECIPE),
    ("softmax", checks.check_softmax, naive_softmax, checks.SOFTMAX_RECIPE),
    ("cross_entropy", checks.check_cross_entropy,
     lambda z, y: -stable_softmax(z)[torch.arange(len(y)), y].log().mean(),
     checks.CROSS_ENTROPY_RECIPE),
    ("accuracy", checks.check_accuracy, lambda z, y: 100 * right_accuracy(z, y),
     checks.ACCURACY_RECIPE),
    ("train_step", checks.check_train_step, no_zero_grad, checks.STEP_RECIPE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "wrong", "recipe"),
    [case[1:] for case in FIRST_MISTAKES],
    ids=[case[0] for case in FIRST_MISTAKES],
)
def test_hints_come_in_steps_the_recipe_last(check, wrong, recipe):
    """A plausible wrong answer: the first ✗ points at the idea, the second adds a nudge,
    only the third gives the recipe; `hint="full"` gives it at once."""
    first, second, third = (check(wrong).message for _ in range(3))
    assert recipe not in first, first
    assert "Nudge:" not in first, first
    assert "Nudge:" in second, second
    assert recipe not in second, second
    assert f"Recipe: {recipe}" in third, third
    reset_hints()
    assert f"Recipe: {recipe}" in check(wrong, hint="full").message


def test_the_combined_check_gives_its_recipe_last():
    def broken_net():
        return lambda x: x  # not a module: the combined check's own hint

    first, _, third = (
        checks.check_training(broken_net, checks.reference_step, right_accuracy).message
        for _ in range(3)
    )
    assert checks.TRAINING_HINT.recipe not in first, first
    assert checks.TRAINING_HINT.recipe in third, third


def test_every_hint_keeps_its_recipe_out_of_the_idea_and_the_nudge():
    hints = [
        *checks.NET_HINTS.values(),
        *checks.SOFTMAX_HINTS.values(),
        *checks.CROSS_ENTROPY_HINTS.values(),
        *checks.ACCURACY_HINTS.values(),
        *checks.STEP_HINTS.values(),
        checks.TRAINING_HINT,
    ]
    for hint in hints:
        assert hint.recipe, hint
        assert hint.recipe not in hint.idea + hint.nudge, hint
