"""Stage 1, trace: run the user's numpy function on tracer objects and record an IR graph.

This module is the mechanism (tracers, lifting values, ufuncs, running a function); the numpy
functions and array methods a tracer understands are stated by the ops that they build
(``ops/*.py``, registered in ``ops.surface``) and attached here.

Afterwards every array the function computed from its arguments is a ``Node``; Python and numpy
values it closed over are constants (scalars inlined in elementwise bodies, arrays as ``const``
nodes). Anything the tracer cannot record raises ``TraceError`` naming the user's line.
"""

from __future__ import annotations

import numbers
import sys
import threading

import numpy as np
import sympy

from . import ir, origins
from .errors import DtypeError, ShapeError, TraceError, user_location
from .ops import ufuncs as table
from .ops.surface import FUNCTIONS, METHODS, numpy_name


def _fail(what: str, hint: str = "") -> TraceError:
    msg = f"{what} at {user_location()}"
    return TraceError(msg + (f"; {hint}" if hint else ""))


class Tracer:
    """Stands in for a numpy array while the user's function runs; records every operation."""

    __slots__ = ("node",)
    __array_priority__ = 1000

    def __init__(self, node: ir.Node):
        self.node = node

    # -- array attributes ---------------------------------------------------------------------
    shape = property(lambda self: self.node.shape)
    ndim = property(lambda self: self.node.ndim)
    size = property(lambda self: self.node.size)
    dtype = property(lambda self: np.dtype(self.node.dtype))

    def __len__(self):
        if not self.shape:
            raise _fail("len() of a 0-d traced array")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return f"Tracer(shape={self.shape}, dtype={self.node.dtype})"

    # -- things a tracer cannot do ------------------------------------------------------------
    def __bool__(self):
        raise _fail(
            "Python control flow on a traced value (`if`, `while`, `and`/`or`, bool())",
            "use np.where(condition, a, b) to choose between values elementwise",
        )

    def __array__(self, dtype=None, copy=None):
        if "index_tricks" in sys._getframe(1).f_code.co_filename:  # numpy's r_/c_ where no rewrite reached
            raise _fail(
                "np.r_[...]/np.c_[...] of a traced value in a function whose source symdiff cannot read",
                "write np.concatenate([...], axis=...) (np.column_stack for np.c_), or define the function in a file",
            )
        raise _fail(
            "conversion of a traced value to a concrete numpy array (np.asarray, float, item)",
            "keep the computation in numpy operations on the argument",
        )

    def __float__(self):
        return self.__array__()

    __int__ = __index__ = __complex__ = __float__

    def item(self, *a):
        return self.__array__()

    def tolist(self):
        return self.__array__()

    # -- operators ----------------------------------------------------------------------------
    def __add__(self, o): return ufunc("add", self, o)
    def __radd__(self, o): return ufunc("add", o, self)
    def __sub__(self, o): return ufunc("subtract", self, o)
    def __rsub__(self, o): return ufunc("subtract", o, self)
    def __mul__(self, o): return ufunc("multiply", self, o)
    def __rmul__(self, o): return ufunc("multiply", o, self)
    def __truediv__(self, o): return ufunc("true_divide", self, o)
    def __rtruediv__(self, o): return ufunc("true_divide", o, self)
    def __floordiv__(self, o): return ufunc("floor_divide", self, o)
    def __rfloordiv__(self, o): return ufunc("floor_divide", o, self)
    def __pow__(self, o): return ufunc("power", self, o)
    def __rpow__(self, o): return ufunc("power", o, self)
    def __neg__(self): return ufunc("negative", self)
    def __pos__(self): return self
    def __abs__(self): return ufunc("absolute", self)
    def __gt__(self, o): return ufunc("greater", self, o)
    def __ge__(self, o): return ufunc("greater_equal", self, o)
    def __lt__(self, o): return ufunc("less", self, o)
    def __le__(self, o): return ufunc("less_equal", self, o)
    def __eq__(self, o): return ufunc("equal", self, o)
    def __ne__(self, o): return ufunc("not_equal", self, o)
    __hash__ = object.__hash__

    def __copy__(self):  # a traced value is immutable: a copy is the same value (and the same node),
        return self  # so copy.copy / copy.deepcopy / dataclasses.asdict keep their derivatives

    def __deepcopy__(self, memo):
        return self

    # array methods (x.sum(), x.reshape(), x.T...) are added below from the ops' numpy surface

    # -- numpy protocols ----------------------------------------------------------------------
    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        if method != "__call__" or kwargs.get("out") is not None:
            raise _fail(f"np.{uf.__name__}.{method}", "only plain calls of ufuncs can be traced")
        if kwargs.get("where", True) is not True:
            raise _fail(f"the where= argument of np.{uf.__name__}", "use np.where instead")
        if getattr(np, uf.__name__, None) is not uf:  # not numpy's own: scipy.special's, or unknown
            entry = table.scipy_special(uf)
            if entry is None:
                raise _fail(f"the ufunc {_ufunc_name(uf)} is not supported by symdiff", "see docs/operations.md")
            return ufunc(f"scipy.special.{entry.name}", *inputs, rule=entry.body)
        structural = FUNCTIONS.get(uf) or FUNCTIONS.get(getattr(np, uf.__name__, None))  # np.matmul, clip
        if structural is not None:
            return structural(*inputs, **{k: v for k, v in kwargs.items() if k != "out"})
        return ufunc(uf.__name__, *inputs)

    def __array_function__(self, func, types, args, kwargs):
        impl = FUNCTIONS.get(func)
        if impl is None:
            raise _fail(f"{numpy_name(func)} is not supported by symdiff", "see docs/operations.md")
        return impl(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Lifting Python values into the IR
# ---------------------------------------------------------------------------------------------


def _number(v):
    """A Python/numpy scalar as an exact SymPy number, or None if v is not a scalar."""
    if isinstance(v, sympy.Basic):
        return v if v.is_number else None
    if isinstance(v, (bool, np.bool_)):
        return sympy.true if v else sympy.false
    if isinstance(v, numbers.Integral):
        return sympy.Integer(int(v))
    if isinstance(v, numbers.Real) or (isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "fiu"):
        f = float(v)
        if not np.isfinite(f) or (f == 0 and np.signbit(f)) or (f != 0 and abs(f) < np.finfo(np.float64).tiny):
            return None  # nan, inf, -0.0 and subnormals stay data: SymPy would fold them away
        return sympy.Float(f) if f != int(f) or abs(f) > 2**53 else sympy.Integer(int(f))
    return None


class _Traces(threading.local):
    """The traces running in this thread, innermost last: each knows the user's names for the
    arrays its function reads (closure, globals, defaults) and their digests computed this call."""

    def __init__(self):
        self.frames: list = []


_traces = _Traces()


def active() -> bool:
    """True while a function is being traced in this thread (a transform called now is nested)."""
    return bool(_traces.frames)


def _known_array(v):
    """(the user's name, digest) of an array the traced function read from its environment."""
    for names, memo in reversed(_traces.frames):
        hit = names.get(id(v))
        if hit is not None and hit[0] is v:
            return hit[1], memo.known(v) if memo is not None else None
    return None, None


def as_node(v) -> ir.Node:
    if isinstance(v, Tracer):
        return v.node
    if isinstance(v, np.ma.MaskedArray):
        raise _fail(
            "a numpy masked array in a traced computation (symdiff would silently ignore its mask)",
            "pass np.ma.filled(a, value) or a.data explicitly",
        )
    arr = np.asarray(v)
    if arr.dtype.kind == "c":
        raise DtypeError(f"a complex value ({arr.dtype}) in a traced computation at {user_location()}: "
                         "complex numbers are not supported yet; keep the real and imaginary parts as separate real arrays")
    if arr.dtype.kind not in "biuf":
        raise _fail(
            f"a value of type {type(v).__name__} (dtype {arr.dtype}) in a traced computation",
            "only real numbers and arrays of them can be combined with traced values",
        )
    name, digest = _known_array(v) if isinstance(v, np.ndarray) else (None, None)
    return ir.const_node(arr, name=name, digest=digest)


def _as_array_like(v):
    """Node, or SymPy number for scalars (inlined into elementwise bodies)."""
    if isinstance(v, Tracer):
        return v.node
    n = _number(v)
    return n if n is not None else as_node(v)


def _ufunc_name(uf) -> str:
    module = getattr(uf, "__module__", None) or ("numpy" if getattr(np, uf.__name__, None) is uf else "")
    return f"{module}.{uf.__name__}" if module else uf.__name__


def ufunc(name: str, *args, rule=None):
    """The elementwise node of ufunc ``name`` (numpy's, or ``rule``: a SymPy body of its operands)."""
    entry = table.lookup(name, len(args))
    if rule is not None:
        fn = rule
    elif entry is not None:
        fn = entry.body
    else:
        raise _fail(f"np.{name} is not supported by symdiff", "see docs/operations.md")
    shown = name if "." in name else f"np.{name}"
    body, nodes = _body(fn, [_as_array_like(a) for a in args], shown)
    if body.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        # SymPy evaluated numbers into nan/inf (x/0.0, 0*inf): keep the numbers as data instead,
        # so the value is numpy's and derivatives of the other operands survive
        body, nodes = _body(fn, [a.node if isinstance(a, Tracer) else as_node(a) for a in args], shown)
    dtype = entry.dtype if entry is not None else None
    try:
        return Tracer(ir.elementwise(body, nodes, dtype=dtype))
    except ShapeError as e:
        raise ShapeError(f"{shown}: {e} at {user_location()}") from None


def _body(fn, items, name):
    """``fn`` applied to placeholders for the nodes among ``items`` (numbers inlined)."""
    symbols, nodes = ir.bind(items)
    try:
        return sympy.sympify(fn(*symbols)), nodes
    except (TypeError, ValueError) as e:
        raise _fail(f"{name} on these operands ({e})") from None


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def check_differentiable(dtype, what: str):
    if np.dtype(dtype).kind != "f":
        raise DtypeError(
            f"{what} has dtype {np.dtype(dtype)}; only floating arrays can be differentiated: "
            "pass floats (e.g. x.astype(np.float64)) or leave this argument out of argnums"
        )


def to_nodes(tree):
    """Turn what the user's function returned into the same structure of nodes."""
    if isinstance(tree, (tuple, list)):
        return type(tree)(to_nodes(t) for t in tree)
    if isinstance(tree, dict):
        return {k: to_nodes(v) for k, v in tree.items()}
    if isinstance(tree, Tracer):
        return tree.node
    if isinstance(tree, ir.Node):
        return tree
    if tree is None:
        raise TraceError("the function returned None; return the value to differentiate")
    arr = np.asarray(tree)
    if arr.dtype.kind not in "biuf":
        raise TraceError(f"the function returned a {type(tree).__name__}, which is not an array")
    return ir.const_node(arr.astype(np.float64) if arr.dtype.kind != "f" else arr)


def run(fun, in_nodes, keywords=(), static=None, reads=None, memo=None):
    """Call ``fun`` on tracers for ``in_nodes``; return its outputs as nodes (same structure).

    The last ``len(keywords)`` nodes are passed as those keyword arguments; ``static`` keyword
    values (Python numbers, strings) are passed as they are. ``reads`` (environment.Reads) names
    the arrays the function reads, so that generated code can take them under the user's names."""
    from . import rewrite, rewrite_runtime

    fun = rewrite.rewritten(fun)  # `if` on traced values becomes selects (source available)
    tracers = [Tracer(n) for n in in_nodes]
    n_positional = len(tracers) - len(keywords)
    kwargs = dict(zip(keywords, tracers[n_positional:]), **(static or {}))
    _traces.frames.append((reads.array_names if reads is not None else {}, memo))
    scope = origins.enter(origins.USER_LINE)  # every node records the user's line that made it
    depth = rewrite_runtime.reset()
    try:
        out = fun(*tracers[:n_positional], **kwargs)
    except (TraceError, ShapeError, DtypeError):
        raise
    except (TypeError, ValueError, AttributeError, IndexError) as e:
        raise TraceError(
            f"tracing {getattr(fun, '__name__', 'the function')} failed at {user_location_of(e)}: "
            f"{type(e).__name__}: {e}; symdiff traces the function with array stand-ins, so it must "
            "use numpy operations only"
        ) from e
    finally:
        rewrite_runtime.restore(depth)
        origins.leave(scope)
        _traces.frames.pop()
    return to_nodes(out)


def user_location_of(exc: BaseException) -> str:
    import os

    from .errors import _PACKAGE_DIR

    tb, where_ = exc.__traceback__, "<unknown location>"
    while tb is not None:
        path = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR) and f"{os.sep}numpy{os.sep}" not in path:
            where_ = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where_


def attach_methods():
    """Give tracers the array methods and attributes the ops state (``x.sum()``, ``x.T``...)."""
    for name, (implementation, attribute) in METHODS.items():
        setattr(Tracer, name, property(implementation) if attribute else implementation)


attach_methods()
