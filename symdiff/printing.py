"""Printers of scalar SymPy bodies, one per backend: numpy source (``Printer``) and scalar code for
numba kernels (``NumbaPrinter``). Shared by the emitter and the evaluator (which runs bodies with
the very printer generated code uses).
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy.codegen.cfunctions import log1p
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from .ops.base import numpy_dtype_name
from .primitives import GreaterEqual, LessEqual, LogAddExp, Sigmoid, Where, _Comparison


class Printer(NumPyPrinter):
    """SymPy's numpy printer with ``np.`` names and stable, broadcasting forms of our functions."""

    def _module_format(self, fqn, register=True):
        return "np." + fqn[len("numpy.") :] if fqn.startswith("numpy.") else super()._module_format(fqn, register)

    # scipy.special functions SymPy has (the others print themselves: primitives._Special)
    def _print_erf(self, expr):
        return f"scipy.special.erf({self._print(expr.args[0])})"

    def _print_erfc(self, expr):
        return f"scipy.special.erfc({self._print(expr.args[0])})"

    def _print_loggamma(self, expr):
        return f"scipy.special.gammaln({self._print(expr.args[0])})"

    def _print_polygamma(self, expr):
        n, x = expr.args
        if n == 0:
            return f"scipy.special.digamma({self._print(x)})"
        return f"scipy.special.polygamma({self._print(n)}, {self._print(x)})"

    def _print_Pow(self, expr, rational=False):
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, 50)}"
        return super()._print_Pow(expr, rational)

    def _print_Float(self, expr):
        return _float_text(float(expr), "np")

    def _print_Heaviside(self, expr):
        return f"np.heaviside({self._print(expr.args[0])}, 0.5)"

    float_type = "float64"  # the float32 printer's numbers in np.where are np.float32

    def _print_Where(self, expr):
        c, x, y = (self._print(a) for a in expr.args)
        if expr.args[1].is_number and expr.args[2].is_number:  # np.where(c, 2, 3) would be an int array
            x, y = (self._float_number(a) for a in expr.args[1:])
        return f"np.where({c}, {x}, {y})"

    def _float_number(self, value):
        text = _float_text(float(value), "np")
        return text if self.float_type == "float64" else f"np.{self.float_type}({text})"

    def _print_LogAddExp(self, expr):
        return f"np.logaddexp({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    exp_bound = 708.0  # exp(708) is finite in float64; the float32 printer uses 87

    def _print_Sigmoid(self, expr):
        b = self.exp_bound
        return f"1/(1 + np.exp(np.clip(-{self.parenthesize(expr.args[0], 100)}, -{b}, {b})))"

    def _print_Cbrt(self, expr):
        return f"np.cbrt({self._print(expr.args[0])})"

    def _print_FloorDivide(self, expr):
        return f"np.floor_divide({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Max(self, expr):
        return self._nested("np.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested("np.minimum", expr.args)

    def _print_sign(self, expr):
        return f"np.sign({self._print(expr.args[0])})"

    def _nested(self, fn, args):
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{fn}({out}, {self._print(a)})"
        return out

    def _print_Function(self, expr):
        if isinstance(expr, _Comparison):
            a, b = (self._print(x) for x in expr.args)
            return f"np.{expr.numpy_name}({a}, {b})"
        return super()._print_Function(expr)


for _cls in (Where, LogAddExp, Sigmoid):
    assert hasattr(Printer, f"_print_{_cls.__name__}")

def _float_text(f: float, module: str) -> str:
    """A float literal that round-trips, with inf and nan spelled through ``module``."""
    if f != f:
        return f"{module}.nan"
    if f in (float("inf"), float("-inf")):
        return f"{module}.inf" if f > 0 else f"-{module}.inf"
    return repr(f)


class NumbaPrinter(PythonCodePrinter):
    """Scalar code for numba kernels: ``math`` functions and conditional expressions, no arrays."""

    exp_bound = 708.0

    def _print_Heaviside(self, expr):
        x = self._print(expr.args[0])
        return f"(1.0 if {x} > 0 else (0.5 if {x} == 0 else 0.0))"

    def _print_sign(self, expr):
        x = self._print(expr.args[0])
        return f"(1.0 if {x} > 0 else (-1.0 if {x} < 0 else 0.0))"

    def _print_Where(self, expr):
        c, x, y = (self._print(a) for a in expr.args)
        return f"({x} if {c} else {y})"

    def _print_LogAddExp(self, expr):
        a, b = (self._print(x) for x in expr.args)
        return f"(max({a}, {b}) + math.log1p(math.exp(-abs(({a}) - ({b})))))"

    def _print_Sigmoid(self, expr):
        b = self.exp_bound
        return f"1/(1 + math.exp(min(max(-{self.parenthesize(expr.args[0], 100)}, -{b}), {b})))"

    def _print_Cbrt(self, expr):
        x = self._print(expr.args[0])
        return f"math.copysign(abs({x})**(1/3), {x})"

    def _print_FloorDivide(self, expr):
        return f"math.floor(({self._print(expr.args[0])}) / ({self._print(expr.args[1])}))"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Float(self, expr):
        return _float_text(float(expr), "math")

    def _print_Function(self, expr):
        if isinstance(expr, _Comparison):
            ops = {"greater": ">", "greater_equal": ">=", "less": "<", "less_equal": "<=", "equal": "==", "not_equal": "!="}
            a, b = (self._print(x) for x in expr.args)
            return f"({a} {ops[expr.numpy_name]} {b})"
        return super()._print_Function(expr)


_SETTINGS = {"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False}
_NUMBA = NumbaPrinter({"fully_qualified_modules": True})
_NUMBA32 = NumbaPrinter({"fully_qualified_modules": True})
_NUMBA32.exp_bound = 87.0
_PRINTER = Printer(_SETTINGS)
_PRINTER32 = Printer(_SETTINGS)
_PRINTER32.exp_bound = 87.0
_PRINTER32.float_type = "float32"


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
    def text(v):
        if isinstance(v, list):
            return "[" + ", ".join(text(x) for x in v) + "]"
        if isinstance(v, float):
            return _float_text(v, "np")
        return repr(v)

    return f"np.array({text(value.tolist())}, dtype=np.{numpy_dtype_name(value.dtype)})"


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
            positive_part = -sympy.Min(-u, 0) if u.could_extract_minus_sign() else sympy.Max(u, 0)
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
