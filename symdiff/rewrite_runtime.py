"""What the rewritten user function calls (``rewrite.py`` makes those calls; the code sees this module
as ``_sd``): each helper decides at run time whether a value is traced. A plain Python or numpy value
keeps Python's semantics (only the taken branch runs, arrays are assigned in place); a traced one
becomes a select, a functional update or a stack in the IR.
"""

from __future__ import annotations

import numbers
import operator
import os
import sysconfig
import threading
import types

import numpy as np

from . import rewrite_math
from .concatenators import concatenator  # noqa: F401  np.r_[...] / np.c_[...] of the rewritten code
from .errors import ShapeError, TraceError, user_location


def _tracer_type():
    from .trace import Tracer

    return Tracer


def is_traced(v) -> bool:
    return isinstance(v, _tracer_type())


class _Depth(threading.local):
    def __init__(self):
        self.n = 0  # traced branches running now: numpy arrays are updated by copy inside them


_depth = _Depth()


def reset() -> int:
    """Start a trace with no traced branch running; returns the depth to restore."""
    previous, _depth.n = _depth.n, 0
    return previous


def restore(previous: int) -> None:
    _depth.n = previous


# ---------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------


def _truth(v):
    """A traced value's truth as a 0-d traced boolean (numpy's: nonzero; one element only)."""
    if v.size != 1:
        raise TraceError(
            f"the truth value of a traced array of shape {v.shape} is ambiguous (`if`, `and`/`or`, "
            f"`not` on it) at {user_location()}; use np.where(condition, a, b) to choose elementwise"
        )
    if v.shape:
        v = v.reshape(())
    return v if v.dtype == np.bool_ else v != 0


def test(v):
    """The condition of an ``if``: a Python bool, or a 0-d traced boolean."""
    return _truth(v) if is_traced(v) else bool(v)


def maybe(c) -> bool:
    """Run the ``then`` branch: the condition holds or is traced (both branches run)."""
    if is_traced(c):
        _depth.n += 1
        return True
    return c


def maybe_not(c) -> bool:
    """Run the ``else`` branch: the condition fails or is traced."""
    if is_traced(c):
        _depth.n += 1
        return True
    return not c


def leave(c) -> None:
    if is_traced(c):
        _depth.n -= 1


def while_test(v) -> bool:
    if is_traced(v):
        raise TraceError(
            f"Python control flow on a traced value: a `while` loop at {user_location()} would run a number "
            "of times that depends on the data; loop a fixed number of times with `for i in range(n):` and "
            "leave early with `if condition: break`, or choose values with np.where(condition, a, b)"
        )
    return bool(v)


def not_(v):
    return np.where(_truth(v), False, True) if is_traced(v) else not v


def and_(a, rest):
    """``a and rest()``: short-circuits on a plain value; on a traced one both run and select."""
    if not is_traced(a):
        return rest() if a else a
    c, b = _truth(a), rest()
    return np.where(c, b, a)


def or_(a, rest):
    if not is_traced(a):
        return a if a else rest()
    c, b = _truth(a), rest()
    return np.where(c, a, b)


def ifexp(c, then, other):
    """``then() if c else other()``."""
    if not is_traced(c):
        return then() if c else other()
    c = _truth(c)
    return merge(c, then(), other(), "the conditional expression", user_location())


def stop(*flags) -> bool:
    """Leave a loop for real: a break or return happened under a plain condition."""
    return any(f is True for f in flags)


def any_(*flags):
    """The flags of break/continue/return, or-ed (a select when one is traced)."""
    out = False
    for f in flags:
        out = or_(out, lambda f=f: f)
    return out


# ---------------------------------------------------------------------------------------------
# Joining the values of names after an ``if`` on a traced condition
# ---------------------------------------------------------------------------------------------


class Undefined:
    """A name that holds no value on every path; any use raises the TraceError of ``message``."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message

    def _fail(self, *a, **k):
        raise TraceError(
            f"{self.message}, and used after it at {user_location()}; assign it in both branches or before the `if`"
        )

    def __getattr__(self, name):
        if name.startswith("__") and name != "__array__":
            raise AttributeError(name)
        self._fail()

    __array_ufunc__ = None

    def __array_function__(self, *a, **k):
        self._fail()

    __bool__ = __array__ = __iter__ = __len__ = __getitem__ = __call__ = __float__ = __int__ = __index__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _fail
    __pow__ = __rpow__ = __matmul__ = __rmatmul__ = __neg__ = __pos__ = __abs__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = _fail

    def __repr__(self):
        return "<undefined>"


def unbound(name: str, where: str) -> Undefined:
    return Undefined(f"`{name}` is not assigned before the `if` at {where}")


class _NoReturn:
    """The return value before a ``return`` ran: a join takes the other branch's value."""

    def __repr__(self):
        return "<no return>"


NORETURN = _NoReturn()


def _is_array_like(v) -> bool:
    return is_traced(v) or isinstance(v, (np.ndarray, np.generic, numbers.Number))


def merge(c, then, other, name: str, where: str):
    """The value of ``name`` after an ``if`` at ``where`` on the traced condition ``c``."""
    if then is other:
        return then
    if then is NORETURN:
        return other
    if other is NORETURN:
        return then
    if isinstance(then, Undefined) or isinstance(other, Undefined):
        return Undefined(f"`{name}` is assigned in only one branch of the `if` at {where} whose condition is traced")
    if _is_array_like(then) and _is_array_like(other):
        return np.where(c, then, other)
    if isinstance(then, (tuple, list)) and type(then) is type(other) and len(then) == len(other):
        return type(then)(merge(c, a, b, f"{name}[{i}]", where) for i, (a, b) in enumerate(zip(then, other)))
    if isinstance(then, dict) and isinstance(other, dict) and then.keys() == other.keys():
        return {k: merge(c, then[k], other[k], f"{name}[{k!r}]", where) for k in then}
    try:
        same = bool(then == other)
    except (TypeError, ValueError):
        same = False
    if same:
        return then
    raise TraceError(
        f"`{name}` gets different values that are not arrays ({then!r} and {other!r}) in the branches of "
        f"the `if` at {where} whose condition is traced; only arrays and numbers can be chosen between"
    )


def returned(value):
    """A returned value, checked for a name that holds no value on every path."""
    if isinstance(value, Undefined):
        value._fail()
    if isinstance(value, (tuple, list)):
        for v in value:
            returned(v)
    elif isinstance(value, dict):
        for v in value.values():
            returned(v)
    return value


def result(done, value, always: bool):
    """What the function returns: None if no ``return`` ran. When whether one ran depends on a traced
    condition and the function can fall off its end (``always`` False: read off its source), Python
    would return None on some inputs: that is an error, not the other path's value."""
    if is_traced(done) and not always:
        raise TraceError(
            f"the function returns a value only where a traced condition holds (a `return` inside an `if`, "
            f"with no `return` after it) and None elsewhere, at {user_location()}; add a `return` at the end "
            "of the function (or an `else` branch that returns)"
        )
    return None if done is False or value is NORETURN else returned(value)


# ---------------------------------------------------------------------------------------------
# Item assignment and in-place operators
# ---------------------------------------------------------------------------------------------


def setitem(x, key, v):
    """``x[key] = v`` as ``x = setitem(x, key, v)``: in place for plain values, a select for traced."""
    traced_x = is_traced(x)
    if not (traced_x or (isinstance(x, np.ndarray) and (is_traced(v) or _depth.n))):
        x[key] = v
        return x
    if not traced_x and not is_traced(v):  # a numpy array changed inside a traced branch: by copy
        x = x.copy()
        x[key] = v
        return x
    if isinstance(key, tuple) and any(is_traced(k) for k in key) or is_traced(key):
        raise TraceError(
            f"assignment at a traced index at {user_location()}; write x = np.where(mask, value, x), or "
            "index with constant integers, slices or arrays"
        )
    flat = np.arange(x.size).reshape(x.shape)[key]
    mask = np.zeros(x.size, dtype=bool)
    mask[flat.ravel()] = True
    mask = mask.reshape(x.shape)
    if not is_traced(v):
        placed = np.zeros(x.shape, dtype=np.result_type(x.dtype, np.asarray(v).dtype))
        placed[key] = v
    else:
        placed = _placed(x, key, v, flat.shape)
    return np.where(mask, placed, x)


def _placed(x, key, v, shape):
    """An array of x's shape holding ``v`` (traced) at ``key``: a scatter for ints and slices, a
    gather from v's entries for index arrays."""
    from .ops.indexing import scatter
    from .trace import Tracer, as_node

    try:
        values = np.broadcast_to(v, shape)
    except (ShapeError, ValueError) as e:
        raise ShapeError(
            f"could not broadcast input array from shape {v.shape} into shape {shape} at {user_location()}"
        ) from e
    whole = as_node(x)
    selected = Tracer(whole)[key]
    if selected.node is whole:
        return values
    if selected.node.op == "index":
        idx, core = selected.node.params
        return Tracer(scatter(values.node, idx, core))
    where = np.zeros(x.size, dtype=np.intp)
    where[np.arange(x.size).reshape(x.shape)[key].ravel()] = np.arange(values.size)
    return values.reshape(-1)[where].reshape(x.shape)


_OPERATORS = {"Add": "add", "Sub": "sub", "Mult": "mul", "Div": "truediv", "FloorDiv": "floordiv", "Mod": "mod",
              "Pow": "pow", "MatMult": "matmul", "BitAnd": "and_", "BitOr": "or_", "BitXor": "xor",
              "LShift": "lshift", "RShift": "rshift"}  # fmt: skip


def augassign(op: str, x, v):
    """``x op= v``: in place for plain values; a new value when a numpy array meets a traced one
    (or is changed inside a traced branch)."""
    if isinstance(x, np.ndarray) and (is_traced(v) or _depth.n):
        return getattr(operator, _OPERATORS[op])(x, v)
    return getattr(operator, "i" + _OPERATORS[op].rstrip("_"))(x, v)


# ---------------------------------------------------------------------------------------------
# Functions the user's function calls
# ---------------------------------------------------------------------------------------------

_LIBRARIES = {"numpy", "scipy", "sympy", "symdiff"}
_INSTALLED = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


def convert(f):
    """``f`` rewritten like the traced function when it is the user's own Python function or method."""
    scalar = rewrite_math.twin(f)  # math.sin, max, min on traced values: their numpy forms
    if scalar is not None:
        return scalar
    if isinstance(f, types.MethodType):
        inner = convert(f.__func__)
        return f if inner is f.__func__ else types.MethodType(inner, f.__self__)
    if not isinstance(f, types.FunctionType) or (f.__module__ or "").split(".")[0] in _LIBRARIES:
        return f
    if os.path.abspath(f.__code__.co_filename).startswith(_INSTALLED):
        return f
    from .rewrite import rewritten

    return rewritten(f)


# ---------------------------------------------------------------------------------------------
# np.array / np.asarray of lists holding traced values
# ---------------------------------------------------------------------------------------------

_ASSEMBLERS = (np.array, np.asarray, np.asanyarray)


def _holds_traced(obj) -> bool:
    if is_traced(obj):
        return True
    return isinstance(obj, (list, tuple)) and any(_holds_traced(e) for e in obj)


def _assemble(obj):
    if is_traced(obj):
        return obj
    if isinstance(obj, (list, tuple)):
        if not _holds_traced(obj):
            return np.asarray(obj)
        return np.stack([_assemble(e) for e in obj])
    return obj


def array(func, obj=None, *args, **kwargs):
    """``func(obj, ...)`` for ``func`` one of np.array/np.asarray: traced elements are stacked."""
    if func not in _ASSEMBLERS or not _holds_traced(obj):
        return func(obj, *args, **kwargs)
    out = _assemble(obj)
    dtype = kwargs.get("dtype", args[0] if args else None)
    return out if dtype is None else out.astype(dtype)
