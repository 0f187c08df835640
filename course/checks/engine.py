"""Checks for the exercises of Chapter 4 (build your own autograd), against torch in float64.

Each check builds the same small graphs with the learner's engine and with torch and
compares values and gradients. The local backward rule of an op is checked on its own by
calling the output's ``_backward`` with a known ``out.grad`` and inputs whose ``grad`` is
already non-zero, so a rule that assigns (``=``) instead of accumulating (``+=``) fails
even before ``backward()`` is written.
"""

import math
import time
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from course.checks import Mismatch, check, expect, expect_close, expect_equal
from course.threads import same_threads

F64 = torch.float64
DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
RTOL, ATOL = 1e-9, 1e-12


@contextmanager
def _hint(text: str, what: str = ""):
    """Add an op-specific hint to a mismatch, or to an error of the learner's code, inside
    the block; ``what`` names the op and its input in the latter case."""
    try:
        yield
    except Mismatch as error:
        raise Mismatch(f"{error}\n  Hint: {text}") from None
    except (NotImplementedError, RecursionError):
        raise
    except Exception as error:
        raise Mismatch(
            f"{what}: your code raised {type(error).__name__}: {error}\n  Hint: {text}"
        ) from None


def _leaf(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64, requires_grad=True)


def _numbers(xs) -> str:
    return ", ".join(f"{name}={x:g}" for name, x in zip("abc", xs, strict=False))


# --- Part 1: the scalar engine ------------------------------------------------------------

ADD_MUL = [
    ("a + b", lambda a, b: a + b, "d(a + b)/da = 1 and d(a + b)/db = 1"),
    ("a * b", lambda a, b: a * b, "d(a * b)/da = b.data and d(a * b)/db = a.data"),
]

UNARY = [
    ("a ** 2", lambda a: a**2, [-1.5, 0.7], "d(a ** k)/da = k * a.data ** (k - 1)"),
    ("a ** 3", lambda a: a**3, [-1.5, 2.0], "d(a ** k)/da = k * a.data ** (k - 1)"),
    ("a ** -1", lambda a: a**-1, [0.5, -2.0], "d(a ** k)/da = k * a.data ** (k - 1)"),
    ("a ** 0.5", lambda a: a**0.5, [0.25, 3.0], "d(a ** k)/da = k * a.data ** (k - 1)"),
    ("a.exp()", lambda a: a.exp(), [-0.5, 2.0], "d exp(a)/da = exp(a), which is out.data"),
    ("a.log()", lambda a: a.log(), [0.5, 3.0], "d log(a)/da = 1 / a.data"),
    ("a.tanh()", lambda a: a.tanh(), [-0.8, 0.3, 20.0], "d tanh(a)/da = 1 - out.data ** 2"),
    ("a.relu()", lambda a: a.relu(), [-1.2, 0.7], "the slope is 1 where a.data > 0, else 0"),
    (
        "a.sigmoid()",
        lambda a: a.sigmoid(),
        [-800.0, -0.3, 0.3, 800.0],
        "d sigmoid(a)/da = s * (1 - s) with s = out.data; for a very negative a, compute "
        "exp(a) / (1 + exp(a)) so that exp never overflows",
    ),
]

DERIVED = [
    ("a - b", lambda a, b: a - b, [1.5, -0.5]),
    ("a / b", lambda a, b: a / b, [1.5, -0.5]),
    ("-a * b", lambda a, b: -a * b, [1.5, -0.5]),
    ("2 / a + 1 - b", lambda a, b: 2 / a + 1 - b, [1.5, -0.5]),
    ("3 * a + b * 2", lambda a, b: 3 * a + b * 2, [1.5, -0.5]),
]


def _check_local_rule(Value, name, f, xs, upstream=1.5, preset=0.5):
    """Call ``_backward`` of ``f(*inputs)`` alone and compare the inputs' grads with torch."""
    ours = [Value(x) for x in xs]
    out = f(*ours)
    theirs = [_leaf(x) for x in xs]
    ref = f(*theirs)
    what = f"{name} at {_numbers(xs)}"
    expect_close(out.data, ref.item(), f"{what}: out.data", RTOL, ATOL)
    for v in ours:
        v.grad = preset
    out.grad = upstream
    out._backward()
    grads = torch.autograd.grad(ref, theirs, torch.tensor(upstream, dtype=F64))
    for v, g, letter in zip(ours, grads, "abc", strict=False):
        expect_close(
            v.grad,
            preset + g.item(),
            f"{what}, out.grad={upstream}: {letter}.grad, which was {preset} before "
            "out._backward() (it must grow by the new term, +=)",
            RTOL,
            ATOL,
        )


def _check_backward(Value, name, f, xs):
    """Run ``backward()`` on ``f(*inputs)`` and compare every input's grad with torch."""
    ours = [Value(x) for x in xs]
    out = f(*ours)
    out.backward()
    theirs = [_leaf(x) for x in xs]
    ref = f(*theirs)
    ref.backward()
    what = f"{name} at {_numbers(xs)}"
    expect_close(out.data, ref.item(), f"{what}: out.data", RTOL, ATOL)
    for v, t, letter in zip(ours, theirs, "abc", strict=False):
        expected = 0.0 if t.grad is None else t.grad.item()
        expect_close(v.grad, expected, f"{what}: {letter}.grad after backward()", RTOL, ATOL)
    return ours, out


def check_value_add_mul(Value):
    """Exercise 4.1: ``+`` and ``*`` of ``Value``, values and local backward rules."""

    def body():
        for name, f, rule in ADD_MUL:
            with _hint(rule, name):
                _check_local_rule(Value, name, f, [2.0, -3.0])
                _check_local_rule(Value, name.replace("b", "a"), lambda a, f=f: f(a, a), [2.0])
                expect_close((f(Value(2.0), 4.0)).data, f(2.0, 4.0), f"{name} with b=4 (a number)")
        return "a + b, a * b, a + a, a * a and numbers match torch, and grads accumulate"

    return check("Exercise 4.1 (Value + and *)", body)


def check_topological_order(topological_order, Value):
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
        for _ in range(100_000):
            chain = Value(0.0, (chain,))
        try:
            n = len(topological_order(chain))
        except RecursionError:
            raise Mismatch(
                "a chain of 100,000 nodes: RecursionError. Use a list as an explicit stack "
                "instead of a recursive function"
            ) from None
        expect_equal(n, 100_001, "the number of nodes of a 100,000-step chain")
        return "each node once, after its inputs; a chain of 100,000 nodes works"

    return check("Exercise 4.2 (topological_order)", body)


def check_value_backward(Value):
    """Exercise 4.2: ``backward()`` vs torch, reused nodes, repeated calls, a deep chain."""

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
        for _ in range(100_000):
            y = y * 1.00001
        y.backward()
        expect_close(x.grad, 1.00001**100_000, "x.grad of x * 1.00001 * ... (100,000 times)")
        return "gradients match torch, accumulate over calls, and a 100,000-node chain works"

    return check(
        "Exercise 4.2 (Value.backward)",
        body,
        hint="topological_order(self), then out.grad = 1, then node._backward() for each node "
        "in reversed order",
    )


def check_value_unary(Value):
    """Exercise 4.3: ``**``, exp, log, tanh, relu, sigmoid, and the ops built on them."""

    def body():
        for name, f, xs, rule in UNARY:
            with _hint(rule, name):
                for x in xs:
                    _check_local_rule(Value, name, f, [x])
        for name, f, xs in DERIVED:
            with _hint("these are built from + and * and ** -1: check those first", name):
                _check_backward(Value, name, f, xs)
        return f"{len(UNARY)} ops and {len(DERIVED)} expressions built on them match torch"

    return check("Exercise 4.3 (Value **, exp, log, tanh, relu, sigmoid)", body)


def draw_value_graph(Value):
    """Draw the learner's graph of tanh(a * b + c) * a beside torch's, once its grads match."""
    from course.figures.graphs import draw_graph, draw_torch_graph, new_figure

    figures = []

    def expression(a, b, c):
        return (a * b + c).tanh() * a

    def body():
        ours, out = _check_backward(Value, "tanh(a * b + c) * a", expression, [0.5, -1.5, 0.25])
        theirs = [_leaf(x) for x in (0.5, -1.5, 0.25)]
        figure = new_figure(figsize=(11, 4.5), layout="constrained")
        left, right = figure.subplots(1, 2)
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
    ((5, 3, 4), (3, 1)),
    ((2, 1, 3), (1, 1, 3)),
]


def check_unbroadcast(unbroadcast):
    """Exercise 4.4: ``unbroadcast(grad, shape)`` equals torch's gradient of broadcasting."""

    def body():
        rng = np.random.default_rng(0)
        for grad_shape, shape in UNBROADCAST_CASES:
            grad = rng.standard_normal(grad_shape)
            x = torch.zeros(shape, dtype=F64, requires_grad=True)
            (expected,) = torch.autograd.grad(
                torch.broadcast_to(x, grad_shape), x, torch.from_numpy(grad)
            )
            got = np.asarray(unbroadcast(grad.copy(), shape))
            expect_close(got, expected, f"unbroadcast(grad of shape {grad_shape}, {shape})")
        return f"matches torch's gradient of broadcasting on {len(UNBROADCAST_CASES)} shapes"

    return check(
        "Exercise 4.4 (unbroadcast)",
        body,
        hint="sum over the leading axes that shape lacks, then over each axis where shape has "
        "1 and grad has more (keepdims=True)",
    )


def _tensor_case(Tensor, name, ours, theirs, arrays, rng, hint):
    """Compare value and input grads of ``ours(*Tensors)`` with ``theirs(*torch tensors)``.

    The backward pass runs twice with the same upstream gradient: leaf grads must double,
    as torch's do, which only happens when every rule accumulates.
    """
    what = f"{name} with inputs of shape {', '.join(str(a.shape) for a in arrays)}"
    with _hint(hint, what):
        xs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        ts = [torch.tensor(a, dtype=F64, requires_grad=True) for a in arrays]
        out, ref = ours(*xs), theirs(*ts)
        expect(isinstance(out, Tensor), f"{what}: expected a Tensor, got {out!r}")
        expect_close(out.data, ref.detach(), f"{what}: value", RTOL, ATOL)
        upstream = rng.standard_normal(ref.shape)
        grads = torch.autograd.grad(ref, ts, torch.from_numpy(upstream), allow_unused=True)
        for _ in range(2):
            out.backward(upstream.copy())
        for i, (x, g) in enumerate(zip(xs, grads, strict=False)):
            expected = torch.zeros_like(ts[i]) if g is None else 2 * g
            expect(x.grad is not None, f"{what}: input {i} has no grad after backward")
            expect_close(
                x.grad,
                expected,
                f"{what}: grad of input {i} after two backward calls (leaf grads accumulate)",
                RTOL,
                ATOL,
            )


def _run_cases(Tensor, cases, rng):
    for name, ours, theirs, shapes, low, high, hint in cases:
        theirs = theirs or ours
        arrays = [rng.uniform(low, high, s) for s in shapes]
        _tensor_case(Tensor, name, ours, theirs, arrays, rng, hint)


BROADCAST_SHAPES = [
    [(2, 3), (2, 3)],
    [(2, 3), (3,)],
    [(3,), (2, 3)],
    [(2, 1), (1, 3)],
    [(4, 1, 3), (2, 1)],
    [(2, 3), ()],
    [(), (2, 3)],
]

UNBROADCAST_HINT = "pass each input's gradient through unbroadcast(grad, input.shape)"
ELEMENTWISE = [
    ("a + b", lambda a, b: a + b, None, BROADCAST_SHAPES, -2, 2, UNBROADCAST_HINT),
    ("a * b", lambda a, b: a * b, None, BROADCAST_SHAPES, -2, 2, UNBROADCAST_HINT),
    ("a - b", lambda a, b: a - b, None, BROADCAST_SHAPES[:4], -2, 2, UNBROADCAST_HINT),
    ("a / b", lambda a, b: a / b, None, BROADCAST_SHAPES[:4], 0.5, 2, UNBROADCAST_HINT),
    ("a + a", lambda a: a + a, None, [[(2, 3)]], -2, 2, "accumulate: self.grad += ..."),
    ("a * a", lambda a: a * a, None, [[(2, 3)]], -2, 2, "accumulate: self.grad += ..."),
    ("a ** 2", lambda a: a**2, None, [[(2, 3)]], -2, 2, "k * a.data ** (k - 1) * out.grad"),
    ("a ** -1", lambda a: a**-1, None, [[(2, 3)]], 0.5, 2, "k * a.data ** (k - 1) * out.grad"),
    ("a ** 0.5", lambda a: a**0.5, None, [[(4,)]], 0.5, 2, "k * a.data ** (k - 1) * out.grad"),
    ("a.exp()", lambda a: a.exp(), None, [[(2, 3)]], -2, 2, "exp(a) * out.grad = out.data * ..."),
    ("a.log()", lambda a: a.log(), None, [[(2, 3)]], 0.5, 3, "out.grad / a.data"),
    ("a.relu()", lambda a: a.relu(), None, [[(3, 4)]], -2, 2, "out.grad * (a.data > 0)"),
    ("a.tanh()", lambda a: a.tanh(), None, [[(2, 3)]], -3, 3, "out.grad * (1 - out.data ** 2)"),
    ("-a", lambda a: -a, None, [[(2, 3)]], -2, 2, "-a is a * -1"),
    ("2 * a + 1", lambda a: 2 * a + 1, None, [[(2, 3)]], -2, 2, "a number becomes a Tensor"),
    ("1 / a - 3", lambda a: 1 / a - 3, None, [[(3,)]], 0.5, 2, "a number becomes a Tensor"),
]


def _expand(cases):
    """One case per shape list: (name, ours, theirs, shapes, low, high, hint)."""
    return [(n, o, t, s, lo, hi, h) for n, o, t, shapes, lo, hi, h in cases for s in shapes]


def check_tensor_elementwise(Tensor):
    """Exercise 4.5: elementwise ops with broadcasting, vs torch; constants get no grad."""

    def body():
        rng = np.random.default_rng(0)
        cases = _expand(ELEMENTWISE)
        _run_cases(Tensor, cases, rng)
        x = Tensor(rng.uniform(-1, 1, (2, 3)), requires_grad=True)
        c = Tensor(rng.uniform(-1, 1, (3,)))
        (x * c + c).sum().backward()
        expect(
            c.grad is None,
            f"x * c + c where c has requires_grad=False: c.grad must stay None, got {c.grad!r}",
        )
        return f"values and grads match torch on {len(cases)} cases, broadcasting included"

    return check("Exercise 4.5 (Tensor elementwise ops)", body)


REDUCE_HINT = "expand the summed axes back (np.expand_dims unless keepdims) and broadcast"
SHAPES = [
    (
        "a @ b",
        lambda a, b: a @ b,
        None,
        [[(3, 4), (4, 2)], [(2, 3, 4), (4, 5)], [(2, 3, 4), (2, 4, 5)], [(3, 4), (2, 4, 5)]],
        -1,
        1,
        "grad of a = out.grad @ b^T, grad of b = a^T @ out.grad (then unbroadcast)",
    ),
    ("a.sum()", lambda a: a.sum(), None, [[(2, 3, 4)]], -1, 1, REDUCE_HINT),
    *[
        (
            f"a.sum(axis={axis}, keepdims={keep})",
            lambda a, axis=axis, keep=keep: a.sum(axis=axis, keepdims=keep),
            lambda a, axis=axis, keep=keep: a.sum(dim=axis, keepdim=keep),
            [[(2, 3, 4)]],
            -1,
            1,
            REDUCE_HINT,
        )
        for axis in (0, 1, -1, (0, 2))
        for keep in (False, True)
    ],
    ("a.mean()", lambda a: a.mean(), None, [[(2, 3)]], -1, 1, REDUCE_HINT),
    (
        "a.mean(axis=1, keepdims=True)",
        lambda a: a.mean(axis=1, keepdims=True),
        lambda a: a.mean(dim=1, keepdim=True),
        [[(2, 3, 4)]],
        -1,
        1,
        REDUCE_HINT,
    ),
    (
        "a.reshape(6, 4)",
        lambda a: a.reshape(6, 4),
        None,
        [[(2, 3, 4)]],
        -1,
        1,
        "reshape out.grad back to self.shape",
    ),
    (
        "a.reshape(-1)",
        lambda a: a.reshape(-1),
        None,
        [[(2, 3, 4)]],
        -1,
        1,
        "reshape out.grad back to self.shape",
    ),
    (
        "a.transpose(0, 1)",
        lambda a: a.transpose(0, 1),
        None,
        [[(2, 3, 4)]],
        -1,
        1,
        "swap the same two axes of out.grad back",
    ),
    (
        "a.transpose(-1, -2)",
        lambda a: a.transpose(-1, -2),
        None,
        [[(2, 3, 4)]],
        -1,
        1,
        "swap the same two axes of out.grad back",
    ),
    ("a.T", lambda a: a.T, None, [[(3, 4)]], -1, 1, "a.T is a.transpose(-2, -1)"),
    (
        "(a @ b.T).relu().sum(axis=0).mean()",
        lambda a, b: (a @ b.T).relu().sum(axis=0).mean(),
        lambda a, b: (a @ b.T).relu().sum(dim=0).mean(),
        [[(5, 4), (3, 4)]],
        -1,
        1,
        "check each op alone first",
    ),
]


def check_tensor_shapes(Tensor):
    """Exercise 4.6: matmul, sum/mean with axis and keepdims, reshape, transpose."""

    def body():
        cases = _expand(SHAPES)
        _run_cases(Tensor, cases, np.random.default_rng(1))
        return f"values and grads match torch on {len(cases)} cases"

    return check("Exercise 4.6 (Tensor @, sum, mean, reshape, transpose)", body)


# --- Part 3: training ----------------------------------------------------------------------


def check_cross_entropy(log_softmax, cross_entropy, Tensor):
    """Exercise 4.7: ``log_softmax`` and ``cross_entropy`` vs torch, huge logits included."""

    def body():
        rng = np.random.default_rng(2)
        huge = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -999.0, -1001.0]])
        targets = rng.integers(0, 10, 8)
        hint = "subtract x.data.max(axis=-1, keepdims=True) before exp"
        for logits in (rng.standard_normal((4, 5)) * 3, huge):
            _tensor_case(
                Tensor,
                "log_softmax(x)",
                log_softmax,
                lambda x: F.log_softmax(x, dim=-1),
                [logits],
                rng,
                hint,
            )
        for logits, t in ((rng.standard_normal((8, 10)) * 3, targets), (huge, np.array([2, 1]))):
            _tensor_case(
                Tensor,
                f"cross_entropy(x, targets={t.tolist()})",
                lambda x, t=t: cross_entropy(x, t),
                lambda x, t=t: F.cross_entropy(x, torch.from_numpy(t)),
                [logits],
                rng,
                "the mean over rows of -log_softmax(x)[row, target]",
            )
        return "log_softmax and cross_entropy match torch, also on logits of ±1000"

    return check("Exercise 4.7 (log_softmax, cross_entropy)", body)


def _torch_mlp(model) -> torch.nn.Sequential:
    """An ``nn.Sequential`` of Linear and ReLU layers holding copies of ``model``'s weights."""
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


def check_mlp_sgd(MLP, SGD, Tensor):
    """Exercise 4.8: ``MLP`` forward, ``Linear``'s initialisation, and ``SGD`` with momentum."""

    def layers():
        rng = np.random.default_rng(3)
        model = MLP([50, 30, 4], rng, np.float64)
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
        x = rng.standard_normal((6, 50))
        expect_close(
            model(Tensor(x)).data,
            reference(torch.from_numpy(x)).detach(),
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
                expect_close(p.data, q.detach(), what, RTOL, ATOL)

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


def check_matches_torch(first_steps, cross_entropy, Tensor):
    """Train the learner's MLP and torch's copy of it on the same batches in float64.

    ``first_steps(dtype)`` returns ``(model, optimizer, batches)``; every step's loss must
    match torch's to ``rtol=1e-10``.
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
        shown = rows[:3] + ["  ..."] + rows[-2:]
        return f"{len(rows)} steps follow torch's losses to 1e-10:\n" + "\n".join(shown)

    return check("Your MLP beside torch's (float64)", body)


def check_mnist_training(train, threshold=0.97):
    """``train()`` returns a test accuracy of at least ``threshold``."""

    def body():
        start = time.perf_counter()
        accuracy = float(train())
        seconds = time.perf_counter() - start
        expect(accuracy >= threshold, f"test accuracy {accuracy:.2%}, below {threshold:.0%}")
        return (
            f"test accuracy {accuracy:.2%} (at least {threshold:.0%}), trained in {seconds:.1f} s"
        )

    return check(
        "Training on MNIST",
        body,
        hint="the float64 side-by-side check above finds a wrong gradient first",
    )


def _median_step(step, batches, repeats=3) -> float:
    """The median time of one training step over ``repeats`` passes through ``batches``."""
    times = []
    for _ in range(repeats):
        for x, y in batches:
            start = time.perf_counter()
            step(x, y)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def compare_step_time(first_steps, cross_entropy, Tensor, threads: int = 1):
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
