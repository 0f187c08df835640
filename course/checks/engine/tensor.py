"""Checks of Part 2 of Chapter 4, the tensor engine on NumPy: Exercises 4.4 to 4.6."""

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from course.checks import Hint, Verdict, check, hinted, learner_check, rng
from course.checks.engine.cases import (
    F64,
    GUARD_HINT,
    TensorCase,
    close,
    float32_cases,
    run_cases,
)

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


UNBROADCAST_RECIPE_HINT = Hint(
    "The gradient of a broadcast input is the sum of the gradients of all its copies.",
    "Sum over the leading axes that shape lacks, then over each axis where shape has 1 and "
    "grad has more.",
    "`grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))`, then `grad.sum(axis=(the "
    "axes where shape has 1), keepdims=True)`",
)


KEEPDIMS_HINT = Hint(
    "The numbers are right but the shape is not: summing over an axis removes it, while "
    "the input keeps its axes of size 1.",
    "Sum the stretched axes with keepdims=True (or reshape the result to shape).",
    UNBROADCAST_RECIPE_HINT.recipe,
)
ALIGN_HINT = Hint(
    "Broadcasting lines shapes up from the right: shape's last axis goes with grad's last "
    "axis, and the axes that shape lacks are grad's first ones.",
    "The axes added in front are range(grad.ndim - len(shape)); sum those away first, then "
    "compare the remaining axes with shape one by one.",
    UNBROADCAST_RECIPE_HINT.recipe,
)
MEAN_HINT = Hint(
    "Each of your entries is the right one divided by its number of copies: a broadcast "
    "input's gradient is the sum over its copies, not their mean.",
    "Use sum where you used mean.",
    UNBROADCAST_RECIPE_HINT.recipe,
)


def _unbroadcast_mistake(got: Any, expected: np.ndarray, grad: np.ndarray) -> Hint | None:
    """The hint for a wrong `got` that a common mistake explains, else None."""
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if got.shape != expected.shape:
        right_numbers = got.size == expected.size and np.allclose(got.ravel(), expected.ravel())
        return KEEPDIMS_HINT if right_numbers else ALIGN_HINT
    copies = grad.size // max(expected.size, 1)
    if copies > 1 and np.allclose(got * copies, expected):
        return MEAN_HINT
    return None


@learner_check
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
            mistake = _unbroadcast_mistake(got, expected.numpy(), grad)
            with hinted(mistake) if mistake else nullcontext():
                what = f"unbroadcast(grad of shape {grad_shape}, {shape})"
                close(np.asarray(got), expected, what)
        return f"matches torch's gradient of broadcasting on {len(UNBROADCAST_CASES)} shapes"

    return check("Exercise 4.4 (unbroadcast)", body, hint=UNBROADCAST_RECIPE_HINT)


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

UNBROADCAST_HINT = Hint(
    "An input that was broadcast gets the sum of its copies' gradients, in its own shape.",
    "Each input's term goes through your unbroadcast before it is added to its grad.",
    "`self.grad += unbroadcast(out.grad * other.data, self.shape)`, and the same for other",
)
POW_HINT = Hint(
    "d(a ** k)/da = k * a ** (k - 1), elementwise, for the k you were given.",
    "k = 0 too: a ** 0 is constant, slope 0 everywhere, also at 0.",
    "`if k != 0: self.grad += k * self.data ** (k - 1) * out.grad`",
)
DERIVED_TENSOR_HINT = Hint(
    "These are built on your ops: -a is a * -1, a - b is a + (-b), and a number or array "
    "becomes your Tensor (self._wrap); division is written for you.",
    "Find the smallest expression that fails; if + and * pass on their own, look at the "
    "reversed ops (__radd__, __rmul__), which must give the number the other side's dtype.",
    "Fix the op that the smallest failing expression uses; the derived ops need no change.",
)
ACCUMULATE_HINT = Hint(
    "An input used twice (a + a, a * a) gets one term from each use.",
    "Both terms must end up in its grad: grow the grad, do not replace it.",
    "`self.grad += ...` and `other.grad += ...` in every rule",
)
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
    return [*cases, _without_grad("a ** 2", lambda a: a**2, POW_HINT)]


def _unary(
    name: str,
    f: Callable[[Any], Any],
    values: Sequence[float],
    hint: Hint,
    low: float = -2.0,
    high: float = 2.0,
) -> list[TensorCase]:
    """An op on random inputs, on `values`, then on an input without requires_grad (last,
    so that a wrong value or a crash is first reported with the op's own hint)."""
    return [
        TensorCase(name, f, ((2, 3),), low=low, high=high, hint=hint),
        TensorCase(name, f, values=(tuple(values),), hint=hint),
        _without_grad(name, f, hint, low, high),
    ]


def _without_grad(
    name: str, f: Callable[[Any], Any], hint: Hint, low: float = 0.5, high: float = 2.0
) -> TensorCase:
    """`f` of an input that does not require grad: its output must not require grad."""
    return TensorCase(
        f"{name} of an input without requires_grad",
        f,
        ((2, 3),),
        low=max(low, 0.5),
        high=high,
        requires_grad=(False,),
        hint=hint,
    )


ELEMENTWISE = [
    TensorCase("a + b", BINARY["a + b"], BROADCAST_SHAPES[0], hint=UNBROADCAST_HINT),
    TensorCase("a * b", BINARY["a * b"], BROADCAST_SHAPES[0], hint=UNBROADCAST_HINT),
    *[
        TensorCase(n, BINARY[n], s, hint=UNBROADCAST_HINT)
        for n in ("a + b", "a * b")
        for s in BROADCAST_SHAPES[1:]
    ],
    TensorCase("a + a", lambda a: a + a, ((2, 3),), hint=ACCUMULATE_HINT),
    TensorCase("a * a", lambda a: a * a, ((2, 3),), hint=ACCUMULATE_HINT),
    TensorCase("(a * b) * a", lambda a, b: (a * b) * a, ((2, 3), (3,)), hint=ACCUMULATE_HINT),
    *_pow_cases(),
    *_unary(
        "a.exp()",
        lambda a: a.exp(),
        (-1000.0, -50.0, 0.0, 50.0, 500.0),
        Hint(
            "d exp(a)/da = exp(a): the derivative is the value itself.",
            "You computed exp(a) already: it is out.data.",
            "`self.grad += out.data * out.grad`",
        ),
    ),
    *_unary(
        "a.log()",
        lambda a: a.log(),
        (1e-300, 1e-5, 1.0, 1e5, 1e300),
        Hint(
            "d log(a)/da = 1 / a.",
            "Divide out.grad by the input's data.",
            "`self.grad += out.grad / self.data`",
        ),
        0.2,
        3.0,
    ),
    *_unary(
        "a.relu()",
        lambda a: a.relu(),
        BIG_VALUES,
        Hint(
            "The slope of relu is 1 where a > 0 and 0 elsewhere, at a = 0 too (as in torch).",
            "Multiply out.grad by whether each entry of the input was positive.",
            "`self.grad += out.grad * (self.data > 0)`",
        ),
    ),
    *_unary(
        "a.tanh()",
        lambda a: a.tanh(),
        BIG_VALUES,
        Hint(
            "d tanh(a)/da = 1 - tanh(a) ** 2, and tanh must not overflow: exp(2a) does for a "
            "large a, while np.tanh cannot overflow.",
            "tanh(a) is out.data.",
            "`out = Tensor._node(np.tanh(self.data), (self,), 'tanh')` and "
            "`self.grad += out.grad * (1 - out.data**2)`",
        ),
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
    TensorCase(
        "a / b of tiny numbers",
        BINARY["a / b"],
        values=((1e-200, -3e-170, 2.0), (1e-200, 1e-170, 1e-100)),
        hint=DERIVED_TENSOR_HINT,
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
        hint=Hint(
            "NumPy computed `array * x` itself instead of asking your Tensor.",
            "A class that sets __array_ufunc__ = None makes NumPy hand `array * x` to x.__rmul__.",
            "keep `__array_ufunc__ = None` in the class body, and `__rmul__` returning "
            "`self * other`",
        ),
    ),
]


@learner_check
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


REDUCE_HINT = Hint(
    "Each entry that went into a sum gets the sum's gradient: out.grad spreads back over "
    "the summed axes.",
    "Without keepdims the summed axes are missing from out.grad: put them back "
    "(np.expand_dims) so that it broadcasts against self.data.",
    "`grad = out.grad if axis is None or keepdims else np.expand_dims(out.grad, axis)`, then "
    "`self.grad += grad` (it broadcasts to self.shape)",
)
MATMUL_HINT = Hint(
    "For out = a @ b, the grad of a is out.grad @ b^T and the grad of b is a^T @ out.grad, "
    "where ^T swaps the last two axes only: NumPy's .T reverses all the axes of a 3-D array.",
    "Swap with swapaxes(-1, -2); then unbroadcast each grad to its input's shape (a batch "
    "of matrices times one matrix).",
    "`self.grad += unbroadcast(out.grad @ other.data.swapaxes(-1, -2), self.shape)` and "
    "`other.grad += unbroadcast(self.data.swapaxes(-1, -2) @ out.grad, other.shape)`",
)
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
            hint=Hint(
                "reshape moves no number: each entry's grad is the grad of the same entry "
                "after the reshape.",
                "Give out.grad the input's shape.",
                "`self.grad += out.grad.reshape(self.shape)`",
            ),
        )
        for args in ((6, 4), (-1,), (4, -1, 2), ((3, 8),))
    ],
    *[
        TensorCase(
            f"a.transpose{dims}",
            lambda a, dims=dims: a.transpose(*dims),
            ((2, 3, 4),),
            hint=Hint(
                "transpose moves entries: their grads have to move back.",
                "Swapping the same two axes again undoes a transpose.",
                "`self.grad += out.grad.swapaxes(dim0, dim1)`",
            ),
        )
        for dims in ((0, 1), (-1, -2), (0, 2), (1, 1))
    ],
    TensorCase(
        "a.T",
        lambda a: a.T,
        ((3, 4),),
        hint=Hint(
            "a.T is written for you as a.transpose(-2, -1): look at your transpose.",
            "transpose(-2, -1) must accept negative axes, as swapaxes does.",
            "`self.grad += out.grad.swapaxes(dim0, dim1)`",
        ),
    ),
    TensorCase(
        "(a @ b.T).relu().sum(axis=0).mean()",
        lambda a, b: (a @ b.T).relu().sum(axis=0).mean(),
        ((5, 4), (3, 4)),
        lambda a, b: (a @ b.T).relu().sum(dim=0).mean(),
        hint=Hint(
            "This chains @, .T, relu, sum and mean; the cases before it test each alone.",
            "A chain fails where one op's rule is right only for the inputs tried alone: "
            "compare the failing op on this input's shapes with torch.",
            "Fix the op named first in this check's earlier cases; when each op passes, so "
            "does the chain.",
        ),
    ),
]


@learner_check
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
