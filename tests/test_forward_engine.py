"""The forward-mode engine of Chapter 5 (``Dual``, ``dual_jacobian`` in solutions/forward.md).

Loaded from the solution notebook's cells tagged ``forward-engine``, never pasted. Hand
cases pin the corners (a value used twice, ``x ** 0`` and ``relu`` at 0, ``sigmoid`` at
±1000); hypothesis properties compare random programs with ``torch.func.jvp`` in float64,
and the Jacobian by JVPs with the Jacobian by VJPs of Chapter 4's reference engine.
"""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import jacrev, jvp

from course import REPO_ROOT
from course.checks.forward import jacobian_cases, value_jacobian
from course.notebooks import engine, load_notebook_module

F = load_notebook_module(REPO_ROOT / "solutions" / "forward.md", "forward-engine", "forward_engine")
Dual = F.Dual
SETTINGS = settings(max_examples=40, deadline=None)
RTOL, ATOL = 1e-9, 1e-12

values = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


def torch_jvp(f, xs, ts):
    """(value, tangent) of ``f`` at the numbers ``xs`` along ``ts``, by torch in float64."""
    primals = tuple(torch.tensor(x, dtype=torch.float64) for x in xs)
    tangents = tuple(torch.tensor(t, dtype=torch.float64) for t in ts)
    value, tangent = jvp(f, primals, tangents)
    return value.item(), tangent.item()


def assert_matches_torch(f, xs, ts, what):
    out = f(*(Dual(x, t) for x, t in zip(xs, ts, strict=True)))
    value, tangent = torch_jvp(f, xs, ts)
    assert math.isclose(out.data, value, rel_tol=RTOL, abs_tol=ATOL), (
        f"{what}: value {out.data} vs torch {value}"
    )
    assert math.isclose(out.tangent, tangent, rel_tol=RTOL, abs_tol=ATOL), (
        f"{what}: tangent {out.tangent} vs torch {tangent}"
    )


def test_a_value_used_twice_gets_both_terms():
    x = Dual(3.0, 1.0)
    out = x * x
    assert (out.data, out.tangent) == (9.0, 6.0), f"d(x·x)/dx at 3 is 6, got {out}"


def test_corners_follow_torch():
    zero = Dual(0.0, 0.75)
    assert (zero**0).tangent == 0.0, "x ** 0 is constant: tangent 0, also at 0"
    assert zero.relu().tangent == 0.0, "torch's relu has slope 0 at 0"
    for x in (-1000.0, 1000.0):
        s = Dual(x, 1.0).sigmoid()
        assert math.isfinite(s.data), f"sigmoid({x}) = {s}"
        assert math.isfinite(s.tangent), f"sigmoid({x}) = {s}"


def test_numbers_mix_with_duals():
    x = Dual(2.0, 1.0)
    for what, out, tangent in [
        ("3 * x", 3 * x, 3.0),
        ("x + 1", x + 1, 1.0),
        ("1 - x", 1 - x, -1.0),
        ("1 / x", 1 / x, -0.25),
        ("x / 4", x / 4, 0.25),
        ("-x", -x, -1.0),
    ]:
        assert math.isclose(out.tangent, tangent), f"{what}: tangent {out.tangent}, not {tangent}"


def test_division_follows_torch_where_the_reciprocal_would_overflow():
    """a / b has its own rule: as a * b ** -1, the slope -b⁻² overflows for |b| < ~1e-154."""
    for (a, ta), (b, tb) in [
        ((1e-200, 1.0), (1e-200, 0.5)),  # quotient 1, tangent 5e199
        ((3.0, 1.0), (1e-155, 0.0)),  # finite quotient and tangent
        ((2.0, 0.0), (1e-200, 1.0)),  # the tangent is -2e400: -inf, as torch gives
        ((0.5, 0.75), (-2.0, -1.25)),
    ]:
        out = Dual(a, ta) / Dual(b, tb)
        value, tangent = torch_jvp(lambda x, y: x / y, (a, b), (ta, tb))
        assert math.isclose(out.data, value, rel_tol=1e-15), f"{a} / {b}: {out} vs {value}"
        assert math.isclose(out.tangent, tangent, rel_tol=1e-15), f"{a} / {b}: {out} vs {tangent}"


def test_a_negative_number_to_a_fractional_power_is_nan_as_in_torch():
    """Python's (-1.0) ** 0.5 is complex; torch's value and tangent are nan, and a Dual's."""
    for base, k, t in [(-1.0, 0.5, 1.0), (-8.0, 1 / 3, 0.5), (-2.0, -1.5, 0.0)]:
        out = Dual(base, t) ** k
        value, tangent = torch_jvp(lambda x, k=k: x**k, (base,), (t,))
        by_torch, by_dual = [value, tangent], [out.data, out.tangent]
        assert all(map(math.isnan, by_torch)), f"torch: {base} ** {k} gives {by_torch}"
        assert all(map(math.isnan, by_dual)), f"{base} ** {k}: {out}"
    cube = Dual(-2.0, 1.0) ** 3  # an integer power of a negative number stays real
    assert (cube.data, cube.tangent) == (-8.0, 12.0)


def test_a_tangent_of_zero_gives_zero_and_keeps_the_value():
    out = (Dual(1.5) * Dual(-2.0).exp()).tanh()
    assert out.tangent == 0.0
    assert math.isclose(out.data, math.tanh(1.5 * math.exp(-2.0)))


BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (b * b + 0.5),
    lambda a, b: (a * b).tanh() + a.exp() * b,
    lambda a, b: (a * a + 1).log() * b.sigmoid() - (b - a).relu(),
]


@SETTINGS
@given(a=values, b=values, ta=values, tb=values, op=st.sampled_from(range(len(BINARY))))
def test_binary_ops_match_torch_jvp(a, b, ta, tb, op):
    assert_matches_torch(BINARY[op], (a, b), (ta, tb), f"BINARY[{op}]")


# Unary steps of a random program; each keeps its output in a safe range for the next.
STEPS = {
    "tanh": lambda x: x.tanh(),
    "relu": lambda x: x.relu() - 0.5,
    "exp": lambda x: x.tanh().exp(),
    "log": lambda x: (x * x + 1).log(),
    "pow": lambda x: (x.tanh() + 2) ** -1.5,
    "sqrt": lambda x: (x * x + 0.1) ** 0.5,
    "sigmoid": lambda x: 4 * x.sigmoid() - 2,
    "square": lambda x: x * x.tanh(),
    "affine": lambda x: 0.5 * x - 1,
    "reuse": lambda x: (lambda e: e * e - e)(x.tanh()),
    "divide": lambda x: 1 / (x * x + 1),
}


@SETTINGS
@given(x=values, t=values, program=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=6))
def test_random_programs_match_torch_jvp(x, t, program):
    def f(v):
        for step in program:
            v = STEPS[step](v)
        return v

    assert_matches_torch(f, (x,), (t,), " → ".join(program))


@SETTINGS
@given(data=st.data(), case=st.sampled_from(range(2)))
def test_jacobian_by_jvps_equals_jacobian_by_vjps(data, case):
    """Forward mode (n passes of Dual) and reverse mode (m backward passes of Chapter 4's
    Value) give the same J, and so does torch."""
    what, f, base = jacobian_cases()[case]
    xs = [x + data.draw(st.floats(-0.3, 0.3)) for x in base]  # stay inside log's domain
    by_jvps = F.dual_jacobian(f, xs)
    by_vjps = value_jacobian(engine().Value, f, xs)
    by_torch = jacrev(lambda t: torch.stack(f(list(t))))(torch.tensor(xs, dtype=torch.float64))
    assert by_jvps.shape == (len(f(xs_as_duals(xs))), len(xs)), f"{what}: shape {by_jvps.shape}"
    assert np.allclose(by_jvps, by_vjps, rtol=RTOL, atol=ATOL), f"{what}: {by_jvps} vs {by_vjps}"
    assert np.allclose(by_jvps, by_torch.numpy(), rtol=RTOL, atol=ATOL), f"{what}: vs torch"


def xs_as_duals(xs):
    return [Dual(x) for x in xs]
