"""Printers of scalar SymPy bodies, one per backend: numpy source (``Printer``), scalar code for
numba kernels (``NumbaPrinter``) and code on the Python array API standard (``ArrayAPIPrinter``). Shared by the emitter and the evaluator (which runs bodies with
the very printer generated code uses).

Here: numbers, powers and selects. How each elementwise function prints on each backend is stated
in its entry of the table (``ops.ufuncs``) and installed below as the printers' ``_print_<Function>``.
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy.codegen.cfunctions import log1p
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from .ops import ufuncs
from .ops.base import numpy_dtype_name
from .errors import CompileError
from .primitives import GreaterEqual, LessEqual, LogAddExp, Max, Min, Sigmoid, Where


class Printer(NumPyPrinter):
    """SymPy's numpy printer with ``np.`` names, round-tripping floats, and the table's functions."""

    def _module_format(self, fqn, register=True):
        return "np." + fqn[len("numpy.") :] if fqn.startswith("numpy.") else super()._module_format(fqn, register)

    def _print_Pow(self, expr, rational=False):
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, 50)}"
        return super()._print_Pow(expr, rational)

    def _print_Float(self, expr):
        return _float_text(float(expr), "np")

    float_type = "float64"  # the float32 printer's numbers in np.where are np.float32

    def _print_Where(self, expr):
        c, x, y = (self._print(a) for a in expr.args)
        if expr.args[1].is_number and expr.args[2].is_number:  # np.where(c, 2, 3) would be an int array
            x, y = (self._float_number(a) for a in expr.args[1:])
        return f"np.where({c}, {x}, {y})"

    def _float_number(self, value):
        text = _float_text(float(value), "np")
        return text if self.float_type == "float64" else f"np.{self.float_type}({text})"

    exp_bound = 708.0  # exp(708) is finite in float64; the float32 printer uses 87


def _float_text(f: float, module: str) -> str:
    """A float literal that round-trips, with inf and nan spelled through ``module``."""
    if f != f:
        return f"{module}.nan"
    if f in (float("inf"), float("-inf")):
        return f"{module}.inf" if f > 0 else f"-{module}.inf"
    return repr(f)


def _constant_value(expr):
    """The float value of a function of numbers alone, as numpy computes it (SymPy cannot evaluate
    symdiff's own functions, Copysign say); None when it is not a real number."""
    try:
        return float(expr)
    except TypeError:
        pass
    try:
        with np.errstate(all="ignore"):
            value = eval(_PRINTER.doprint(expr), {"np": np})  # the numpy backend's text of this constant
        return float(value) if np.ndim(value) == 0 and np.isrealobj(value) else None
    except Exception:  # anything unprintable or not a number: printed as the expression instead
        return None


class NumbaPrinter(PythonCodePrinter):
    """Scalar code for numba kernels: ``math`` functions and conditional expressions, no arrays."""

    exp_bound = 708.0

    def _print_Where(self, expr):
        c, x, y = (self._print(a) for a in expr.args)
        return f"({x} if {c} else {y})"

    def _print_Float(self, expr):
        return _float_text(float(expr), "math")

    def call(self, name: str, arg: str, exact: bool = False) -> str:
        """The call of the table's function ``name`` on printed ``arg``, for printed forms that compose
        calls (the stable sigmoid: exp of a clipped argument); ``exact``: the argument keeps a fast helper
        libm-exact (no rerun)."""
        return f"math.{name}({arg})"


class NumbaFastPrinter(NumbaPrinter):
    """The numba printer with the table's vectorizable helpers (``_fast_exp``...) in place of ``math``
    calls that keep LLVM from vectorizing a loop. One per kernel: ``calls`` collects (helper, test,
    printed argument) per call; the test ``_far_<test>`` is True where the helper is not libm-exact
    (the driver reruns those points on ``math``); None for a call that is exact everywhere."""

    def __init__(self, settings=None):
        super().__init__(settings)
        self.calls: list = []

    def call(self, name: str, arg: str, exact: bool = False) -> str:
        fast = {n: f for n, f in ufuncs.fast_numba().values()}
        if name not in fast:
            return super().call(name, arg, exact)
        self.calls.append((name, None if exact else fast[name], arg))
        return f"_fast_{name}({arg})"


def _fast_method(name, far, libm):
    def method(self, expr):
        if expr.args[0].is_number:  # log(2) from SymPy's algebra: a constant, and an int the helpers do not take
            return libm(self, expr)
        arg = self._print(expr.args[0])
        self.calls.append((name, far, arg))
        return f"_fast_{name}({arg})"

    return method


def libm_text(text: str) -> str:
    """A fast kernel's line with the table's ``math`` calls back in place of its helpers (the rerun)."""
    for func, (name, _) in ufuncs.fast_numba().items():
        text = text.replace(f"_fast_{name}(", f"{ufuncs.printed('numba')[func]}(")
    return text


class ArrayAPIPrinter(Printer):
    """The numpy printer on the array API standard: ``xp.`` functions, where the standard has them.

    The generated function defines ``xp`` (its inputs' namespace), ``_dtype`` (their float dtype) and
    ``_device``. A function the standard lacks raises CompileError naming it as a program spells it."""

    def _module_format(self, fqn, register=True):
        if fqn.startswith("numpy."):
            name = fqn[len("numpy.") :]
            if name in _STANDARD_NAMES:
                return "xp." + _STANDARD_NAMES[name]
        raise CompileError(f"{fqn.replace('numpy.', 'np.')} has no array API equivalent; use backend='numpy'")

    def _print_Float(self, expr):
        return _float_text(float(expr), "xp")

    def _print(self, expr, **kwargs):
        # A function of numbers alone (log(2), sqrt(6) from SymPy's algebra, copysign(1, -1)) as its
        # value: the standard's functions take arrays only (xp.log(2) is a TypeError on
        # array_api_strict and PyTorch)
        if isinstance(expr, sympy.Expr) and not expr.is_Atom and expr.is_number:
            value = _constant_value(expr)
            if value is not None and np.isfinite(value):
                return _float_text(value, "xp")
        return super()._print(expr, **kwargs)

    def _print_Where(self, expr):
        c, x, y = (self._print(a) for a in expr.args)
        if expr.args[1].is_number and expr.args[2].is_number:  # the standard needs one array among x, y
            x = f"xp.asarray({_float_text(float(expr.args[1]), 'xp')}, dtype=_dtype, device=_device)"
        return f"xp.where({c}, {x}, {y})"


# numpy's names in SymPy's numpy printer -> the standard's (constants and elementwise functions)
_STANDARD_NAMES = {
    **{n: n for n in ("sqrt", "exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "floor", "ceil", "sign",
                      "log1p", "expm1", "log2", "log10", "pi", "e", "inf", "nan", "abs", "maximum", "minimum",
                      "logaddexp", "hypot", "trunc", "remainder", "copysign", "round", "square", "where")},
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh", "arccosh": "acosh",
    "arctanh": "atanh", "arctan2": "atan2", "power": "pow", "absolute": "abs", "mod": "remainder",
}


def _no_standard(spelled):
    def refuse(self, expr):
        raise CompileError(f"{spelled} has no array API equivalent; use backend='numpy'")

    return refuse


def _table_method(form):
    """A ``_print_<Function>`` method from a printed form of the table (see ``ops.ufuncs``)."""
    if callable(form):
        return lambda self, expr: form(self, expr)
    if "{" in form:
        return lambda self, expr: form.format(*(self._print(a) for a in expr.args))
    return lambda self, expr: f"{form}({', '.join(self._print(a) for a in expr.args)})"


for _printer, _backend in ((Printer, "numpy"), (NumbaPrinter, "numba"), (ArrayAPIPrinter, "array_api")):
    for _func, _form in ufuncs.printed(_backend).items():
        setattr(_printer, f"_print_{_func.__name__}", _table_method(_form))
for _func, (_name, _far) in ufuncs.fast_numba().items():
    setattr(NumbaFastPrinter, f"_print_{_func.__name__}",
            _fast_method(_name, _far, _table_method(ufuncs.printed("numba")[_func])))
for _func, _spelled in ufuncs.without_array_api().items():
    setattr(ArrayAPIPrinter, f"_print_{_func.__name__}", _no_standard(_spelled))


_SETTINGS = {"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False}
_NUMBA = NumbaPrinter({"fully_qualified_modules": True})
_NUMBA32 = NumbaPrinter({"fully_qualified_modules": True})
_NUMBA32.exp_bound = 87.0
_PRINTER = Printer(_SETTINGS)
_PRINTER32 = Printer(_SETTINGS)
_PRINTER32.exp_bound = 87.0
_PRINTER32.float_type = "float32"
_ARRAY_API = ArrayAPIPrinter(_SETTINGS)
_ARRAY_API32 = ArrayAPIPrinter(_SETTINGS)
_ARRAY_API32.exp_bound = 87.0


def _print(expr, single_precision: bool = False) -> str:
    """numpy source for a scalar body; ``single_precision`` picks float32-safe overflow bounds."""
    return wrap((_PRINTER32 if single_precision else _PRINTER).doprint(expr))


WRAP_AT = 96


def wrap(text: str) -> str:
    """A long printed expression split at its top-level + and - into a parenthesized block, one term
    per line (the templates indent the continuation lines), as a person would format it."""
    if len(text) <= WRAP_AT:
        return text
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in "+-" and i > 0 and text[i - 1] == " " and text[i + 1 : i + 2] == " ":
            terms.append(text[start:i].rstrip())
            start = i
    terms.append(text[start:])
    if len(terms) == 1:
        return text
    return "(\n    " + "\n    ".join(t.strip() for t in terms) + "\n)"


print_expr = _print


def array_literal(value: np.ndarray) -> str:
    """numpy source that rebuilds ``value`` exactly (floats round-trip; nan, inf and -0.0 kept)."""
    return f"np.array({nested_list(value)}, dtype=np.{numpy_dtype_name(value.dtype)})"


def nested_list(value: np.ndarray, module: str = "np") -> str:
    """``value`` as nested Python lists in source (nan and inf spelled through ``module``)."""
    def text(v):
        if isinstance(v, list):
            return "[" + ", ".join(text(x) for x in v) + "]"
        if isinstance(v, float):
            return _float_text(v, module) if v == v and abs(v) != float("inf") else f'float("{v}")'
        return repr(v)

    return text(value.tolist())


def share_exp(bodies: list) -> list:
    """Stable forms hide an exp each: Sigmoid(u) is printed with its own (clipped) exp(-u) and numpy's
    logaddexp(0, u) computes exp(-|u|) inside. Where the function needs that exp elsewhere, write the
    forms with the exp itself, so that cse computes it once:

    * Sigmoid(u) beside exp(-u): 1/(1 + exp(-u)) (exp(-u) = inf gives 0, not NaN);
    * logaddexp(0, u) beside Sigmoid(+-u) (value and gradient of a softplus): with E = exp(-|u|) <= 1,
      max(u, 0) + log1p(E) and where(u >= 0, 1, E)/(1 + E), which cannot overflow either."""
    exps = set().union(*(b.atoms(sympy.exp) for b in bodies))
    sigmoids = set().union(*(b.atoms(Sigmoid) for b in bodies))
    if not sigmoids:
        return bodies
    softplus = {a: a.args[1 - a.args.index(0)] for b in bodies for a in b.atoms(LogAddExp) if 0 in a.args}
    shared = {sympy.Abs(u) for u in softplus.values()} & {sympy.Abs(s.args[0]) for s in sigmoids}
    forms = {}
    for a, u in softplus.items():
        if sympy.Abs(u) in shared:  # (of u = -v: -min(v, 0), without an array for -v)
            positive_part = -Min(-u, 0) if u.could_extract_minus_sign() else Max(u, 0)
            forms[a] = positive_part + log1p(sympy.exp(-sympy.Abs(u)))
    for s in sigmoids:
        u = s.args[0]
        if sympy.Abs(u) in shared:
            e = sympy.exp(-sympy.Abs(u))
            nonnegative = LessEqual(-u, 0) if u.could_extract_minus_sign() else GreaterEqual(u, 0)
            forms[s] = Where(nonnegative, 1, e) / (1 + e)
        elif sympy.exp(-u) in exps:
            forms[s] = 1 / (1 + sympy.exp(-u))
    return [b.xreplace(forms) for b in bodies] if forms else bodies
