"""Property tests: the reference engine equals torch (float64) on random shapes and programs.

Inputs stay in each op's domain: ``log`` and ``** -1`` get positive inputs, values are
bounded so that ``exp`` cannot overflow, and compositions squash through ``tanh`` before
anything that grows fast. Values and gradients must agree to ``rtol=1e-9``.
"""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays, mutually_broadcastable_shapes

from course.notebooks import engine

E = engine()
SETTINGS = settings(max_examples=40, deadline=None)
RTOL, ATOL = 1e-9, 1e-12

values = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


def assert_close(got, expected, what):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert np.shape(got) == np.shape(expected), f"{what}: shape {np.shape(got)} vs {expected.shape}"
    assert np.allclose(got, expected, rtol=RTOL, atol=ATOL), f"{what}: {got} vs {expected}"


def compare(f, inputs, upstream):
    """Run ``f`` on Tensors and on torch tensors of ``inputs``; compare values and grads."""
    xs = [E.Tensor(a.copy(), requires_grad=True) for a in inputs]
    ts = [torch.tensor(a, requires_grad=True) for a in inputs]
    out, ref = f(*xs), f(*ts)
    assert_close(out.data, ref, "value")
    g = np.resize(upstream, ref.shape)
    grads = torch.autograd.grad(ref, ts, torch.from_numpy(g), allow_unused=True)
    out.backward(g)
    for i, (x, t) in enumerate(zip(xs, grads, strict=False)):
        assert_close(x.grad, np.zeros(x.shape) if t is None else t, f"grad of input {i}")


BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (b * b + 0.5),
    lambda a, b: (a * b).tanh() + a.exp() * b,
]


@SETTINGS
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
    op=st.sampled_from(range(len(BINARY))),
    data=st.data(),
)
def test_broadcasting_ops_match_torch(shapes, op, data):
    inputs = [data.draw(arrays(np.float64, s, elements=values)) for s in shapes.input_shapes]
    upstream = data.draw(arrays(np.float64, 6, elements=values))
    compare(BINARY[op], inputs, upstream)


# Unary steps of a random program; each keeps its output in [-3, 3] or feeds a safe domain.
STEPS = {
    "tanh": lambda x: x.tanh(),
    "relu": lambda x: x.relu() - 0.5,
    "exp": lambda x: (x.tanh()).exp(),
    "log": lambda x: (x * x + 1).log(),
    "pow": lambda x: (x.tanh() + 2) ** -1.5,
    "square": lambda x: x * x.tanh(),
    "affine": lambda x: 0.5 * x - 1,
    "reuse": lambda x: (lambda e: e * e - e)(x.tanh()),
    "sum0": lambda x: x.sum(axis=0, keepdims=True).tanh() + x,
    "mean-1": lambda x: x - x.mean(axis=-1, keepdims=True),
    "transpose": lambda x: x.transpose(0, 1).transpose(0, 1),
    "reshape": lambda x: x.reshape(-1).reshape(x.shape),
}


@SETTINGS
@given(
    x=arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4)), elements=values),
    program=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=6),
    upstream=arrays(np.float64, 12, elements=values),
)
def test_random_programs_match_torch(x, program, upstream):
    def run(t):
        for step in program:
            t = STEPS[step](t)
        return t

    compare(run, [x], upstream)


@SETTINGS
@given(
    n=st.integers(1, 4),
    k=st.integers(1, 4),
    m=st.integers(1, 4),
    batch=st.sampled_from([(), (2,)]),
    data=st.data(),
)
def test_matmul_matches_torch(n, k, m, batch, data):
    a = data.draw(arrays(np.float64, (*batch, n, k), elements=values))
    b = data.draw(arrays(np.float64, (k, m), elements=values))
    upstream = data.draw(arrays(np.float64, 8, elements=values))
    compare(lambda x, y: x @ y, [a, b], upstream)


@SETTINGS
@given(
    logits=arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.integers(2, 6)),
        elements=st.floats(-1000, 1000, allow_nan=False),
    ),
    data=st.data(),
)
def test_cross_entropy_matches_torch(logits, data):
    targets = np.array(
        data.draw(
            st.lists(
                st.integers(0, logits.shape[1] - 1),
                min_size=logits.shape[0],
                max_size=logits.shape[0],
            )
        )
    )
    x = E.Tensor(logits.copy(), requires_grad=True)
    loss = E.cross_entropy(x, targets)
    loss.backward()
    t = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(t, torch.from_numpy(targets))
    ref.backward()
    assert_close(loss.data, ref, "loss")
    assert_close(x.grad, t.grad, "grad")


SCALAR_OPS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "sub": lambda a, b: a - b,
    "div": lambda a, b: a / (b * b + 1),
    "tanh": lambda a, b: (a * b).tanh(),
    "sigmoid": lambda a, b: (a - b).sigmoid(),
    "exp": lambda a, b: a.tanh().exp() * b,
    "log": lambda a, b: (a * a + 1).log() + b,
    "relu": lambda a, b: (a - b).relu(),
    "pow": lambda a, b: (a.tanh() + 2) ** 2.5,
}


@SETTINGS
@given(
    xs=st.tuples(values, values),
    program=st.lists(st.tuples(st.sampled_from(sorted(SCALAR_OPS)), st.booleans()), max_size=8),
)
def test_scalar_programs_match_torch(xs, program):
    """Random programs over two variables; each step combines the latest result with one."""

    def run(a, b):
        out = a
        for op, swap in program:
            out = SCALAR_OPS[op](b, out) if swap else SCALAR_OPS[op](out, b)
        return out * 1.0 + a  # always depends on a

    ours = [E.Value(x) for x in xs]
    out = run(*ours)
    out.backward()
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    ref = run(*ts)
    grads = torch.autograd.grad(ref, ts, allow_unused=True)
    assert_close(out.data, ref, "value")
    for v, g in zip(ours, grads, strict=False):
        assert_close(v.grad, 0.0 if g is None else g.item(), "grad")
