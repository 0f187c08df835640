"""The reference engine of Chapter 4 (loaded from solutions/engine.md) against torch, float64.

Hand-picked cases: every op's value and gradients, a node used twice, a reused
sub-expression, broadcasting in every direction, reductions with and without keepdims,
deep chains, and the error of ``backward()`` on a non-scalar.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course.notebooks import engine

E = engine()
RTOL = 1e-10


def close(got, expected, what):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert np.shape(got) == np.shape(expected), (
        f"{what}: shape {np.shape(got)} != {np.shape(expected)}"
    )
    same = np.allclose(got, expected, rtol=RTOL, atol=1e-12, equal_nan=True)
    assert same, f"{what}: {got} != {expected}"


def leaf(x):
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


# --- Value ---------------------------------------------------------------------------------

SCALAR_CASES = [
    ("a + b", lambda a, b: a + b, (1.5, -2.0)),
    ("a * b", lambda a, b: a * b, (1.5, -2.0)),
    ("a - b", lambda a, b: a - b, (1.5, -2.0)),
    ("a / b", lambda a, b: a / b, (1.5, -2.0)),
    ("a ** 3", lambda a, b: a**3 + b, (1.5, -2.0)),
    ("a ** -0.5", lambda a, b: a**-0.5 * b, (1.5, -2.0)),
    ("exp", lambda a, b: (a * b).exp(), (0.5, -2.0)),
    ("log", lambda a, b: (a * a + b * b).log(), (0.5, -2.0)),
    ("tanh", lambda a, b: (a + b).tanh(), (0.5, -0.2)),
    ("relu +", lambda a, b: (a + b).relu(), (0.5, 0.2)),
    ("relu -", lambda a, b: (a - b).relu(), (0.5, 0.9)),
    ("sigmoid", lambda a, b: (a * b).sigmoid(), (0.5, -3.0)),
    ("numbers on the left", lambda a, b: 2 - a + 3 * b - 1 / a + (4 + b), (0.5, -3.0)),
    ("node used twice", lambda a, b: a * a, (0.5, -3.0)),
    ("a + a", lambda a, b: a + a + b, (0.5, -3.0)),
    ("reused sub-expression", lambda a, b: (lambda e: e * e.tanh() + e)(a * b + a), (0.5, -3.0)),
    ("neuron", lambda a, b: (a * 0.3 + b * -0.7 + 0.1).tanh() * (a - b).sigmoid(), (0.5, -3.0)),
]


@pytest.mark.parametrize(("name", "f", "xs"), SCALAR_CASES, ids=[c[0] for c in SCALAR_CASES])
def test_value_matches_torch(name, f, xs):
    ours = [E.Value(x) for x in xs]
    out = f(*ours)
    out.backward()
    theirs = [leaf(x) for x in xs]
    ref = f(*theirs)
    ref.backward()
    close(out.data, ref.item(), f"{name}: value")
    for v, t in zip(ours, theirs, strict=False):
        expected = 0.0 if t.grad is None else t.grad.item()
        close(v.grad, expected, f"{name}: grad")


def test_value_backward_twice_accumulates_like_torch():
    a, b = E.Value(2.0), E.Value(-3.0)
    out = (a * b).tanh() * a
    out.backward()
    out.backward()
    ta, tb = leaf(2.0), leaf(-3.0)
    ref = (ta * tb).tanh() * ta
    ref.backward(retain_graph=True)
    ref.backward()
    close([a.grad, b.grad], [ta.grad.item(), tb.grad.item()], "leaf grads after two calls")


def test_value_zero_grad():
    a = E.Value(2.0)
    out = a * a + 1
    out.backward()
    out.zero_grad()
    assert a.grad == 0.0, "zero_grad leaves a grad behind on the input"
    assert out.grad == 0.0, "zero_grad leaves a grad behind on the output"


def test_value_deep_chain_has_no_recursion_limit():
    x = E.Value(0.5)
    y = x
    for _ in range(100_000):
        y = y + 1e-6
    y.backward()
    assert x.grad == 1.0, f"a chain of 100,000 additions: x.grad = {x.grad}"


def test_topological_order_lists_each_node_once_after_its_inputs():
    a = E.Value(1.0)
    b = a * a
    c = b + a
    out = c * b
    order = E.topological_order(out)
    assert len(order) == len({id(n) for n in order}) == 4, "each node exactly once"
    position = {id(n): i for i, n in enumerate(order)}
    assert all(position[id(p)] < position[id(n)] for n in order for p in n._prev), "order"


def test_sigmoid_does_not_overflow():
    for x in (-1000.0, 1000.0):
        v = E.Value(x)
        s = v.sigmoid()
        s.backward()
        t = leaf(x)
        torch.sigmoid(t).backward()
        close([s.data, v.grad], [torch.sigmoid(t).item(), t.grad.item()], f"sigmoid({x})")


# --- Tensor --------------------------------------------------------------------------------


def tensor_case(f, arrays, g=None, seed=0, theirs=None):
    """Value and grads of ``f`` on Tensors and of ``theirs`` (default ``f``) on torch's."""
    xs = [E.Tensor(a.copy(), requires_grad=True) for a in arrays]
    ts = [leaf(a) for a in arrays]
    out, ref = f(*xs), (theirs or f)(*ts)
    close(out.data, ref, "value")
    g = np.random.default_rng(seed).standard_normal(ref.shape) if g is None else g
    grads = torch.autograd.grad(ref, ts, torch.from_numpy(g), allow_unused=True)
    out.backward(g)
    for i, (x, t) in enumerate(zip(xs, grads, strict=False)):
        close(x.grad, np.zeros(x.shape) if t is None else t, f"grad of input {i}")


BROADCASTS = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((2, 3), (1, 3)),
    ((2, 1), (2, 3)),
    ((2, 1), (1, 3)),
    ((4, 1, 3), (2, 1)),
    ((1, 2, 1), (3, 1, 4)),
    ((), (2, 3)),
    ((2, 3), ()),
]
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_broadcasting_binary_ops(op, shapes):
    rng = np.random.default_rng(1)
    arrays = [rng.uniform(0.5, 2, s) for s in shapes]
    tensor_case(BINARY[op], arrays)


UNARY = {
    "exp": (lambda a: a.exp(), -2, 2),
    "log": (lambda a: a.log(), 0.1, 3),
    "relu": (lambda a: a.relu(), -2, 2),
    "tanh": (lambda a: a.tanh(), -3, 3),
    "neg": (lambda a: -a, -2, 2),
    "pow 3": (lambda a: a**3, -2, 2),
    "pow -2": (lambda a: a**-2, 0.5, 2),
    "pow 0.5": (lambda a: a**0.5, 0.1, 2),
    "rsub rdiv radd rmul": (lambda a: 1 - 2 / a + (3 + a) * 0.5, 0.5, 2),
    "a * a": (lambda a: a * a, -2, 2),
    "a + a": (lambda a: a + a, -2, 2),
    "reused": (lambda a: (lambda e: e * e.exp() + e)(a.tanh() * 2), -2, 2),
}


@pytest.mark.parametrize("op", UNARY)
def test_unary_ops(op):
    f, low, high = UNARY[op]
    tensor_case(f, [np.random.default_rng(2).uniform(low, high, (3, 4))])


REDUCTIONS = [
    ("sum", lambda a: a.sum(), lambda a: a.sum()),
    ("mean", lambda a: a.mean(), lambda a: a.mean()),
    *[
        (f"{name} axis={axis} keepdims={keep}", *fs)
        for axis in (0, 1, 2, -1, (0, 2), (1, 2))
        for keep in (False, True)
        for name, fs in {
            "sum": (
                lambda a, ax=axis, k=keep: a.sum(axis=ax, keepdims=k),
                lambda a, ax=axis, k=keep: a.sum(dim=ax, keepdim=k),
            ),
            "mean": (
                lambda a, ax=axis, k=keep: a.mean(axis=ax, keepdims=k),
                lambda a, ax=axis, k=keep: a.mean(dim=ax, keepdim=k),
            ),
        }.items()
    ],
    ("reshape", lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6)),
    ("reshape -1", lambda a: a.reshape(-1, 2), lambda a: a.reshape(-1, 2)),
    ("transpose 0 2", lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2)),
    ("transpose -1 -2", lambda a: a.transpose(-1, -2), lambda a: a.transpose(-1, -2)),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reductions_and_shapes(name, ours, theirs):
    a = np.random.default_rng(3).standard_normal((2, 3, 4))
    x = E.Tensor(a.copy(), requires_grad=True)
    t = leaf(a)
    out, ref = ours(x), theirs(t)
    close(out.data, ref, f"{name}: value")
    g = np.random.default_rng(4).standard_normal(ref.shape)
    out.backward(g)
    ref.backward(torch.from_numpy(g))
    close(x.grad, t.grad, f"{name}: grad")


@pytest.mark.parametrize(
    "shapes", [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 1))]
)
def test_matmul(shapes):
    rng = np.random.default_rng(5)
    tensor_case(lambda a, b: a @ b, [rng.standard_normal(s) for s in shapes])


def test_log_softmax_and_cross_entropy_are_stable():
    logits = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -999.0, -1001.0], [0.1, 0.2, 0.3]])
    targets = np.array([0, 2, 1])
    tensor_case(E.log_softmax, [logits], theirs=lambda t: F.log_softmax(t, dim=-1))
    x = E.Tensor(logits.copy(), requires_grad=True)
    loss = E.cross_entropy(x, targets)
    loss.backward()
    t = leaf(logits)
    ref = F.cross_entropy(t, torch.from_numpy(targets))
    ref.backward()
    close(loss.data, ref, "cross_entropy")
    close(x.grad, t.grad, "grad of cross_entropy")


def test_deep_tensor_chain():
    x = E.Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.sum().backward()
    close(x.grad, np.full(3, 1.0001**20_000), "a chain of 20,000 products")


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = E.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        torch.ones(3, requires_grad=True).mul(2).backward()


def test_constants_get_no_gradient_and_leaves_accumulate():
    x = E.Tensor(np.ones((2, 3)), requires_grad=True)
    c = E.Tensor(np.full(3, 2.0))
    for _ in range(2):
        (x * c).sum().backward()
    assert c.grad is None, "a tensor without requires_grad got a grad"
    close(x.grad, np.full((2, 3), 4.0), "two backward calls add up")


def test_float32_stays_float32():
    x = E.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = E.Tensor(np.ones((3, 4), np.float32), requires_grad=True)
    out = E.cross_entropy(((x * 2 + 1) @ w).tanh(), np.array([0, 3]))
    out.backward()
    assert out.dtype == np.float32, out.dtype
    assert x.grad.dtype == np.float32, x.grad.dtype


def test_training_steps_match_torch():
    """Ten SGD steps of a small MLP follow torch's losses and weights to 1e-10."""
    rng = np.random.default_rng(6)
    model = E.MLP([20, 16, 5], rng, np.float64)
    optimizer = E.SGD(model.parameters(), lr=0.1, momentum=0.9)
    layers = [torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)]
    reference = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for p, q in zip(model.parameters(), reference.parameters(), strict=False):
            q.copy_(torch.from_numpy(p.data))
    torch_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for step in range(10):
        x, y = rng.standard_normal((32, 20)), rng.integers(0, 5, 32)
        loss = E.cross_entropy(model(E.Tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ref = F.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
        torch_optimizer.zero_grad()
        ref.backward()
        torch_optimizer.step()
        close(loss.data, ref, f"loss at step {step}")
    for p, q in zip(model.parameters(), reference.parameters(), strict=False):
        close(p.data, q, "weights after 10 steps")


# --- Edges, each against torch ---------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 2, 3, -1, 0.5, 2.5])
def test_value_pow_at_zero_and_constants_on_both_sides(k):
    xs = (0.0, 1.5) if k == 0 or (isinstance(k, int) and k > 0) else (1.5, 0.25)
    ours = [E.Value(x) for x in xs]
    out = ours[0] ** k + 2 - ours[1] + 2 / (ours[1] + 3) + 3 * ours[0]
    out.backward()
    theirs = [leaf(x) for x in xs]
    ref = theirs[0] ** k + 2 - theirs[1] + 2 / (theirs[1] + 3) + 3 * theirs[0]
    ref.backward()
    close(out.data, ref.item(), f"x ** {k}: value")
    close([v.grad for v in ours], [t.grad.item() for t in theirs], f"x ** {k}: grads")


def test_tensor_pow_zero_at_zero_has_zero_gradient_like_torch():
    tensor_case(lambda a: a**0, [np.array([0.0, -1.5, 2.0])])
    tensor_case(lambda a: a**1, [np.array([0.0, -1.5, 2.0])])


@pytest.mark.parametrize(
    "shapes", [((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4,)), ((4,), (2, 4, 3))]
)
def test_matmul_follows_torchs_rules_for_vectors(shapes):
    rng = np.random.default_rng(7)
    tensor_case(lambda a, b: a @ b, [rng.standard_normal(s) for s in shapes])


def test_matmul_with_an_operand_that_needs_no_grad():
    rng = np.random.default_rng(8)
    a, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    x = E.Tensor(a, requires_grad=True)
    (x @ E.Tensor(w)).sum().backward()
    (w.T @ x.T).sum().backward()  # an ndarray on the left: __rmatmul__
    t = leaf(a)
    ((t @ torch.from_numpy(w)).sum() + (torch.from_numpy(w.T) @ t.T).sum()).backward()
    close(x.grad, t.grad, "grad of x through x @ W and W.T @ x.T")


def test_numpy_array_on_the_left_builds_a_tensor():
    x = E.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    for out in (np.full(2, 3.0) * x, np.full(2, 3.0) + x, np.full(2, 3.0) - x, np.ones(2) / x):
        assert isinstance(out, E.Tensor), f"array op Tensor gave {type(out).__name__}"
    (np.full(2, 3.0) * x).sum().backward()
    close(x.grad, np.full(2, 3.0), "grad of array * x")
    assert isinstance(np.float64(2.0) * E.Value(1.0), E.Value)


def test_backward_with_a_wrong_shaped_gradient_raises_like_torch():
    x = E.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="shape"):
        (torch.ones(2, 3, requires_grad=True) * 2).backward(torch.ones(3))
    (x * 2).backward(np.ones((2, 3)))
    close(x.grad, np.full((2, 3), 2.0), "a right-shaped gradient still works")


def test_a_minus_inf_logit_gives_a_finite_loss_like_torch():
    logits = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf], [-np.inf, 3.0, 0.0]])
    targets = np.array([0, 1, 2])
    x = E.Tensor(logits.copy(), requires_grad=True)
    loss = E.cross_entropy(x, targets)
    loss.backward()
    t = leaf(logits)
    ref = F.cross_entropy(t, torch.from_numpy(targets))
    ref.backward()
    assert np.isfinite(loss.data), loss.data
    close(loss.data, ref, "cross_entropy with -inf logits")
    close(x.grad, t.grad, "its gradient")


@pytest.mark.parametrize("op", ["tanh", "relu", "exp"])
def test_large_magnitudes_do_not_overflow(op):
    values = np.array([-1000.0, -500.0, -50.0, 0.0, 50.0, 500.0])
    if op != "exp":
        values = np.append(values, 1000.0)
    tensor_case(lambda a: getattr(a, op)(), [values])
    for x in values:
        tensor_case(lambda a: getattr(a, op)(), [np.array(x)])
        v, t = E.Value(x), leaf(x)
        out, ref = getattr(v, op)(), getattr(t, op)()
        out.backward()
        ref.backward()
        close([out.data, v.grad], [ref.item(), t.grad.item()], f"Value {op} at {x}")


def test_indexing_gathers_and_scatters_like_torch():
    rng = np.random.default_rng(9)
    rows, cols = np.array([0, 2, 2, 1]), np.array([1, 0, 0, 3])
    tensor_case(lambda a: a[rows, cols], [rng.standard_normal((3, 4))])
    tensor_case(lambda a: a[1:, ::2], [rng.standard_normal((3, 4))])


# --- Edges (issue 22): tiny divisors, a negative base, one example -------------------------


@pytest.mark.parametrize(("a", "b"), [(1e-200, 1e-200), (5e-170, -7e-155), (-2e-300, 1e-160)])
def test_division_by_a_tiny_number_has_finite_gradients_like_torch(a, b):
    ours = [E.Value(a), E.Value(b)]
    out = ours[0] / ours[1]
    out.backward()
    theirs = [leaf(a), leaf(b)]
    (theirs[0] / theirs[1]).backward()
    close([out.data, *(v.grad for v in ours)], [a / b, *(t.grad.item() for t in theirs)], "Value")
    tensor_case(lambda x, y: x / y, [np.array([a, 1.0]), np.array([b, 2.0])])


def test_a_negative_number_to_a_fractional_power():
    """torch gives nan; NumPy too (so the Tensor matches), and the Value refuses clearly."""
    with np.errstate(invalid="ignore"):
        tensor_case(lambda a: a**0.5, [np.array([-4.0, 4.0])])
    assert torch.tensor(-4.0) ** 0.5 != torch.tensor(-4.0) ** 0.5  # nan
    with pytest.raises(ValueError, match=r"-4 \*\* 0.5 is not a real number"):
        E.Value(-4.0) ** 0.5
    assert (E.Value(-2.0) ** 3).data == -8.0  # a whole exponent is fine


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_of_one_example_like_torch(dtype):
    logits = np.array([0.5, -1.0, 3.0, 0.0], dtype)
    x = E.Tensor(logits.copy(), requires_grad=True)
    loss = E.cross_entropy(x, np.array(2))
    loss.backward()
    t = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(t, torch.tensor(2))
    ref.backward()
    assert loss.data.shape == (), loss.data
    assert loss.data.dtype == dtype, loss.data
    assert np.allclose(loss.data, ref.item(), rtol=1e-6), (loss.data, ref)
    assert np.allclose(x.grad, t.grad.numpy(), rtol=1e-6, atol=1e-7), (x.grad, t.grad)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0 ** -1 and (-2) ** 0.5 in NumPy
@pytest.mark.parametrize(
    ("name", "f", "arrays"),
    [
        ("0-d ops", lambda a, b: (a * b + a.exp()) / b.tanh(), [np.array(0.3), np.array(-2.0)]),
        ("0-d times a vector", lambda a, b: (a * b).sum(), [np.array(1.5), np.array([1.0, -2.0])]),
        ("0-d reshaped", lambda a: a.reshape(1, 1) * 2, [np.array(1.5)]),
        *[
            (f"negative base ** {k}", lambda a, k=k: a**k, [np.array([-2.0, -0.5, 0.0, 0.7])])
            for k in (2, 3, -1, -2, 0, 0.5, -0.5)
        ],
        ("sum over (-1, -3)", lambda a: a.sum(axis=(-1, -3)), [np.ones((2, 3, 4))]),
        ("chain of 20,000 ops", lambda a: deep_chain(a, 20_000), [np.array([0.5, -1.0])]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_zero_d_negative_bases_and_long_chains_like_torch(name, f, arrays):
    """Cases the chapter does not show: nan and ±inf must land where torch puts them."""
    xs = [E.Tensor(a.copy(), requires_grad=True) for a in arrays]
    ts = [leaf(a) for a in arrays]
    out, ref = f(*xs), f(*ts)
    g = np.random.default_rng(9).standard_normal(ref.shape)
    out.backward(g)
    ref.backward(torch.from_numpy(g))
    assert out.shape == tuple(ref.shape), name
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, equal_nan=True)
    for x, t in zip(xs, ts, strict=True):
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-10, equal_nan=True)


def deep_chain(a, n):
    """`n` alternating products and sums on `a` (torch's graph and yours, iteratively)."""
    for i in range(n):
        a = a * 1.0001 if i % 2 else a + 0.0
    return a
