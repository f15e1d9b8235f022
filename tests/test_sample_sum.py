"""Sample sums (issue 16, item 1): gradients that are sums over the rows of the data run in one pass
(row blocks for the numpy backend, one fused loop for numba) only when ``symdiff.sample_sum`` proves
the structure, and give the numbers of the ordinary code path and of JAX."""

import types

import numpy as np
import pytest

import symdiff

N, D, K = 1000, 5, 3  # with SYMDIFF_SAMPLE_SUM=128: seven full blocks and a ragged one of 104 rows
MARK = "symdiff.sample_sum"


def bce(W, b, X, Y):
    z = X @ W + b
    return np.mean(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))


def bce_nobias(W, X, Y):
    z = X @ W
    return np.sum(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))


def lsq(w, X, y):
    return np.sum((X @ w - y) ** 2)


def lsq_bias(w, c, X, y):
    return np.mean((X @ w + c - y) ** 2)


def softmax_ce(W, b, X, Y):
    z = X @ W + b
    m = np.max(z, axis=1, keepdims=True)
    return np.mean(m[:, 0] + np.log(np.sum(np.exp(z - m), axis=1)) - np.sum(Y * z, axis=1))


def softmax_ce_nobias(W, X, Y):
    z = X @ W
    return np.sum(np.log(np.sum(np.exp(z), axis=1)) - np.sum(Y * z, axis=1))


def lsq_dot(w, X, y):
    r = X @ w - y
    return r @ r


def stretched(w, X):
    return np.sum(np.sin(np.broadcast_to(w, X.shape) * X))  # w stretched along the rows: a row value


# programs that couple rows: refused, the ordinary code runs
def gram(w, X):
    return np.mean(np.tanh(X @ (X.T @ X) @ w))


def column_mean(w, X, y):
    return np.mean(((X - X.mean(axis=0)) @ w - y) ** 2)


def row_cumsum(w, X):
    return np.sum(np.cumsum(np.tanh(X @ w)))


def row_sort(w, X):
    return np.sum(np.sort(X @ w) * np.arange(X.shape[0]))


def row_differences(w, X):
    return np.sum(np.tanh((X[1:] - X[:-1]) @ w))


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    W = 0.3 * rng.standard_normal((D, K))
    b = 0.3 * rng.standard_normal(K)
    onehot = np.eye(K)[rng.integers(0, K, N)]
    return {"W": W, "b": b, "X": X, "Y": onehot, "w": rng.standard_normal(D), "y": rng.standard_normal(N),
            "c": 0.3}


ACCEPTED = [(bce, (0, 1)), (bce_nobias, 0), (lsq, 0), (lsq_bias, (0, 1)), (softmax_ce, (0, 1)),
            (softmax_ce_nobias, 0), (stretched, 0)]
REFUSED = [(gram, 0), (column_mean, 0), (row_cumsum, 0), (row_sort, 0), (row_differences, 0)]


def _args(f):
    data = _data()
    return tuple(data[name] for name in f.__code__.co_varnames[: f.__code__.co_argcount])


def _grad(f, argnums, backend, setting, monkeypatch):
    """symdiff.grad of a fresh copy of ``f`` generated under SYMDIFF_SAMPLE_SUM=``setting``."""
    monkeypatch.setenv("SYMDIFF_SAMPLE_SUM", setting)
    fresh = types.FunctionType(f.__code__, f.__globals__, f"{f.__name__}_{backend}_{setting}")
    return symdiff.grad(fresh, argnums=argnums, backend=backend)


def _leaves(x):
    return list(x) if isinstance(x, tuple) else [x]


def _jax_grad(f, argnums, args):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    g = jax.grad(types.FunctionType(f.__code__, {**f.__globals__, "np": jnp}), argnums=argnums)
    return [np.asarray(a) for a in _leaves(g(*args))]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("f, argnums", ACCEPTED, ids=[f.__name__ for f, _ in ACCEPTED])
def test_row_sums_run_in_one_pass_and_match(f, argnums, backend, monkeypatch):
    if backend == "numba":
        pytest.importorskip("numba")
    args = _args(f)
    fast = _grad(f, argnums, backend, "128", monkeypatch)
    got = _leaves(fast(*args))
    assert MARK in fast.source(*args)
    ref = _leaves(_grad(f, argnums, "numpy", "off", monkeypatch)(*args))
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)
    for a, r in zip(got, _jax_grad(f, argnums, args), strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("f, argnums", REFUSED, ids=[f.__name__ for f, _ in REFUSED])
def test_rows_coupled_keep_the_ordinary_code(f, argnums, monkeypatch):
    args = _args(f)
    for backend in ("numpy", "numba") if _has_numba() else ("numpy",):
        g = _grad(f, argnums, backend, "128", monkeypatch)
        got = _leaves(g(*args))
        assert MARK not in g.source(*args)
        ref = _leaves(_grad(f, argnums, "numpy", "off", monkeypatch)(*args))
        for a, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)
    if f is not row_sort:  # jax.grad of a sort differentiates the permutation the same way
        for a, r in zip(got, _jax_grad(f, argnums, args), strict=True):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


def test_off_and_few_rows_keep_the_ordinary_code(monkeypatch):
    args = _args(bce)
    assert MARK not in _grad(bce, (0, 1), "numpy", "off", monkeypatch).source(*args)
    assert MARK not in _grad(bce, (0, 1), "numpy", "auto", monkeypatch).source(*args)  # one block: no gain
    small = tuple(a[:10] if np.ndim(a) and a.shape[0] == N else a for a in args)
    assert MARK not in _grad(bce, (0, 1), "numba", "128", monkeypatch).source(*small)


def _has_numba():
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_data_in_any_memory_order(backend, monkeypatch):
    """Column-major or strided data gives the same sums (the numba loop takes a C-ordered view or copy)."""
    if backend == "numba":
        pytest.importorskip("numba")
    W, b, X, Y = _args(bce)
    fast = _grad(bce, (0, 1), backend, "128", monkeypatch)
    ref = _leaves(_grad(bce, (0, 1), "numpy", "off", monkeypatch)(W, b, X, Y))
    wide = np.zeros((N, 2 * D))
    wide[:, ::2] = X
    for data in (np.asfortranarray(X), wide[:, ::2]):
        for a, r in zip(_leaves(fast(W, b, data, Y)), ref, strict=True):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("f, argnums", [(bce, (0, 1)), (lsq_bias, (0, 1)), (softmax_ce, 0), (lsq_dot, 0)],
                         ids=["bce", "lsq_bias", "softmax_ce", "lsq_dot"])
def test_value_and_grad_value_from_the_sums(f, argnums, backend, monkeypatch):
    """The loss value (a sum times 1/N) is computed from the complete sums, after the pass."""
    if backend == "numba":
        pytest.importorskip("numba")
    args = _args(f)
    monkeypatch.setenv("SYMDIFF_SAMPLE_SUM", "128")
    fresh = types.FunctionType(f.__code__, f.__globals__, f"{f.__name__}_vg_{backend}")
    fast = symdiff.value_and_grad(fresh, argnums=argnums, backend=backend)
    value, grads = fast(*args)
    assert MARK in fast.source(*args)
    assert ("_total_" in fast.source(*args)) == (f is not lsq_dot)  # r @ r: the value is itself a sum
    np.testing.assert_allclose(value, f(*args), rtol=1e-12)
    for a, r in zip(_leaves(grads), _jax_grad(f, argnums, args), strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)


def unused_labels(w, X, y):
    return np.sum(np.exp(X * w))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_argument_the_gradient_does_not_read(backend, monkeypatch):
    """y is not in the gradient's graph: it is passed on unsliced (was a KeyError building the blocks)."""
    if backend == "numba":
        pytest.importorskip("numba")
    args = _args(unused_labels)
    fast = _grad(unused_labels, 0, backend, "128", monkeypatch)
    got = fast(*args)
    assert MARK in fast.source(*args)
    np.testing.assert_allclose(got, _grad(unused_labels, 0, "numpy", "off", monkeypatch)(*args), rtol=1e-12)
    np.testing.assert_allclose(got, np.sum(args[1] * np.exp(args[1] * args[0]), axis=0), rtol=1e-12)
