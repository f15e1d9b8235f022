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
