"""The numba sample-sum kernel's compiled block products (``_block_times``, ``_block_add_outer``, issue 16
item 1) give the numbers of the ordinary numpy code on odd shapes: rows not a multiple of the 512-row
block nor of the 4-row group, 1 to 13 output columns, 1 to 64 data columns, with and without bias."""

import tracemalloc

import numpy as np
import pytest

from tests.test_sample_sum import _grad, bce, bce_nobias

pytest.importorskip("numba")


def two_products(W, V, X, Y):
    """Two parameters against the same rows: two products per block and two sums of outer products."""
    return np.sum(np.tanh(X @ W) * (X @ V) - Y * (X @ V))


def _data(f, rows, d, c):
    rng = np.random.default_rng(rows + 7 * d + 31 * c)
    values = {"W": 0.3 * rng.standard_normal((d, c)), "V": 0.3 * rng.standard_normal((d, c)),
              "b": 0.3 * rng.standard_normal(c), "X": rng.standard_normal((rows, d)),
              "Y": (rng.random((rows, c)) < 0.5).astype(np.float64)}
    return tuple(values[name] for name in f.__code__.co_varnames[: f.__code__.co_argcount])


SLOW = pytest.mark.slow  # a numba compile each (about 5 s on a loaded machine)
CASES = [  # (program, argnums, rows, d, c)
    (bce, (0, 1), 1001, 64, 8),  # W1's shape on fewer rows: one full block, a ragged one of 489 = 4 * 122 + 1
    (bce, (0, 1), 1027, 5, 13),  # the sum's row value with more columns is its second factor: no transpose
    pytest.param(bce, (0, 1), 515, 5, 3, marks=SLOW),  # the ragged block is fewer rows than one group of 4
    pytest.param(bce_nobias, 0, 1002, 1, 1, marks=SLOW),
    pytest.param(bce_nobias, 0, 1003, 64, 1, marks=SLOW),
    pytest.param(bce_nobias, 0, 517, 1, 13, marks=SLOW),
    pytest.param(two_products, (0, 1), 1001, 5, 3, marks=SLOW),
]


@pytest.mark.parametrize("f, argnums, rows, d, c", CASES,
                         ids=lambda v: getattr(v, "__name__", None))
def test_block_products_match_the_ordinary_code(f, argnums, rows, d, c, monkeypatch):
    args = _data(f, rows, d, c)
    fast = _grad(f, argnums, "numba", "auto", monkeypatch)
    got = fast(*args)
    source = fast.source(*args)
    assert "_block_times(" in source and "_block_add_outer(" in source
    ref = _grad(f, argnums, "numpy", "off", monkeypatch)(*args)
    for a, r in zip(*(x if isinstance(x, tuple) else (x,) for x in (got, ref)), strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)
    if d == 64:  # no copy of the data (a copy would show as a peak above X.nbytes)
        tracemalloc.start()
        fast(*args)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < args[-2].nbytes / 4, (peak, args[-2].nbytes)


@pytest.mark.parametrize("d, c", [(5, 20), pytest.param(64, 20, marks=SLOW)])
def test_wide_products_stay_in_blas(d, c, monkeypatch):
    """More than SKINNY columns: BLAS wins (measured), so np.dot computes the product over the block;
    (5, 20): the sum of outer products still has a 5-column side, the helper."""
    args = _data(bce, 1001, d, c)
    fast = _grad(bce, (0, 1), "numba", "auto", monkeypatch)
    got, source = fast(*args), fast.source(*args)
    assert "_block_times(" not in source and "np.dot(" in source
    assert ("_block_add_outer(" in source) == (d <= 16)
    for a, r in zip(got, _grad(bce, (0, 1), "numpy", "off", monkeypatch)(*args), strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)


def test_block_products_against_numpy_matmul():
    """The two helpers alone, on ragged row counts, against numpy's products (an independent reference)."""
    from symdiff.emit import _sample_sum_macros
    from symdiff.sample_sum_emit import HELPERS

    namespace = {}
    text = "import numba\nimport numpy as np\n_cacheable = lambda: False\n" + _sample_sum_macros().block_products(HELPERS)
    exec(text, namespace)  # noqa: S102 - the template's text, as generated modules hold it
    rng = np.random.default_rng(0)
    for n, d, c in ((1, 1, 1), (7, 5, 3), (13, 64, 13), (4, 3, 8)):
        A, B, S = rng.standard_normal((n, d)), rng.standard_normal((d, c)), rng.standard_normal((n, c))
        out = np.empty((n, c))
        namespace["_block_times"](A, np.ascontiguousarray(B.T), out)
        np.testing.assert_allclose(out, A @ B, rtol=1e-12, atol=1e-14)
        G = np.ones((c, d))
        namespace["_block_add_outer"](S, A, G)
        np.testing.assert_allclose(G, 1 + S.T @ A, rtol=1e-12, atol=1e-14)


def exp_sum(W, b, X, Y):
    """exp unclipped (unlike the stable sigmoid of bce): its fast helper's flagged rows run on math."""
    return np.sum(1e300 * Y * np.exp(X @ W + b))


def _rows_at(logits, W, b, d, seed):
    """Data rows whose logits X @ W + b are about ``logits`` (one value per row, every column)."""
    rng = np.random.default_rng(seed)
    X = 0.1 * rng.standard_normal((len(logits), d))
    X[:, 0] = (np.asarray(logits) - b[0]) / W[0, 0]
    return X


def _vector_kernel(source):
    """The kernel computes its exp with the fast helper in one loop over the block's entries."""
    kernel = source.split("def _rows_")[1].split("def _block_")[0]
    assert "_fast_exp(" in kernel and "for _i in range(_n * " in kernel
    return kernel


def test_fast_exp_flagged_rows_run_on_libm(monkeypatch):
    """Logits whose exp is subnormal: the fast helper's flagged entries are computed again with math.exp.
    At the two logits of most rows the helper alone is 1 subnormal ulp above libm (relative 8e-13,
    measured); times 1e300 the sums are normal numbers, and the sum over rows (gradient of b, terms of
    one sign) equals the numpy backend's (libm's) to 1e-14. Rows at -720 (subnormal, helper exact) and
    -760 (exp 0) too."""
    rows, d, c = 1001, 5, 3
    rng = np.random.default_rng(3)
    W, b = np.zeros((d, c)), np.zeros(c)
    W[0] = 1.0  # logits X[:, 0] exactly, every column
    logits = np.where(np.arange(rows) % 2, -716.5756647423644, -716.516317845734)
    logits[::89], logits[::97] = -720.0, -760.0
    X = rng.standard_normal((rows, d))
    X[:, 0] = logits
    Y = (rng.random((rows, c)) < 0.7).astype(np.float64)
    fast = _grad(exp_sum, (0, 1), "numba", "auto", monkeypatch)
    got, source = fast(W, b, X, Y), fast.source(W, b, X, Y)
    assert "_far[_i] = _far_exp(" in _vector_kernel(source)
    ref = _grad(exp_sum, (0, 1), "numpy", "off", monkeypatch)(W, b, X, Y)
    for a, r in zip(got, ref, strict=True):
        assert np.all(np.isfinite(r)) and np.max(np.abs(r)) > 0
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-12 * np.max(np.abs(r)))
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-14)


def test_fast_exp_overflow_like_numpy(monkeypatch):
    """Logits near 800: exp is inf (the fast helper's select), the sums over rows inf like numpy's; and
    bce's stable sigmoid (exp of the clipped logit) on logits of +-800 gives numpy's finite gradient."""
    rows, d, c = 1001, 5, 3
    rng = np.random.default_rng(5)
    W, b = np.full((d, c), 1.0) + 0.01 * rng.standard_normal((d, c)), 0.1 * rng.standard_normal(c)
    W[1:] = 0.01 * rng.standard_normal((d - 1, c))
    logits = rng.uniform(-5.0, 5.0, rows)
    logits[::50], logits[25::50] = 800.0, -800.0
    X = _rows_at(logits, W, b, d, 6)
    Y = (rng.random((rows, c)) < 0.5).astype(np.float64)
    Y[::50] = 1.0  # not 0 * inf
    fast = _grad(exp_sum, 1, "numba", "auto", monkeypatch)
    got = fast(W, b, X, Y)
    _vector_kernel(fast.source(W, b, X, Y))
    with np.errstate(over="ignore"):
        ref = _grad(exp_sum, 1, "numpy", "off", monkeypatch)(W, b, X, Y)
    assert np.all(np.isinf(ref))
    np.testing.assert_array_equal(got, ref)
    fast = _grad(bce, (0, 1), "numba", "auto", monkeypatch)
    got, source = fast(W, b, X, Y), fast.source(W, b, X, Y)
    assert "_far" not in _vector_kernel(source)  # the clipped logit keeps exp exact: no rerun
    ref = _grad(bce, (0, 1), "numpy", "off", monkeypatch)(W, b, X, Y)
    for a, r in zip(got, ref, strict=True):
        assert np.all(np.isfinite(r))
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-12 * np.max(np.abs(r)))
