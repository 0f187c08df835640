"""Chapter 3's shared code: the network and the batch that several of its sections use.

Chapter 3 is several pages, each runnable alone. Three of them (freezing parameters, what
backward keeps and the hooks, where a function has no derivative) look at autograd on
Chapter 2's network and a batch of its size: they build both here, the same on every
page, and the page that first uses them shows their code (`literalinclude`).
"""

import torch
from torch import nn


def mnist_mlp(seed: int = 0) -> nn.Sequential:
    """Chapter 2's network, 784 → 512 → ReLU → 10, with its first weights drawn from `seed`.

    An `nn.Sequential`, so that each layer has a number: `mlp[1]` is the first linear
    layer (to freeze), `mlp[2]` the ReLU (to hook). The global random state is left as
    it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 10))


def random_batch(size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` random pictures shaped like MNIST's, (size, 1, 28, 28), and `size` labels.

    What autograd keeps and computes depends on the shapes, not on the digits: random
    numbers serve, and no page needs to load the data.
    """
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (size,), generator=generator)
    return images, labels
