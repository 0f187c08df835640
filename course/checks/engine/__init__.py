"""Checks for the exercises of Chapter 4 (build your own autograd), against torch in float64.

Each check builds the same small graphs with the learner's engine and with torch and
compares values and gradients. The local backward rule of an op is checked on its own by
calling the output's `_backward` with a known `out.grad` and inputs whose `grad` is
already non-zero, so a rule that assigns (`=`) instead of accumulating (`+=`) fails
even before `backward()` is written.

One module per part of the chapter: `scalar` (the scalar engine, 4.1-4.3), `tensor` (the
tensor engine, 4.4-4.6), `training` (MNIST, 4.7-4.8), and `cases`, what they share. The
notebooks import every check from here.
"""

from course.checks.engine.scalar import (
    CHAIN_LENGTH,
    check_topological_order,
    check_value_add_mul,
    check_value_backward,
    check_value_unary,
    draw_value_graph,
)
from course.checks.engine.tensor import (
    check_tensor_elementwise,
    check_tensor_shapes,
    check_unbroadcast,
)
from course.checks.engine.training import (
    check_cross_entropy,
    check_matches_torch,
    check_mlp_sgd,
    check_mnist_training,
    compare_step_time,
)

__all__ = [
    "CHAIN_LENGTH",
    "check_cross_entropy",
    "check_matches_torch",
    "check_mlp_sgd",
    "check_mnist_training",
    "check_tensor_elementwise",
    "check_tensor_shapes",
    "check_topological_order",
    "check_unbroadcast",
    "check_value_add_mul",
    "check_value_backward",
    "check_value_unary",
    "compare_step_time",
    "draw_value_graph",
]
