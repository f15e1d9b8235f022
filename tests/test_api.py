"""The public contract of grad, value_and_grad, derivative, jacobian and hessian."""

import numpy as np
import pytest
import sympy

import symdiff
from symdiff import NotScalarError, SymdiffError, TraceError

from .conftest import central_difference


def loss(w, b, x, y):
    z = x @ w + b
    return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(6, 4)), rng.random((6, 3))


def test_grad_matches_closed_form_and_finite_differences(data):
    w, b, x, y = data
    gw, gb = symdiff.grad(loss, argnums=(0, 1))(w, b, x, y)
    z = x @ w + b
    dz = (1 / (1 + np.exp(-z)) - y) / z.size
    np.testing.assert_allclose(gb, dz.sum(0), rtol=1e-12)
    np.testing.assert_allclose(gw, x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(gw, central_difference(lambda w: loss(w, b, x, y), w), rtol=1e-6, atol=1e-9)


def test_grad_result_shape_dtype_and_single_argnum(data):
    w, b, x, y = data
    g = symdiff.grad(loss)(w, b, x, y)
    assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == np.float64
    g32 = symdiff.grad(loss)(w.astype(np.float32), b.astype(np.float32), x.astype(np.float32), y.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g, rtol=1e-4)


def test_wrt_names_parameters(data):
    w, b, x, y = data
    by_name = symdiff.grad(loss, wrt=("b", "w"))(w, b, x, y)
    by_pos = symdiff.grad(loss, argnums=(1, 0))(w, b, x, y)
    for a, c in zip(by_name, by_pos):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(symdiff.grad(loss, wrt="b")(w, b, x, y), by_pos[0])
    with pytest.raises(SymdiffError, match="not parameters"):
        symdiff.grad(loss, wrt="q")


def test_value_and_grad(data):
    w, b, x, y = data
    v, g = symdiff.value_and_grad(loss)(w, b, x, y)
    assert np.isclose(v, loss(w, b, x, y), rtol=1e-13)
    np.testing.assert_allclose(g, symdiff.grad(loss)(w, b, x, y), rtol=1e-13)


def test_has_aux():
    def f(x):
        return np.sum(x**2), x * 2

    (g, aux) = symdiff.grad(f, has_aux=True)(np.arange(3.0))
    np.testing.assert_allclose(g, 2 * np.arange(3.0))
    np.testing.assert_allclose(aux, 2 * np.arange(3.0))
    with pytest.raises(SymdiffError, match="has_aux"):
        symdiff.grad(f)(np.arange(3.0))


def test_python_float_in_python_float_out():
    g = symdiff.grad(lambda x: x**3)(2.0)
    assert type(g) is float and g == 12.0
    zero_d = symdiff.grad(lambda x: x**3)(np.array(2.0))
    assert np.ndim(zero_d) == 0 and zero_d == 12.0


def test_non_scalar_output_error_points_to_alternatives():
    with pytest.raises(NotScalarError, match="jacobian.*derivative.*signature"):
        symdiff.grad(lambda x: x * 2)(np.ones(3))


def test_derivative_any_order_against_sympy():
    t = sympy.Symbol("t")
    f_sym = sympy.sin(sympy.exp(t) * t) / (1 + t**2)

    def f(x):
        return np.sin(np.exp(x) * x) / (1 + x**2)

    pts = np.linspace(-1, 1, 7)
    for k in (1, 2, 3, 5):
        ref = sympy.lambdify(t, sympy.diff(f_sym, (t, k)), "numpy")(pts)
        np.testing.assert_allclose(symdiff.derivative(f, k)(pts), ref, rtol=1e-10)


def test_derivative_broadcasts_over_a_million_points():
    x = np.linspace(0, 1, 10**6)
    d2 = symdiff.derivative(lambda x: 2 * x**3 + 5 * x**2 + 8, 2)(x)
    assert d2.shape == x.shape
    np.testing.assert_allclose(d2, 12 * x + 10)


def test_derivative_mixed_partial_in_sympy_convention():
    def f(x, z):
        return np.exp(x * z) + x**3 * z**2

    a, b = sympy.symbols("a b")
    ref = sympy.diff(sympy.exp(a * b) + a**3 * b**2, a, a, b)
    got = symdiff.derivative(f, wrt=("x", "x", "z"))(0.3, 0.7)
    assert np.isclose(got, float(ref.subs({a: 0.3, b: 0.7})))


def test_decorator_forms():
    @symdiff.derivative(order=2)
    def f(x):
        return x**4

    @symdiff.hessian(wrt="x")
    def h(x):
        return np.sum(x**3)

    @symdiff.grad
    def g(x):
        return x**2

    assert f(2.0) == 48.0
    np.testing.assert_allclose(h(np.array([1.0, 2.0])), np.diag([6.0, 12.0]))
    assert g(3.0) == 6.0


def test_composition_grad_of_grad_and_jacobian_of_grad():
    def f(x):
        return np.sum(np.sin(x) * x**2)

    x = np.array([0.1, 0.5, 1.2])
    d2 = symdiff.grad(lambda x: np.sum(symdiff.grad(f)(x)))(x)
    exact = 2 * np.sin(x) + 4 * x * np.cos(x) - x**2 * np.sin(x)
    np.testing.assert_allclose(d2, exact, rtol=1e-12)
    np.testing.assert_allclose(symdiff.jacobian(symdiff.grad(f))(x), np.diag(exact), atol=1e-12)
    np.testing.assert_allclose(symdiff.hessian(f)(x), np.diag(exact), atol=1e-12)
    assert symdiff.grad(symdiff.grad(symdiff.grad(lambda x: x**5)))(2.0) == 240.0


def test_jacobian_shape_and_values():
    def f(x):
        return np.stack([x[0] * x[1], np.sin(x[2]), x[0] ** 2])

    x = np.array([1.0, 2.0, 0.5])
    J = symdiff.jacobian(f)(x)
    assert J.shape == (3, 3)
    np.testing.assert_allclose(J, central_difference(f, x), rtol=1e-7, atol=1e-9)
    W = np.arange(6.0).reshape(2, 3)
    Jm = symdiff.jacobian(lambda W: np.tanh(W) @ np.ones(3))(W)
    assert Jm.shape == (2, 2, 3)
    np.testing.assert_allclose(Jm, central_difference(lambda W: np.tanh(W) @ np.ones(3), W), rtol=1e-6, atol=1e-9)


def test_hessian_matches_sympy_for_rosenbrock():
    def rosen(x):
        return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    x = np.array([0.3, -1.2, 2.0, 0.7])
    xs = sympy.symbols("x0:4")
    e = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(3))
    ref = np.array(sympy.hessian(e, xs).subs(dict(zip(xs, x))), dtype=float)
    np.testing.assert_allclose(symdiff.hessian(rosen)(x), ref, rtol=1e-12)


def test_signature_batches_points():
    def rosen(x):
        return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    pts = np.random.default_rng(0).normal(size=(7, 4))
    H = symdiff.hessian(rosen, signature="(n)->()")(pts)
    G = symdiff.grad(rosen, signature="(n)->()")(pts)
    assert H.shape == (7, 4, 4) and G.shape == (7, 4)
    for i in range(7):
        np.testing.assert_allclose(H[i], symdiff.hessian(rosen)(pts[i]), rtol=1e-12)
        np.testing.assert_allclose(G[i], symdiff.grad(rosen)(pts[i]), rtol=1e-12)


def test_signature_with_two_core_arguments():
    def quad(x, A):
        return x @ A @ x

    rng = np.random.default_rng(2)
    xs, As = rng.normal(size=(5, 3)), rng.normal(size=(5, 3, 3))
    g = symdiff.grad(quad, signature="(n),(n,n)->()")(xs, As)
    np.testing.assert_allclose(g, np.einsum("bij,bj->bi", As + As.transpose(0, 2, 1), xs), rtol=1e-12)
    with pytest.raises(symdiff.ShapeError, match="signature"):
        symdiff.grad(quad, signature="(n)->()")(xs, As)
    with pytest.raises(symdiff.ShapeError, match="malformed signature"):
        symdiff.grad(quad, signature="n->")


def test_integer_argument_is_rejected_with_advice():
    with pytest.raises(symdiff.DtypeError, match="floating"):
        symdiff.grad(lambda x: np.sum(x**2))(np.arange(3))


def test_data_dependent_control_flow_names_the_line():
    def f(x):
        if x > 0:  # an array of three truth values: ambiguous, as in numpy
            return x.sum()
        return -x.sum()

    with pytest.raises(TraceError, match=r"np\.where.*|test_api\.py:\d+") as info:
        symdiff.grad(f)(np.ones(3))
    assert "test_api.py" in str(info.value) and "np.where" in str(info.value)


def test_unsupported_operation_names_it():
    with pytest.raises(TraceError, match="np.unique is not supported"):
        symdiff.grad(lambda x: np.sum(np.unique(x)))(np.ones(3))


def test_source_and_formula():
    f = symdiff.grad(lambda x, y: x**2 * y)
    src = f.source(1.0, 2.0)
    body = src.split('"""', 2)[2]
    assert "import symdiff" not in body and "from symdiff" not in body
    assert "import numpy" in body  # for the checks of the arguments' shapes and dtypes, even for pure arithmetic
    assert "import numpy as np" in symdiff.grad(lambda x: np.sin(x)).source(1.0)
    assert f.formula(1.0, 2.0) == 2 * sympy.Symbol("x", real=True) * sympy.Symbol("y", real=True)
    H = symdiff.hessian(lambda x: np.sum(x**3)).formula(np.ones(2))
    assert isinstance(H, sympy.Matrix) and H.shape == (2, 2)


def test_closures_are_constants_and_distinguish_cache_entries():
    def make(c):
        def f(x):
            return np.sum(c * x**2)

        return f

    x = np.ones(3)
    np.testing.assert_allclose(symdiff.grad(make(np.array([1.0, 2.0, 3.0])))(x), [2, 4, 6])
    np.testing.assert_allclose(symdiff.grad(make(np.array([5.0, 5.0, 5.0])))(x), [10, 10, 10])
    np.testing.assert_allclose(symdiff.grad(make(2.0))(x), [4, 4, 4])
    np.testing.assert_allclose(symdiff.grad(make(3.0))(x), [6, 6, 6])


def test_non_numeric_operand_is_a_trace_error_naming_the_line():
    def g(x):
        return x + "a"

    with pytest.raises(TraceError, match=r"type str.*test_api\.py:\d+"):
        symdiff.grad(g)(1.0)
