"""Printers of scalar SymPy bodies, one per backend: numpy source (``Printer``) and scalar code for
numba kernels (``NumbaPrinter``). Shared by the emitter and the evaluator (which runs bodies with
the very printer generated code uses).

Here: numbers, powers and selects. How each elementwise function prints on each backend is stated
in its entry of the table (``ops.ufuncs``) and installed below as the printers' ``_print_<Function>``.
"""

from __future__ import annotations

from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from .ops import ufuncs


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


class NumbaPrinter(PythonCodePrinter):
    """Scalar code for numba kernels: ``math`` functions and conditional expressions, no arrays."""

    exp_bound = 708.0

    def _print_Where(self, expr):
        c, x, y = (self._print(a) for a in expr.args)
        return f"({x} if {c} else {y})"

    def _print_Float(self, expr):
        return _float_text(float(expr), "math")


def _table_method(form):
    """A ``_print_<Function>`` method from a printed form of the table (see ``ops.ufuncs``)."""
    if callable(form):
        return lambda self, expr: form(self, expr)
    if "{" in form:
        return lambda self, expr: form.format(*(self._print(a) for a in expr.args))
    return lambda self, expr: f"{form}({', '.join(self._print(a) for a in expr.args)})"


for _printer, _backend in ((Printer, "numpy"), (NumbaPrinter, "numba")):
    for _func, _form in ufuncs.printed(_backend).items():
        setattr(_printer, f"_print_{_func.__name__}", _table_method(_form))


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
