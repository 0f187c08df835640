"""Checks of Part 1 of Chapter 4, the scalar engine: Exercises 4.1 to 4.3 and the graph."""

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from course.checks import (
    Hint,
    Mismatch,
    Verdict,
    check,
    describe,
    expect,
    expect_equal,
    hinted,
    learner_check,
)
from course.checks.engine.cases import F64, close, diagnose_grad, engine_hinted, leaf, time_budget

CHAIN_LENGTH = 100_000
"""The length of the chain that topological_order and backward must handle (no recursion)."""
PROBE_LENGTH = 2_000
"""The chain on which the depth of the learner's calls is measured (recursion or not)."""
TIME_BUDGET = 20.0
"""Seconds the learner's code may take on a chain of CHAIN_LENGTH nodes before it is stopped."""
KERNEL_RECURSION_LIMIT = sys.getrecursionlimit()
"""The recursion limit when the notebook imported the checks, before any learner code ran."""
PRESET, UPSTREAM = 0.25, 3.0
"""A local rule is called with inputs whose grad is PRESET already and out.grad = UPSTREAM:
the right rule, one that assigns instead of adding and one that forgets the factor out.grad
then give four different numbers."""


def _numbers(xs: Sequence[float]) -> str:
    return ", ".join(f"{name}={x:g}" for name, x in zip("abc", xs, strict=False))


def _is_value(Value: type, v: Any, what: str) -> None:
    expect(isinstance(v, Value), f"{what}: expected one of your Values, got {describe(v)}")


@dataclass(frozen=True)
class ScalarCase:
    """A scalar expression `f` of `Value`s, tried at each point of `points`."""

    name: str
    f: Callable[..., Any]
    points: tuple[tuple[float, ...], ...]
    hint: Hint | None = None


ADD_HINT = Hint(
    "By the chain rule each input's grad grows by out.grad times the local derivative, and "
    "both local derivatives of a + b are 1.",
    "Both inputs receive the same amount, out.grad.",
    "`self.grad += out.grad` and `other.grad += out.grad`",
)
MUL_HINT = Hint(
    "The local derivative of a * b with respect to a is b, and with respect to b it is a.",
    "Each input's grad grows by out.grad times the other input's data.",
    "`self.grad += other.data * out.grad` and `other.grad += self.data * out.grad`",
)
RECORD_HINT = Hint(
    "backward() walks from the output back to the inputs through _prev; this output does "
    "not list its inputs there.",
    "Give the output its inputs when you create it: the second argument of Value is _prev.",
    "`out = Value(self.data * other.data, (self, other), '*')`",
)
ADD_MUL = [
    ScalarCase("a + b", lambda a, b: a + b, ((2.0, -3.0), (1e300, -1e300)), ADD_HINT),
    ScalarCase("a * b", lambda a, b: a * b, ((2.0, -3.0), (0.0, 5.0)), MUL_HINT),
]

POW_HINT = Hint(
    "d(a ** k)/da = k * a ** (k - 1), for the k you were given.",
    "k = 0 too: a ** 0 is the constant 1, whose slope is 0 everywhere, also at a = 0, where "
    "a ** -1 does not exist.",
    "`if k != 0: self.grad += k * self.data ** (k - 1) * out.grad`",
)
BIG = (-1000.0, -500.0, -50.0, -1.0, 0.0, 1.0, 50.0, 500.0, 1000.0)
"""Edge magnitudes, where a formula built on exp overflows (tried after ordinary points, so
that an ordinary mistake is reported where its numbers are easy to read)."""

UNARY = [
    *[
        ScalarCase(f"a ** {k}", lambda a, k=k: a**k, tuple((x,) for x in xs), POW_HINT)
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
        ((-0.5,), (0.0,), (2.0,), (-1000.0,), (500.0,)),
        Hint(
            "d exp(a)/da = exp(a): the derivative is the value itself.",
            "You computed exp(a) already: it is out.data.",
            "`self.grad += out.data * out.grad`",
        ),
    ),
    ScalarCase(
        "a.log()",
        lambda a: a.log(),
        ((0.5,), (3.0,), (1e-300,), (1e300,)),
        Hint(
            "d log(a)/da = 1 / a.",
            "Divide out.grad by the input's data.",
            "`self.grad += out.grad / self.data`",
        ),
    ),
    ScalarCase(
        "a.tanh()",
        lambda a: a.tanh(),
        tuple((x,) for x in (-0.8, 0.3, 20.0, *BIG)),
        Hint(
            "d tanh(a)/da = 1 - tanh(a) ** 2, and tanh must not overflow: exp(2a) does for a "
            "large a, while math.tanh, which cannot overflow, does not.",
            "tanh(a) is out.data.",
            "`out = Value(math.tanh(self.data), (self,), 'tanh')` and "
            "`self.grad += (1 - out.data**2) * out.grad`",
        ),
    ),
    ScalarCase(
        "a.relu()",
        lambda a: a.relu(),
        tuple((x,) for x in (-1.2, 0.7, *BIG)),
        Hint(
            "The slope of relu is 1 where a > 0 and 0 elsewhere, at a = 0 too (as in torch).",
            "Multiply out.grad by whether the input was positive.",
            "`self.grad += (self.data > 0) * out.grad`",
        ),
    ),
    ScalarCase(
        "a.sigmoid()",
        lambda a: a.sigmoid(),
        tuple((x,) for x in (-0.3, 0.3, -800.0, 800.0, *BIG)),
        Hint(
            "d sigmoid(a)/da = s * (1 - s) with s = sigmoid(a), and exp(-a) overflows for a "
            "very negative a.",
            "For a < 0, sigmoid(a) = exp(a) / (1 + exp(a)) takes exp of a negative number only.",
            "`e = math.exp(-abs(self.data))`, `s = 1 / (1 + e) if self.data >= 0 else "
            "e / (1 + e)`, and `self.grad += s * (1 - s) * out.grad`",
        ),
    ),
]

DERIVED_HINT = Hint(
    "These are built on your ops: -a is a * -1, a - b is a + (-b), and a number on the "
    "left of an op becomes a Value (__radd__, __rmul__); division is written for you.",
    "Find the smallest expression that fails: if + and * pass Exercise 4.1's check and "
    "the ops above pass here, compare (a - b) and (2 - a) with torch by hand.",
    "Fix the op that the smallest failing expression uses; the derived ops need no change.",
)
DERIVED = [
    ScalarCase("a - b", lambda a, b: a - b, ((1.5, -0.5),)),
    ScalarCase("a / b", lambda a, b: a / b, ((1.5, -0.5), (-1000.0, 1e-3), (1e-200, 1e-200))),
    ScalarCase("-a * b", lambda a, b: -a * b, ((1.5, -0.5),)),
    ScalarCase("2 / a + 1 - b", lambda a, b: 2 / a + 1 - b, ((1.5, -0.5),)),
    ScalarCase("3 * a + b * 2", lambda a, b: 3 * a + b * 2, ((1.5, -0.5),)),
    ScalarCase("2 - a", lambda a: 2 - a, ((1.5,),)),
    ScalarCase("2 + a * 0.5", lambda a: 2 + a * 0.5, ((1.5,),)),
    ScalarCase("a - a", lambda a: a - a, ((1.5,),)),
    ScalarCase("a / a", lambda a: a / a, ((1.5,),)),
    ScalarCase("(a * b) * a", lambda a, b: (a * b) * a, ((1.5, -0.5),)),
]


def _check_local_rule(Value, name, f, xs, uses=1):
    """Call `_backward` of `f(*inputs)` alone and compare the inputs' grads with torch.

    Each input's grad is PRESET before the call and out.grad is UPSTREAM, so that a rule
    that assigns, one that forgets out.grad and one that does both give different numbers
    (`uses`: how often the one input is used, 2 for `a + a`).
    """
    ours = [Value(x) for x in xs]
    out = f(*ours)
    what = f"{name} at {_numbers(xs)}"
    _is_value(Value, out, what)
    with hinted(RECORD_HINT):
        prev = getattr(out, "_prev", ())
        recorded = {id(p) for p in prev} if isinstance(prev, (tuple, list, set)) else set()
        for v, letter in zip(ours, "abc", strict=False):
            expect(
                id(v) in recorded,
                f"{what}: out._prev is {describe(prev)}; it must hold the input {letter}",
            )
    theirs = [leaf(x) for x in xs]
    ref = f(*theirs)
    close(out.data, ref.item(), f"{what}: out.data")
    for v in ours:
        v.grad = PRESET
    out.grad = UPSTREAM
    out._backward()
    grads = torch.autograd.grad(ref, theirs, torch.tensor(UPSTREAM, dtype=F64), retain_graph=True)
    local = torch.autograd.grad(ref, theirs)
    for v, g, d, letter in zip(ours, grads, local, "abc", strict=False):
        term, slope = g.item(), d.item()
        mistakes = {
            "untouched": PRESET,
            "assigned": term / uses,
            "unchained": PRESET + slope,
            "both": slope / uses,
        }
        diagnose_grad(
            v.grad,
            PRESET + term,
            mistakes,
            f"{what}, out.grad={UPSTREAM:g}: {letter}.grad, which was {PRESET} before "
            "out._backward()",
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


@learner_check
def check_value_add_mul(Value: type) -> Verdict:
    """Exercise 4.1: `+` and `*` of `Value`, values, the inputs recorded, local rules."""

    def body():
        for case in ADD_MUL:
            with engine_hinted(case.hint, case.name):
                for xs in case.points:
                    _check_local_rule(Value, case.name, case.f, xs)
                twice = case.name.replace("b", "a")
                _check_local_rule(Value, twice, lambda a, f=case.f: f(a, a), [2.0], uses=2)
                for c in (4.0, -0.5):
                    for label, g in (
                        (f"a {case.name[2]} {c:g} (a number)", lambda a, f=case.f, c=c: f(a, c)),
                        (f"{c:g} {case.name[2]} a (a number)", lambda a, f=case.f, c=c: f(c, a)),
                    ):
                        _check_local_rule(Value, label, g, [2.0])
        return (
            "a + b, a * b, a + a, a * a and numbers match torch; outputs record their inputs, "
            "and grads accumulate"
        )

    return check("Exercise 4.1 (Value + and *)", body)


TOPO_HINT = Hint(
    "A node goes into the list after every node in its _prev, and each node goes in once.",
    "Depth-first search: a node is appended once all its inputs are; a set remembers the "
    "nodes already visited, and a stack of your own (a list) replaces recursion.",
    "`stack = [(root, False)]`; pop `(node, expanded)`: if expanded, append node to the "
    "order; elif node is not visited: mark it visited, push `(node, True)`, then push "
    "`(child, False)` for each child in node._prev",
)
RECURSION_HINT = Hint(
    "Your code calls itself once per node, so a chain of 100,000 nodes needs 100,000 nested "
    "calls. sys.setrecursionlimit only moves the limit: the task is to need no recursion.",
    "Keep the nodes still to visit in a list of your own: push onto it, pop from it, in a "
    "while loop.",
    TOPO_HINT.recipe,
)
SLOW_HINT = Hint(
    "Something in your code takes longer the more nodes it has seen: done once per node, "
    "that makes about n * n / 2 steps, 5 billion for this chain.",
    "`node in visited` reads a list from the start; in a set it is one lookup.",
    "`visited = set()` and `visited.add(node)`",
)


def _measure_depth(function: Callable[..., Any], *args: Any) -> int:
    """How many calls deep `function(*args)` went: one per node for a recursive search.

    The recursion limit is put back afterwards, should the learner's code have raised it.
    """
    depth = deepest = 0

    def profile(frame, event, arg):
        nonlocal depth, deepest
        if event == "call":
            depth += 1
            deepest = max(deepest, depth)
        elif event == "return":
            depth -= 1

    previous, limit = sys.getprofile(), sys.getrecursionlimit()
    sys.setprofile(profile)
    try:
        function(*args)
    except RecursionError:
        deepest = max(deepest, limit)
    finally:
        sys.setprofile(previous)
        sys.setrecursionlimit(limit)
    return deepest


def _expect_no_recursion(Value: type, name: str, run: Callable[[Any], Any]) -> None:
    """`run(chain)` on a chain of PROBE_LENGTH nodes may not nest one call per node.

    A recursion limit that the learner raised in this kernel is set back to what it was
    when the checks were imported, and the message says so.
    """
    chain = Value(0.0)
    for _ in range(PROBE_LENGTH):
        chain = Value(0.0, (chain,))
    depth = _measure_depth(run, chain)
    if depth < PROBE_LENGTH // 2:
        return
    message = (
        f"{name} on a chain of {PROBE_LENGTH:,} nodes went {depth:,} calls deep: it recurses, "
        "one call per node"
    )
    if sys.getrecursionlimit() > KERNEL_RECURSION_LIMIT:
        message += (
            f" (this kernel's recursion limit was raised to {sys.getrecursionlimit():,}; "
            f"the check set it back to {KERNEL_RECURSION_LIMIT:,})"
        )
        sys.setrecursionlimit(KERNEL_RECURSION_LIMIT)
    with hinted(RECURSION_HINT):
        raise Mismatch(message)


def _check_small_graph(topological_order: Callable[[Any], Any], Value: type) -> None:
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


@learner_check
def check_topological_order(topological_order: Callable[[Any], Any], Value: type) -> Verdict:
    """Exercise 4.2: each node once, after its inputs; no recursion; a 100,000-node chain
    within the time budget."""

    def body():
        _check_small_graph(topological_order, Value)
        _expect_no_recursion(Value, "topological_order", lambda root: list(topological_order(root)))
        chain = Value(0.0)
        for _ in range(CHAIN_LENGTH):
            chain = Value(0.0, (chain,))
        what = f"topological_order of a {CHAIN_LENGTH:,}-node chain"
        with time_budget(TIME_BUDGET, what, SLOW_HINT):
            n = len(list(topological_order(chain)))
        expect_equal(n, CHAIN_LENGTH + 1, f"the number of nodes of a {CHAIN_LENGTH:,}-step chain")
        return f"each node once, after its inputs; a chain of {CHAIN_LENGTH:,} nodes works"

    return check("Exercise 4.2 (topological_order)", body, hint=TOPO_HINT)


BACKWARD_HINT = Hint(
    "backward() seeds the output's grad with 1, then runs each node's _backward, a node "
    "only after every node computed from it has run.",
    "The reverse of topological_order(self) puts the output first and the leaves last.",
    "`order = topological_order(self)`; set the grad of every node with inputs to 0; "
    "`self.grad = 1.0`; `for node in reversed(order): node._backward()`",
)
TWICE_HINT = Hint(
    "A second backward() adds one more gradient to each leaf. The intermediate nodes still "
    "hold the first call's grad: unless it is set back to 0, your rules send it on again.",
    "Before the pass, set the grad of each node that has inputs (node._prev) to 0; leave "
    "the leaves, which accumulate.",
    "`for node in order: if node._prev: node.grad = 0.0`, then `self.grad = 1.0`",
)
LEAVES_WIPED_HINT = Hint(
    "After the second backward() a leaf holds only that call's gradient: the first call's "
    "was wiped. Leaves keep accumulating over calls, as in torch; only zero_grad() clears "
    "them.",
    "Set to 0 only the grads of the nodes that have inputs (node._prev), the working space "
    "of the pass; leave the leaves' grads as they are.",
    TWICE_HINT.recipe,
)


@learner_check
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
        once = -3.0 + 1  # d(x * y + x)/dx at y = -3, the gradient of one call
        wiped = isinstance(ours[0].grad, (int, float)) and ours[0].grad == once
        with hinted(LEAVES_WIPED_HINT if wiped else TWICE_HINT):
            close(
                ours[0].grad,
                2 * once,
                "a.grad after calling backward() twice on a * b + a (a leaf accumulates, as "
                "in torch)",
            )
        out.zero_grad()
        expect_equal([v.grad for v in ours], [0.0, 0.0], "the grads after zero_grad()")
        _expect_no_recursion(Value, "backward()", lambda chain: chain.backward())
        with time_budget(
            TIME_BUDGET, f"backward() of a {CHAIN_LENGTH:,}-step chain of products", SLOW_HINT
        ):
            x = Value(1.0)
            y = x
            for _ in range(CHAIN_LENGTH):
                y = y * 1.00001
            y.backward()
        close(
            x.grad, 1.00001**CHAIN_LENGTH, f"x.grad of x * 1.00001 * ... ({CHAIN_LENGTH:,} times)"
        )
        return (
            f"gradients match torch, accumulate over calls, and a {CHAIN_LENGTH:,}-node chain works"
        )

    return check("Exercise 4.2 (Value.backward)", body, hint=BACKWARD_HINT)


@learner_check
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
