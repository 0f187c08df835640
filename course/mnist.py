"""MNIST as tensors in memory: the fast path that Chapter 2 measures against a DataLoader.

A ``DataLoader`` over ``torchvision.datasets.MNIST`` with ``ToTensor`` and ``Normalize``
turns each image into a tensor one at a time, in Python, every epoch. MNIST is small
(60,000 images of 28×28 bytes), so the same arithmetic can be done once for the whole
set, and a minibatch is then one indexing operation.
"""

import torch

MEAN, STD = 0.1307, 0.3081
"""Mean and standard deviation of the MNIST training pixels scaled to [0, 1] (Chapter 2
computes them)."""


def to_tensors(dataset, mean: float = MEAN, std: float = STD, device="cpu"):
    """A whole torchvision MNIST dataset as ``(images, labels)`` on ``device``.

    ``images``: float32, shape ``(N, 1, 28, 28)``, equal to what ``ToTensor()``
    then ``Normalize((mean,), (std,))`` give for each image one at a time.
    ``labels``: int64, shape ``(N,)``.
    """
    images = dataset.data.to(device).unsqueeze(1).float().div(255)
    return (images - mean) / std, dataset.targets.to(device)


def batches(images, labels, batch_size: int, generator=None):
    """Yield shuffled ``(images, labels)`` minibatches: one epoch.

    The order comes from ``torch.randperm`` with ``generator``, a CPU
    ``torch.Generator``: seeded, it gives the same batches on every device.
    """
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield images[index], labels[index]
