"""High-order derivatives (Taylor propagation) against SymPy's exact derivative evaluated in
high precision."""

import mpmath
import numpy as np
import pytest
import sympy

import symdiff
from symdiff import ir, optimize, symbolic, trace
from symdiff.differentiate import taylor

t = sympy.Symbol("t")
CASES = {
    "w3": (lambda x: np.sin(np.exp(x) * x) / (1 + x**2), sympy.sin(sympy.exp(t) * t) / (1 + t**2)),
    "tanh_sqrt": (lambda x: np.tanh(x) * np.sqrt(1 + x**2), sympy.tanh(t) * sympy.sqrt(1 + t**2)),
    "log_atan": (lambda x: np.log(2 + np.cos(x)) + np.arctan(x**3), sympy.log(2 + sympy.cos(t)) + sympy.atan(t**3)),
    "power_at_zero": (lambda x: x**7 - 3 * x**4 + x, t**7 - 3 * t**4 + t),
}


def exact(expr, k, points):
    """k-th derivative in 60-digit arithmetic (mpmath), independent of symdiff and of sympy.diff."""
    f = sympy.lambdify(t, expr, "mpmath")
    with mpmath.workdps(60):
        return np.array([float(mpmath.diff(f, mpmath.mpf(p), k)) for p in points])


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("k", [3, 5, 8])
def test_taylor_orders_match_high_precision_sympy(name, k):
    f, expr = CASES[name]
    pts = np.array([-0.7, 0.0, 0.4, 1.3])
    got = symdiff.derivative(f, k)(pts)
    ref = exact(expr, k, pts)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


def test_twentieth_derivative():
    f, expr = CASES["w3"]
    pts = np.array([0.1, 0.5, 0.9])
    got = symdiff.derivative(f, 20)(pts)
    np.testing.assert_allclose(got, exact(expr, 20, pts), rtol=1e-8)


def test_operation_count_grows_at_most_quadratically():
    f, _ = CASES["w3"]
    x = ir.input_node(0, (), "float64")
    (fused,) = optimize.optimize([trace.run(f, [x])])
    body, _ = symbolic.scalar_body(fused, [x])
    counts = {}
    for k in (5, 10, 20):
        (d,) = optimize.optimize([taylor.derivative_node(body, [x], 0, k, "float64")])
        counts[k] = optimize.count_ops([d])
    assert counts[20] <= 4.5 * counts[10] and counts[10] <= 4.5 * counts[5]


def test_formula_of_a_high_order_derivative_is_the_closed_form():
    d = symdiff.derivative(lambda x: np.exp(2 * x), 6).formula(0.5)
    x = sympy.Symbol("x", real=True)
    assert sympy.simplify(d - 64 * sympy.exp(2 * x)) == 0
