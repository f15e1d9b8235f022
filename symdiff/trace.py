"""Stage 1, trace: run the user's numpy function on tracer objects and record an IR graph.

Afterwards every array the function computed from its arguments is a ``Node``; Python and numpy
values it closed over are constants (scalars inlined in elementwise bodies, arrays as ``const``
nodes). Anything the tracer cannot record raises ``TraceError`` naming the user's line.
"""

from __future__ import annotations

import numbers
import string
import threading

import numpy as np
import sympy

from . import ir
from .errors import DtypeError, ShapeError, TraceError, user_location
from .primitives import BINARY, BOOLEAN_RESULT, UNARY, Where, special_rule


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
    T = property(lambda self: transpose(self))
    mT = property(lambda self: swapaxes(self, -1, -2))

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
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)
    def __getitem__(self, key): return getitem(self, key)
    __hash__ = object.__hash__

    # -- methods ------------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False, **kw): return reduce_sum(self, axis, keepdims, **kw)
    def mean(self, axis=None, keepdims=False, **kw): return mean(self, axis, keepdims, **kw)
    def prod(self, axis=None, keepdims=False, **kw): return prod(self, axis, keepdims, **kw)
    def max(self, axis=None, keepdims=False, **kw): return extreme(self, axis, keepdims, "max", **kw)
    def min(self, axis=None, keepdims=False, **kw): return extreme(self, axis, keepdims, "min", **kw)
    def var(self, axis=None, ddof=0, keepdims=False, **kw): return var(self, axis, ddof=ddof, keepdims=keepdims, **kw)
    def std(self, axis=None, ddof=0, keepdims=False, **kw): return std(self, axis, ddof=ddof, keepdims=keepdims, **kw)
    def cumsum(self, axis=None, **kw): return cumsum(self, axis, **kw)
    def squeeze(self, axis=None): return squeeze(self, axis)
    def swapaxes(self, a, b): return swapaxes(self, a, b)
    def diagonal(self, offset=0, axis1=0, axis2=1): return diagonal(self, offset, axis1, axis2)
    def trace(self, offset=0, axis1=0, axis2=1): return trace_(self, offset, axis1, axis2)
    def dot(self, o): return dot(self, o)
    def reshape(self, *shape, **kw):
        return reshape(self, shape[0] if len(shape) == 1 else shape, **kw)
    def transpose(self, *axes):
        return transpose(self, axes[0] if len(axes) == 1 else (axes or None))
    def clip(self, a_min=None, a_max=None): return clip(self, a_min, a_max)
    def astype(self, dtype, copy=True): return astype(self, dtype)
    def copy(self): return self
    def ravel(self): return reshape(self, -1)
    flatten = ravel

    # -- numpy protocols ----------------------------------------------------------------------
    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        if method != "__call__" or kwargs.get("out") is not None:
            raise _fail(f"numpy.{uf.__name__}.{method}", "only plain calls of ufuncs can be traced")
        if kwargs.get("where", True) is not True:
            raise _fail(f"the where= argument of numpy.{uf.__name__}", "use np.where instead")
        if getattr(np, uf.__name__, None) is not uf:  # not numpy's own: scipy.special's, or unknown
            special = special_rule(uf)
            if special is None:
                raise _fail(f"the ufunc {_ufunc_name(uf)} is not supported by symdiff", "see docs/operations.md")
            name, fn = special
            return ufunc(f"scipy.special.{name}", *inputs, rule=fn)
        if uf.__name__ == "matmul":
            return matmul(*inputs)
        if uf.__name__ == "clip":
            return clip(*inputs)
        return ufunc(uf.__name__, *inputs)

    def __array_function__(self, func, types, args, kwargs):
        impl = FUNCTIONS.get(func)
        if impl is None:
            raise _fail(
                f"numpy.{func.__name__} is not supported by symdiff",
                "see the README for the supported operations",
            )
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
    if rule is not None:
        fn = rule
    elif name in UNARY and len(args) == 1:
        fn = UNARY[name]
    elif name in BINARY and len(args) == 2:
        fn = BINARY[name]
    else:
        raise _fail(f"numpy.{name} is not supported by symdiff", "see the README for the supported ufuncs")
    shown = name if "." in name else f"numpy.{name}"
    body, nodes = _body(fn, [_as_array_like(a) for a in args], shown)
    if body.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        # SymPy evaluated numbers into nan/inf (x/0.0, 0*inf): keep the numbers as data instead,
        # so the value is numpy's and derivatives of the other operands survive
        body, nodes = _body(fn, [a.node if isinstance(a, Tracer) else as_node(a) for a in args], shown)
    dtype = "bool" if name in BOOLEAN_RESULT else None
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
# Structural operations
# ---------------------------------------------------------------------------------------------


def _axes(axis, ndim) -> tuple:
    """Normalize numpy's axis argument to sorted negative axes."""
    if axis is None:
        return tuple(range(-ndim, 0))
    axis = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of bounds for an array of dimension {ndim} at {user_location()}")
        out.append(a - ndim if a >= 0 else a)
    return tuple(sorted(set(out)))


def _keep(x: ir.Node, reduced: ir.Node, axes, keepdims) -> ir.Node:
    if not keepdims:
        return reduced
    core = tuple(1 if i - x.ndim in axes else d for i, d in enumerate(x.shape))
    return ir.reshape(reduced, reduced.ndim, core)


def _no_extra(kw, what):
    extra = {k: v for k, v in kw.items() if v is not None}
    if extra:
        raise _fail(f"{what} with {', '.join(extra)}=", "drop the argument or cast the result instead")


def reduce_sum(x, axis=None, keepdims=False, dtype=None, out=None, **kw):
    _no_extra({"dtype": dtype, "out": out, **kw}, "sum")
    n = as_node(x)
    axes = _axes(axis, n.ndim)
    return Tracer(_keep(n, ir.reduce_sum(n, axes), axes, keepdims))


def mean(x, axis=None, keepdims=False, dtype=None, out=None, **kw):
    _no_extra({"dtype": dtype, "out": out, **kw}, "mean")
    n = as_node(x)
    axes = _axes(axis, n.ndim)
    count = int(np.prod([n.shape[a] for a in axes], dtype=np.int64))
    return reduce_sum(x, axis, keepdims) * (sympy.Integer(1) / count)


def prod(x, axis=None, keepdims=False, dtype=None, out=None, **kw):
    _no_extra({"dtype": dtype, "out": out, **kw}, "prod")
    n = as_node(x)
    axes = _axes(axis, n.ndim)
    if not axes:
        return Tracer(n)
    return Tracer(_keep(n, ir.reduce_prod(n, axes), axes, keepdims))


def reshape(x, shape, order="C", **kw):
    if order != "C":
        raise _fail(f"reshape with order={order!r}", "only C order is supported")
    n = as_node(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if list(shape).count(-1) > 1:
        raise ShapeError(f"can only specify one unknown dimension in reshape at {user_location()}")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or n.size % known:
            raise ShapeError(f"cannot reshape an array of size {n.size} into shape {shape} at {user_location()}")
        shape = tuple(n.size // known if d == -1 else d for d in shape)
    try:
        return Tracer(ir.reshape(n, n.ndim, shape))
    except ShapeError as e:
        raise ShapeError(f"{e} at {user_location()}") from None


def transpose(x, axes=None):
    n = as_node(x)
    perm = tuple(reversed(range(n.ndim))) if axes is None else tuple(a % n.ndim for a in axes)
    if sorted(perm) != list(range(n.ndim)):
        raise ShapeError(f"axes {axes} do not match an array of dimension {n.ndim} at {user_location()}")
    return Tracer(ir.transpose(n, perm))


def swapaxes(x, a, b):
    n = as_node(x)
    perm = list(range(n.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return Tracer(ir.transpose(n, perm))


def astype(x, dtype):
    n = as_node(x)
    kind = np.dtype(dtype).kind
    if kind != "f":
        raise _fail(f"astype({np.dtype(dtype)}) of a traced value", "derivatives need floating dtypes")
    return Tracer(ir.elementwise(ir.placeholder(0), (n,), dtype=str(np.dtype(dtype))))


def _letters(k, skip=""):
    return [c for c in string.ascii_lowercase if c not in skip][:k]


def matmul(a, b):
    x, y = as_node(a), as_node(b)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError(f"matmul: input operand does not have enough dimensions at {user_location()}")
    if x.ndim == 1 and y.ndim == 1:
        spec = "i,i->"
    elif x.ndim == 1:
        spec = "j,jk->k"
    elif y.ndim == 1:
        spec = "ij,j->i"
    else:
        spec = "ij,jk->ik"
    x_core = 1 if x.ndim == 1 else 2
    y_core = 1 if y.ndim == 1 else 2
    if x.shape[-1] != y.shape[-2 if y_core == 2 else -1]:
        raise ShapeError(f"matmul: shapes {x.shape} and {y.shape} are not aligned at {user_location()}")
    if (x.ndim > x_core or y.ndim > y_core) and (x_core == 1 or y_core == 1):
        # stacked operands with a vector: promote the vector to a matrix, as numpy does
        if x_core == 1:
            x, spec = ir.reshape(x, 1, (1, x.shape[-1])), "ij,jk->ik"
            r = matmul(Tracer(x), Tracer(y)).node
            return Tracer(ir.reshape(r, 2, (r.shape[-1],)))
        y = ir.reshape(y, 1, (y.shape[-1], 1))
        r = matmul(Tracer(x), Tracer(y)).node
        return Tracer(ir.reshape(r, 2, (r.shape[-2],)))
    try:
        return Tracer(ir.einsum(spec, x, y))
    except ShapeError as e:
        raise ShapeError(f"{e} at {user_location()}") from None


def dot(a, b, out=None):
    x, y = as_node(a), as_node(b)
    if x.ndim == 0 or y.ndim == 0:
        return ufunc("multiply", a, b)
    if x.ndim <= 2 and y.ndim <= 2:
        return matmul(a, b)
    xs = _letters(x.ndim)
    ys = _letters(y.ndim, skip="".join(xs))
    ys[-2 if y.ndim >= 2 else -1] = xs[-1]
    out_letters = xs[:-1] + [c for i, c in enumerate(ys) if i != (y.ndim - 2 if y.ndim >= 2 else y.ndim - 1)]
    spec = f"{''.join(xs)},{''.join(ys)}->{''.join(out_letters)}"
    return Tracer(ir.einsum(spec, x, y))


def where(cond, x=None, y=None):
    if x is None or y is None:
        raise _fail("np.where with one argument", "pass np.where(condition, x, y)")
    return _select(cond, x, y)


def _select(cond, x, y):
    c = _as_array_like(cond)
    truth = {sympy.true: sympy.Integer(1), sympy.false: sympy.Integer(0)}
    items = [truth.get(it, it) if not isinstance(it, ir.Node) else it for it in (c, _as_array_like(x), _as_array_like(y))]
    symbols, nodes = ir.bind(items)
    body = Where(*symbols)
    dtype = ir.result_dtype(*(n.dtype for n in nodes[1:] if n is not c)) if len(nodes) > 1 else None
    return Tracer(ir.elementwise(body, nodes, dtype=dtype))


def clip(x, a_min=None, a_max=None, out=None, **kw):
    r = x
    if a_min is not None:
        r = ufunc("maximum", r, a_min)
    if a_max is not None:
        r = ufunc("minimum", r, a_max)
    return r if isinstance(r, Tracer) else Tracer(as_node(r))


def concatenate(arrays, axis=0, out=None, **kw):
    nodes = [as_node(a) for a in arrays]
    if axis is None:
        nodes = [ir.reshape(n, n.ndim, (n.size,)) for n in nodes]
        axis = 0
    ndim = nodes[0].ndim
    if ndim == 0:
        raise ShapeError(f"zero-dimensional arrays cannot be concatenated at {user_location()}")
    (ax,) = _axes(axis, ndim)
    try:
        return Tracer(ir.concat(nodes, ax))
    except ShapeError as e:
        raise ShapeError(f"{e} at {user_location()}") from None


def stack(arrays, axis=0, out=None, **kw):
    nodes = [as_node(a) for a in arrays]
    shape = nodes[0].shape
    if any(n.shape != shape for n in nodes):
        raise ShapeError(f"all input arrays must have the same shape to stack at {user_location()}")
    (ax,) = _axes(axis, len(shape) + 1)
    pos = ax + len(shape) + 1
    expanded = [ir.reshape(n, n.ndim, shape[:pos] + (1,) + shape[pos:]) for n in nodes]
    return Tracer(ir.concat(expanded, ax))


def getitem(x, key):
    n = as_node(x)
    key = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, Tracer) for k in key):
        raise _fail("indexing with a traced array", "index with constant integer arrays, or use np.where")
    if any(isinstance(k, (list, np.ndarray)) for k in key):
        return _gather(n, key)
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > n.ndim:
        raise ShapeError(f"too many indices for an array of dimension {n.ndim} at {user_location()}")
    if key.count(Ellipsis) > 1:
        raise _fail("an index with more than one '...'")
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (n.ndim - n_real) + key[i + 1 :]
    else:
        key = key + (slice(None),) * (n.ndim - n_real)
    idx, dim = [], 0
    for k in key:
        if k is None:
            idx.append(None)
            continue
        size = n.shape[dim]
        if isinstance(k, slice):
            idx.append(k.indices(size))
        elif isinstance(k, numbers.Integral):
            if not -size <= k < size:
                raise ShapeError(
                    f"index {k} is out of bounds for axis {dim} with size {size} at {user_location()}"
                )
            idx.append(int(k) % size)
        else:
            raise _fail(f"indexing with {type(k).__name__}", "use ints, slices, ... and None")
        dim += 1
    if all(e == (0, n.shape[i], 1) for i, e in enumerate(e for e in idx if e is not None)) and None not in idx:
        return Tracer(n)
    return Tracer(ir.index(n, tuple(idx)))


def _gather(n, key):
    """Integer-array indexing: index arrays become integer constants passed to the generated code."""
    dots = [i for i, k in enumerate(key) if k is Ellipsis]
    if len(dots) > 1:
        raise _fail("an index with more than one '...'")
    if dots:
        i = dots[0]
        n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
        key = key[:i] + (slice(None),) * (n.ndim - n_real) + key[i + 1 :]
    n_real = sum(1 for k in key if k is not None)
    if n_real > n.ndim:
        raise ShapeError(f"too many indices for an array of dimension {n.ndim} at {user_location()}")
    key = key + (slice(None),) * (n.ndim - n_real)
    positions = [i for i, k in enumerate(key) if isinstance(k, (list, np.ndarray, numbers.Integral))]
    if positions != list(range(positions[0], positions[-1] + 1)):
        raise _fail("integer-array indices separated by slices", "index one axis at a time")
    layout, arrays, dim = [], [], 0
    for k in key:
        if k is None:
            layout.append(None)
            continue
        size = n.shape[dim]
        if isinstance(k, slice):
            layout.append(("s", k.indices(size)))
        else:
            arr = np.asarray(k)
            if arr.dtype.kind == "b":
                raise _fail("boolean-mask indexing (its result shape depends on the data)", "use np.where")
            if arr.dtype.kind not in "iu":
                raise _fail(f"indexing with an array of dtype {arr.dtype}", "use integer arrays")
            if arr.size and (arr.max() >= size or arr.min() < -size):
                raise ShapeError(f"index out of bounds for axis {dim} with size {size} at {user_location()}")
            layout.append(("a", len(arrays)))
            arrays.append(ir.const_node(np.asarray(arr % size, dtype=np.intp), keep_dtype=True))
        dim += 1
    return Tracer(ir.gather(n, tuple(layout), n.shape, arrays))


def extreme(x, axis=None, keepdims=False, which="max", out=None, initial=None, where=None, **kw):
    _no_extra({"out": out, "initial": initial, "where": where, **kw}, which)
    n = as_node(x)
    axes = _axes(axis, n.ndim)
    if not axes:
        return Tracer(n)
    return Tracer(_keep(n, ir.reduce_extreme(n, axes, which), axes, keepdims))


def _spread(x, axis, what, dtype, out, kw):
    """(elements per reduction, x minus its mean) for var and std."""
    _no_extra({"dtype": dtype, "out": out, **kw}, what)
    n = as_node(x)
    axes = _axes(axis, n.ndim)
    count = int(np.prod([n.shape[a] for a in axes], dtype=np.int64))
    return count, x - mean(x, axis, keepdims=True)


def _per_degree_of_freedom(total, count, ddof):
    """total / (count - ddof), with numpy's divisor max(count - ddof, 0): inf or NaN at 0."""
    if count - ddof <= 0:  # zeros of the full shape: a 0-d divisor trips the emitter (see the tests)
        return ufunc("true_divide", total, np.zeros(as_node(total).shape))
    return total * (sympy.Integer(1) / sympy.nsimplify(count - ddof))


def var(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    count, centered = _spread(x, axis, "var", dtype, out, kw)
    return _per_degree_of_freedom(reduce_sum(centered * centered, axis, keepdims), count, ddof)


def std(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    count, centered = _spread(x, axis, "std", dtype, out, kw)
    if count == 1 and count - ddof > 0:
        # one element per reduction: the std is the constant 0 (NaN for inf/NaN), whose derivative is
        # 0; sqrt(var) would give sqrt'(0) * 0 = inf * 0 = NaN. |x - mean| is the same value.
        spread = reduce_sum(ufunc("absolute", centered), axis, keepdims)
        return spread if ddof == 0 else spread * (1 / sympy.sqrt(sympy.nsimplify(1 - ddof)))
    return ufunc("sqrt", _per_degree_of_freedom(reduce_sum(centered * centered, axis, keepdims), count, ddof))


def cumsum(x, axis=None, dtype=None, out=None):
    _no_extra({"dtype": dtype, "out": out}, "cumsum")
    n = as_node(x)
    if axis is None:
        n, axis = ir.reshape(n, n.ndim, (n.size,)), 0
    (ax,) = _axes(axis, n.ndim)
    return Tracer(ir.cumsum(n, ax))


def squeeze(x, axis=None):
    n = as_node(x)
    axes = [a for a in range(-n.ndim, 0) if n.shape[a] == 1] if axis is None else list(_axes(axis, n.ndim))
    if any(n.shape[a] != 1 for a in axes):
        raise ShapeError(f"cannot select an axis to squeeze out which has size not equal to one at {user_location()}")
    return Tracer(ir.reshape(n, n.ndim, tuple(d for i, d in enumerate(n.shape) if i - n.ndim not in axes)))


def expand_dims(x, axis):
    n = as_node(x)
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    ndim = n.ndim + len(axes)
    new = sorted(a % ndim for a in axes)
    shape, it = [], iter(n.shape)
    for i in range(ndim):
        shape.append(1 if i in new else next(it))
    return Tracer(ir.reshape(n, n.ndim, tuple(shape)))


def broadcast_to(x, shape, subok=False):
    n = as_node(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    try:
        return Tracer(ir.broadcast(n, n.ndim, shape))
    except (ShapeError, ValueError) as e:
        raise ShapeError(f"{e} at {user_location()}") from None


def moveaxis(x, source, destination):
    n = as_node(x)
    src = [a % n.ndim for a in ((source,) if isinstance(source, numbers.Integral) else source)]
    dst = [a % n.ndim for a in ((destination,) if isinstance(destination, numbers.Integral) else destination)]
    order = [a for a in range(n.ndim) if a not in src]
    for d, s_ in sorted(zip(dst, src)):
        order.insert(d, s_)
    return Tracer(ir.transpose(n, order))


def split(x, indices_or_sections, axis=0):
    n = as_node(x)
    (ax,) = _axes(axis, n.ndim)
    size = n.shape[ax]
    if isinstance(indices_or_sections, numbers.Integral):
        if size % indices_or_sections:
            raise ShapeError(f"array split does not result in an equal division at {user_location()}")
        step = size // indices_or_sections
        bounds = list(range(0, size + 1, step))
    else:
        bounds = [0] + [min(int(i), size) for i in indices_or_sections] + [size]
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = (Ellipsis, slice(lo, hi)) + (slice(None),) * (-ax - 1)
        parts.append(getitem(Tracer(n), key))
    return parts


def outer(a, b, out=None):
    x, y = as_node(a), as_node(b)
    x, y = ir.reshape(x, x.ndim, (x.size,)), ir.reshape(y, y.ndim, (y.size,))
    return Tracer(ir.einsum("i,j->ij", x, y))


def tensordot(a, b, axes=2):
    x, y = as_node(a), as_node(b)
    if isinstance(axes, numbers.Integral):
        ax_a, ax_b = list(range(x.ndim - axes, x.ndim)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, numbers.Integral) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, numbers.Integral) else list(ax_b)
    ax_a, ax_b = [a_ % x.ndim for a_ in ax_a], [b_ % y.ndim for b_ in ax_b]
    letters = iter(string.ascii_lowercase)
    ta = [next(letters) for _ in range(x.ndim)]
    tb = [next(letters) for _ in range(y.ndim)]
    for i, j in zip(ax_a, ax_b):
        if x.shape[i] != y.shape[j]:
            raise ShapeError(f"shape-mismatch for sum in tensordot at {user_location()}")
        tb[j] = ta[i]
    out_ = [c for i, c in enumerate(ta) if i not in ax_a] + [c for j, c in enumerate(tb) if j not in ax_b]
    return Tracer(ir.einsum(f"{''.join(ta)},{''.join(tb)}->{''.join(out_)}", x, y))


def einsum(subscripts, *operands, **kw):
    _no_extra({k: v for k, v in kw.items() if k != "optimize"}, "einsum")
    spec = subscripts.replace(" ", "") if isinstance(subscripts, str) else ""
    if "->" not in spec or "..." in spec:
        raise _fail(f"einsum {subscripts!r}", "write explicit subscripts with '->' and no '...'")
    if not all(c in string.ascii_letters or c in ",->" for c in spec) or spec.count("->") != 1:
        raise _fail(f"einsum subscripts {subscripts!r}", "subscripts are letters, commas and one '->', as numpy requires")
    ins, out = spec.split("->")
    terms = ins.split(",")
    nodes = [as_node(o) for o in operands]
    if len(terms) != len(nodes):
        raise ShapeError(f"einsum {subscripts!r} needs {len(terms)} operands at {user_location()}")
    for k, (t, n) in enumerate(zip(terms, nodes)):
        if len(t) != n.ndim:
            raise ShapeError(f"einsum {subscripts!r}: operand {k} has {n.ndim} axes, subscripts say {len(t)}")
        while len(set(t)) != len(t):  # a repeated letter: take that diagonal first
            c = next(ch for ch in t if t.count(ch) > 1)
            i, j = t.index(c), t.index(c, t.index(c) + 1)
            n = _take_diagonal(n, i, j)
            t = t[:i] + t[i + 1 : j] + t[j + 1 :] + c
        terms[k], nodes[k] = t, n
    if len(set(out)) != len(out) or not set(out) <= set("".join(terms)):
        raise ShapeError(f"einsum {subscripts!r}: output subscripts must be distinct letters of the inputs")
    try:
        return Tracer(ir.einsum(f"{','.join(terms)}->{out}", *nodes))
    except ShapeError as e:
        raise ShapeError(f"{e} at {user_location()}") from None


def _take_diagonal(n, i, j, offset=0):
    """Axes i < j replaced by their diagonal, appended last (numpy's diagonal convention)."""
    rest = [a for a in range(n.ndim) if a not in (i, j)]
    n = ir.transpose(n, rest + [i, j])
    rows, cols = n.shape[-2], n.shape[-1]
    length = max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))
    r = np.arange(length) + max(0, -offset)
    c = np.arange(length) + max(0, offset)
    layout = tuple(("s", (0, d, 1)) for d in n.shape[:-2]) + (("a", 0), ("a", 1))
    idx = [ir.const_node(r.astype(np.intp), keep_dtype=True), ir.const_node(c.astype(np.intp), keep_dtype=True)]
    return ir.gather(n, layout, n.shape, idx)


def diagonal(x, offset=0, axis1=0, axis2=1):
    n = as_node(x)
    a, b = sorted((axis1 % n.ndim, axis2 % n.ndim))
    if (a, b) != (axis1 % n.ndim, axis2 % n.ndim):
        offset = -offset
    return Tracer(_take_diagonal(n, a, b, offset))


def trace_(x, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return reduce_sum(diagonal(x, offset, axis1, axis2), axis=-1)


def diag(v, k=0):
    n = as_node(v)
    if n.ndim == 2:
        return diagonal(v, k)
    if n.ndim != 1:
        raise ShapeError(f"diag needs a 1-D or 2-D array at {user_location()}")
    size = n.shape[0] + abs(k)
    r = np.arange(n.shape[0]) + max(0, -k)
    c = np.arange(n.shape[0]) + max(0, k)
    idx = [ir.const_node(r.astype(np.intp), keep_dtype=True), ir.const_node(c.astype(np.intp), keep_dtype=True)]
    return Tracer(ir.scatter_add(n, (("a", 0), ("a", 1)), (size, size), idx))


def norm(x, ord=None, axis=None, keepdims=False):
    n = as_node(x)
    if ord in (None, "fro", 2) and (ord != 2 or axis is not None or n.ndim == 1):
        return ufunc("sqrt", reduce_sum(x * x, axis, keepdims))
    if ord == 1 and (n.ndim == 1 or axis is not None):
        return reduce_sum(ufunc("absolute", x), axis, keepdims)
    if ord == np.inf and (n.ndim == 1 or axis is not None):
        return extreme(ufunc("absolute", x), axis, keepdims, "max")
    raise _fail(f"np.linalg.norm with ord={ord!r} on a {n.ndim}-D array", "use ord=None/'fro', 1 or inf on vectors")


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) without overflow: the max is subtracted first (its derivative cancels).

    Works on numpy arrays too, so a function that uses it runs with or without symdiff."""
    if not isinstance(x, Tracer):
        x = np.asarray(x)
        m = np.max(x, axis=axis, keepdims=True)
        r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return r if keepdims else np.squeeze(r, axis=axis)
    m = extreme(x, axis, True, "max")
    inner = reduce_sum(ufunc("exp", x - m), axis, keepdims=True)
    r = ufunc("log", inner) + m
    return r if keepdims else squeeze(r, axis if axis is not None else None)


FUNCTIONS = {
    np.sum: reduce_sum,
    np.mean: mean,
    np.prod: prod,
    np.dot: dot,
    np.matmul: matmul,
    np.transpose: transpose,
    np.swapaxes: swapaxes,
    np.reshape: reshape,
    np.where: where,
    np.stack: stack,
    np.concatenate: concatenate,
    np.clip: clip,
    np.max: lambda x, axis=None, out=None, keepdims=False, **kw: extreme(x, axis, keepdims, "max", **kw),
    np.min: lambda x, axis=None, out=None, keepdims=False, **kw: extreme(x, axis, keepdims, "min", **kw),
    np.amax: lambda x, axis=None, out=None, keepdims=False, **kw: extreme(x, axis, keepdims, "max", **kw),
    np.amin: lambda x, axis=None, out=None, keepdims=False, **kw: extreme(x, axis, keepdims, "min", **kw),
    np.var: var,
    np.std: std,
    np.cumsum: cumsum,
    np.squeeze: squeeze,
    np.expand_dims: expand_dims,
    np.broadcast_to: broadcast_to,
    np.moveaxis: moveaxis,
    np.split: split,
    np.outer: outer,
    np.tensordot: tensordot,
    np.einsum: einsum,
    np.diagonal: diagonal,
    np.trace: trace_,
    np.diag: diag,
    np.linalg.norm: norm,
    np.atleast_1d: lambda x: x if x.ndim else reshape(x, (1,)),
    np.ravel: lambda x, order="C": reshape(x, -1, order),
    np.copy: lambda x, **kw: x,
    np.shape: lambda x: x.shape,
    np.ndim: lambda x: x.ndim,
    np.size: lambda x, axis=None: x.size if axis is None else x.shape[axis],
    np.ones_like: lambda x, dtype=None, **kw: Tracer(ir.fill(1, x.shape, str(dtype or x.dtype))),
    np.zeros_like: lambda x, dtype=None, **kw: Tracer(ir.fill(0, x.shape, str(dtype or x.dtype))),
    np.full_like: lambda x, v, dtype=None, **kw: Tracer(ir.fill(_number(v), x.shape, str(dtype or x.dtype))),
}


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
    tracers = [Tracer(n) for n in in_nodes]
    n_positional = len(tracers) - len(keywords)
    kwargs = dict(zip(keywords, tracers[n_positional:]), **(static or {}))
    _traces.frames.append((reads.array_names if reads is not None else {}, memo))
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
