"""parallel=True: numba's fused loops split the points over threads; same numbers as numpy."""

import numpy as np
import pytest

import symdiff
from symdiff.errors import SymdiffError

pytest.importorskip("numba")


def w3(x):
    return np.sin(np.exp(x) * x) / (1 + x**2)


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_elementwise_derivative_matches_numpy():
    x = np.linspace(-1, 1, 10_001)
    d = symdiff.derivative(w3, 3, backend="numba", parallel=True)
    assert "numba.prange" in d.source(x)
    np.testing.assert_allclose(d(x), symdiff.derivative(w3, 3)(x), rtol=1e-12, atol=1e-300)


def test_batched_gradient_and_hessian_with_packed_outputs():
    P = np.random.default_rng(1).normal(size=(5000, 4))
    for kind in (symdiff.grad, symdiff.hessian):
        fast = kind(rosen, signature="(n)->()", backend="numba", parallel=True)
        np.testing.assert_allclose(fast(P), kind(rosen, signature="(n)->()")(P), rtol=1e-12, atol=1e-12)


def test_parallel_needs_the_numba_backend():
    with pytest.raises(SymdiffError, match="backend='numba'"):
        symdiff.grad(rosen, parallel=True)


def test_parallel_reaches_the_products_of_sparse_derivatives():
    """parallel=True with sparse=True builds its colour products with the parallel backend (it was
    dropped silently); the result equals the dense derivative."""
    pytest.importorskip("scipy")

    def energy(x):
        return np.sum((x[1:] - x[:-1]) ** 2 * np.cos(x[1:])) + np.sum(np.sin(x) ** 2)

    x = np.linspace(-1.0, 2.0, 40)
    sparse = symdiff.hessian(energy, sparse=True, backend="numba", parallel=True)
    np.testing.assert_allclose(sparse(x).toarray(), symdiff.hessian(energy)(x), rtol=1e-12, atol=1e-12)
    with pytest.raises(symdiff.SymdiffError, match="parallel=True"):
        symdiff.jacobian(np.sin, sparse=True, parallel=True)(x)
