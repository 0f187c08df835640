"""course.mnist: the pieces Chapter 2's sections share, checked where a section cannot
see them fail (its pages only run them on the right data)."""

import warnings

import pytest
import torch

from course.data import check_mnist
from course.mnist import (
    MLP,
    datasets,
    evaluate,
    in_memory,
    make_cnn,
    split,
    train_epoch,
    watch_determinism,
)


def test_watch_determinism_fails_on_a_nondeterministic_op_warning_only():
    check = watch_determinism()
    warnings.warn("something else", UserWarning, stacklevel=1)
    check()  # other warnings pass
    check = watch_determinism()
    warnings.warn(
        "scatter_add_cuda_kernel does not have a deterministic implementation",
        UserWarning,
        stacklevel=1,
    )
    with pytest.raises(AssertionError, match="deterministic implementation"):
        check()


def test_in_memory_is_the_split_of_the_transformed_sets():
    root = check_mnist()
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = in_memory(root)
    train_set, test_set = datasets(root)
    train_part, val_part = split(train_set)
    assert (len(y_train), len(y_val), len(y_test)) == (55_000, 5_000, 10_000)
    for X, y, part in ((X_train, y_train, train_part), (X_val, y_val, val_part)):
        for i in (0, len(part) - 1):
            image, label = part[i]
            assert torch.equal(X[i], image), i
            assert y[i].item() == label, i
    assert torch.equal(X_test[-1], test_set[len(test_set) - 1][0])
    assert set(train_part.indices).isdisjoint(val_part.indices)
    assert split(train_set, seed=1)[1].indices != val_part.indices, "the seed draws the split"


def test_evaluate_gives_the_mean_loss_and_the_accuracy_over_uneven_batches():
    torch.manual_seed(0)
    model = MLP()
    X, y = torch.randn(25, 1, 28, 28), torch.randint(0, 10, (25,))
    loss, accuracy = evaluate(model, X, y, batch_size=10)
    with torch.no_grad():
        logits = model(X)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-6)
    assert accuracy == (logits.argmax(dim=1) == y).sum().item() / 25
    assert not model.training, "evaluate switches the model to eval mode"


def test_train_epoch_takes_a_step_per_minibatch_and_lowers_the_loss():
    torch.manual_seed(0)
    model = make_cnn(channels=4)
    X, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    generator = torch.Generator().manual_seed(0)
    first = train_epoch(model, optimizer, scheduler, X, y, 16, generator)
    assert len(first) == 4, "64 examples in minibatches of 16"
    assert scheduler.last_epoch == 4, "a step of the schedule per minibatch"
    for _ in range(10):
        last = train_epoch(model, optimizer, scheduler, X, y, 16, generator)
    assert sum(last) < sum(first)
    assert model(X).shape == (64, 10)
