"""course.autograd: the network and the batch that Chapter 3's sections share are the same
on every page, whatever the page drew from torch's random state before."""

import torch

from course.autograd import mnist_mlp, random_batch


def test_the_network_is_chapter_2_s_with_numbered_layers():
    mlp = mnist_mlp()
    assert isinstance(mlp[1], torch.nn.Linear), "mlp[1] is not the first linear layer"
    assert isinstance(mlp[2], torch.nn.ReLU), "mlp[2] is not the ReLU"
    assert (mlp[1].in_features, mlp[1].out_features, mlp[3].out_features) == (784, 512, 10)
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 512 + 512 + 512 * 10 + 10


def test_the_same_seed_gives_the_same_network_and_batch_whatever_ran_before():
    first, (images, labels) = mnist_mlp(), random_batch()
    torch.randn(100)  # a page that drew random numbers first
    second, (images_again, labels_again) = mnist_mlp(), random_batch()
    pairs = zip(first.parameters(), second.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs), "the same seed, another network"
    assert torch.equal(images, images_again), "the same seed, other pictures"
    assert torch.equal(labels, labels_again), "the same seed, other labels"
    other = mnist_mlp(seed=1)
    assert not torch.equal(first[1].weight, other[1].weight), "the seed is ignored"


def test_building_them_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.randn(3)
    torch.manual_seed(123)
    mnist_mlp()
    random_batch()
    assert torch.equal(torch.randn(3), expected), "mnist_mlp or random_batch drew from it"


def test_the_batch_is_shaped_like_mnist_s():
    images, labels = random_batch(size=5)
    assert (images.shape, images.dtype) == ((5, 1, 28, 28), torch.float32)
    assert (labels.shape, labels.dtype) == ((5,), torch.int64)
    assert set(labels.tolist()) <= set(range(10)), "labels are digits"
