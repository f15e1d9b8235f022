"""The table of elementwise functions: one entry per numpy or scipy.special ufunc symdiff traces.

An entry says everything about one function: the names a traced program calls it by, its meaning
as a SymPy body of its operands (SymPy then gives every derivative), how the SymPy function it is
made of prints in numpy code and in numba kernels, the ufunc that computes it into a buffer
(``out=``, the in-place path of large arrays), its result dtype where that is not the operands'
(comparisons give bool), and its derivative convention where one is needed. The tracer, both
printers, the in-place pass and docs/operations.md read this table. (Still outside it: the in-place
sequences of ``Sigmoid``, ``Max``/``Min`` and ``Heaviside``, which are more than one ufunc call.)

Adding a ufunc is adding an entry (and a SymPy function above it if SymPy has none; its test in
tests/test_differentiate.py or tests/test_scipy_special.py). The SymPy functions only one entry
uses are defined here, beside it; those other stages build or rewrite to as well (``Where``, the
comparisons, ``LogAddExp``, ``Sigmoid``: differentiation, stable forms, np.where, the emitter) stay
in ``primitives``, as does ``_Special``, the marker of functions taken from scipy.special.

A printed form (``numpy``, ``numba``) is a function name called on the printed arguments
(``"np.exp"``), a format string of them (``"math.pow(2.0, {0})"``), or ``f(printer, expr)``.
``numba=None``: no scalar form for numba kernels (scipy.special; such bodies run as numpy code).
``array_api`` (``xp=`` of an entry): the form in code on the Python array API standard (``xp.sin``);
None where the standard has no such function (compiling with ``backend="array_api"`` says so).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import sympy
from sympy.codegen.cfunctions import exp2, expm1, log1p, log2, log10

from ..primitives import (
    Equal,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    LogAddExp,
    Max,
    Min,
    NotEqual,
    Sigmoid,
    Where,
    _Special,
)


@dataclass(frozen=True)
class Printed:
    """How one SymPy function prints on each backend."""

    func: type
    numpy: object
    numba: object = None
    array_api: object = None  # None: the array API standard has no such function
    numba_fast: str | None = None  # a branch-free helper of templates/numba_math.j2 (see ``fast_numba``)
    numba_far: str | None = None  # its test of points to rerun on math, if not ``_far_<numba_fast>``


@dataclass(frozen=True)
class Ufunc:
    """One elementwise function (see the module docstring)."""

    names: tuple  # as a program spells it: numpy's name (aliases after it), or scipy.special's
    nin: int
    body: Callable  # operands (SymPy symbols or numbers) -> the SymPy expression
    printed: tuple = ()  # how the SymPy functions of its body (first) and its derivatives print
    out: str | None = None  # the ufunc writing the value of printed[0] into out=
    dtype: str | None = None  # the result dtype, if not the operands'
    convention: str = ""  # what the derivative is where it is not defined everywhere
    library: str = "numpy"

    @property
    def name(self) -> str:
        return self.names[0]


def ufunc(names, nin, body, numpy=None, numba=None, out=None, *, func=None, also=(), library="numpy", xp=None,
          fast=None, far=None, **kw) -> Ufunc:
    """An entry. ``numpy``/``numba``: how ``func`` prints, the SymPy function the body is made of (the
    body itself when it is one; arithmetic needs none, SymPy prints it); ``also``: the printing of
    functions only its derivatives contain; ``xp``: how ``func`` prints on the array API backend; ``fast``:
    its vectorizable helper in numba loops (templates/numba_math.j2), where it has one; ``far``: the
    helper's test of points to rerun on math, when functions share it (sin and cos: one reduction)."""
    names = (names,) if isinstance(names, str) else tuple(names)
    func = func or (body if isinstance(body, sympy.FunctionClass) else None)
    printed = (Printed(func, numpy, numba, xp, fast, far),) if numpy or numba else ()
    return Ufunc(names, nin, body, printed + tuple(also), out, library=library, **kw)


def special(name, nin, body, numpy=None, numba=None, **kw) -> Ufunc:
    """A scipy.special ufunc, printed in numpy code as the scipy.special call of its name unless stated."""
    if numpy is None and isinstance(kw.get("func") or body, sympy.FunctionClass):
        numpy = f"scipy.special.{name}"
    return ufunc(name, nin, body, numpy, numba, library="scipy.special", **kw)


# ---------------------------------------------------------------------------------------------
# SymPy functions of single entries (SymPy has no such function, or not with numpy's conventions)
# ---------------------------------------------------------------------------------------------


class Cbrt(sympy.Function):
    """The real cube root (``numpy.cbrt``): defined for negative arguments, unlike ``x**(1/3)``."""

    nargs = 1

    def fdiff(self, argindex=1):
        return 1 / (3 * Cbrt(self.args[0]) ** 2)


class FloorDivide(sympy.Function):
    """``numpy.floor_divide``: ``floor(a / b)`` computed as numpy does (``a / 0.1`` must not become
    ``a * 10.0``); piecewise constant, so its derivative is zero."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sympy.S.Zero


class ZeroPower(sympy.Function):
    """``0.0**y`` for a traced exponent: numpy's value (1 at 0, 0 above, inf below) with JAX's
    derivatives (0 for y >= 0 at every order, NaN below, where the value is inf). SymPy's own
    ``0**y`` differentiates to ``0**y*log(0)``, NaN everywhere, and ``zoo`` at higher orders."""

    nargs = 1

    @classmethod
    def eval(cls, y):
        if y.is_number and y.is_extended_real:
            return sympy.S.Zero if y > 0 else sympy.S.One if y == 0 else sympy.oo
        return None

    def fdiff(self, argindex=1):
        return ZeroPowerSlope(self.args[0])


class ZeroPowerSlope(sympy.Function):
    """Every derivative of ``ZeroPower``: ``0 * 0.0**y`` as JAX computes it (log of the zero base
    replaced by log(1)), so 0 for y >= 0 and NaN for y < 0 (0 * inf) or a NaN y."""

    nargs = 1

    @classmethod
    def eval(cls, y):
        if y.is_number and y.is_extended_real:
            return sympy.S.Zero if y >= 0 else sympy.nan
        return None

    def fdiff(self, argindex=1):
        return self


class Remainder(sympy.Function):
    """``numpy.remainder`` (Python's ``%``: the sign of the divisor). Piecewise ``a - b*floor(a/b)``,
    so its derivatives are 1 and ``-floor(a/b)`` (as JAX), whatever side of a jump."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sympy.S.One if argindex == 1 else -FloorDivide(a, b)


class TruncDivide(sympy.Function):
    """``trunc(a / b)`` as numpy computes it: the derivative of ``fmod`` in its divisor; zero slopes."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sympy.S.Zero


class Fmod(sympy.Function):
    """``numpy.fmod`` (C's fmod: the sign of the dividend), ``a - b*trunc(a/b)``."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sympy.S.One if argindex == 1 else -TruncDivide(a, b)


class Copysign(sympy.Function):
    """``numpy.copysign``: ``|a|`` with the sign of ``b`` (of -0.0 too); its slope in ``a`` is
    ``sign(a)*copysign(1, b)`` (0 at a == 0, as for abs), in ``b`` zero."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sympy.sign(a) * Copysign(sympy.S.One, b) if argindex == 1 else sympy.S.Zero


class NumpyHeaviside(sympy.Function):
    """``numpy.heaviside(a, h0)``: 0, ``h0`` at a == 0, 1; slope 0 in ``a`` (as JAX), and in ``h0``
    1 exactly where a == 0."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, _ = self.args
        return sympy.S.Zero if argindex == 1 else Where(Equal(a, 0), 1, 0)


def _sinc_series(x, order: int = 18):
    """sin(pi x)/(pi x) as its Taylor polynomial: exact to rounding for |x| < 1e-3, at every order."""
    return sum((-1) ** k * (sympy.pi * x) ** (2 * k) / sympy.factorial(2 * k + 1) for k in range(order // 2 + 1))


class Sinc(sympy.Function):
    """``numpy.sinc``, sin(pi x)/(pi x) and 1 at 0. Near 0 its derivative is that of the Taylor
    polynomial (no 0/0 at any order); elsewhere the quotient rule."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        near = Less(x**2, sympy.Float(1e-6))
        return Where(near, sympy.diff(_sinc_series(x), x), (sympy.cos(sympy.pi * x) - Sinc(x)) / x)


def _power(a, b):
    if a == 0 and isinstance(a, sympy.Basic) and a.is_number and not b.is_number:
        return ZeroPower(b)
    return a**b


class Ndtr(_Special):
    """The standard normal CDF."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)


class Erfcx(_Special):
    """The scaled complementary error function exp(x**2) erfc(x)."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return 2 * x * Erfcx(x) - 2 / sympy.sqrt(sympy.pi)


class LogNdtr(_Special):
    """log of the normal CDF; its derivative (the inverse Mills ratio) through erfcx stays finite
    where the CDF underflows."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sympy.sqrt(2 / sympy.pi) / Erfcx(-x / sympy.sqrt(2))


class XLogY(_Special):
    """x*log(y), 0 where x == 0 (scipy's convention)."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        return sympy.log(y) if argindex == 1 else x / y


class XLog1pY(_Special):
    """x*log1p(y), 0 where x == 0 (scipy's convention)."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        return log1p(y) if argindex == 1 else x / (1 + y)


class I0e(_Special):
    """The exponentially scaled modified Bessel function of order 0, exp(-|x|) I0(x)."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return I1e(x) - sympy.sign(x) * I0e(x)


class I1e(_Special):
    """exp(-|x|) I1(x); its derivative holds I1(x)/x, whose value at 0 is its limit 1/2."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return Where(Equal(x, 0), sympy.S.Half, I0e(x) - I1e(x) / x - sympy.sign(x) * I1e(x))


# ---------------------------------------------------------------------------------------------
# Printed forms that are more than a call
# ---------------------------------------------------------------------------------------------


def _nested(fn):
    """``np.maximum(np.maximum(a, b), c)``: numpy's binary ufunc applied to SymPy's n-ary Max."""

    def text(printer, expr):
        out = printer._print(expr.args[0])
        for a in expr.args[1:]:
            out = f"{fn}({out}, {printer._print(a)})"
        return out

    return text


def _sigmoid_numpy(printer, expr):
    """1/(1 + exp(-x)) with -x clipped to the printer's ``exp_bound``: never overflows."""
    b = printer.exp_bound
    return f"1/(1 + np.exp(np.clip(-{printer.parenthesize(expr.args[0], 100)}, -{b}, {b})))"


def _sigmoid_numba(printer, expr):
    b = printer.exp_bound
    # exp of the clipped argument is never subnormal nor inf: a fast helper is exact there
    return f"1/(1 + {printer.call('exp', f'min(max(-{printer.parenthesize(expr.args[0], 100)}, -{b}), {b})', exact=True)})"


def _polygamma(printer, expr):
    n, x = expr.args
    if n == 0:
        return f"scipy.special.digamma({printer._print(x)})"
    return f"scipy.special.polygamma({printer._print(n)}, {printer._print(x)})"


SIGN = "(1.0 if {0} > 0 else (-1.0 if {0} < 0 else 0.0))"
def _sigmoid_xp(printer, expr):
    return _sigmoid_numpy(printer, expr).replace("np.", "xp.")


HEAVISIDE = Printed(sympy.Heaviside, "np.heaviside({0}, 0.5)", "(1.0 if {0} > 0 else (0.5 if {0} == 0 else 0.0))",
                    "((xp.sign({0}) + 1)/2)")  # 0, 1/2 and 1, as np.heaviside(x, 0.5)
SIGMOID = Printed(Sigmoid, _sigmoid_numpy, _sigmoid_numba, _sigmoid_xp)
STEP = "0 (as JAX)"
TIES = "0.5/0.5 split at ties"


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

TABLE = (
    # -- numpy, one operand ---------------------------------------------------------------------
    ufunc("negative", 1, lambda a: -a),
    ufunc("positive", 1, lambda a: a),
    ufunc("absolute", 1, sympy.Abs, "abs", "abs", "np.absolute", convention="sign(x): 0 at 0 (JAX gives 1)", xp="abs"),
    ufunc("fabs", 1, sympy.Abs, "abs", "abs", "np.absolute", convention="sign(x): 0 at 0", xp="abs"),
    ufunc("sign", 1, sympy.sign, "np.sign", SIGN, "np.sign", convention="0", xp="xp.sign"),
    ufunc("exp", 1, sympy.exp, "np.exp", "math.exp", "np.exp", xp="xp.exp", fast="exp"),
    ufunc("exp2", 1, exp2, "np.exp2", "math.pow(2.0, {0})", "np.exp2", xp="2.0**({0})"),
    ufunc("expm1", 1, expm1, "np.expm1", "math.expm1", "np.expm1", xp="xp.expm1"),
    ufunc("log", 1, sympy.log, "np.log", "math.log", "np.log", xp="xp.log", fast="log"),
    ufunc("log2", 1, log2, "np.log2", "math.log2", "np.log2", xp="xp.log2"),
    ufunc("log10", 1, log10, "np.log10", "math.log10", "np.log10", xp="xp.log10"),
    ufunc("log1p", 1, log1p, "np.log1p", "math.log1p", "np.log1p", xp="xp.log1p"),
    ufunc("sqrt", 1, sympy.sqrt, convention="inf at 0, as numpy's value suggests"),
    ufunc("cbrt", 1, Cbrt, "np.cbrt", "math.copysign(abs({0})**(1/3), {0})", "np.cbrt",
          convention="real cube root of negative numbers", xp="xp.sign({0})*xp.abs({0})**(1/3)"),
    ufunc("square", 1, lambda a: a**2),
    ufunc("reciprocal", 1, lambda a: 1 / a),
    ufunc("sin", 1, sympy.sin, "np.sin", "math.sin", "np.sin", xp="xp.sin", fast="sin", far="pio2"),
    ufunc("cos", 1, sympy.cos, "np.cos", "math.cos", "np.cos", xp="xp.cos", fast="cos", far="pio2"),
    ufunc("tan", 1, sympy.tan, "np.tan", "math.tan", "np.tan", xp="xp.tan"),
    ufunc("arcsin", 1, sympy.asin, "np.arcsin", "math.asin", "np.arcsin", xp="xp.asin"),
    ufunc("arccos", 1, sympy.acos, "np.arccos", "math.acos", "np.arccos", xp="xp.acos"),
    ufunc("arctan", 1, sympy.atan, "np.arctan", "math.atan", "np.arctan", xp="xp.atan"),
    ufunc("sinh", 1, sympy.sinh, "np.sinh", "math.sinh", "np.sinh", xp="xp.sinh"),
    ufunc("cosh", 1, sympy.cosh, "np.cosh", "math.cosh", "np.cosh", xp="xp.cosh"),
    ufunc("tanh", 1, sympy.tanh, "np.tanh", "math.tanh", "np.tanh", xp="xp.tanh"),
    ufunc("arcsinh", 1, sympy.asinh, "np.arcsinh", "math.asinh", "np.arcsinh", xp="xp.asinh"),
    ufunc("arccosh", 1, sympy.acosh, "np.arccosh", "math.acosh", xp="xp.acosh"),  # not in place yet (generated code as before)
    ufunc("arctanh", 1, sympy.atanh, "np.arctanh", "math.atanh", "np.arctanh", xp="xp.atanh"),
    ufunc(("deg2rad", "radians"), 1, lambda a: a * sympy.pi / 180),
    ufunc(("rad2deg", "degrees"), 1, lambda a: a * 180 / sympy.pi),
    ufunc("sinc", 1, Sinc, "np.sinc", "(1.0 if {0} == 0 else math.sin(math.pi*{0})/(math.pi*{0}))",
          convention="derivatives at 0 from the Taylor series (no 0/0)",
          xp="xp.where({0} == 0, 1.0, xp.sin(xp.pi*{0})/(xp.pi*xp.where({0} == 0, 1.0, {0})))"),
    ufunc("floor", 1, sympy.floor, "np.floor", "math.floor", "np.floor", convention=STEP, xp="xp.floor"),
    ufunc("ceil", 1, sympy.ceiling, "np.ceil", "math.ceil", "np.ceil", convention=STEP, xp="xp.ceil"),
    # -- numpy, two operands --------------------------------------------------------------------
    ufunc("add", 2, lambda a, b: a + b),
    ufunc("subtract", 2, lambda a, b: a - b),
    ufunc("multiply", 2, lambda a, b: a * b),
    ufunc(("true_divide", "divide"), 2, lambda a, b: a / b),
    ufunc(("power", "float_power"), 2, _power, convention="d/dy 0.0**y follows JAX: 0 for y >= 0", also=(
        Printed(ZeroPower, "np.power(0.0, {0})", "(math.inf if ({0}) < 0 else 0.0 ** ({0}))", "0.0**({0})"),
        Printed(ZeroPowerSlope, "(0.0*np.power(0.0, {0}))", "(0.0 if ({0}) >= 0 else math.nan)", "(0.0*0.0**({0}))"),
    )),
    ufunc("floor_divide", 2, FloorDivide, "np.floor_divide", "math.floor(({0}) / ({1}))",
          convention="0 (as JAX); values as numpy computes them", xp="xp.floor_divide"),  # not in place yet (generated code as before)
    ufunc(("remainder", "mod"), 2, Remainder, "np.remainder", "(({0}) % ({1}))",
          convention="d/da 1, d/db -floor(a/b) (as JAX), also at the jumps", xp="xp.remainder"),
    ufunc("fmod", 2, Fmod, "np.fmod", "math.fmod", convention="d/da 1, d/db -trunc(a/b), also at the jumps", also=(
        Printed(TruncDivide, "np.trunc(({0}) / ({1}))", "float(math.trunc(({0}) / ({1})))", "xp.trunc(({0}) / ({1}))"),)),
    ufunc("copysign", 2, Copysign, "np.copysign", "math.copysign", "np.copysign",
          convention="d/da sign(a)*copysign(1, b): 0 at a == 0; d/db 0", xp="xp.copysign"),
    ufunc("heaviside", 2, NumpyHeaviside, "np.heaviside",
          "(1.0 if {0} > 0 else (({1}) if {0} == 0 else 0.0))",
          convention="d/dx1 0 (as JAX); d/dx2 1 where x1 == 0", xp="xp.where({0} == 0, {1}, (xp.sign({0}) + 1)/2)"),
    ufunc("logaddexp2", 2, lambda a, b: LogAddExp(a * sympy.log(2), b * sympy.log(2)) / sympy.log(2),
          convention="stable: never overflows"),
    ufunc("arctan2", 2, sympy.atan2, "np.arctan2", "math.atan2", xp="xp.atan2"),  # not in place yet (generated code as before)
    ufunc("hypot", 2, lambda a, b: sympy.sqrt(a**2 + b**2)),
    ufunc("logaddexp", 2, LogAddExp, "np.logaddexp",
          "(max({0}, {1}) + math.log1p(math.exp(-abs(({0}) - ({1})))))", "np.logaddexp",
          convention="stable: never overflows", also=(SIGMOID,), xp="xp.logaddexp"),
    ufunc("maximum", 2, Max, _nested("np.maximum"), "max", "np.maximum",
          convention=TIES + " (as JAX)", also=(HEAVISIDE,), xp=_nested("xp.maximum")),
    ufunc("minimum", 2, Min, _nested("np.minimum"), "min", "np.minimum",
          convention=TIES + " (as JAX)", also=(HEAVISIDE,), xp=_nested("xp.minimum")),
    ufunc("fmax", 2, Max, convention=TIES),
    ufunc("fmin", 2, Min, convention=TIES),
    # -- numpy, comparisons: bool arrays, derivative 0 -------------------------------------------
    *(
        ufunc(name, 2, cls, f"np.{name}", f"({{0}} {op} {{1}})", dtype="bool", convention="boolean; derivative 0",
              xp=f"xp.{name}")
        for name, cls, op in [("greater", Greater, ">"), ("greater_equal", GreaterEqual, ">="), ("less", Less, "<"),
                              ("less_equal", LessEqual, "<="), ("equal", Equal, "=="), ("not_equal", NotEqual, "!=")]
    ),
    # -- scipy.special (optional: traced when a function calls them; generated code imports scipy) --
    special("erf", 1, sympy.erf),
    special("erfc", 1, sympy.erfc),
    special("erfcx", 1, Erfcx),
    special("expit", 1, Sigmoid, _sigmoid_numpy, _sigmoid_numba, convention="stable sigmoid", xp=_sigmoid_xp),
    special("logit", 1, lambda a: sympy.log(a / (1 - a))),
    special("gammaln", 1, sympy.loggamma),
    special("digamma", 1, lambda a: sympy.polygamma(0, a), _polygamma, func=sympy.polygamma),
    special("ndtr", 1, Ndtr),
    special("log_ndtr", 1, LogNdtr, convention="derivative through erfcx: finite where the CDF underflows"),
    special("xlogy", 2, XLogY, convention="0 where x == 0 (scipy's convention)"),
    special("xlog1py", 2, XLog1pY, convention="0 where x == 0 (scipy's convention)"),
    special("i0e", 1, I0e, convention="0 at 0, the kink (one-sided: 1 and -1)"),
    special("i1e", 1, I1e, convention="first derivative 1/2 at 0 (the limit)"),
)


# ---------------------------------------------------------------------------------------------
# Views of the table, for the stages that read it
# ---------------------------------------------------------------------------------------------

NUMPY = {(n, e.nin): e for e in TABLE if e.library == "numpy" for n in e.names}
SCIPY = {e.name: e for e in TABLE if e.library == "scipy.special"}
UNARY = {n: e.body for (n, nin), e in NUMPY.items() if nin == 1}  # numpy name -> SymPy body
BINARY = {n: e.body for (n, nin), e in NUMPY.items() if nin == 2}
SPECIAL = {n: e.body for n, e in SCIPY.items()}
BOOLEAN_RESULT = {n for (n, _), e in NUMPY.items() if e.dtype == "bool"}


_SCIPY_PRINTED = (sympy.erf, sympy.erfc, sympy.loggamma, sympy.polygamma, _Special)


def calls_scipy(body) -> bool:
    """True if printing ``body`` calls scipy.special (numba kernels cannot)."""
    return bool(body.atoms(*_SCIPY_PRINTED))


def lookup(name: str, nin: int) -> Ufunc | None:
    """The entry of numpy's ufunc ``name`` called with ``nin`` operands, or None."""
    return NUMPY.get((name, nin))


def scipy_special(uf) -> Ufunc | None:
    """The entry of a scipy.special ufunc, found by identity (``digamma`` is the ufunc ``psi``)
    without importing scipy: a traced function that calls one has imported it."""
    module = sys.modules.get("scipy.special")
    if module is None:
        return None
    return next((e for n, e in SCIPY.items() if getattr(module, n, None) is uf), None)


def printed(backend: str) -> dict:
    """SymPy function -> its printed form on ``backend`` ("numpy", "numba" or "array_api"), where stated."""
    forms = {}
    for entry in TABLE:
        for p in entry.printed:
            form = getattr(p, backend)
            if form is not None and forms.setdefault(p.func, form) != form:
                raise ValueError(f"{p.func.__name__} prints two ways on {backend}")
    return forms


def fast_numba() -> dict:
    """SymPy function -> (its vectorizable helper in templates/numba_math.j2, ``_fast_<name>``; the name
    of its test ``_far_<far>``, True where the helper is not libm-exact and the point reruns on math)."""
    return {p.func: (p.numba_fast, p.numba_far or p.numba_fast) for e in TABLE for p in e.printed if p.numba_fast}


def without_array_api() -> dict:
    """SymPy function -> how a program spells the function (``scipy.special.erf``), for the functions
    of the table the array API standard has no equivalent of."""
    forms = printed("array_api")
    return {p.func: f"{'np' if e.library == 'numpy' else e.library}.{e.name}"
            for e in TABLE for p in e.printed if p.func not in forms}


def out_ufuncs() -> dict:
    """SymPy function -> the ufunc that writes its value into ``out=`` (the in-place path)."""
    return {e.printed[0].func: e.out for e in TABLE if e.out is not None}
