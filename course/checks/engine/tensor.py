"""Checks of Part 2 of Chapter 4, the tensor engine on NumPy: Exercises 4.4 to 4.6."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from course.checks import Verdict, check, rng
from course.checks.engine.cases import (
    F64,
    GUARD_HINT,
    TensorCase,
    close,
    float32_cases,
    run_cases,
)

# --- Part 2: the tensor engine -------------------------------------------------------------

UNBROADCAST_CASES = [
    ((4, 2, 3), (2, 1)),
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 3), (1, 3)),
    ((2, 3), (2, 1)),
    ((2, 3), ()),
    ((2, 3), (1, 1)),
    ((5, 3, 4), (3, 1)),
    ((2, 1, 3), (1, 1, 3)),
    ((2, 3, 4), (1, 3, 1)),
    ((1,), ()),
    ((), ()),
]


def check_unbroadcast(unbroadcast: Callable[[np.ndarray, tuple], np.ndarray]) -> Verdict:
    """Exercise 4.4: `unbroadcast(grad, shape)` equals torch's gradient of broadcasting."""

    def body():
        generator = rng(0)
        for grad_shape, shape in UNBROADCAST_CASES:
            grad = generator.standard_normal(grad_shape)
            x = torch.zeros(shape, dtype=F64, requires_grad=True)
            (expected,) = torch.autograd.grad(
                torch.broadcast_to(x, grad_shape), x, torch.from_numpy(grad)
            )
            got = unbroadcast(grad.copy(), shape)
            close(np.asarray(got), expected, f"unbroadcast(grad of shape {grad_shape}, {shape})")
        return f"matches torch's gradient of broadcasting on {len(UNBROADCAST_CASES)} shapes"

    return check(
        "Exercise 4.4 (unbroadcast)",
        body,
        hint="sum over the leading axes that shape lacks, then over each axis where shape has "
        "1 and grad has more (keepdims=True)",
    )


BROADCAST_SHAPES = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((2, 1), (1, 3)),
    ((4, 1, 3), (2, 1)),
    ((1, 2, 1), (3, 1, 4)),
    ((2, 3), ()),
    ((), (2, 3)),
]
GUARDS = [(True, False), (False, True), (False, False)]
"""Which of two inputs require grad: every binary op must work with a constant on either side."""

UNBROADCAST_HINT = "pass each input's gradient through unbroadcast(grad, input.shape)"
POW_HINT = "k * a.data ** (k - 1) * out.grad: use the k you were given (x ** 0 has slope 0)"
DERIVED_TENSOR_HINT = (
    "-, / and the reversed ops are built from +, * and ** -1 and a number wrapped in your "
    "Tensor: check those first"
)
ACCUMULATE_HINT = "accumulate: self.grad += ... (an input used twice gets both terms)"
BINARY = {
    "a + b": lambda a, b: a + b,
    "a * b": lambda a, b: a * b,
    "a - b": lambda a, b: a - b,
    "a / b": lambda a, b: a / b,
}
BIG_VALUES = (-1000.0, -500.0, -50.0, -1.0, 0.0, 1.0, 50.0, 500.0, 1000.0)


def _pow_cases() -> list[TensorCase]:
    cases = []
    for k in (2, 3, 1, 0, -1, -2, 0.5, 1.5, -0.5, 2.5):
        whole = float(k).is_integer()
        cases.append(
            TensorCase(
                f"a ** {k}",
                lambda a, k=k: a**k,
                ((2, 3),),
                low=-2.0 if whole else 0.2,
                high=2.0,
                hint=POW_HINT,
            )
        )
        if whole and k >= 0:
            cases.append(
                TensorCase(
                    f"a ** {k}", lambda a, k=k: a**k, values=((-1.5, 0.0, 0.5, 2.0),), hint=POW_HINT
                )
            )
    return cases


def _unary(
    name: str,
    f: Callable[[Any], Any],
    values: Sequence[float],
    hint: str,
    low: float = -2.0,
    high: float = 2.0,
) -> list[TensorCase]:
    return [
        TensorCase(name, f, ((2, 3),), low=low, high=high, hint=hint),
        TensorCase(name, f, values=(tuple(values),), hint=hint),
    ]


ELEMENTWISE = [
    TensorCase("a + b", BINARY["a + b"], BROADCAST_SHAPES[0], hint=UNBROADCAST_HINT),
    TensorCase("a * b", BINARY["a * b"], BROADCAST_SHAPES[0], hint=UNBROADCAST_HINT),
    *[
        TensorCase(n, BINARY[n], s, hint=UNBROADCAST_HINT)
        for n in ("a + b", "a * b")
        for s in BROADCAST_SHAPES[1:]
    ],
    *[
        TensorCase(
            f"{name} of an input without requires_grad",
            f,
            ((2, 3),),
            low=0.5,
            requires_grad=(False,),
            hint=GUARD_HINT,
        )
        for name, f in [
            ("a.exp()", lambda a: a.exp()),
            ("a.log()", lambda a: a.log()),
            ("a.tanh()", lambda a: a.tanh()),
            ("a.relu()", lambda a: a.relu()),
            ("a ** 2", lambda a: a**2),
        ]
    ],
    TensorCase("a + a", lambda a: a + a, ((2, 3),), hint=ACCUMULATE_HINT),
    TensorCase("a * a", lambda a: a * a, ((2, 3),), hint=ACCUMULATE_HINT),
    TensorCase("(a * b) * a", lambda a, b: (a * b) * a, ((2, 3), (3,)), hint=ACCUMULATE_HINT),
    *_pow_cases(),
    *_unary(
        "a.exp()",
        lambda a: a.exp(),
        (-1000.0, -50.0, 0.0, 50.0, 500.0),
        "exp(a) * out.grad = out.data * out.grad",
    ),
    *_unary(
        "a.log()", lambda a: a.log(), (1e-300, 1e-5, 1.0, 1e5, 1e300), "out.grad / a.data", 0.2, 3.0
    ),
    *_unary("a.relu()", lambda a: a.relu(), BIG_VALUES, "out.grad * (a.data > 0)"),
    *_unary(
        "a.tanh()",
        lambda a: a.tanh(),
        BIG_VALUES,
        "out.grad * (1 - out.data ** 2); np.tanh cannot overflow (exp(2a) does for a large a)",
    ),
    *[
        TensorCase(
            f"{n}, one side a constant", BINARY[n], s, low=0.5, requires_grad=flags, hint=GUARD_HINT
        )
        for n in BINARY
        for s in (((2, 3), (3,)), ((3,), (2, 3)))
        for flags in GUARDS
    ],
    *[
        TensorCase(
            f"{n} with a constant",
            f,
            ((3,), (2, 3)),
            lambda c, a, f=f: f(c, a),
            low=0.5,
            requires_grad=(False, True),
            hint=GUARD_HINT,
        )
        for n, f in [
            ("your Tensor(c) + a", lambda c, a: c + a),
            ("your Tensor(c) - a", lambda c, a: c - a),
            ("your Tensor(c) * a", lambda c, a: c * a),
            ("your Tensor(c) / a", lambda c, a: c / a),
        ]
    ],
    *[
        TensorCase(n, BINARY[n], s, low=0.5, high=2.0, hint=DERIVED_TENSOR_HINT)
        for n in ("a - b", "a / b")
        for s in BROADCAST_SHAPES
    ],
    TensorCase("-a", lambda a: -a, ((2, 3),), hint=DERIVED_TENSOR_HINT),
    TensorCase("a - a", lambda a: a - a, ((2, 3),), hint=DERIVED_TENSOR_HINT),
    TensorCase("a / a", lambda a: a / a, ((2, 3),), low=0.5, hint=DERIVED_TENSOR_HINT),
    TensorCase(
        "1 / a", lambda a: 1 / a, values=((-1000.0, -1e-3, 1e-3, 1000.0),), hint=DERIVED_TENSOR_HINT
    ),
    *[
        TensorCase(name, f, ((2, 3),), low=0.5, hint=DERIVED_TENSOR_HINT)
        for name, f in [
            ("2 * a + 1", lambda a: 2 * a + 1),
            ("a * 2 - 1", lambda a: a * 2 - 1),
            ("2 - a", lambda a: 2 - a),
            ("2 + a", lambda a: 2 + a),
            ("2 / a", lambda a: 2 / a),
            ("a / 2", lambda a: a / 2),
            ("0.5 * a * 3", lambda a: 0.5 * a * 3),
        ]
    ],
    TensorCase(
        "array * a + array (a NumPy array on the left)",
        lambda a: np.full(3, 2.0) * a + np.arange(3.0),
        ((2, 3),),
        lambda a: torch.full((3,), 2.0, dtype=F64) * a + torch.arange(3.0, dtype=F64),
        hint="your Tensor sets __array_ufunc__ = None, so that NumPy hands `array * x` to "
        "x.__rmul__",
    ),
]


def check_tensor_elementwise(Tensor: type) -> Verdict:
    """Exercise 4.5: elementwise ops with broadcasting, vs torch; constants get no grad."""

    def body():
        generator = rng(0)
        run_cases(Tensor, ELEMENTWISE, generator)
        float32_cases(Tensor, ELEMENTWISE, generator)
        return (
            f"values and grads match torch on {len(ELEMENTWISE)} cases: broadcasting, "
            "constants on either side, ±1000, and float32 stays float32"
        )

    return check("Exercise 4.5 (your Tensor's elementwise ops)", body)


REDUCE_HINT = "expand the summed axes back (np.expand_dims unless keepdims) and broadcast"
MATMUL_HINT = "grad of a = out.grad @ b^T, grad of b = a^T @ out.grad (then unbroadcast)"
MATMUL_SHAPES = [
    ((3, 4), (4, 2)),
    ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((1, 4), (4, 1)),
]
SHAPES = [
    *[
        TensorCase("a @ b", lambda a, b: a @ b, s, low=-1, high=1, hint=MATMUL_HINT)
        for s in MATMUL_SHAPES
    ],
    *[
        TensorCase(
            "a @ b, one side a constant",
            lambda a, b: a @ b,
            s,
            low=-1,
            high=1,
            requires_grad=flags,
            hint=GUARD_HINT,
        )
        for s in (((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)))
        for flags in GUARDS
    ],
    *[
        TensorCase(
            "a @ b with a vector (1-D)", lambda a, b: a @ b, s, low=-1, high=1, hint=MATMUL_HINT
        )
        for s in (((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4,)))
    ],
    TensorCase("a @ a.T", lambda a: a @ a.T, ((3, 4),), hint=ACCUMULATE_HINT),
    TensorCase("a.sum()", lambda a: a.sum(), ((2, 3, 4),), hint=REDUCE_HINT),
    *[
        TensorCase(
            f"a.sum(axis={axis}, keepdims={keep})",
            lambda a, axis=axis, keep=keep: a.sum(axis=axis, keepdims=keep),
            ((2, 3, 4),),
            (lambda a, axis=axis, keep=keep: a.sum(dim=axis, keepdim=keep))
            if axis is not None
            else (lambda a, keep=keep: a.sum().reshape((1, 1, 1) if keep else ())),
            hint=REDUCE_HINT,
        )
        for axis in (None, 0, 1, -1, (0, 2), (-1, 0))
        for keep in (False, True)
    ],
    TensorCase("a.mean()", lambda a: a.mean(), ((2, 3),), hint=REDUCE_HINT),
    *[
        TensorCase(
            f"a.mean(axis={axis}, keepdims={keep})",
            lambda a, axis=axis, keep=keep: a.mean(axis=axis, keepdims=keep),
            ((2, 3, 4),),
            lambda a, axis=axis, keep=keep: a.mean(dim=axis, keepdim=keep),
            hint=REDUCE_HINT,
        )
        for axis, keep in ((1, True), (-1, False), ((0, 2), False))
    ],
    *[
        TensorCase(
            f"a.reshape{args}",
            lambda a, args=args: a.reshape(*args),
            ((2, 3, 4),),
            hint="reshape out.grad back to self.shape",
        )
        for args in ((6, 4), (-1,), (4, -1, 2), ((3, 8),))
    ],
    *[
        TensorCase(
            f"a.transpose{dims}",
            lambda a, dims=dims: a.transpose(*dims),
            ((2, 3, 4),),
            hint="swap the same two axes of out.grad back",
        )
        for dims in ((0, 1), (-1, -2), (0, 2), (1, 1))
    ],
    TensorCase("a.T", lambda a: a.T, ((3, 4),), hint="a.T is a.transpose(-2, -1)"),
    TensorCase(
        "(a @ b.T).relu().sum(axis=0).mean()",
        lambda a, b: (a @ b.T).relu().sum(axis=0).mean(),
        ((5, 4), (3, 4)),
        lambda a, b: (a @ b.T).relu().sum(dim=0).mean(),
        hint="check each op alone first",
    ),
]


def check_tensor_shapes(Tensor: type) -> Verdict:
    """Exercise 4.6: matmul, sum/mean with axis and keepdims, reshape, transpose."""

    def body():
        generator = rng(1)
        run_cases(Tensor, SHAPES, generator)
        float32_cases(Tensor, SHAPES, generator)
        return (
            f"values and grads match torch on {len(SHAPES)} cases, with constants on either "
            "side of @"
        )

    return check("Exercise 4.6 (your Tensor's @, sum, mean, reshape, transpose)", body)
