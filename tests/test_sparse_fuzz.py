"""Sparse derivatives on random programs of the operations whose patterns are easy to get wrong.

Each program chains steps drawn from: ``np.where``/``np.select`` (the condition on traced values or
a closed-over array), integer-array indexing with repeated indices, max/min reductions (over axes,
whole arrays, ``np.maximum``), ``np.abs``, cumsum/cumprod, ``np.sort``/``argsort`` permutations,
matmul of two traced arrays, ``np.linalg`` on stacks of matrices and closed-over (sparse) arrays.
``jacobian(sparse=True)`` and ``hessian(sparse=True)`` must equal the dense transforms and the
pattern (``jacobian_sparsity``) must contain every dense nonzero, at random points and at points
built to sit on kinks: ties in max/min/sort, ``abs`` at 0, a ``where`` condition at its boundary.
(tests/test_sparse.py checks fixed programs and a smaller random family.)
"""

from __future__ import annotations

import numpy as np
import pytest

import symdiff

pytest.importorskip("scipy.sparse")

N = 8  # length of the argument and of every intermediate vector
EYE2 = np.eye(2)


def _steps(r):
    """One random step: v (length N) -> length N."""
    kind = int(r.integers(12))
    c = np.round(r.normal(size=N), 1)  # closed-over; on a grid so kink points can hit it
    idx = r.integers(0, N, size=N)  # repeated indices
    perm = r.permutation(N)
    mask = r.random((N, N)) < 0.25
    k = int(r.integers(1, 3))
    if kind == 0:
        return "where traced", lambda v: np.where(v > c, v**2, np.sin(v) * v[perm])
    if kind == 1:
        return "select", lambda v: np.select([v > 0.5, v < c], [v * v[idx], np.cos(v)], default=v[::-1])
    if kind == 2:
        return "repeated take", lambda v: v[idx] * v + np.take(v, idx[::-1]) ** 2
    if kind == 3:
        return "max min", lambda v: (v * np.max(v.reshape(4, -1), axis=1).repeat(2) + np.maximum(v, v[::-1])
                                     - np.min(v[k:]) + np.min(v.reshape(2, -1), axis=0).repeat(2) ** 2)
    if kind == 4:
        return "abs", lambda v: np.abs(v) * v[perm] + np.abs(v - c)
    if kind == 5:
        return "cumsum cumprod", lambda v: np.cumsum(v[perm]) + np.cumprod(np.tanh(v) + 1.5)
    if kind == 6:
        return "sort", lambda v: np.sort(v) * v + np.sort(v.reshape(2, -1), axis=1).reshape(-1) ** 2
    if kind == 7:
        return "argsort", lambda v: v[np.argsort(v)] * np.arange(1.0, N + 1) + v
    if kind == 8:
        return "matmul traced", lambda v: (v.reshape(2, 4).T @ v.reshape(2, 4)).reshape(-1)[::2] + v
    if kind == 9:
        return "linalg stack", lambda v: np.linalg.inv(v.reshape(2, 2, 2) + 3 * EYE2).reshape(-1) + np.linalg.det(
            v.reshape(2, 2, 2) * 0.5 + EYE2).repeat(4)
    if kind == 10:
        return "closed-over sparse", lambda v: (mask * c) @ np.sin(v) + v * c
    return "elementwise", lambda v: np.exp(np.sin(v)) * v


def random_program(seed):
    r = np.random.default_rng(seed)
    steps = [_steps(r) for _ in range(int(r.integers(1, 4)))]

    def program(x):
        v = x
        for _, step in steps:
            v = step(v)
        return v

    program.__doc__ = " -> ".join(name for name, _ in steps)
    return program


def _scalar(f):
    def energy(x):
        return np.sum(np.sin(f(x)) * f(x))

    return energy


def _points(seed):
    r = np.random.default_rng(1000 + seed)
    random = r.normal(size=N)
    kinks = np.round(r.normal(size=N), 1)  # on the grid of the constants: ties, |.| at 0, where boundaries
    kinks[r.integers(N)] = 0.0
    kinks[:3] = kinks[3]  # a three-way tie
    return {"random": random, "kink": kinks, "zeros": np.zeros(N)}


def _close(sparse_result, dense, what):
    dense = np.asarray(dense).reshape(sparse_result.shape)
    scale = 1.0 + np.max(np.abs(dense), initial=0.0)  # the same sums in another order: rounding of the largest
    np.testing.assert_allclose(sparse_result.toarray(), dense, rtol=1e-12, atol=1e-12 * scale, err_msg=what)


def check(seed):
    f = random_program(seed)
    jac, jac_sparse, pattern_of = symdiff.jacobian(f), symdiff.jacobian(f, sparse=True), symdiff.jacobian_sparsity(f)
    e = _scalar(f)
    hess, hess_sparse, hpattern_of = symdiff.hessian(e), symdiff.hessian(e, sparse=True), symdiff.hessian_sparsity(e)
    for name, x in _points(seed).items():  # one compiled sparse transform serves every point
        what = f"{f.__doc__} at the {name} point {x!r}"
        with np.errstate(all="ignore"):
            try:
                f(x)
            except np.linalg.LinAlgError:  # a kink point can make the function's own matrix singular
                continue
            dense = np.asarray(jac(x)).reshape(N, N)
            pattern = pattern_of(x).toarray()
            assert not ((dense != 0) & ~pattern).any(), f"pattern misses a nonzero: {what}"
            _close(jac_sparse(x), dense, f"jacobian {what}")
            H = np.asarray(hess(x))
            assert not ((H != 0) & ~hpattern_of(x).toarray()).any(), f"Hessian pattern misses a nonzero: {what}"
            _close(hess_sparse(x), H, f"hessian {what}")


@pytest.mark.parametrize("seed", range(16))
def test_random_programs_sparse_equals_dense(seed):
    check(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(16, 200))
def test_random_programs_sparse_equals_dense_long(seed):
    check(seed)


def test_zero_size_intermediate():
    """A slice with nothing in it: its pattern has no rows to read (was an IndexError in the Hessian's pattern)."""
    def f(x):
        return np.sum(np.sin(x[:0] * 2)) + np.sum(x**3)

    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(symdiff.hessian(f, sparse=True)(x).toarray(), np.diag(6 * x), rtol=1e-14)
    assert symdiff.jacobian(lambda v: v[:0] * 2, sparse=True)(x).shape == (0, 3)


@pytest.mark.parametrize("name, f, x", [
    ("max tie", lambda v: np.max(v) * v + np.min(v[:2]), np.array([1.0, 1.0, 0.5, 1.0])),
    ("abs at 0", lambda v: np.abs(v) * v[::-1] + np.abs(v[0] - v[1]), np.array([0.0, 0.0, 1.0, -1.0])),
    ("where boundary", lambda v: np.where(v > v[::-1], v**2, np.sin(v)), np.array([1.0, 2.0, 2.0, 1.0])),
    ("sort tie", lambda v: np.sort(v) * np.arange(1.0, 5.0), np.array([0.5, 0.5, -1.0, 0.5])),
])
def test_kinks_sparse_equals_dense(name, f, x):
    _close(symdiff.jacobian(f, sparse=True)(x), symdiff.jacobian(f)(x), name)
    e = _scalar(f)
    _close(symdiff.hessian(e, sparse=True)(x), symdiff.hessian(e)(x), name)
