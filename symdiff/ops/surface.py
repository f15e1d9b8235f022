"""The numpy surface of the ops: which numpy functions and array methods build them.

A family module states, beside the op it builds, each numpy function that traces into it::

    @numpy_function(np.cumsum, method="cumsum")
    def cumsum_(a, axis=None, dtype=None, out=None): ...

with numpy's own parameter names and order (a test compares every entry with numpy's signature),
so ``np.swapaxes(x, axis1=0, axis2=1)`` and ``np.sum(x, 0, None, None, True)`` mean what they mean
in numpy. The implementation takes tracers or plain values and returns IR nodes (or tracers);
``FUNCTIONS`` and ``METHODS`` are what the tracer dispatches on. The tracer (``trace``) is
imported when a traced function runs, after every op module is loaded, so these functions reach
it through the late-bound helpers below instead of an import cycle.
"""

from __future__ import annotations

import functools
import numbers
import sys

import numpy as np

from ..errors import DtypeError, ShapeError, TraceError, user_location
from ..extensions import note_extension
from ..graph import Node

FUNCTIONS: dict = {}  # numpy callable -> implementation
METHODS: dict = {}  # array method or attribute name -> (implementation, is an attribute)


def at_user_line(fn):
    """Add the user's file:line to a symdiff error raised inside ``fn`` (once, innermost wins)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ShapeError, TraceError, DtypeError) as e:
            where = f" at {user_location()}"
            if where in str(e):
                raise
            raise type(e)(f"{e}{where}") from None

    return wrapper


def _as_tracers(result):
    """Nodes returned by an implementation, as the tracers the user's code continues with."""
    from ..trace import Tracer

    if isinstance(result, Node):
        return Tracer(result)
    if isinstance(result, list):
        return [_as_tracers(r) for r in result]
    if isinstance(result, tuple) and any(isinstance(r, Node) for r in result):  # (sign, logabsdet)...
        items = [_as_tracers(r) for r in result]
        return type(result)(*items) if hasattr(result, "_fields") else tuple(items)
    return result


def numpy_function(*functions, method: str | None = None):
    """Register the decorated implementation for numpy's ``functions`` (and as array ``method``)."""

    def decorate(fn):
        traced = at_user_line(fn)

        @functools.wraps(fn)
        def implementation(*args, **kwargs):
            return _as_tracers(traced(*args, **kwargs))

        for f in functions:
            _check_once(FUNCTIONS.get(f), implementation, numpy_name(f))
            FUNCTIONS[f] = implementation
            note_extension("function", numpy_name(f), fn)
        if method is not None:
            _add_method(method, implementation, False)
        return implementation

    return decorate


def array_method(name: str, attribute: bool = False):
    """Register the decorated function as the array method (or ``attribute``) ``name`` of a tracer."""

    def decorate(fn):
        traced = at_user_line(fn)

        @functools.wraps(fn)
        def implementation(*args, **kwargs):
            return _as_tracers(traced(*args, **kwargs))

        _add_method(name, implementation, attribute)
        return implementation

    return decorate


def _check_once(existing, new, name: str):
    """Two implementations of one numpy name are a mistake; the same definition run again (a
    re-executed notebook cell) replaces itself."""
    same = existing is None or (existing.__module__, existing.__qualname__) == (new.__module__, new.__qualname__)
    if not same:
        raise ValueError(f"{name} has two implementations: {existing.__module__} and {new.__module__}")


def _add_method(name: str, implementation, attribute: bool):
    _check_once(METHODS.get(name, (None,))[0], implementation, f"x.{name}")
    METHODS[name] = (implementation, attribute)
    note_extension("method", name, implementation.__wrapped__)
    attach = getattr(sys.modules.get("symdiff.trace"), "attach_methods", None)
    if attach is not None:  # registered after the tracer was built (an extension): attach now
        attach()


def numpy_name(func) -> str:
    """How a user writes ``func``: ``np.linalg.norm``, not ``numpy.norm``."""
    module = getattr(func, "__module__", "numpy") or "numpy"
    sub = [s for s in (module.split(".")[1:] if module.startswith("numpy.") else []) if not s.startswith("_")]
    if module != "numpy" and not module.startswith("numpy."):
        return f"{module}.{func.__name__}"
    return ".".join(["np", *sub, func.__name__])


# ---------------------------------------------------------------------------------------------
# The tracer, reached late (it imports the IR, which imports these modules)
# ---------------------------------------------------------------------------------------------


def as_node(v) -> Node:
    """A tracer's node, a node itself, or a constant node for a plain value."""
    from ..trace import as_node as lift

    return v if isinstance(v, Node) else lift(v)


def as_operand(v):
    """A tracer's node, a node itself, or a SymPy number for a Python scalar (inlined into
    elementwise bodies)."""
    from ..trace import _as_array_like

    return v if isinstance(v, Node) else _as_array_like(v)


def number(v):
    """A Python/numpy scalar as an exact SymPy number, or None."""
    from ..trace import _number

    return _number(v)


def ufunc(name: str, *args):
    """The tracer of numpy's ufunc ``name`` applied to ``args``."""
    from ..trace import ufunc as apply

    return apply(name, *args)


def is_traced(v) -> bool:
    from ..trace import Tracer

    return isinstance(v, Tracer)


def refuse(what: str, hint: str = "") -> TraceError:
    """The error for something a traced function cannot do, naming the user's line."""
    return TraceError(f"{what} at {user_location()}" + (f"; {hint}" if hint else ""))


# ---------------------------------------------------------------------------------------------
# Arguments as numpy takes them
# ---------------------------------------------------------------------------------------------


def negative_axes(axis, ndim) -> tuple:
    """numpy's ``axis`` argument (None, an int or a tuple) as sorted negative axes."""
    if axis is None:
        return tuple(range(-ndim, 0))
    axis = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a - ndim if a >= 0 else a)
    return tuple(sorted(set(out)))


def shape_argument(shape) -> tuple:
    """numpy's ``shape`` argument (an int or a sequence) as a tuple."""
    return (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)


def refuse_given(what: str, **arguments):
    """Refuse the arguments of ``what`` that were given (not None and not numpy's default)."""
    given = [k for k, v in arguments.items() if v is not None and v is not np._NoValue]
    if given:
        raise refuse(f"{what} with {', '.join(given)}=", "drop the argument or cast the result instead")


def given(value, default):
    """``value``, or ``default`` where numpy's signature says no value was given."""
    return default if value is np._NoValue else value
