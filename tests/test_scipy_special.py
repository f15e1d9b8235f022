"""Issue 11: scipy.special ufuncs trace and differentiate like numpy's, against closed forms and
mpmath; generated code imports scipy.special only when it uses it (scipy is an optional extra)."""

from __future__ import annotations

import ast

import mpmath
import numpy as np
import pytest

import symdiff

from .generated_code import without_comments

sp = pytest.importorskip("scipy.special")

X = np.array([-2.5, -0.3, 0.4, 1.7])
POS = np.array([0.2, 0.9, 2.5, 7.0])


def pdf(x):
    return np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi)


CASES = {  # name: (function, where, first derivative)
    "erf": (sp.erf, X, lambda x: 2 / np.sqrt(np.pi) * np.exp(-(x**2))),
    "erfc": (sp.erfc, X, lambda x: -2 / np.sqrt(np.pi) * np.exp(-(x**2))),
    "erfcx": (sp.erfcx, X, lambda x: 2 * x * sp.erfcx(x) - 2 / np.sqrt(np.pi)),
    "expit": (sp.expit, X, lambda x: sp.expit(x) * (1 - sp.expit(x))),
    "logit": (sp.logit, POS / 8, lambda x: 1 / (x * (1 - x))),
    "gammaln": (sp.gammaln, POS, sp.digamma),
    "digamma": (sp.digamma, POS, lambda x: sp.polygamma(1, x)),
    "ndtr": (sp.ndtr, X, pdf),
    "log_ndtr": (sp.log_ndtr, X, lambda x: pdf(x) / sp.ndtr(x)),
    "i0e": (sp.i0e, X, lambda x: sp.i1e(x) - np.sign(x) * sp.i0e(x)),
    "i1e": (sp.i1e, X, lambda x: sp.i0e(x) - sp.i1e(x) / x - np.sign(x) * sp.i1e(x)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_derivatives_match_closed_forms(name):
    fn, x, d = CASES[name]
    np.testing.assert_allclose(symdiff.derivative(fn)(x), d(x), rtol=1e-12)
    np.testing.assert_allclose(symdiff.grad(lambda v: np.sum(fn(v)))(x), d(x), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_higher_orders_match_mpmath(name):
    fn, x, _ = CASES[name]
    mp = {
        "erf": mpmath.erf, "erfc": mpmath.erfc, "expit": lambda t: 1 / (1 + mpmath.exp(-t)),
        "logit": lambda t: mpmath.log(t / (1 - t)), "gammaln": mpmath.loggamma, "digamma": mpmath.digamma,
        "ndtr": lambda t: mpmath.ncdf(t), "log_ndtr": lambda t: mpmath.log(mpmath.ncdf(t)),
        "erfcx": lambda t: mpmath.exp(t**2) * mpmath.erfc(t),
        "i0e": lambda t: mpmath.exp(-abs(t)) * mpmath.besseli(0, t),
        "i1e": lambda t: mpmath.exp(-abs(t)) * mpmath.besseli(1, t),
    }[name]
    with mpmath.workdps(40):
        for k in (2, 3):
            want = [float(mpmath.diff(mp, mpmath.mpf(float(t)), k)) for t in x]
            np.testing.assert_allclose(symdiff.derivative(fn, k)(x), want, rtol=1e-9, atol=1e-12)


def test_log_ndtr_stays_finite_where_the_cdf_underflows():
    x = np.array([-40.0, -200.0])
    got = symdiff.derivative(sp.log_ndtr)(x)
    with mpmath.workdps(50):
        want = [float(mpmath.npdf(t) / mpmath.ncdf(t)) for t in x]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.all(np.isfinite(symdiff.derivative(sp.log_ndtr, 3)(x)))


def test_scaled_bessel_functions_at_zero_and_far_out():
    x = np.array([0.0, 700.0, -800.0])  # I0(800) overflows; the scaled functions do not
    with np.errstate(invalid="ignore"):  # np.where evaluates the branch not taken: i1e(0)/0
        d = symdiff.derivative(sp.i1e)(x)
    np.testing.assert_allclose(d, [0.5, *CASES["i1e"][2](x[1:])], rtol=1e-12)
    np.testing.assert_allclose(symdiff.derivative(sp.i0e)(x), [0.0, *CASES["i0e"][2](x[1:])], rtol=1e-12)
    value, g = symdiff.value_and_grad(lambda v: np.sum(sp.i0e(v) * v))(x)
    np.testing.assert_allclose(value, np.sum(sp.i0e(x) * x), rtol=1e-14)
    np.testing.assert_allclose(g, sp.i0e(x) + x * CASES["i0e"][2](x), rtol=1e-12)


def test_two_argument_functions():
    x, y = np.array([0.0, 0.5, 2.0]), np.array([0.7, 1.5, 3.0])
    gx, gy = symdiff.grad(lambda a, b: np.sum(sp.xlogy(a, b)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, np.log(y), rtol=1e-14)
    np.testing.assert_allclose(gy, x / y, rtol=1e-14)
    gx, gy = symdiff.grad(lambda a, b: np.sum(sp.xlog1py(a, b)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, np.log1p(y), rtol=1e-14)
    np.testing.assert_allclose(gy, x / (1 + y), rtol=1e-14)
    assert symdiff.grad(lambda a: sp.xlogy(a, 0.0) * 0 + sp.xlogy(0.0, a))(2.0) == 0.0  # scipy's 0*log(.) = 0


def test_generated_code_imports_scipy_special_only_when_it_uses_it():
    with_special = symdiff.value_and_grad(lambda v: np.sum(sp.erf(v))).source(X)
    imports = [ast.unparse(n) for n in ast.parse(with_special).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports == ["import numpy as np", "import scipy.special"]
    plain = symdiff.grad(lambda v: np.sum(sp.erf(v))).source(X)  # the derivative of erf is numpy code
    assert "scipy" not in without_comments(plain)  # its comments quote this file's line, which calls sp.erf


def test_numba_backend_runs_special_functions_as_numpy_code():
    pytest.importorskip("numba")
    d = symdiff.derivative(sp.erf, backend="numba")
    np.testing.assert_allclose(d(X), 2 / np.sqrt(np.pi) * np.exp(-(X**2)), rtol=1e-12)
