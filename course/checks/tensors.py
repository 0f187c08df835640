"""Checks for the exercises of Chapter 1 (tensors)."""

import torch

from course.checks import check, expect_close


def check_normalize_rows(normalize_rows):
    """Exercise 1.1: ``normalize_rows(a)`` equals ``a / a.sum(dim=1, keepdim=True)``."""
    cases = [
        torch.tensor([[1, 0, 0], [1, 1, 1], [-1, 1, 1], [2, 3, 4]]),
        torch.rand(5, 7, dtype=torch.float64) + 0.1,
    ]

    def body():
        for i, a in enumerate(cases):
            expect_close(normalize_rows(a.clone()), a / a.sum(dim=1, keepdim=True), f"input #{i}")
        return f"matches torch on {len(cases)} inputs"

    return check("Exercise 1.1 (normalize_rows)", body, hint="use keepdim=True in the sum")
