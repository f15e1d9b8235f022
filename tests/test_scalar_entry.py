"""Calls on Python floats go through the scalar entry point: same numbers as the array function,
numpy's answers (inf, nan) where Python would raise or turn complex."""

import math
import warnings

import numpy as np
import pytest

import symdiff

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("numba") is None, reason="numba not installed"))]


def poly(x):
    return 9 * x**4 + 2 * x**3 + 3 * x**2 + 6 * x + 1


def edgy(x):
    return np.log(x) + 1 / x + np.exp(x) + np.sqrt(x) + x**1.5


def signed(x):
    return np.sign(x) * x**2 + np.maximum(x, 0.0)


def two(x, y):
    return np.sin(x * y) + y**3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fun, points", [
    (poly, [2.0, -1.5, 0.0, 1e80, math.inf, math.nan]),
    (edgy, [2.0, 0.0, -1.0, 800.0, math.inf, math.nan]),
    (signed, [2.0, -3.0, 0.0, math.nan]),
])
def test_floats_give_the_array_functions_numbers(backend, fun, points):
    for order in (1, 2):
        d = symdiff.derivative(fun, order, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = d(np.array(points))
            for p, e in zip(points, expected):
                got = d(p)
                assert got.__class__ is float
                np.testing.assert_allclose(got, e, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalar_entry_is_written_for_small_scalar_functions_only(backend):
    plain = symdiff.derivative(edgy, backend=backend).source(2.0)
    assert "def _scalar_" in plain
    assert "math.pow(" in plain  # x**1.5 of a negative x is NaN in numpy, complex in Python
    with_sign = symdiff.derivative(signed, backend=backend).source(2.0)
    assert "def _scalar_" not in with_sign  # sign(nan) and max(nan, 0) differ in Python


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_floats_and_a_changed_global(backend):
    g = symdiff.grad(two, argnums=(0, 1), backend=backend)
    gx, gy = g(0.5, 2.0)
    assert gx == pytest.approx(2.0 * math.cos(1.0), rel=1e-12)
    assert gy == pytest.approx(0.5 * math.cos(1.0) + 12.0, rel=1e-12)
    d = symdiff.derivative(lambda x: SCALE * x**3, backend=backend)
    assert d(2.0) == pytest.approx(12.0 * SCALE)
    globals()["SCALE"] = 5.0
    try:
        assert d(2.0) == pytest.approx(60.0)
    finally:
        globals()["SCALE"] = 1.0


SCALE = 1.0


def test_a_rebound_closure_variable_is_seen():
    scale = 2.0

    def f(x):
        return scale * x**3

    d = symdiff.derivative(f)
    assert d(1.0) == 6.0
    scale = 3.0  # noqa: F841 - read by f through its closure cell
    assert d(1.0) == 9.0
