"""Checks of Part 1 of Chapter 4, the scalar engine: Exercises 4.1 to 4.3 and the graph."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from course.checks import Mismatch, Verdict, check, describe, expect, expect_close, expect_equal
from course.checks.engine.cases import F64, close, engine_hinted, leaf

CHAIN_LENGTH = 100_000
"""The length of the chain that topological_order and backward must handle (no recursion)."""


def _numbers(xs: Sequence[float]) -> str:
    return ", ".join(f"{name}={x:g}" for name, x in zip("abc", xs, strict=False))


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
    theirs = [leaf(x) for x in xs]
    ref = f(*theirs)
    close(out.data, ref.item(), f"{what}: out.data")
    for v in ours:
        v.grad = preset
    out.grad = upstream
    out._backward()
    grads = torch.autograd.grad(ref, theirs, torch.tensor(upstream, dtype=F64))
    for v, g, letter in zip(ours, grads, "abc", strict=False):
        close(
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
    theirs = [leaf(x) for x in xs]
    ref = f(*theirs)
    ref.backward()
    close(out.data, ref.item(), f"{what}: out.data")
    for v, t, letter in zip(ours, theirs, "abc", strict=False):
        expected = 0.0 if t.grad is None else t.grad.item()
        close(v.grad, expected, f"{what}: {letter}.grad after backward()")
    return ours, out


def check_value_add_mul(Value: type) -> Verdict:
    """Exercise 4.1: `+` and `*` of `Value`, values and local backward rules."""

    def body():
        for case in ADD_MUL:
            with engine_hinted(case.hint, case.name):
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
                with engine_hinted(case.hint, f"{case.name} at {_numbers(xs)}"):
                    _check_local_rule(Value, case.name, case.f, xs)
                    _check_backward(Value, case.name, case.f, xs)
        for case in DERIVED:
            for xs in case.points:
                with engine_hinted(DERIVED_HINT, f"{case.name} at {_numbers(xs)}"):
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
        theirs = [leaf(x) for x in (0.5, -1.5, 0.25)]
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
