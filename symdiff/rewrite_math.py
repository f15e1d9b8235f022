"""Python's scalar functions on traced values: ``math.sin(x)``, ``max(x, 0.0)``, ``min(a, b, c)``.

``math`` functions convert their argument with ``float()`` and the builtins ``max``/``min`` compare
with ``bool()``, so on a traced value both would stop the trace. The rewritten function (``rewrite.py``)
calls them through ``_sd.convert``, which hands back a twin from here: on plain numbers it is the
Python function itself (same result, same errors); when an argument is traced it is the numpy
function symdiff differentiates (``np.sin``, ``np.maximum``...).
"""

from __future__ import annotations

import builtins
import functools
import math

import numpy as np

from .errors import TraceError, user_location


def _scipy_special(name):
    def call(*args):
        import scipy.special  # only when a traced value reaches math.erf/erfc/lgamma

        return getattr(scipy.special, name)(*args)

    return call


def _log(x, base=None):
    return np.log(x) if base is None else np.log(x) / np.log(base)


_NUMPY_FORM = {
    **{name: getattr(np, name) for name in (
        "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsinh", "exp", "exp2", "expm1", "log1p", "log2",
        "log10", "sqrt", "cbrt", "fabs", "hypot", "floor", "ceil", "copysign", "degrees",
        "radians", "fmod")},
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "atan2": np.arctan2, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "pow": np.power, "log": _log,
    "trunc": lambda x: np.where(x < 0, np.ceil(x), np.floor(x)),
    "erf": _scipy_special("erf"), "erfc": _scipy_special("erfc"), "lgamma": _scipy_special("gammaln"),
}


def _traced(values, spelled: str) -> bool:
    """Whether a value is traced. A traced array of several elements is an error: on a numpy array
    Python's function raises too (only length-1 arrays convert; the truth of an array is ambiguous)."""
    from .rewrite_runtime import is_traced

    found = False
    for v in values:
        if is_traced(v):
            if v.size != 1:
                raise TraceError(
                    f"{spelled} at {user_location()} is given an array of {v.size} elements; Python's {spelled} "
                    "takes single numbers (on a numpy array it raises): use the numpy function, elementwise "
                    "(np.maximum, np.minimum, np.sin, ...)")
            found = True
    return found


@functools.lru_cache(maxsize=None)
def _math_twin(name):
    plain, traced = getattr(math, name), _NUMPY_FORM[name]

    @functools.wraps(plain)
    def twin(*args):
        return traced(*args) if _traced(args, f"math.{name}") else plain(*args)

    return twin


def _extreme(plain, pairwise):
    """``max``/``min`` of several arguments or of one iterable; a traced one takes ``np.maximum``/
    ``np.minimum`` pairwise in Python's order (ties follow symdiff's convention for them)."""

    @functools.wraps(plain)
    def twin(*args, **kwargs):
        if kwargs:  # key=, default=: Python's own
            return plain(*args, **kwargs)
        values = list(args[0]) if len(args) == 1 else args  # one iterable (read once) or the arguments
        if not _traced(values, f"{plain.__name__}()"):
            return plain(values) if len(args) == 1 else plain(*args)
        return functools.reduce(pairwise, values)

    return twin


_BUILTIN_TWINS = {builtins.max: _extreme(builtins.max, np.maximum), builtins.min: _extreme(builtins.min, np.minimum)}
BUILTIN_NAMES = ("max", "min")  # builtins the rewriter routes through _sd.convert


@functools.lru_cache(maxsize=None)
def _refusing_twin(name):
    """A ``math`` function with no numpy form here: Python's on numbers, a clear error on traced values."""
    plain = getattr(math, name)

    @functools.wraps(plain)
    def twin(*args):
        if _traced(args, f"math.{name}"):
            raise TraceError(
                f"math.{name} takes Python numbers, and its argument at {user_location()} is traced; use "
                f"the numpy or scipy.special function symdiff differentiates (see docs/operations.md)")
        return plain(*args)

    return twin


def twin(f):
    """The twin of ``f`` when it is a ``math`` function or a builtin that has one, else None."""
    if f in _BUILTIN_TWINS:
        return _BUILTIN_TWINS[f]
    name = getattr(f, "__name__", None)
    if getattr(f, "__module__", None) != "math" or getattr(math, name, None) is not f:
        return None
    return _math_twin(name) if name in _NUMPY_FORM else _refusing_twin(name)
