"""Checks for the exercises of Chapter 4 (build your own autograd), against torch in float64.

Each check builds the same small graphs with the learner's engine and with torch and
compares values and gradients. The local backward rule of an op is checked on its own by
calling the output's `_backward` with a known `out.grad` and inputs whose `grad` is
already non-zero, so a rule that assigns (`=`) instead of accumulating (`+=`) fails
even before `backward()` is written.
"""

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course.checks import (
    Mismatch,
    Verdict,
    call,
    check,
    describe,
    expect,
    expect_close,
    expect_equal,
    hinted,
    rng,
    safe_str,
)
from course.threads import same_threads

F64 = torch.float64
DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
RTOL, ATOL = 1e-9, 1e-12
CHAIN_LENGTH = 100_000
"""The length of the chain that topological_order and backward must handle (no recursion)."""


@contextmanager
def _hint(text: str, what: str = "") -> Iterator[None]:
    """:func:`course.checks.hinted`, except that a grad sent to an input that needs none
    (`None += ...`, a TypeError) gets the hint about guarding both inputs."""
    try:
        with hinted(text, what):
            yield
    except Mismatch as error:
        message = safe_str(error)
        if "your code raised TypeError" in message and "NoneType" in message:
            message = message.split("\n  Hint: ")[0] + f"\n  Hint: {GUARD_HINT}"
        raise Mismatch(message) from None


def _leaf(x: Any) -> torch.Tensor:
    return torch.tensor(x, dtype=F64, requires_grad=True)


def _numbers(xs: Sequence[float]) -> str:
    return ", ".join(f"{name}={x:g}" for name, x in zip("abc", xs, strict=False))


def _close(got: Any, expected: Any, what: str) -> None:
    """Your engine's number or NumPy array against torch's, in float64 (RTOL, ATOL)."""
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
        expect(
            isinstance(got, np.ndarray),
            f"{what}: expected a NumPy array (your Tensor's .data/.grad), got {describe(got)}",
        )
    expect_close(got, expected, what, RTOL, ATOL)


def _is_value(Value: type, v: Any, what: str) -> None:
    expect(isinstance(v, Value), f"{what}: expected one of your Values, got {describe(v)}")


# --- Part 1: the scalar engine ------------------------------------------------------------


@dataclass(frozen=True)
class ScalarCase:
    """A scalar expression `f` of `Value`s, tried at each point of `points`."""

    name: str
    f: Callable[..., Any]
    points: tuple[tuple[float, ...], ...]
    hint: str = ""


POW_RULE = "d(a ** k)/da = k * a.data ** (k - 1): use the k you were given (0 when k == 0)"
ADD_MUL = [
    ScalarCase(
        "a + b",
        lambda a, b: a + b,
        ((2.0, -3.0), (1e300, -1e300)),
        "d(a + b)/da = 1 and d(a + b)/db = 1",
    ),
    ScalarCase(
        "a * b",
        lambda a, b: a * b,
        ((2.0, -3.0), (0.0, 5.0)),
        "d(a * b)/da = b.data and d(a * b)/db = a.data",
    ),
]

BIG = (-1000.0, -500.0, -50.0, -1.0, 0.0, 1.0, 50.0, 500.0, 1000.0)
"""Edge magnitudes, where a formula built on exp overflows."""

UNARY = [
    *[
        ScalarCase(f"a ** {k}", lambda a, k=k: a**k, tuple((x,) for x in xs), POW_RULE)
        for k, xs in [
            (2, (-1.5, 0.0, 0.7, 1000.0)),
            (3, (-1.5, 0.0, 2.0)),
            (1, (-1.5, 0.0, 2.0)),
            (0, (-1.5, 0.0, 2.0)),
            (-1, (0.5, -2.0, 1000.0)),
            (-2, (0.5, -2.0)),
            (0.5, (0.25, 3.0)),
            (1.5, (0.25, 3.0)),
            (-0.5, (0.25, 3.0)),
        ]
    ],
    ScalarCase(
        "a.exp()",
        lambda a: a.exp(),
        ((-1000.0,), (-0.5,), (0.0,), (2.0,), (500.0,)),
        "d exp(a)/da = exp(a), which is out.data",
    ),
    ScalarCase(
        "a.log()",
        lambda a: a.log(),
        ((1e-300,), (0.5,), (3.0,), (1e300,)),
        "d log(a)/da = 1 / a.data",
    ),
    ScalarCase(
        "a.tanh()",
        lambda a: a.tanh(),
        tuple((x,) for x in (-0.8, 0.3, 20.0, *BIG)),
        "d tanh(a)/da = 1 - out.data ** 2; compute tanh with math.tanh, which cannot "
        "overflow (exp(2a) does for a large a)",
    ),
    ScalarCase(
        "a.relu()",
        lambda a: a.relu(),
        tuple((x,) for x in (-1.2, 0.7, *BIG)),
        "the slope is 1 where a.data > 0, else 0",
    ),
    ScalarCase(
        "a.sigmoid()",
        lambda a: a.sigmoid(),
        tuple((x,) for x in (-800.0, -0.3, 0.3, 800.0, *BIG)),
        "d sigmoid(a)/da = s * (1 - s) with s = out.data; for a very negative a, compute "
        "exp(a) / (1 + exp(a)) so that exp never overflows",
    ),
]

DERIVED_HINT = (
    "these are built from +, * and ** -1 (and a number on the left becomes a Value): "
    "check those first"
)
DERIVED = [
    ScalarCase("a - b", lambda a, b: a - b, ((1.5, -0.5),)),
    ScalarCase("a / b", lambda a, b: a / b, ((1.5, -0.5), (-1000.0, 1e-3))),
    ScalarCase("-a * b", lambda a, b: -a * b, ((1.5, -0.5),)),
    ScalarCase("2 / a + 1 - b", lambda a, b: 2 / a + 1 - b, ((1.5, -0.5),)),
    ScalarCase("3 * a + b * 2", lambda a, b: 3 * a + b * 2, ((1.5, -0.5),)),
    ScalarCase("2 - a", lambda a: 2 - a, ((1.5,),)),
    ScalarCase("2 + a * 0.5", lambda a: 2 + a * 0.5, ((1.5,),)),
    ScalarCase("a - a", lambda a: a - a, ((1.5,),)),
    ScalarCase("a / a", lambda a: a / a, ((1.5,),)),
    ScalarCase("(a * b) * a", lambda a, b: (a * b) * a, ((1.5, -0.5),)),
]


def _check_local_rule(Value, name, f, xs, upstream=1.5, preset=0.5):
    """Call `_backward` of `f(*inputs)` alone and compare the inputs' grads with torch."""
    ours = [Value(x) for x in xs]
    out = f(*ours)
    what = f"{name} at {_numbers(xs)}"
    _is_value(Value, out, what)
    theirs = [_leaf(x) for x in xs]
    ref = f(*theirs)
    _close(out.data, ref.item(), f"{what}: out.data")
    for v in ours:
        v.grad = preset
    out.grad = upstream
    out._backward()
    grads = torch.autograd.grad(ref, theirs, torch.tensor(upstream, dtype=F64))
    for v, g, letter in zip(ours, grads, "abc", strict=False):
        _close(
            v.grad,
            preset + g.item(),
            f"{what}, out.grad={upstream}: {letter}.grad, which was {preset} before "
            "out._backward() (it must grow by the new term, +=)",
        )


def _check_backward(Value, name, f, xs):
    """Run `backward()` on `f(*inputs)` and compare every input's grad with torch."""
    ours = [Value(x) for x in xs]
    out = f(*ours)
    what = f"{name} at {_numbers(xs)}"
    _is_value(Value, out, what)
    out.backward()
    theirs = [_leaf(x) for x in xs]
    ref = f(*theirs)
    ref.backward()
    _close(out.data, ref.item(), f"{what}: out.data")
    for v, t, letter in zip(ours, theirs, "abc", strict=False):
        expected = 0.0 if t.grad is None else t.grad.item()
        _close(v.grad, expected, f"{what}: {letter}.grad after backward()")
    return ours, out


def check_value_add_mul(Value: type) -> Verdict:
    """Exercise 4.1: `+` and `*` of `Value`, values and local backward rules."""

    def body():
        for case in ADD_MUL:
            with _hint(case.hint, case.name):
                for xs in case.points:
                    _check_local_rule(Value, case.name, case.f, xs)
                twice = case.name.replace("b", "a")
                _check_local_rule(Value, twice, lambda a, f=case.f: f(a, a), [2.0])
                for c in (4.0, -0.5):
                    for label, g in (
                        (f"a {case.name[2]} {c:g} (a number)", lambda a, f=case.f, c=c: f(a, c)),
                        (f"{c:g} {case.name[2]} a (a number)", lambda a, f=case.f, c=c: f(c, a)),
                    ):
                        _check_local_rule(Value, label, g, [2.0])
        return "a + b, a * b, a + a, a * a and numbers match torch, and grads accumulate"

    return check("Exercise 4.1 (Value + and *)", body)


def check_topological_order(topological_order: Callable[[Any], Any], Value: type) -> Verdict:
    """Exercise 4.2: each node once, after its inputs; a 100,000-node chain works."""

    def body():
        a, b = Value(1.0), Value(2.0)
        c = Value(0.0, (a, b))
        d = Value(0.0, (c, a))
        e = Value(0.0, (c, d, d))
        order = list(topological_order(e))
        names = {a: "a", b: "b", c: "c", d: "d", e: "e"}
        got = [names.get(n, repr(n)) for n in order]
        expect_equal(
            sorted(got),
            ["a", "b", "c", "d", "e"],
            "the nodes of e = f(c, d, d), d = f(c, a), c = f(a, b) (each exactly once)",
        )
        position = {node: i for i, node in enumerate(order)}
        for node in order:
            for child in node._prev:
                expect(
                    position[child] < position[node],
                    f"order {got}: {names[child]} must come before {names[node]}, which "
                    "was computed from it",
                )
        chain = Value(0.0)
        for _ in range(CHAIN_LENGTH):
            chain = Value(0.0, (chain,))
        try:
            n = len(topological_order(chain))
        except RecursionError:
            raise Mismatch(
                f"a chain of {CHAIN_LENGTH:,} nodes: RecursionError. Use a list as an explicit "
                "stack "
                "instead of a recursive function"
            ) from None
        expect_equal(n, CHAIN_LENGTH + 1, f"the number of nodes of a {CHAIN_LENGTH:,}-step chain")
        return f"each node once, after its inputs; a chain of {CHAIN_LENGTH:,} nodes works"

    return check("Exercise 4.2 (topological_order)", body)


def check_value_backward(Value: type) -> Verdict:
    """Exercise 4.2: `backward()` vs torch, reused nodes, repeated calls, a deep chain."""

    def body():
        cases = [
            ("a * b + c", lambda a, b, c: a * b + c),
            ("a * a * a + a", lambda a, b, c: a * a * a + a),
            ("e * e + e with e = a * b", lambda a, b, c: (lambda e: e * e + e)(a * b)),
            ("(a + b) * (a + c) * b", lambda a, b, c: (a + b) * (a + c) * b),
        ]
        for name, f in cases:
            _check_backward(Value, name, f, [2.0, -3.0, 0.5])
        ours, out = _check_backward(Value, "x * y + x", lambda x, y: x * y + x, [2.0, -3.0])
        out.backward()
        expect_close(
            ours[0].grad,
            2 * (-3.0 + 1),
            "a.grad after calling backward() twice on "
            "a * b + a (torch doubles a leaf's grad; intermediate grads start again)",
        )
        out.zero_grad()
        expect_equal([v.grad for v in ours], [0.0, 0.0], "the grads after zero_grad()")
        x = Value(1.0)
        y = x
        for _ in range(CHAIN_LENGTH):
            y = y * 1.00001
        y.backward()
        expect_close(
            x.grad, 1.00001**CHAIN_LENGTH, f"x.grad of x * 1.00001 * ... ({CHAIN_LENGTH:,} times)"
        )
        return (
            f"gradients match torch, accumulate over calls, and a {CHAIN_LENGTH:,}-node chain works"
        )

    return check(
        "Exercise 4.2 (Value.backward)",
        body,
        hint="topological_order(self), then out.grad = 1, then node._backward() for each node "
        "in reversed order",
    )


def check_value_unary(Value: type) -> Verdict:
    """Exercise 4.3: `**`, exp, log, tanh, relu, sigmoid, and the ops built on them."""

    def body():
        for case in UNARY:
            for xs in case.points:
                with _hint(case.hint, f"{case.name} at {_numbers(xs)}"):
                    _check_local_rule(Value, case.name, case.f, xs)
                    _check_backward(Value, case.name, case.f, xs)
        for case in DERIVED:
            for xs in case.points:
                with _hint(DERIVED_HINT, f"{case.name} at {_numbers(xs)}"):
                    _check_backward(Value, case.name, case.f, xs)
        return (
            f"{len(UNARY)} ops, also at ±1000, and {len(DERIVED)} expressions built on them "
            "match torch"
        )

    return check("Exercise 4.3 (Value **, exp, log, tanh, relu, sigmoid)", body)


def draw_value_graph(Value: type) -> Any:
    """Draw the learner's graph of tanh(a * b + c) * a above torch's, once its grads match."""
    from course.figures.graphs import draw_graph, draw_torch_graph, new_figure

    figures = []

    def expression(a, b, c):
        return (a * b + c).tanh() * a

    def body():
        ours, out = _check_backward(Value, "tanh(a * b + c) * a", expression, [0.5, -1.5, 0.25])
        theirs = [_leaf(x) for x in (0.5, -1.5, 0.25)]
        # one above the other, 5.2 in wide: legible on a phone (tests/site/test_figures.py)
        figure = new_figure(figsize=(5.2, 9.5), layout="constrained")
        left, right = figure.subplots(2, 1, height_ratios=[1.25, 1])
        names = dict(zip(ours, "abc", strict=False))
        draw_graph(
            out,
            lambda v: v._prev,
            lambda v: f"{names.get(v, v._op)}\ndata {v.data:.3f}\ngrad {v.grad:.3f}",
            ax=left,
            title="Your Value graph",
        )
        draw_torch_graph(expression(*theirs), ax=right, title="Torch's autograd graph")
        figures.append(figure)
        return "your gradients match torch's; your graph and torch's are drawn below"

    check("Your graph of tanh(a * b + c) * a", body)
    return figures[0] if figures else None


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
            _close(np.asarray(got), expected, f"unbroadcast(grad of shape {grad_shape}, {shape})")
        return f"matches torch's gradient of broadcasting on {len(UNBROADCAST_CASES)} shapes"

    return check(
        "Exercise 4.4 (unbroadcast)",
        body,
        hint="sum over the leading axes that shape lacks, then over each axis where shape has "
        "1 and grad has more (keepdims=True)",
    )


@dataclass(frozen=True)
class TensorCase:
    """One comparison of your Tensor with torch: `ours(*inputs)` vs `theirs(*inputs)`.

    `shapes` gives one shape per input, drawn uniformly in [low, high) unless `values`
    gives the arrays; `requires_grad` says which inputs are leaves that need a gradient
    (all by default). `hint` explains a wrong value or a crash, `grad_hint` (default
    `hint`) a wrong gradient.
    """

    name: str
    ours: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...] = ()
    theirs: Callable[..., Any] | None = None
    low: float = -2.0
    high: float = 2.0
    hint: str = ""
    grad_hint: str | None = None
    requires_grad: tuple[bool, ...] | None = None
    values: tuple[Any, ...] | None = None

    def arrays(self, generator: np.random.Generator) -> list[np.ndarray]:
        """The case's inputs, drawn from `generator` (never the global random state)."""
        if self.values is not None:
            return [np.array(v, dtype=np.float64) for v in self.values]
        return [generator.uniform(self.low, self.high, s) for s in self.shapes]

    def flags(self, n: int) -> tuple[bool, ...]:
        """Which of `n` inputs require a gradient in this case."""
        return self.requires_grad if self.requires_grad is not None else (True,) * n


def _tensor_case(Tensor: type, case: TensorCase, generator: np.random.Generator) -> None:
    """Compare value and input grads of `case.ours(*Tensors)` with torch's.

    The backward pass runs twice with the same upstream gradient: leaf grads must double,
    as torch's do, which only happens when every rule accumulates. An input that does not
    require grad must keep `grad` None, and the output requires grad exactly when some
    input does.
    """
    arrays = case.arrays(generator)
    flags = case.flags(len(arrays))
    shapes = ", ".join(
        str(a.shape) + ("" if f else " (no grad)") for a, f in zip(arrays, flags, strict=True)
    )
    what = f"{case.name} with inputs of shape {shapes}"
    theirs = case.theirs or case.ours
    with _hint(case.hint, what):
        xs = [Tensor(a.copy(), requires_grad=f) for a, f in zip(arrays, flags, strict=True)]
        ts = [
            torch.tensor(a, dtype=F64, requires_grad=f) for a, f in zip(arrays, flags, strict=True)
        ]
        out, ref = case.ours(*xs), theirs(*ts)
        expect(isinstance(out, Tensor), f"{what}: expected your Tensor, got {describe(out)}")
        _close(out.data, ref, f"{what}: value")
        expect_equal(
            bool(out.requires_grad), ref.requires_grad, f"{what}: the output's requires_grad"
        )
    if not ref.requires_grad:
        return
    with _hint(case.grad_hint or case.hint, what):
        upstream = generator.standard_normal(ref.shape)
        needed = [t for t in ts if t.requires_grad]
        grads = iter(
            torch.autograd.grad(ref, needed, torch.from_numpy(upstream), allow_unused=True)
        )
        for _ in range(2):
            out.backward(upstream.copy())
        for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
            if not t.requires_grad:
                expect(
                    x.grad is None,
                    f"{what}: input {i} has requires_grad=False, so its grad must stay None; "
                    f"got {describe(x.grad)}",
                )
                continue
            g = next(grads)
            expected = torch.zeros_like(t) if g is None else 2 * g
            expect(x.grad is not None, f"{what}: input {i} has no grad after backward")
            _close(
                x.grad,
                expected,
                f"{what}: grad of input {i} after two backward calls (leaf grads accumulate)",
            )


def _run_cases(Tensor: type, cases: Sequence[TensorCase], generator: np.random.Generator) -> None:
    for case in cases:
        _tensor_case(Tensor, case, generator)


def _float32(Tensor: type, cases: Sequence[TensorCase], generator: np.random.Generator) -> None:
    """float32 in, float32 out, as in torch (a Python number does not promote)."""
    for case in cases:
        if case.values is not None or case.requires_grad is not None:
            continue
        arrays = [a.astype(np.float32) for a in case.arrays(generator)]
        what = f"{case.name} with float32 inputs of shape {', '.join(str(a.shape) for a in arrays)}"
        with _hint("keep the dtype: a number becomes your Tensor of self.dtype (self._wrap)", what):
            out = case.ours(*(Tensor(a, requires_grad=True) for a in arrays))
            expect(isinstance(out, Tensor), f"{what}: expected your Tensor, got {describe(out)}")
            expect_equal(str(out.data.dtype), "float32", f"{what}: dtype of the value")


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
GUARD_HINT = (
    "send a gradient only to an input that requires_grad, in every op and for both inputs: "
    "`if self.requires_grad: ...` and `if other.requires_grad: ...` (a number, or your "
    "Tensor without requires_grad, on either side of an op gets no grad)"
)
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
        _run_cases(Tensor, ELEMENTWISE, generator)
        _float32(Tensor, ELEMENTWISE, generator)
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
        _run_cases(Tensor, SHAPES, generator)
        _float32(Tensor, SHAPES, generator)
        return (
            f"values and grads match torch on {len(SHAPES)} cases, with constants on either "
            "side of @"
        )

    return check("Exercise 4.6 (your Tensor's @, sum, mean, reshape, transpose)", body)


# --- Part 3: training ----------------------------------------------------------------------


LOG_SOFTMAX_HINT = "log_softmax(x) = x - log(exp(x).sum(axis=-1, keepdims=True))"
SHIFT_HINT = (
    "exp overflows for large logits: subtract m = x.data.max(axis=-1, keepdims=True) "
    "first (a constant: the result does not change)"
)
LOG_SOFTMAX_GRAD_HINT = (
    "build log_softmax from your Tensor's ops only (the max shift may be a constant): a "
    "term computed from x.data, like np.log(np.exp(x.data).sum(...)), gets no gradient"
)
PICK_HINT = (
    "the mean over rows of -log_softmax(x)[rows, targets] with rows = np.arange(len(x)); "
    "a one-hot product turns a -inf logit into nan (-inf * 0)"
)
HUGE = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -999.0, -1001.0]])
MASKED = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf], [-np.inf, 3.0, 0.0]])


def check_cross_entropy(
    log_softmax: Callable[[Any], Any], cross_entropy: Callable[[Any, np.ndarray], Any], Tensor: type
) -> Verdict:
    """Exercise 4.7: `log_softmax` and `cross_entropy` vs torch, huge and -inf logits."""

    def body():
        generator = rng(2)
        random_logits = generator.standard_normal((4, 5)) * 3

        def torch_log_softmax(x):
            return F.log_softmax(x, dim=-1)

        for logits, hint in (
            (random_logits, LOG_SOFTMAX_HINT),
            (random_logits[0], LOG_SOFTMAX_HINT),
            (HUGE, SHIFT_HINT),
            (MASKED, SHIFT_HINT),
        ):
            case = TensorCase(
                "log_softmax(x)",
                lambda x: log_softmax(x),
                theirs=torch_log_softmax,
                values=(logits,),
                hint=hint,
                grad_hint=LOG_SOFTMAX_GRAD_HINT,
            )
            _tensor_case(Tensor, case, generator)
        for logits, t in (
            (generator.standard_normal((8, 10)) * 3, generator.integers(0, 10, 8)),
            (generator.standard_normal((5, 3)), np.array([2, 2, 0, 2, 1])),
            (HUGE, np.array([2, 1])),
            (MASKED, np.array([0, 1, 2])),
        ):
            case = TensorCase(
                f"cross_entropy(x, targets={t.tolist()})",
                lambda x, t=t: cross_entropy(x, t.copy()),
                theirs=lambda x, t=t: F.cross_entropy(x, torch.from_numpy(t)),
                values=(logits,),
                hint=PICK_HINT,
            )
            _tensor_case(Tensor, case, generator)
        return "log_softmax and cross_entropy match torch, also on logits of ±1000 and -inf"

    return check("Exercise 4.7 (log_softmax, cross_entropy)", body)


def _torch_mlp(model) -> torch.nn.Sequential:
    """An `nn.Sequential` of Linear and ReLU layers holding copies of `model`'s weights."""
    params = [p.data for p in model.parameters()]
    expect(
        len(params) % 2 == 0,
        f"MLP.parameters(): expected weight, bias, weight, bias, ...; got {len(params)} tensors",
    )
    layers = []
    for weight, bias in zip(params[::2], params[1::2], strict=False):
        expect(
            weight.ndim == 2 and bias.shape == weight.shape[:1],
            "MLP.parameters(): expected "
            f"weight (out, in) then bias (out,); got {weight.shape} and {bias.shape}",
        )
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=DTYPES[weight.dtype])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(bias))
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def check_mlp_sgd(MLP: type, SGD: type, Tensor: type) -> Verdict:
    """Exercise 4.8: `MLP` forward, `Linear`'s initialisation, and `SGD` with momentum."""

    def layers():
        generator = rng(3)
        model = MLP([50, 30, 4], generator, np.float64)
        shapes = [p.data.shape for p in model.parameters()]
        expect_equal(
            shapes,
            [(30, 50), (30,), (4, 30), (4,)],
            "shapes of MLP([50, 30, 4]).parameters() (torch's layout: weight (out, in), "
            "bias (out,))",
        )
        for p, fan_in in zip(model.parameters(), (50, 50, 30, 30), strict=False):
            bound = 1 / math.sqrt(fan_in)
            expect(
                np.abs(p.data).max() <= bound and p.data.std() > bound / 3,
                f"a parameter of shape {p.data.shape}: expected uniform in ±1/sqrt({fan_in}) "
                f"= ±{bound:.3f}, got values in [{p.data.min():.3f}, {p.data.max():.3f}]",
            )
            expect(p.requires_grad, f"a parameter of shape {p.data.shape} needs requires_grad")
        reference = _torch_mlp(model)
        x = generator.standard_normal((6, 50))
        out = model(Tensor(x))
        expect(isinstance(out, Tensor), f"MLP(x): expected your Tensor, got {describe(out)}")
        _close(
            out.data,
            reference(torch.from_numpy(x)),
            "MLP([50, 30, 4]) on a batch of 6 (Linear, ReLU, Linear)",
        )
        return model, reference, x

    def sgd(model, reference, x):
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        torch_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
        for step in range(1, 4):
            optimizer.zero_grad()
            (model(Tensor(x)) ** 2).mean().backward()
            optimizer.step()
            torch_optimizer.zero_grad()
            (reference(torch.from_numpy(x)) ** 2).mean().backward()
            torch_optimizer.step()
            for i, (p, q) in enumerate(
                zip(model.parameters(), reference.parameters(), strict=False)
            ):
                what = f"parameter {i} after SGD step {step} (lr=0.1, momentum=0.9)"
                _close(p.data, q, what)

    def body():
        with _hint(
            "weight (out_features, in_features) uniform in ±1/sqrt(in_features), the "
            "same for bias; x @ weight.T + bias; ReLU between layers",
            "MLP",
        ):
            model, reference, x = layers()
        with _hint(
            "v = momentum * v + p.grad, then p.data -= lr * v (in place, one v per parameter)",
            "SGD",
        ):
            sgd(model, reference, x)
        return "MLP matches nn.Sequential, and 3 SGD steps with momentum match torch.optim.SGD"

    return check("Exercise 4.8 (Linear, MLP, SGD)", body)


def _torch_twin(model, optimizer):
    reference = _torch_mlp(model)
    torch_optimizer = torch.optim.SGD(
        reference.parameters(), lr=optimizer.lr, momentum=optimizer.momentum
    )
    return reference, torch_optimizer


def _torch_step(reference, optimizer, x, y) -> float:
    loss = F.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _engine_step(model, optimizer, cross_entropy, Tensor, x, y) -> float:
    loss = cross_entropy(model(Tensor(x)), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.data.item()


def check_matches_torch(
    first_steps: Callable[[type], tuple], cross_entropy: Callable[..., Any], Tensor: type
) -> Verdict:
    """Train the learner's MLP and torch's copy of it on the same batches in float64.

    `first_steps(dtype)` returns `(model, optimizer, batches)`; every step's loss must
    match torch's to `rtol=1e-10`.
    """

    def body():
        model, optimizer, batches = first_steps(np.float64)
        reference, torch_optimizer = _torch_twin(model, optimizer)
        rows = []
        for step, (x, y) in enumerate(batches, start=1):
            ours = _engine_step(model, optimizer, cross_entropy, Tensor, x, y)
            theirs = _torch_step(reference, torch_optimizer, x, y)
            expect_close(ours, theirs, f"the loss at step {step}", rtol=1e-10, atol=0)
            rows.append(f"  step {step:2d}: yours {ours:.10f}   torch {theirs:.10f}")
        shown = [*rows[:3], "  ...", *rows[-2:]]
        return f"{len(rows)} steps follow torch's losses to 1e-10:\n" + "\n".join(shown)

    return check("Your MLP beside torch's (float64)", body)


def check_mnist_training(
    train: Callable[[], Any],
    Tensor: type,
    X_test: np.ndarray,
    y_test: np.ndarray,
    threshold: float = 0.97,
) -> Verdict:
    """`train()` returns a model of your engine, trained; its accuracy on the test set is
    at least `threshold`.

    The accuracy is computed here, from the logits `model(Tensor(X_test)).data`: a number
    handed back by the training code could be anything.
    """

    def body():
        start = time.perf_counter()
        model = call("train()", train)
        seconds = time.perf_counter() - start
        out = call("model(Tensor(X_test))", model, Tensor(np.asarray(X_test)))
        logits = np.asarray(getattr(out, "data", None))
        expected = (len(X_test), 10)
        expect(
            logits.dtype.kind == "f" and logits.shape == expected,
            f"model(Tensor(X_test)).data: expected logits of shape {expected}, got "
            f"{describe(getattr(out, 'data', out))}",
        )
        expect(np.isfinite(logits).all(), "the logits are not all finite: training diverged")
        accuracy = float((logits.argmax(axis=1) == np.asarray(y_test)).mean())
        expect(accuracy >= threshold, f"test accuracy {accuracy:.2%}, below {threshold:.0%}")
        return (
            f"test accuracy {accuracy:.2%} (at least {threshold:.0%}), trained in {seconds:.1f} s"
        )

    return check(
        "Training on MNIST",
        body,
        hint="train() must return the trained model; the float64 side-by-side check above "
        "finds a wrong gradient first",
    )


def _median_step(step, batches, repeats=3) -> float:
    """The median time of one training step over `repeats` passes through `batches`."""
    times = []
    for _ in range(repeats):
        for x, y in batches:
            start = time.perf_counter()
            step(x, y)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def compare_step_time(
    first_steps: Callable[[type], tuple],
    cross_entropy: Callable[..., Any],
    Tensor: type,
    threads: int = 1,
) -> dict[str, float] | None:
    """Time one training step of the learner's engine and of torch, in float32 and float64.

    Both run with the same number of threads (torch's pool and NumPy's BLAS alike, see
    `course.threads`): otherwise the ratio compares thread counts, not engines.
    """
    ratios = {}

    def body():
        lines, steps = [], 0
        for dtype in (np.float32, np.float64):
            model, optimizer, batches = first_steps(dtype)
            reference, torch_optimizer = _torch_twin(model, optimizer)

            def engine_step(x, y, model=model, optimizer=optimizer):
                return _engine_step(model, optimizer, cross_entropy, Tensor, x, y)

            def torch_step(x, y, reference=reference, optimizer=torch_optimizer):
                return _torch_step(reference, optimizer, x, y)

            _median_step(torch_step, batches, repeats=1)  # warm-up
            ours = _median_step(engine_step, batches)
            theirs = _median_step(torch_step, batches)
            ratios[np.dtype(dtype).name] = ours / theirs
            steps = 3 * len(batches)
            lines.append(
                f"  {np.dtype(dtype).name}: yours {ours * 1e3:.2f} ms, torch {theirs * 1e3:.2f} ms"
                f" per step: {ours / theirs:.2f}× torch's time"
            )
        return f"one training step, median of {steps}, {threads} thread(s) each:\n" + "\n".join(
            lines
        )

    with same_threads(threads):
        check("Step time of your engine beside torch's", body)
    return ratios or None
