"""Plain-Python scalar code: ``math.sin(x)``, ``max(x, 0.0)``, ``min(a, b, c)`` on traced values.

Reproducer: ``symdiff.derivative(lambda-free f)(0.5)`` with ``math.sin(x)`` in ``f`` raised "conversion
of a traced value to a concrete numpy array", and ``max(x, 0.0)`` raised "Python control flow on a
traced value" - the most ordinary way to write a function of one float. Checked against closed forms
and central differences."""

import math
import math as m
from math import exp as mexp

import numpy as np
import pytest

import symdiff


def scalar_mix(x):
    return max(x, 0.0) ** 2 + min(x, 1.0, 2.0) + abs(x) + math.sin(x) * mexp(x) + m.log(x, 2) + math.atan2(x, 2.0)


def scalar_mix_derivative(x):
    relu2 = 2 * x if x > 0 else 0.0
    clipped = 1.0 if x < 1 else 0.0
    return (relu2 + clipped + math.copysign(1.0, x) + (math.cos(x) + math.sin(x)) * math.exp(x)
            + 1 / (x * math.log(2)) + 2 / (x * x + 4))


@pytest.mark.parametrize("x", [0.5, 1.7, 3.0])
def test_math_functions_and_max_min_of_a_float(x):
    assert symdiff.derivative(scalar_mix)(x) == pytest.approx(scalar_mix_derivative(x), rel=1e-13)
    assert symdiff.derivative(scalar_mix, 2)(x) == pytest.approx(
        (scalar_mix_derivative(x + 1e-5) - scalar_mix_derivative(x - 1e-5)) / 2e-5, rel=1e-6)


def every_twin(v):
    x, y = v[0], v[1]
    return (math.tan(x) + math.cosh(x) * math.tanh(y) + math.asin(x / 4) + math.acos(y / 5) + math.atan(x)
            + math.asinh(x) + math.acosh(y) + math.atanh(x / 4) + math.exp2(x) + math.expm1(y) + math.log1p(x)
            + math.log2(y) + math.log10(x) + math.cbrt(y) + math.fabs(-x) + math.pow(x, 3) + math.hypot(x, y)
            + math.copysign(x, -1.0) + math.degrees(y) + math.radians(x) + math.sinh(y) + math.cos(y)
            + math.log(y) + math.fmod(y, 1.5) + math.floor(x) * y + math.ceil(y) + math.trunc(x))


def test_every_math_twin_against_finite_differences(fd):
    v = np.array([1.3, 2.2])
    np.testing.assert_allclose(symdiff.grad(every_twin)(v), fd(every_twin, v), rtol=1e-7)
    value, _ = symdiff.value_and_grad(every_twin)(v)
    assert value == pytest.approx(every_twin(v), rel=1e-14)


def test_scipy_backed_twins():
    pytest.importorskip("scipy")

    def f(x):
        return math.erf(x) + math.erfc(2 * x) + math.lgamma(x + 1)

    x = 0.7
    from scipy.special import digamma

    expected = 2 / math.sqrt(math.pi) * (math.exp(-x * x) - 2 * math.exp(-4 * x * x)) + digamma(x + 1)
    assert symdiff.derivative(f)(x) == pytest.approx(expected, rel=1e-12)


def test_max_min_of_sequences_and_arrays():
    def f(v):
        return max(v) + max([v[0] * 2, v[1]]) + min(v[0], v[1] ** 2) + max(e * e for e in v)

    v = np.array([3.0, 4.0])
    # max(v) = v[1], max(6, 4) = 2 v[0], min(3, 16) = v[0], max(9, 16) = v[1]**2
    np.testing.assert_allclose(symdiff.grad(f)(v), [2 + 1, 1 + 2 * 4], rtol=1e-15)


def test_plain_values_keep_python_semantics():
    """The twins run Python's own function on untraced values: the same numbers and the same errors."""

    def f(x):
        scale = math.sqrt(max(4.0, 2.0))  # constants: Python's math
        return scale * x + max(range(3))

    assert symdiff.derivative(f)(1.0) == 2.0

    def g(x):
        return x * math.sqrt(-1.0)

    with pytest.raises(symdiff.errors.TraceError, match=r"test_python_scalar_functions.py:\d+: ValueError: math domain error"):
        symdiff.derivative(g)(1.0)


def test_math_function_without_numpy_form_names_the_line():
    def f(x):
        return math.gamma(x) * 2

    line = f.__code__.co_firstlineno + 1
    with pytest.raises(symdiff.errors.TraceError, match=rf"math\.gamma takes Python numbers.*:{line} is traced; use"):
        symdiff.derivative(f)(1.5)
    assert symdiff.derivative(lambda x: x * math.gamma(2.5))(1.0) == pytest.approx(math.gamma(2.5))


def test_arrays_of_several_elements_are_refused_as_python_refuses_them():
    """Python's max(a, b) and math.sin(a) raise on numpy arrays of several elements; the traced
    function must not quietly mean np.maximum / np.sin there."""

    def f(v):
        return np.sum(max(v, 0.0))

    def g(v):
        return np.sum(math.sin(v))

    for fun, spelled in ((f, r"max\(\)"), (g, r"math\.sin")):
        with pytest.raises((ValueError, TypeError)):
            fun(np.array([1.0, 2.0]))  # plain Python refuses it
        with pytest.raises(symdiff.errors.TraceError, match=rf"{spelled} at .*given an array of 2 elements"):
            symdiff.grad(fun)(np.array([1.0, 2.0]))
