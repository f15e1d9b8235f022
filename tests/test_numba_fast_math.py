"""The numba backend's vectorizable exp/log/sin/cos (templates/numba_math.j2): within 2 ulp of numpy's
(libm) values wherever their ``_far_`` test lets them stand, the same inf/nan/zero behaviour, and
derivatives through backend="numba" equal to the numpy backend's, also at points the helpers hand
back to ``math``."""

import importlib.util

import numpy as np
import pytest

import symdiff
from symdiff.emit_templates import environment

numba = pytest.importorskip("numba")

_LOOPS = '''
import math

import numba
import numba.extending
import llvmlite.ir
{helpers}


@numba.njit(error_model="numpy")
def run_{name}(x, out, far):
    for i in range(x.shape[0]):
        out[i] = _fast_{name}(x[i])
        far[i] = _far_{far}(x[i])
'''


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    """The helpers as a module renders them, with one loop per function."""
    text = environment().get_template("numba_math.j2").module.helpers(["cos", "exp", "log", "sin"])
    path = tmp_path_factory.mktemp("fast_math") / "fast_math_loops.py"
    loops = [_LOOPS.format(helpers=text if n == "exp" else "", name=n, far=n if n in ("exp", "log") else "pio2")
             for n in ("exp", "log", "sin", "cos")]
    path.write_text("".join(loops))
    spec = importlib.util.spec_from_file_location("fast_math_loops", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ulps(a, b):
    """Distance in units in the last place (0 where both are equal or both NaN)."""
    def ordered(v):
        i = v.view(np.int64)
        return np.where(i < 0, np.int64(-(2**63)) - i, i)

    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return np.where(same, 0, np.abs(ordered(a) - ordered(b)))


def fast(helpers, name, x):
    out, far = np.empty_like(x), np.empty(x.shape, dtype=np.bool_)
    getattr(helpers, f"run_{name}")(x, out, far)
    return out, far


RANGES = {"exp": [(-1, 1), (-30, 30), (-708, 709.7), (-745.2, -700), (709, 710)],
          "log": [(0, 1), (0.5, 2), (0.999, 1.001), (0, 1e300), (0, 1e-300)],
          "sin": [(-1, 1), (-4, 4), (-100, 100), (-1e5, 1e5), (-1e6, 1e6)],
          "cos": [(-1, 1), (-4, 4), (-100, 100), (-1e5, 1e5), (-1e6, 1e6)]}
EDGES = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 709.78, 709.782712893384, 709.79, 709.8, -708.39, -708.4,
                  -745.13, -745.1332191019412, -745.2, -1000.0, 5e-324, -5e-324, 1e-300, 1e300, -1e300,
                  2.0**19 * np.pi / 2, 823549.6, 823549.7, 1e22, np.pi, np.pi / 2, 3 * np.pi / 2, 2 * np.pi])
NEAR_BOUND = np.arange(-524288, 524289, 4099) * (np.pi / 2)  # multiples of pi/2 up to the bound
CANCELLING = np.concatenate([NEAR_BOUND[1:] + d for d in (1e-4, -1e-6, 1e-8)])  # reduction cancels 15-35 bits


@pytest.mark.parametrize("name", ["exp", "log", "sin", "cos"])
def test_fast_helpers_within_2_ulp_of_libm(helpers, name):
    rng = np.random.default_rng(16)
    reference = getattr(np, name)
    worst = 0
    for lo, hi in RANGES[name]:
        x = rng.uniform(lo, hi, 200_000)
        out, far = fast(helpers, name, x)
        if (lo, hi) in ((-1, 1), (-4, 4), (-30, 30), (-100, 100), (0.5, 2), (0, 1e300)):
            assert not far.any()  # the common ranges stay on the fast path
        with np.errstate(all="ignore"):
            worst = max(worst, int(ulps(out[~far], reference(x[~far])).max(initial=0)))
    assert worst <= 2, worst


@pytest.mark.parametrize("name", ["exp", "log", "sin", "cos"])
def test_fast_helpers_at_edges(helpers, name):
    x = np.concatenate([EDGES, -EDGES, NEAR_BOUND, np.nextafter(NEAR_BOUND, np.inf), CANCELLING])
    out, far = fast(helpers, name, x)
    if name != "exp":
        assert not far[-CANCELLING.size:].any()  # within the reduction's reach: no rerun needed
    with np.errstate(all="ignore"):
        expected = getattr(np, name)(x)
    kept = ~far
    assert ulps(out[kept], expected[kept]).max() <= 2
    # inf, nan, zeros and their signs as numpy gives them wherever the fast value stands
    special = kept & (~np.isfinite(expected) | (expected == 0))
    np.testing.assert_array_equal(out[special], expected[special])
    np.testing.assert_array_equal(np.signbit(out[special]), np.signbit(expected[special]))
    if name == "exp":  # overflow, underflow and nan by selects; only subnormal results go back to math
        assert not far[np.isin(x, [np.inf, -np.inf, 709.8, -745.2, -1000.0, 0.0])].any()
        assert far[np.isin(x, [-708.4, -745.13])].all()
    elif name == "log":  # zero, negatives, inf and nan by selects; subnormal arguments go back to math
        assert not far[np.isin(x, [np.inf, -np.inf, 0.0, -1.0, 1e-300, 1e300])].any() and not far[np.isnan(x)].any()
        assert far[np.isin(x, [5e-324])].all()
    else:  # beyond the reduction, inf and nan go back to math
        assert far[np.isin(x, [np.inf, np.nan, 1e22, 823549.7])].all() and far[np.isnan(x)].all()


def w3(x):
    return np.sin(np.exp(x) * x) / (1 + x**2)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_w3_derivatives_match_numpy_backend(k):
    """Within 1e-12 of the numpy backend, relative to the derivative's size over each range: a 1-ulp
    difference of exp or sin is amplified where the formula's terms cancel (a zero of the derivative),
    so no pointwise relative bound holds there for any implementation not bitwise equal to libm."""
    rng = np.random.default_rng(k)
    fused, numpy_backend = symdiff.derivative(w3, k, backend="numba"), symdiff.derivative(w3, k)
    assert "_fast_sin(" in fused.source(0.5)
    # [0, 1] (the benchmark), wider, points whose sin/cos argument x*exp(x) is beyond the fast range
    # (x > 11: recomputed on math), exp with subnormal results and overflow (math, or selects)
    chunks = [rng.uniform(0, 1, 3000), rng.uniform(-3, 3, 3000), rng.uniform(-5, 5, 3000), rng.uniform(11, 20, 300),
              rng.uniform(-745, -708, 100), np.array([0.0, -0.0, 709.0, 709.75, 710.0, -800.0, np.nan, np.inf])]
    for x in chunks:
        with np.errstate(all="ignore"):
            expected = numpy_backend(x)
        got = fused(x)
        finite = np.isfinite(expected)
        np.testing.assert_array_equal(got[~finite], expected[~finite])
        size = np.abs(expected[finite]).max(initial=0)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12 * size)


def test_float32_kernels_stay_on_math():
    src = symdiff.derivative(w3, 1, backend="numba").source(np.float32(0.5))
    assert "_fast_exp(" not in src and "math.exp(" in src


@pytest.mark.parametrize("parallel", [False, True])
def test_redo_on_math_also_with_threads(parallel):
    """Points beyond the fast range are recomputed by the libm twin, in the threaded loop too."""
    def f(x):
        return np.exp(x) * np.sin(x**3)

    x = np.array([0.5, -720.0, 1.0, 300.0, -200.0, np.inf, 2.0])
    d = symdiff.derivative(f, 1, backend="numba", parallel=parallel)
    with np.errstate(all="ignore"):
        expected = np.exp(x) * (np.sin(x**3) + 3 * x**2 * np.cos(x**3))
    np.testing.assert_allclose(d(x), expected, rtol=1e-14)
    assert "_points_derivative_f_libm" in d.source(0.5)


def test_log_derivatives_and_domain_match_numpy_backend():
    """log through the fast helper: derivatives as the numpy backend's, and at its domain edges (0, -0,
    negatives, inf, nan; subnormal arguments rerun on math) the values numpy gives."""
    def f(x):
        return np.log(x) * np.exp(-x) + np.log(1 + x**2)

    def antiderivative_of_log(x):
        return x * np.log(x) - x

    x = np.random.default_rng(3).uniform(0, 50, 5000)
    for k in (1, 2):
        expected, got = symdiff.derivative(f, k)(x), symdiff.derivative(f, k, backend="numba")(x)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    log = symdiff.derivative(antiderivative_of_log, 1, backend="numba")
    assert "_fast_log(" in log.source(0.5)
    edges = np.concatenate([x, [1e-310, 1e-300, 1.0, 1e300, 5e-324, 0.0, -0.0, -1.0, -np.inf, np.inf, np.nan]])
    with np.errstate(all="ignore"):
        expected = np.log(edges)
    got = log(edges)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got[np.isinf(expected)], expected[np.isinf(expected)])
    np.testing.assert_allclose(got, expected, rtol=3e-16)
