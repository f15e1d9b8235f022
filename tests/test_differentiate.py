"""Stage 2, differentiate: derivatives of every supported ufunc, operator and structural operation,
in reverse mode (grad, and jacobian with in.size > out.size) and forward mode (jacobian with
in.size <= out.size), checked against SymPy's own ``diff`` of the same scalar formula and against
central finite differences at random points inside each function's domain.

Small per-point cores are scalarized and larger ones take the vectorized VJP/JVP path; the
``path`` fixture runs the API-level tests on both. The IR-level tests call ``vjp``/``jvp`` directly
with a leading basis axis and run the result with the reference interpreter."""

from functools import cache

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import symdiff
from symdiff import differentiate as D
from symdiff import ir, trace
from symdiff.ops.ufuncs import BINARY, BOOLEAN_RESULT, UNARY

from .conftest import central_difference
from .stage_helpers import (
    STRUCTURAL,
    assert_close,
    away_from,
    away_from_integers,
    eye_sizes,
    forward_regime,
    points,
    reverse_regime,
    run_ir,
    structural_point,
    use_path,
)

HEALTH = [HealthCheck.filter_too_much, HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
# No shrinking: a failure reports its (unshrunk) example at once instead of recompiling per attempt
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
FEW = settings(max_examples=3, deadline=None, suppress_health_check=HEALTH, phases=PHASES)
N = 5  # elements per argument in the ufunc tests

t, u = sympy.symbols("t u", real=True)


@pytest.fixture(params=["vectorized", "scalarized"])
def path(request, monkeypatch):
    use_path(monkeypatch, request.param)
    return request.param


# ---------------------------------------------------------------------------------------------
# Reference formulas, written independently of symdiff's rule table
# ---------------------------------------------------------------------------------------------

# name: (SymPy formula in t, low, high, extra filter)
UNARY_REF = {
    "negative": (-t, -3, 3, None),
    "positive": (t, -3, 3, None),
    "absolute": (sympy.Abs(t), -3, 3, away_from(0.0)),
    "fabs": (sympy.Abs(t), -3, 3, away_from(0.0)),
    "exp": (sympy.exp(t), -3, 3, None),
    "exp2": (2**t, -3, 3, None),
    "expm1": (sympy.exp(t) - 1, -3, 3, None),
    "log": (sympy.log(t), 0.2, 5, None),
    "log2": (sympy.log(t) / sympy.log(2), 0.2, 5, None),
    "log10": (sympy.log(t) / sympy.log(10), 0.2, 5, None),
    "log1p": (sympy.log(1 + t), -0.8, 5, None),
    "sqrt": (sympy.sqrt(t), 0.2, 5, None),
    "cbrt": (t ** sympy.Rational(1, 3), 0.2, 5, None),  # negative arguments: test_cbrt_of_negative_numbers
    "square": (t**2, -3, 3, None),
    "reciprocal": (1 / t, -3, 3, away_from(0.0, margin=0.3)),
    "sin": (sympy.sin(t), -3, 3, None),
    "cos": (sympy.cos(t), -3, 3, None),
    "tan": (sympy.tan(t), -1.3, 1.3, None),
    "arcsin": (sympy.asin(t), -0.9, 0.9, None),
    "arccos": (sympy.acos(t), -0.9, 0.9, None),
    "arctan": (sympy.atan(t), -3, 3, None),
    "sinh": (sympy.sinh(t), -3, 3, None),
    "cosh": (sympy.cosh(t), -3, 3, None),
    "tanh": (sympy.tanh(t), -3, 3, None),
    "arcsinh": (sympy.asinh(t), -3, 3, None),
    "arccosh": (sympy.acosh(t), 1.1, 4, None),
    "arctanh": (sympy.atanh(t), -0.9, 0.9, None),
    "deg2rad": (t * sympy.pi / 180, -3, 3, None),
    "radians": (t * sympy.pi / 180, -3, 3, None),
    "rad2deg": (t * 180 / sympy.pi, -3, 3, None),
    "degrees": (t * 180 / sympy.pi, -3, 3, None),
    "sinc": (sympy.sin(sympy.pi * t) / (sympy.pi * t), -3, 2.5, away_from(0.0)),  # at 0: test_numpy_coverage
}
# Steps: derivative 0 away from the jumps (README: as in JAX)
UNARY_STEPS = {"sign": away_from(0.0), "floor": away_from_integers(), "ceil": away_from_integers()}

# name: (SymPy formula in t, u; low, high; filter on (x, y))
BINARY_REF = {
    "add": (t + u, -3, 3, None),
    "subtract": (t - u, -3, 3, None),
    "multiply": (t * u, -3, 3, None),
    "true_divide": (t / u, 0.3, 3, None),
    "divide": (t / u, 0.3, 3, None),
    "power": (t**u, 0.2, 2.5, None),
    "float_power": (t**u, 0.2, 2.5, None),
    "arctan2": (sympy.atan2(t, u), 0.2, 3, None),
    "hypot": (sympy.sqrt(t**2 + u**2), -3, 3, lambda x, y: np.min(np.hypot(x, y)) > 0.2),
    "logaddexp": (sympy.log(sympy.exp(t) + sympy.exp(u)), -5, 5, None),
    "maximum": (sympy.Max(t, u), -3, 3, lambda x, y: np.min(np.abs(x - y)) > 0.05),
    "minimum": (sympy.Min(t, u), -3, 3, lambda x, y: np.min(np.abs(x - y)) > 0.05),
    "fmax": (sympy.Max(t, u), -3, 3, lambda x, y: np.min(np.abs(x - y)) > 0.05),
    "fmin": (sympy.Min(t, u), -3, 3, lambda x, y: np.min(np.abs(x - y)) > 0.05),
    # away from the jumps; floor's derivative (an unevaluated Derivative) is 0 there (``numeric``)
    "remainder": (t - u * sympy.floor(t / u), 0.3, 3, lambda x, y: away_from_integers()(x / y)),
    "mod": (t - u * sympy.floor(t / u), 0.3, 3, lambda x, y: away_from_integers()(x / y)),
    "fmod": (t - u * sympy.floor(t / u), 0.3, 3, lambda x, y: away_from_integers()(x / y)),  # trunc = floor here
    "copysign": (sympy.Abs(t) * sympy.sign(u), -3, 3, lambda x, y: min(np.min(np.abs(x)), np.min(np.abs(y))) > 0.05),
    "heaviside": (sympy.Heaviside(t), -3, 2.5, lambda x, y: np.min(np.abs(x)) > 0.05),
    "logaddexp2": (sympy.log(2**t + 2**u) / sympy.log(2), -5, 5, None),
}
BINARY_STEPS = {"floor_divide": lambda x, y: away_from_integers()(x / y)}


@cache
def numeric(expr, *order):
    """numpy function of (t, u) for d^order expr / d(order), via sympy.diff + lambdify."""
    d = sympy.diff(expr, *order) if order else expr
    # the points stay away from kinks, where the distributions of derivatives of Max/Min vanish
    d = d.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)
    d = d.replace(lambda e: isinstance(e, (sympy.Derivative, sympy.Subs)) and e.has(sympy.floor), lambda e: sympy.S.Zero)
    fn = sympy.lambdify((t, u), d, "numpy")
    return lambda x, y=0.0: np.broadcast_to(fn(x, y), np.broadcast_shapes(np.shape(x), np.shape(y))).astype(float)


def test_every_ufunc_of_the_rule_table_has_a_reference():
    assert set(UNARY) <= set(UNARY_REF) | set(UNARY_STEPS), set(UNARY) - set(UNARY_REF) - set(UNARY_STEPS)
    assert set(BINARY) - BOOLEAN_RESULT <= set(BINARY_REF) | set(BINARY_STEPS)


def test_reference_formulas_match_numpy():
    for name, (expr, lo, hi, _) in UNARY_REF.items():
        x = np.linspace(lo, hi, 7)[1:-1]
        np.testing.assert_allclose(numeric(expr)(x), getattr(np, name)(x), rtol=1e-13, err_msg=name)
    for name, (expr, lo, hi, _) in BINARY_REF.items():
        x = np.linspace(lo, hi, 7)[1:-1]
        np.testing.assert_allclose(numeric(expr)(x, x[::-1]), getattr(np, name)(x, x[::-1]), rtol=1e-13, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Unary ufuncs
# ---------------------------------------------------------------------------------------------


def unary_points(name):
    if name in UNARY_STEPS:
        return points((N,), -3, 3, UNARY_STEPS[name])
    _, lo, hi, ok = UNARY_REF[name]
    return points((N,), lo, hi, ok)


@pytest.mark.parametrize("name", sorted(UNARY_REF))
@FEW
@given(data=st.data())
def test_unary_ufunc_derivatives(path, name, data):
    fn = getattr(np, name)
    x = data.draw(unary_points(name))
    expr = UNARY_REF[name][0]
    d1, d2 = numeric(expr, t)(x), numeric(expr, t, t)(x)
    # reverse mode: grad of a scalar
    g = symdiff.grad(lambda x: np.sum(fn(x)))(x)
    assert_close(g, d1, rtol=1e-10, atol=1e-12)
    assert_close(g, central_difference(lambda x: np.sum(fn(x)), x))
    assert_close(symdiff.hessian(lambda x: np.sum(fn(x)))(x), np.diag(d2), rtol=1e-9, atol=1e-11)
    if path == "scalarized":  # entry by entry: no forward/reverse regimes
        return
    # forward mode: jacobian with out.size >= in.size
    assert_close(symdiff.jacobian(forward_regime(fn))(x), np.vstack([np.diag(d1), np.eye(N)]), rtol=1e-10, atol=1e-12)
    # reverse mode: jacobian with out.size < in.size
    rev = reverse_regime(fn, N)
    assert_close(symdiff.jacobian(rev)(x), central_difference(rev, x))
    # second order (a constant one comes back 0-d: test_derivative_that_is_constant_keeps_the_argument_shape)
    assert_close(np.broadcast_to(symdiff.derivative(lambda x: fn(x), 2)(x), x.shape), d2, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", sorted(UNARY_STEPS))
@FEW
@given(data=st.data())
def test_steps_have_zero_derivative_away_from_jumps(path, name, data):
    fn = getattr(np, name)
    x = data.draw(unary_points(name))
    g = symdiff.grad(lambda x: np.sum(fn(x) * x))(x)  # product rule: d(step(x) x) = step(x)
    assert_close(g, fn(x), rtol=0, atol=0)
    assert_close(g, central_difference(lambda x: np.sum(fn(x) * x), x))
    assert_close(symdiff.jacobian(forward_regime(fn))(x), np.vstack([np.zeros((N, N)), np.eye(N)]), atol=0)


# ---------------------------------------------------------------------------------------------
# Binary ufuncs
# ---------------------------------------------------------------------------------------------


PROJ = np.random.default_rng(1).normal(size=(2, N))


def binary_points(name, data):
    if name in BINARY_STEPS:
        lo, hi, ok = 0.3, 3, BINARY_STEPS[name]
    else:
        _, lo, hi, ok = BINARY_REF[name]
    x, y = data.draw(points((N,), lo, hi)), data.draw(points((N,), lo, hi))
    assume(ok is None or ok(x, y))
    return x, y


@pytest.mark.parametrize("name", sorted(BINARY_REF))
@FEW
@given(data=st.data())
def test_binary_ufunc_derivatives(path, name, data):
    fn = getattr(np, name)
    expr, _, _, ok = BINARY_REF[name]
    x, y = binary_points(name, data)
    dx, dy = numeric(expr, t)(x, y), numeric(expr, u)(x, y)
    gx, gy = symdiff.grad(lambda x, y: np.sum(fn(x, y)), argnums=(0, 1))(x, y)
    assert_close(gx, dx, rtol=1e-10, atol=1e-12)
    assert_close(gy, dy, rtol=1e-10, atol=1e-12)
    assert_close(gx, central_difference(lambda x: np.sum(fn(x, y)), x))
    hxy = symdiff.hessian(lambda x, y: np.sum(fn(x, y)), argnums=(0, 1))(x, y)
    assert_close(hxy[0][1], np.diag(numeric(expr, t, u)(x, y)), rtol=1e-9, atol=1e-11)
    assert_close(hxy[1][0], hxy[0][1].T, rtol=1e-12, atol=1e-14)
    assert_close(hxy[1][1], np.diag(numeric(expr, u, u)(x, y)), rtol=1e-9, atol=1e-11)
    if path == "scalarized":  # entry by entry: no forward/reverse regimes
        return
    # forward: jacobian of [fn(x, y), y] w.r.t. y; reverse: of P @ fn(x, y) w.r.t. x
    fwd = symdiff.jacobian(lambda x, y: np.concatenate([fn(x, y), y]), argnums=1)(x, y)
    assert_close(fwd, np.vstack([np.diag(dy), np.eye(N)]), rtol=1e-10, atol=1e-12)
    rev = symdiff.jacobian(lambda x, y: PROJ @ fn(x, y))(x, y)
    assert_close(rev, PROJ @ np.diag(dx), rtol=1e-10, atol=1e-12)
    # second order, SymPy's convention for mixed partials
    mixed = np.broadcast_to(symdiff.derivative(lambda x, y: fn(x, y), wrt=("x", "y"))(x, y), x.shape)
    assert_close(mixed, numeric(expr, t, u)(x, y), rtol=1e-9, atol=1e-11)
    dyy = np.broadcast_to(symdiff.derivative(lambda x, y: fn(x, y), wrt=("y", "y"))(x, y), x.shape)
    assert_close(dyy, numeric(expr, u, u)(x, y), rtol=1e-9, atol=1e-11)
    # a Python scalar on either side is inlined into the body
    c = np.full(N, 1.5)
    if ok is None or (ok(x, c) and ok(c, x)):
        assert_close(symdiff.grad(lambda x: np.sum(fn(x, 1.5)))(x), numeric(expr, t)(x, 1.5), rtol=1e-10, atol=1e-12)
        assert_close(symdiff.grad(lambda x: np.sum(fn(1.5, x)))(x), numeric(expr, u)(1.5, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(BINARY_STEPS))
@FEW
@given(data=st.data())
def test_binary_steps_have_zero_derivative(path, name, data):
    fn = getattr(np, name)
    x, y = binary_points(name, data)
    gx, gy = symdiff.grad(lambda x, y: np.sum(fn(x, y) * x), argnums=(0, 1))(x, y)
    assert_close(gx, fn(x, y), atol=0, rtol=0)
    assert_close(gy, np.zeros(N), atol=0, rtol=0)


# operator: (function, SymPy formula); floor has derivative 0, so (x // 0.7) * y is u * floor(t / 0.7)
# with d/dt = 0: its formula is written with a symbol F that stands for the floor (treated constant)
F = sympy.Symbol("F", real=True)
OPERATORS = {
    "x + y": (lambda x, y: x + y, t + u),
    "x - y": (lambda x, y: x - y, t - u),
    "x * y": (lambda x, y: x * y, t * u),
    "x / y": (lambda x, y: x / y, t / u),
    "x ** y": (lambda x, y: x**y, t**u),
    "-x * y": (lambda x, y: -x * y, -t * u),
    "abs(x - 2) * y": (lambda x, y: abs(x - 2) * y, sympy.Abs(t - 2) * u),
    "2 ** x / y ** 3": (lambda x, y: 2**x / y**3, 2**t / u**3),
    "(x // 0.7) * y + x": (lambda x, y: (x // 0.7) * y + x, F * u + t),
}


@pytest.mark.parametrize("op", sorted(OPERATORS))
@FEW
@given(data=st.data())
def test_python_operators(path, op, data):
    fun, expr = OPERATORS[op]
    x = data.draw(points((N,), 0.3, 1.9, lambda x: away_from_integers()(x / 0.7)))
    y = data.draw(points((N,), 0.3, 3))
    gx, gy = symdiff.grad(lambda x, y: np.sum(fun(x, y)), argnums=(0, 1))(x, y)
    floor = {F: sympy.Symbol("floor_value")}
    dx = sympy.lambdify((t, u, floor[F]), sympy.diff(expr, t).xreplace(floor), "numpy")
    dy = sympy.lambdify((t, u, floor[F]), sympy.diff(expr, u).xreplace(floor), "numpy")
    assert_close(gx, np.broadcast_to(dx(x, y, x // 0.7), (N,)), rtol=1e-10, atol=1e-12)
    assert_close(gy, np.broadcast_to(dy(x, y, x // 0.7), (N,)), rtol=1e-10, atol=1e-12)


def test_matmul_operator_gradients_are_the_closed_forms():
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(4, 5)), rng.normal(size=(5, 3))
    W = rng.normal(size=(4, 3))
    gA, gB = symdiff.grad(lambda A, B: np.sum(W * (A @ B)), argnums=(0, 1))(A, B)
    np.testing.assert_allclose(gA, W @ B.T, rtol=1e-12)
    np.testing.assert_allclose(gB, A.T @ W, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Structural operations: grad, forward-mode and reverse-mode Jacobians against finite differences
# ---------------------------------------------------------------------------------------------


def _weights(fun, shape):
    out_shape = np.shape(fun(np.ones(shape)))
    return np.random.default_rng(len(out_shape) + 17).uniform(0.5, 1.5, out_shape)


def _structural_params():
    """Every case on the vectorized path; the ones small enough to be scalarized by default also there."""
    for case in sorted(STRUCTURAL):
        yield pytest.param("vectorized", case, id=f"vectorized-{case}")
        if int(np.prod(STRUCTURAL[case][1])) <= 16:
            yield pytest.param("scalarized", case, id=f"scalarized-{case}")


@pytest.mark.parametrize("path_name, case", list(_structural_params()))
@settings(max_examples=3, deadline=None, suppress_health_check=HEALTH, phases=PHASES)
@given(data=st.data())
def test_structural_gradient_and_both_jacobian_regimes(monkeypatch, path_name, case, data):
    use_path(monkeypatch, path_name)
    fun, shape, lo, hi, ok = STRUCTURAL[case]
    x = data.draw(points(shape, lo, hi, ok))
    W = _weights(fun, shape)

    def scalar(x):
        return np.sum(W * fun(x))

    assert_close(symdiff.grad(scalar)(x), central_difference(scalar, x))
    if path_name == "scalarized":  # entry by entry: there are no regimes
        return
    fwd = forward_regime(fun)
    assert_close(symdiff.jacobian(fwd)(x), central_difference(fwd, x))
    n_out = int(np.size(fun(x)))
    rev = reverse_regime(fun, n_out)
    assert_close(symdiff.jacobian(rev)(x), central_difference(rev, x))


@pytest.mark.parametrize("case", sorted(STRUCTURAL))
def test_structural_hessian_is_the_derivative_of_the_gradient(monkeypatch, case):
    use_path(monkeypatch, "vectorized")
    fun, shape = STRUCTURAL[case][:2]
    x = structural_point(case, 11)
    W = _weights(fun, shape)

    def scalar(x):
        return np.sum(W * np.sin(fun(x)))

    H = symdiff.hessian(scalar)(x)
    assert H.shape == shape + shape
    assert_close(H, central_difference(symdiff.grad(scalar), x), rtol=1e-6, atol=1e-6)
    n = x.size
    np.testing.assert_allclose(H.reshape(n, n), H.reshape(n, n).T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["matmul_stacked", "index_mixed", "concatenate_axis1", "sum_keepdims"])
def test_jacobian_regime_follows_the_sizes(monkeypatch, case):
    use_path(monkeypatch, "vectorized")
    fun, shape, *_ = STRUCTURAL[case]
    x = np.ones(shape)
    n_in, n_out = x.size, int(np.size(fun(x)))
    assert eye_sizes(symdiff.jacobian(forward_regime(fun)).graph(x)) == {n_in}  # forward: basis of inputs
    assert eye_sizes(symdiff.jacobian(reverse_regime(fun, n_out)).graph(x)) == {2}  # reverse: of outputs


# ---------------------------------------------------------------------------------------------
# Broadcasting: gradients are summed back to each input's shape
# ---------------------------------------------------------------------------------------------


def test_broadcast_column_with_row(path):
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(3, 1)), rng.normal(size=(1, 4))
    ga, gb = symdiff.grad(lambda a, b: np.sum(a * b), argnums=(0, 1))(a, b)
    assert ga.shape == (3, 1) and gb.shape == (1, 4)
    np.testing.assert_allclose(ga, np.full((3, 1), b.sum()), rtol=1e-13)
    np.testing.assert_allclose(gb, np.full((1, 4), a.sum()), rtol=1e-13)

    def f(a, b):
        return np.sum(np.sin(a * b) * (a + b))

    ga, gb = symdiff.grad(f, argnums=(0, 1))(a, b)
    assert_close(ga, central_difference(lambda a: f(a, b), a))
    assert_close(gb, central_difference(lambda b: f(a, b), b))


def test_broadcast_scalar_with_matrix(path):
    M = np.random.default_rng(6).normal(size=(3, 4))
    s = 0.7

    def f(s, M):
        return np.sum(np.exp(s * M))

    gs = symdiff.grad(f)(s, M)
    assert np.ndim(gs) == 0 and float(gs) == gs
    np.testing.assert_allclose(gs, np.sum(M * np.exp(s * M)), rtol=1e-12)
    g0 = symdiff.grad(f)(np.array(s), M)
    assert np.shape(g0) == ()
    gM = symdiff.grad(f, argnums=1)(s, M)
    np.testing.assert_allclose(gM, s * np.exp(s * M), rtol=1e-12)
    J = symdiff.jacobian(lambda s, M: np.exp(s * M))(np.array(s), M)
    assert J.shape == (3, 4)
    np.testing.assert_allclose(J, M * np.exp(s * M), rtol=1e-12)


def test_broadcast_bias_vector_with_matrix(path):
    rng = np.random.default_rng(7)
    X, b = rng.normal(size=(5, 4)), rng.normal(size=4)

    def f(b, X):
        return np.sum(np.tanh(X + b) ** 2)

    g = symdiff.grad(f)(b, X)
    th = np.tanh(X + b)
    np.testing.assert_allclose(g, np.sum(2 * th * (1 - th**2), axis=0), rtol=1e-12)
    J = symdiff.jacobian(lambda b, X: X + b)(b, X)  # (5, 4, 4): an identity per row
    np.testing.assert_allclose(J, np.broadcast_to(np.eye(4), (5, 4, 4)), atol=0)
    Jr = symdiff.jacobian(lambda b, X: np.sum(X * b, axis=1))(b, X)  # reverse regime (5 < ... no: 4 < 5)
    np.testing.assert_allclose(Jr, X, rtol=1e-13)


def test_broadcast_higher_rank(path):
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(2, 1, 3)), rng.normal(size=(4, 1))

    def f(a, b):
        return np.sum(np.cos(a - b) * a)

    ga, gb = symdiff.grad(f, argnums=(0, 1))(a, b)
    assert ga.shape == a.shape and gb.shape == b.shape
    assert_close(ga, central_difference(lambda a: f(a, b), a))
    assert_close(gb, central_difference(lambda b: f(a, b), b))
    J = symdiff.jacobian(lambda a, b: np.cos(a - b) * a, argnums=1)(a, b)
    assert J.shape == (2, 4, 3, 4, 1)
    assert_close(J, central_difference(lambda b: np.cos(a - b) * a, b))


# ---------------------------------------------------------------------------------------------
# Conventions where derivatives are not defined (README), compared with closed forms
# ---------------------------------------------------------------------------------------------


def test_conventions_at_kinks(path):
    x = np.array([0.0, 1.0, -1.0, 0.5])
    np.testing.assert_array_equal(symdiff.grad(lambda x: np.sum(np.abs(x)))(x), np.sign(x))
    np.testing.assert_array_equal(symdiff.grad(lambda x: np.sum(np.sign(x) * 3 + np.floor(x)))(x), np.zeros(4))
    # maximum/minimum split 0.5/0.5 at ties; clip is maximum then minimum
    np.testing.assert_array_equal(symdiff.grad(lambda x: np.sum(np.maximum(x, 1.0)))(x), [0, 0.5, 0, 0])
    np.testing.assert_array_equal(symdiff.grad(lambda x: np.sum(np.minimum(x, 0.5)))(x), [1, 0, 1, 0.5])
    np.testing.assert_array_equal(symdiff.grad(lambda x: np.sum(np.clip(x, -1.0, 0.5)))(x), [1, 0, 0.5, 0.5])


@pytest.mark.parametrize("cmp", sorted(BOOLEAN_RESULT))
def test_where_sends_the_gradient_to_the_selected_branch(path, cmp):
    x = np.array([-1.5, -0.5, 0.5, 1.5])
    y = np.array([0.5, -0.5, -0.5, 2.0])
    fn = getattr(np, cmp)

    def f(x, y):
        return np.sum(np.where(fn(x, y), x**2 * y, np.sin(x) + y**3))

    gx, gy = symdiff.grad(f, argnums=(0, 1))(x, y)
    c = fn(x, y)
    np.testing.assert_allclose(gx, np.where(c, 2 * x * y, np.cos(x)), rtol=1e-14)
    np.testing.assert_allclose(gy, np.where(c, x**2, 3 * y**2), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# Higher order, composition, dtypes
# ---------------------------------------------------------------------------------------------


@settings(max_examples=5, deadline=None)
@given(x=points((), -1.0, 1.0))
def test_derivative_of_order_four_matches_sympy(x):
    expr = sympy.exp(sympy.sin(t)) / (1 + t**2)

    def f(x):
        return np.exp(np.sin(x)) / (1 + x**2)

    for k in (3, 4):
        np.testing.assert_allclose(symdiff.derivative(f, k)(x), numeric(expr, *([t] * k))(x), rtol=1e-9)


def _quartic_sin(x):
    return np.sum(x**4 * np.sin(x))


def _sum_of_grad(x):
    return np.sum(symdiff.grad(_quartic_sin)(x))


def _sum_of_second(x):
    return np.sum(symdiff.grad(_sum_of_grad)(x))


def test_nested_transforms_compose_to_third_order(path):
    # grad of sum(grad(f)) of f = sum(x^4 sin x) is the diagonal of the Hessian: f'' per element
    x = np.array([0.3, -0.4, 1.1])
    d2 = numeric(t**4 * sympy.sin(t), t, t)(x)
    d3 = numeric(t**4 * sympy.sin(t), t, t, t)(x)
    np.testing.assert_allclose(symdiff.grad(_sum_of_grad)(x), d2, rtol=1e-12)
    np.testing.assert_allclose(symdiff.grad(_sum_of_second)(x), d3, rtol=1e-11)
    np.testing.assert_allclose(symdiff.jacobian(symdiff.grad(_quartic_sin))(x), np.diag(d2), rtol=1e-12, atol=1e-14)


def test_functions_with_nested_code_objects():
    def f(x):
        def identity(z):
            return z

        return np.sum(np.stack([r * 2 for r in x]) * identity(x))

    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_allclose(symdiff.grad(f)(x), 4 * x)


@pytest.mark.parametrize("transform", ["grad", "jacobian", "hessian", "derivative"])
def test_float32_in_float32_out(path, transform):
    x = np.linspace(0.1, 0.9, 6).astype(np.float32)
    f = {"grad": lambda x: np.sum(np.sin(x) ** 2), "hessian": lambda x: np.sum(np.sin(x) ** 2)}.get(
        transform, lambda x: np.sin(x) ** 2
    )
    got = getattr(symdiff, transform)(f)(x)
    assert got.dtype == np.float32
    ref = getattr(symdiff, transform)(f)(x.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The IR-level transforms: vjp and jvp with a leading basis axis, run by the reference interpreter
# ---------------------------------------------------------------------------------------------


def _ir_jacobians(fun, x):
    xi = ir.input_node(0, x.shape, "float64")
    out = trace.run(fun, [xi])
    n, m = x.size, out.size
    (rev,) = D.vjp([out], [ir.eye_basis(out.shape, "float64")], [xi], lead=(m,))
    (fwd,) = D.jvp([out], [xi], [ir.eye_basis(x.shape, "float64")], lead=(n,))
    assert rev.shape == (m,) + x.shape and fwd.shape == (n,) + out.shape
    rev_v, fwd_v = run_ir([rev, fwd], x)
    return rev_v.reshape(out.shape + x.shape), np.moveaxis(fwd_v, 0, -1).reshape(out.shape + x.shape)


@pytest.mark.parametrize("case", sorted(STRUCTURAL))
def test_ir_vjp_and_jvp_with_a_basis_axis(case):
    fun = STRUCTURAL[case][0]
    x = structural_point(case, 12)
    rev, fwd = _ir_jacobians(fun, x)
    ref = central_difference(fun, x)
    assert_close(rev, ref)
    assert_close(fwd, ref)


def test_ir_jvp_with_random_tangents_and_vjp_with_random_cotangents():
    A = np.random.default_rng(13).normal(size=(4, 3))

    def fun(x):
        return np.tanh(x @ A.T) * x[:, :1] + np.sum(x**2, axis=1, keepdims=True)

    x = np.random.default_rng(14).normal(size=(2, 3))
    J = central_difference(fun, x).reshape(8, 6)
    xi = ir.input_node(0, x.shape, "float64")
    out = trace.run(fun, [xi])
    V = np.random.default_rng(15).normal(size=(5, 2, 3))
    U = np.random.default_rng(16).normal(size=(7, 2, 4))
    vi = ir.input_node(1, V.shape, "float64")
    ui = ir.input_node(2, U.shape, "float64")
    (jv,) = D.jvp([out], [xi], [vi], lead=(5,))
    (uj,) = D.vjp([out], [ui], [xi], lead=(7,))
    jv_v, uj_v = run_ir([jv, uj], x, V, U)
    assert_close(jv_v.reshape(5, 8), V.reshape(5, 6) @ J.T)
    assert_close(uj_v.reshape(7, 6), U.reshape(7, 8) @ J)


def test_ir_vjp_of_vjp_is_a_hessian_vector_product():
    def fun(x):
        return np.sum(np.sin(x) * x[::-1] ** 2)

    x = np.array([0.2, -0.7, 1.3, 0.4])
    v = np.array([1.0, -2.0, 0.5, 3.0])
    xi, vi = ir.input_node(0, (4,), "float64"), ir.input_node(1, (4,), "float64")
    out = trace.run(fun, [xi])
    (g,) = D.vjp([out], [ir.fill(1, (), "float64")], [xi])
    gv = trace.run(lambda g, v: np.sum(g * v), [g, vi])
    (hv,) = D.vjp([gv], [ir.fill(1, (), "float64")], [xi])
    (hv_fwd,) = D.jvp([g], [xi], [vi])
    xs = sympy.symbols("x0:4", real=True)
    expr = sum(sympy.sin(xs[i]) * xs[3 - i] ** 2 for i in range(4))
    H = np.array(sympy.hessian(expr, xs).subs(dict(zip(xs, x))), dtype=float)
    for value in run_ir([hv, hv_fwd], x, v):
        assert_close(value, H @ v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape, target, n_lead",
    [((3, 4), (3, 1), 0), ((3, 4), (4,), 0), ((3, 4), (), 0), ((2, 3, 4), (1, 4), 0), ((5, 3, 4), (5, 1, 4), 1), ((5, 3), (5,), 1)],
)
def test_unbroadcast_sums_back_to_the_target(shape, target, n_lead):
    x = np.random.default_rng(17).normal(size=shape)
    xi = ir.input_node(0, shape, "float64")
    out = D.unbroadcast(xi, target, n_lead)
    assert out.shape == tuple(target)
    (got,) = run_ir([out], x)
    lead, core = shape[:n_lead], shape[n_lead:]
    t_core = tuple(target)[n_lead:]
    extra = len(core) - len(t_core)
    want = x.sum(axis=tuple(range(n_lead, n_lead + extra))) if extra else x
    axes = tuple(n_lead + i for i, d in enumerate(t_core) if d == 1 and want.shape[n_lead + i] != 1)
    want = want.sum(axis=axes, keepdims=True) if axes else want
    np.testing.assert_allclose(got, want.reshape(lead + t_core), rtol=1e-13)


def test_inactive_inputs_get_structural_zeros():
    xi, yi = ir.input_node(0, (3,), "float64"), ir.input_node(1, (2,), "float64")
    out = trace.run(lambda x, y: np.sum(np.sin(y)) * 2.0, [xi, yi])
    gx, gy = D.vjp([out], [ir.fill(1, (), "float64")], [xi, yi])
    assert ir.is_fill(gx, 0) and gx.shape == (3,)
    assert not ir.is_fill(gy)
    assert D.active_nodes([out], [xi]) == {id(xi)}


# ---------------------------------------------------------------------------------------------
# Bugs found by these tests (kept failing on purpose until fixed)
# ---------------------------------------------------------------------------------------------


def test_cbrt_of_negative_numbers(path):
    x = np.array([-8.0, -1.0, 8.0])
    np.testing.assert_allclose(symdiff.grad(lambda x: np.sum(np.cbrt(x)))(x), 1 / (3 * np.cbrt(x) ** 2), rtol=1e-12)


@pytest.mark.xfail(strict=True, reason="bug: reverse-mode prod divides by x, so an exact zero gives NaN")
def test_prod_gradient_with_a_zero_entry(monkeypatch):
    use_path(monkeypatch, "vectorized")
    x = np.array([0.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(symdiff.grad(np.prod)(x), [24.0, 0.0, 0.0, 0.0])


def test_derivative_that_is_constant_keeps_the_argument_shape():
    x = np.linspace(0, 1, 4)
    assert symdiff.derivative(lambda x: x**2, 3)(x).shape == (4,)
    assert symdiff.derivative(lambda x: 3 * x, 1)(x).shape == (4,)


# The scalarized path (the default for arguments of at most a handful of elements):


def test_where_with_a_constant_condition_small_input():
    g = symdiff.grad(lambda x: np.sum(np.where(np.array([True, False]), x, 2 * x**2)))(np.ones(2))
    np.testing.assert_array_equal(g, [1.0, 4.0])


def test_jacobian_of_concatenation_with_a_constant_small_input():
    J = symdiff.jacobian(lambda x: np.concatenate([x, np.ones(2)]))(np.ones(3))
    np.testing.assert_array_equal(J, np.vstack([np.eye(3), np.zeros((2, 3))]))


def test_jacobian_through_ravel_of_a_scalar_small_input():
    J = symdiff.jacobian(lambda x: np.concatenate([np.ravel(np.sum(x)), x]))(np.ones(2))
    np.testing.assert_array_equal(J, [[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])


def test_grad_of_a_constant_function_is_zero():
    np.testing.assert_array_equal(symdiff.grad(lambda x: 3.0)(np.ones(2)), [0.0, 0.0])


def test_jacobian_with_respect_to_a_python_float():
    M = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(symdiff.jacobian(lambda s: np.sin(s * M))(0.5), M * np.cos(0.5 * M), rtol=1e-13)


def test_one_element_tuple_argnums_returns_a_one_tuple():
    x = np.arange(3.0)
    got = symdiff.grad(lambda x, y: np.sum(x**2 * y), argnums=(0,))(x, np.ones(3))
    assert isinstance(got, tuple) and len(got) == 1
    np.testing.assert_array_equal(got[0], 2 * x)


def test_hessian_with_one_element_tuple_argnums():
    x = np.arange(3.0)
    ((H,),) = symdiff.hessian(lambda x: np.sum(x**3), argnums=(0,))(x)
    np.testing.assert_array_equal(H, np.diag(6 * x))


def test_derivative_with_a_repeated_subexpression():
    z = np.array([0.5, -0.3])
    got = symdiff.derivative(lambda z: np.sin(z**2) + z**2)(z)
    np.testing.assert_allclose(got, 2 * z * np.cos(z**2) + 2 * z, rtol=1e-14)


_MLP_X = np.random.default_rng(2024).normal(size=(8, 4))
_MLP_W2 = np.random.default_rng(2025).normal(size=(4, 2))


def _small_mlp(w):
    return np.sum((np.tanh(_MLP_X @ w + 0.1) @ _MLP_W2) ** 2) / 8


def test_small_hessians_compile_quickly():
    import signal

    def give_up(signum, frame):
        raise TimeoutError("hessian took more than 5 s to compile")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, 5.0)  # it took ~16 s when scalarized; ~0.1 s vectorized
    try:
        H = symdiff.hessian(_small_mlp)(np.full((4, 4), 0.3))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert H.shape == (4, 4, 4, 4)
