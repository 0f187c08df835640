"""MNIST as tensors in memory: the fast paths Chapter 2 measures against a DataLoader.

A `DataLoader` over `torchvision.datasets.MNIST` with the transforms `ToImage`,
`ToDtype` and `Normalize` turns each image into a tensor one at a time, in Python, every
epoch. MNIST is small (60,000 images of 28×28 bytes), so the same arithmetic can be done
once for the whole set, and a minibatch is then one indexing operation (`to_tensors`,
`batches`); or it can be done a whole batch at a time, inside a `DataLoader`
(`WholeBatches`).
"""

import torch

MEAN, STD = 0.1307, 0.3081
"""Mean and standard deviation of the MNIST training pixels scaled to [0, 1] (Chapter 2
computes them)."""


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
