"""backend="numba": fused per-point loops give the same numbers as the numpy backend."""

import numpy as np
import pytest

import symdiff

numba = pytest.importorskip("numba")


def w3(x):
    return np.sin(np.exp(x) * x) / (1 + x**2)


def rosen(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_high_order_derivative_matches_numpy_backend():
    x = np.linspace(-1, 1, 1001)
    fused = symdiff.derivative(w3, 4, backend="numba")
    np.testing.assert_allclose(fused(x), symdiff.derivative(w3, 4)(x), rtol=1e-11, atol=1e-11)
    assert type(fused(0.25)) is float
    src = fused.source(0.5)
    assert "@numba.njit" in src and "for i in range" in src


def test_batched_gradient_and_hessian_match_numpy_backend():
    pts = np.random.default_rng(0).normal(size=(300, 6))
    H = symdiff.hessian(rosen, signature="(n)->()", backend="numba")(pts)
    np.testing.assert_allclose(H, symdiff.hessian(rosen, signature="(n)->()")(pts), rtol=1e-13)
    v, g = symdiff.value_and_grad(rosen, signature="(n)->()", backend="numba")(pts)
    v0, g0 = symdiff.value_and_grad(rosen, signature="(n)->()")(pts)
    np.testing.assert_allclose(v, v0, rtol=1e-13)
    np.testing.assert_allclose(g, g0, rtol=1e-13)


def test_array_programs_fall_back_to_numpy_code():
    X = np.random.default_rng(1).normal(size=(20, 30))  # too many inputs to scalarize

    def loss(w):
        return np.mean(np.log1p(np.exp(-np.abs(X @ w))))

    w = np.linspace(-1, 1, 30)
    f = symdiff.grad(loss, backend="numba")
    np.testing.assert_allclose(f(w), symdiff.grad(loss)(w), rtol=1e-13)
    assert "_points_" not in f.source(w)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(symdiff.SymdiffError, match="unknown backend"):
        symdiff.grad(rosen, backend="cuda")
