"""The table of elementwise functions (``symdiff/ops/ufuncs.py``): every entry prints, with its
derivatives, on each backend it claims; and the functions that are single entries of it (np.cbrt,
np.exp2, np.log2, np.log10) give numpy's values and the right derivatives on the numpy backend, the
numba backend and the in-place path of large arrays (``inplace.MIN_SIZE``)."""

import numpy as np
import pytest
import sympy

import symdiff
from symdiff import inplace, printing
from symdiff.graph import placeholder
from symdiff.ops import ufuncs
from symdiff.ops.surface import FUNCTIONS
from symdiff.primitives import local_derivative

from .conftest import central_difference

SYMBOLS = [placeholder(0), placeholder(1)]
ELEMENTWISE_FUNCTIONS = {"sinc"}


def test_every_numpy_name_is_a_numpy_ufunc_of_that_many_operands():
    for entry in ufuncs.TABLE:
        if entry.library != "numpy":
            continue
        for name in entry.names:
            uf = getattr(np, name)
            if name in ELEMENTWISE_FUNCTIONS:  # numpy functions, not ufuncs: traced through their own entry
                assert uf in FUNCTIONS, name
                continue
            assert isinstance(uf, np.ufunc) and uf.nin == entry.nin, name


def test_the_views_of_the_table_name_every_entry_once():
    numpy_names = [(n, e.nin) for e in ufuncs.TABLE if e.library == "numpy" for n in e.names]
    assert len(numpy_names) == len(set(numpy_names)) == len(ufuncs.UNARY) + len(ufuncs.BINARY)
    assert ufuncs.BOOLEAN_RESULT == {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"}
    assert set(ufuncs.SPECIAL) == {e.name for e in ufuncs.TABLE if e.library == "scipy.special"}


def test_in_place_ufuncs_are_numpy_ufuncs_of_the_functions_arity():
    for name in ufuncs.out_ufuncs().values():
        assert name.startswith("np.") and isinstance(getattr(np, name[3:]), np.ufunc), name


@pytest.mark.parametrize("entry", ufuncs.TABLE, ids=lambda e: e.name)
def test_every_entry_prints_with_its_derivatives(entry):
    body = sympy.sympify(entry.body(*SYMBOLS[: entry.nin]))
    exprs = [body]
    for s in SYMBOLS[: entry.nin]:
        d = local_derivative(body, s)
        exprs += [d, local_derivative(d, s)]
    for e in exprs:
        assert printing.print_expr(e) and printing.print_expr(e, single_precision=True)
        if entry.library == "numpy":  # numba kernels: scalar code, no numpy calls
            text = printing._NUMBA.doprint(e)
            assert "np." not in text, text


# ---------------------------------------------------------------------------------------------
# Single entries of the table, on every path
# ---------------------------------------------------------------------------------------------

# name: (numpy function, its derivative written by hand, points)
NEGATIVE_TOO = np.array([-2.7, -1.1, -0.3, 0.4, 1.3, 2.9])
POSITIVE = np.array([0.2, 0.7, 1.3, 2.2, 3.9, 7.5])
ENTRIES = {
    "cbrt": (np.cbrt, lambda x: 1 / (3 * np.cbrt(x) ** 2), NEGATIVE_TOO),
    "exp2": (np.exp2, lambda x: np.log(2) * np.exp2(x), NEGATIVE_TOO),
    "log2": (np.log2, lambda x: 1 / (x * np.log(2)), POSITIVE),
    "log10": (np.log10, lambda x: 1 / (x * np.log(10)), POSITIVE),
}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_numpy_backend_values_and_derivatives(name):
    fn, d1, x = ENTRIES[name]
    value, g = symdiff.value_and_grad(lambda x: np.sum(fn(x) * x))(x)
    np.testing.assert_allclose(value, np.sum(fn(x) * x), rtol=1e-14)
    np.testing.assert_allclose(g, fn(x) + x * d1(x), rtol=1e-13)
    np.testing.assert_allclose(g, central_difference(lambda x: np.sum(fn(x) * x), x), rtol=1e-7)
    np.testing.assert_allclose(symdiff.derivative(fn)(x), d1(x), rtol=1e-13)
    np.testing.assert_allclose(symdiff.derivative(fn, 2)(x), central_difference(lambda x: d1(x), x).diagonal(),
                               rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_numba_backend_values_and_derivatives(name):
    pytest.importorskip("numba")
    fn, d1, x = ENTRIES[name]
    t = symdiff.value_and_grad(lambda x: fn(x) * x, signature="()->()", backend="numba")
    assert "@numba.njit" in t.source(x[0])
    value, g = t(x)
    np.testing.assert_allclose(value, fn(x) * x, rtol=1e-14)
    np.testing.assert_allclose(g, fn(x) + x * d1(x), rtol=1e-13)
    second = symdiff.derivative(fn, 2, backend="numba")
    np.testing.assert_allclose(second(x), symdiff.derivative(fn, 2)(x), rtol=1e-13)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_in_place_program_calls_the_ufunc_with_out(name):
    a = placeholder(0)
    body = sympy.sympify(ufuncs.UNARY[name](2 * a + 1)) * 3 + a
    shapes = {"a0": (inplace.MIN_SIZE,), "t": (inplace.MIN_SIZE,)}
    calls = inplace.rewrite([{"op": "assign", "target": "t", "expr": "", "sexpr": body}], ["t"], shapes,
                            printing.print_expr)
    assert {"op": "call", "target": "t", "fn": f"np.{name}", "args": ["t"]} in calls, calls


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_in_place_path_values_and_derivatives(name):
    fn, d1, few = ENTRIES[name]
    x = np.resize(few, inplace.MIN_SIZE + 7)
    t = symdiff.value_and_grad(lambda x: np.sum(fn(2 * x + 1) * x))
    assert ", out=" in t.source(x)
    value, g = t(x)
    np.testing.assert_allclose(value, np.sum(fn(2 * x + 1) * x), rtol=1e-12)
    np.testing.assert_allclose(g, fn(2 * x + 1) + 2 * x * d1(2 * x + 1), rtol=1e-12)


def _printed_functions(backend):
    for func in ufuncs.printed(backend):
        for n in (1, 2):
            args = sympy.symbols("a b")[:n]
            try:
                yield func, func(*args), args
                break
            except (TypeError, ValueError):
                continue


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_every_printed_function_keeps_its_meaning_as_an_operand(backend):
    """x / f(a), x ** f(a), f(a) ** 2, -f(a) and x * f(a) ** -2 as printed equal the same arithmetic
    on the printed f(a) alone (a printed quotient such as the sigmoid's must be parenthesized:
    x/1/(1 + exp(-a)) is x * sigmoid(a), a silent wrong value)."""
    import math

    printer = printing._PRINTER if backend == "numpy" else printing._NUMBA
    x = sympy.Symbol("x")
    scope = {"np": np, "math": math, "a": 0.3, "b": 0.7, "x": 1.9}
    try:
        import scipy.special

        scope["scipy"] = scipy
    except ImportError:
        pass
    checked = 0
    for func, call, _ in _printed_functions(backend):
        text = printer.doprint(call)
        if "scipy." in text and "scipy" not in scope:
            continue
        with np.errstate(all="ignore"):
            try:
                f = eval(text, scope)  # noqa: S307
            except ValueError:  # outside the domain of a math function at these arguments
                continue
            if isinstance(f, (bool, np.bool_)) or not np.isfinite(f) or f == 0:
                continue  # comparisons, and values these identities cannot test
            for expr, expected in (
                (x / call, 1.9 / f),
                (x**call, 1.9**f),
                (call**2, f**2),
                (-call, -f),
                (x * call**-2, 1.9 * f**-2),
            ):
                got = eval(printer.doprint(expr), scope)  # noqa: S307
                np.testing.assert_allclose(got, expected, rtol=1e-14, equal_nan=True, err_msg=f"{func}: {expr}")
        checked += 1
    assert checked >= 10


def test_a_quotient_by_the_sigmoid_is_right_end_to_end():
    pytest.importorskip("scipy")
    import scipy.special as sp

    for backend in ("numpy", "numba"):
        if backend == "numba":
            pytest.importorskip("numba")
        s = 1 / (1 + np.exp(-0.4))
        for argnums in (0, (0, 1)):
            value, grads = symdiff.value_and_grad(
                lambda x, y: x / sp.expit(y), argnums=argnums, signature="(),()->()", backend=backend
            )(0.3, 0.4)
            expected = [1 / s, -0.3 * (1 - s) / s][: 1 if argnums == 0 else 2]
            np.testing.assert_allclose([value, *np.atleast_1d(grads)], [0.3 / s, *expected], rtol=1e-13)
