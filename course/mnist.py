"""Chapter 2's shared code: the data, the networks, and the steps of training.

Chapter 2 is several pages, each runnable alone: what more than one page needs lives
here, written once, and the page that teaches a piece shows its code (`literalinclude`).

- Setup: `default_device`, `reproducible`.
- Data: `datasets` (torchvision's MNIST with the chapter's transforms), `split` (the
  validation split), `shuffled_loader` (a seeded `DataLoader`).
- Fast paths: a `DataLoader` over `torchvision.datasets.MNIST` with the transforms
  `ToImage`, `ToDtype` and `Normalize` turns each image into a tensor one at a time, in
  Python, every epoch. MNIST is small (60,000 images of 28×28 bytes), so the same
  arithmetic can be done once for the whole set, and a minibatch is then one indexing
  operation (`to_tensors`, `batches`, `in_memory`); or it can be done a whole batch at a
  time, inside a `DataLoader` (`WholeBatches`).
- Networks and training: `MLP`, `make_cnn`, `train_epoch`, `evaluate`, `wait_for`.
"""

import os
import warnings

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.transforms import v2

MEAN, STD = 0.1307, 0.3081
"""Mean and standard deviation of the MNIST training pixels scaled to [0, 1] (Chapter 2
computes them)."""

MLP_TARGET, CNN_TARGET = 0.98, 0.99
"""The test accuracy Chapter 2 promises for its MLP and its CNN: the page that trains each
asserts it, and the MLP's page also asserts that the MLP stays below the CNN's target."""

MLP_RECIPE = {"epochs": 5, "batch_size": 128, "max_lr": 3e-3}
"""How Chapter 2's Training section trains the MLP (Adam under a one-cycle schedule): the
page asserts that it trains so, and the other pages that describe it assert against it."""


def default_device() -> torch.device:
    """The machine's accelerator if it has one, else the CPU."""
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    return accelerator if accelerator is not None else torch.device("cpu")


def reproducible(seed: int = 0) -> None:
    """Make every run on the same machine print the same numbers: deterministic
    algorithms (a warning where an operation has none), full float32 on a GPU, one CPU
    thread, and `seed` for torch's random numbers."""
    # cuBLAS (CUDA) needs this setting to be deterministic
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # full float32 (no TF32) in matrix products and convolutions on a GPU
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.set_num_threads(1)
    torch.manual_seed(seed)


def assert_reproducible() -> None:
    """Fail unless the settings of `reproducible` hold (read back through the API that set
    them): the pages call it in a hidden cell."""
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == 1


def watch_determinism():
    """Record every warning from now on; returns a function that stops recording and
    fails if an operation warned that it ran without a deterministic implementation
    (`reproducible` asks for warnings, not errors)."""
    recorder = warnings.catch_warnings(record=True)
    caught = recorder.__enter__()
    warnings.simplefilter("always")

    def check():
        recorder.__exit__(None, None, None)
        nondeterministic = [str(w.message) for w in caught if "deterministic" in str(w.message)]
        assert not nondeterministic, nondeterministic

    return check


def datasets(root):
    """MNIST's training and test sets in `root` (downloaded there when missing), each
    image read as a normalised float32 tensor of shape (1, 28, 28)."""
    transform = v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize((MEAN,), (STD,))]
    )
    return tuple(
        torchvision.datasets.MNIST(root=root, train=train, download=True, transform=transform)
        for train in (True, False)
    )


def split(train_set, seed: int = 0):
    """The 60,000 training images as 55,000 to train on and 5,000 to judge every choice
    on (two `Subset`s), drawn at random from a generator seeded with `seed`."""
    return torch.utils.data.random_split(
        train_set, [55_000, 5_000], generator=torch.Generator().manual_seed(seed)
    )


def shuffled_loader(dataset, batch_size: int = 64, seed: int = 0):
    """A `DataLoader` of `dataset` in minibatches of `batch_size`, in a new random order
    every epoch, the same on every run (from a generator seeded with `seed`)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def normalize_bytes(images: torch.Tensor, mean: float = MEAN, std: float = STD):
    """Bytes (0 to 255, any shape) to normalised float32, with the arithmetic of
    `v2.ToDtype(torch.float32, scale=True)` then `v2.Normalize((mean,), (std,))`:
    multiply by 1/255, subtract `mean`, divide by `std`. On the CPU the result is equal,
    bit for bit, to what the transforms give; other devices may round differently."""
    return (images.float().mul(1 / 255) - mean) / std


def to_tensors(dataset, mean: float = MEAN, std: float = STD, device="cpu"):
    """A whole torchvision MNIST dataset as `(images, labels)` on `device`.

    `images`: float32, shape `(N, 1, 28, 28)`, what the transforms `ToImage()`,
    `ToDtype(torch.float32, scale=True)` and `Normalize((mean,), (std,))` give for each
    image one at a time. `labels`: int64, shape `(N,)`.
    """
    images = normalize_bytes(dataset.data.to(device).unsqueeze(1), mean, std)
    return images, dataset.targets.to(device)


def batches(images, labels, batch_size: int, generator=None):
    """Yield shuffled `(images, labels)` minibatches: one epoch.

    The order comes from `torch.randperm` with `generator`, a CPU
    `torch.Generator`: seeded, it gives the same batches on every device.
    """
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield images[index], labels[index]


class WholeBatches(torch.utils.data.Dataset):
    """A torchvision MNIST dataset read a whole batch at a time.

    `dataset[indices]`, with a list of indices, returns `(images, labels)` for all of
    them at once, normalised by `normalize_bytes`. Given to a `DataLoader` with
    `sampler=BatchSampler(...)` and `batch_size=None`, each step of the loader is then
    one call, one indexing operation and one normalisation, instead of one per image.
    `calls` counts the calls, so that a test can see it.
    """

    def __init__(self, dataset, mean: float = MEAN, std: float = STD):
        self.data, self.targets = dataset.data, dataset.targets
        self.mean, self.std = mean, std
        self.calls = 0

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, indices):
        self.calls += 1
        index = torch.as_tensor(indices)
        images = normalize_bytes(self.data[index].unsqueeze(-3), self.mean, self.std)
        return images, self.targets[index]


def in_memory(root, device="cpu", seed: int = 0):
    """MNIST in memory on `device` as `(images, labels)` pairs: the training part and the
    validation part of `split(..., seed)`, and the test set."""
    train_set, test_set = datasets(root)
    X, y = to_tensors(train_set, device=device)
    train_part, val_part = split(train_set, seed)
    return (
        (X[train_part.indices], y[train_part.indices]),
        (X[val_part.indices], y[val_part.indices]),
        to_tensors(test_set, device=device),
    )


def wait_for(device) -> None:
    """Block until the accelerator `device` has done all work queued so far (a GPU works
    asynchronously: read the clock after this)."""
    if torch.device(device).type != "cpu":
        torch.accelerator.synchronize()


class MLP(nn.Module):
    """784 pixels → 512 hidden units with ReLU → 10 logits, one a digit."""

    def __init__(self, hidden=512):
        super().__init__()
        self.hidden = nn.Linear(28 * 28, hidden)
        self.output = nn.Linear(hidden, 10)

    def forward(self, x):
        """The (N, 10) logits of a batch of N images."""
        x = x.flatten(start_dim=1)  # (N, 1, 28, 28) → (N, 784)
        return self.output(torch.relu(self.hidden(x)))


def make_cnn(channels=16):
    """conv 5×5 → ReLU → pool 2 → conv 5×5 → ReLU → pool 2 → linear: 10 logits."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * channels * 4 * 4, 10),
    )


@torch.no_grad()
def evaluate(model, X, y, batch_size=1000):
    """Mean cross-entropy loss and accuracy (a fraction) of `model`."""
    model.eval()
    total_loss = correct = 0
    for start in range(0, len(y), batch_size):
        logits = model(X[start : start + batch_size])
        labels = y[start : start + batch_size]
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
    return total_loss / len(y), correct / len(y)


def train_epoch(model, optimizer, scheduler, X, y, batch_size, generator):
    """Train `model` on one epoch of shuffled minibatches; return each step's loss."""
    model.train()
    losses = []
    for X_batch, y_batch in batches(X, y, batch_size, generator):
        loss = F.cross_entropy(model(X_batch), y_batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses
