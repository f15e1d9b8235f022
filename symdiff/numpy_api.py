"""The numpy functions and array methods a traced function may call, each building IR.

Every public function here is wrapped by ``at_user_line``: an error it raises names the user's file
and line once (``ShapeError: cannot reshape ... at model.py:12``), however deep it was raised.
``FUNCTIONS`` maps numpy's functions (``__array_function__``) to them; ``trace.Tracer``'s methods
call them too. docs/operations.md lists them (generated from ``FUNCTIONS``).
"""

from __future__ import annotations

import functools
import numbers
import string

import numpy as np
import sympy

from . import ir
from .errors import DtypeError, ShapeError, TraceError, user_location
from .primitives import Where
from .trace import Tracer, _as_array_like, _fail, _number, as_node, ufunc


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


def _axes(axis, ndim) -> tuple:
    """Normalize numpy's axis argument to sorted negative axes."""
    if axis is None:
        return tuple(range(-ndim, 0))
    axis = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of bounds for an array of dimension {ndim}")
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


@at_user_line
def reduce_sum(x, axis=None, keepdims=False, dtype=None, out=None, **kw):
    _no_extra({"dtype": dtype, "out": out, **kw}, "sum")
    n = as_node(x)
    axes = _axes(axis, n.ndim)
    return Tracer(_keep(n, ir.reduce_sum(n, axes), axes, keepdims))


@at_user_line
def mean(x, axis=None, keepdims=False, dtype=None, out=None, **kw):
    _no_extra({"dtype": dtype, "out": out, **kw}, "mean")
    n = as_node(x)
    axes = _axes(axis, n.ndim)
    count = int(np.prod([n.shape[a] for a in axes], dtype=np.int64))
    return reduce_sum(x, axis, keepdims) * (sympy.Integer(1) / count)


@at_user_line
def prod(x, axis=None, keepdims=False, dtype=None, out=None, **kw):
    _no_extra({"dtype": dtype, "out": out, **kw}, "prod")
    n = as_node(x)
    axes = _axes(axis, n.ndim)
    if not axes:
        return Tracer(n)
    return Tracer(_keep(n, ir.reduce_prod(n, axes), axes, keepdims))


@at_user_line
def reshape(x, shape, order="C", **kw):
    if order != "C":
        raise _fail(f"reshape with order={order!r}", "only C order is supported")
    n = as_node(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if list(shape).count(-1) > 1:
        raise ShapeError("can only specify one unknown dimension in reshape")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or n.size % known:
            raise ShapeError(f"cannot reshape an array of size {n.size} into shape {shape}")
        shape = tuple(n.size // known if d == -1 else d for d in shape)
    try:
        return Tracer(ir.reshape(n, n.ndim, shape))
    except ShapeError:
        raise


@at_user_line
def transpose(x, axes=None):
    n = as_node(x)
    perm = tuple(reversed(range(n.ndim))) if axes is None else tuple(a % n.ndim for a in axes)
    if sorted(perm) != list(range(n.ndim)):
        raise ShapeError(f"axes {axes} do not match an array of dimension {n.ndim}")
    return Tracer(ir.transpose(n, perm))


@at_user_line
def swapaxes(x, a, b):
    n = as_node(x)
    perm = list(range(n.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return Tracer(ir.transpose(n, perm))


@at_user_line
def astype(x, dtype):
    n = as_node(x)
    kind = np.dtype(dtype).kind
    if kind != "f":
        raise _fail(f"astype({np.dtype(dtype)}) of a traced value", "derivatives need floating dtypes")
    return Tracer(ir.elementwise(ir.placeholder(0), (n,), dtype=str(np.dtype(dtype))))


def _letters(k, skip=""):
    return [c for c in string.ascii_lowercase if c not in skip][:k]


@at_user_line
def matmul(a, b):
    x, y = as_node(a), as_node(b)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("matmul: input operand does not have enough dimensions")
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
        raise ShapeError(f"matmul: shapes {x.shape} and {y.shape} are not aligned")
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
    except ShapeError:
        raise


@at_user_line
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


@at_user_line
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


@at_user_line
def clip(x, a_min=None, a_max=None, out=None, **kw):
    r = x
    if a_min is not None:
        r = ufunc("maximum", r, a_min)
    if a_max is not None:
        r = ufunc("minimum", r, a_max)
    return r if isinstance(r, Tracer) else Tracer(as_node(r))


@at_user_line
def concatenate(arrays, axis=0, out=None, **kw):
    nodes = [as_node(a) for a in arrays]
    if axis is None:
        nodes = [ir.reshape(n, n.ndim, (n.size,)) for n in nodes]
        axis = 0
    ndim = nodes[0].ndim
    if ndim == 0:
        raise ShapeError("zero-dimensional arrays cannot be concatenated")
    (ax,) = _axes(axis, ndim)
    try:
        return Tracer(ir.concat(nodes, ax))
    except ShapeError:
        raise


@at_user_line
def stack(arrays, axis=0, out=None, **kw):
    nodes = [as_node(a) for a in arrays]
    shape = nodes[0].shape
    if any(n.shape != shape for n in nodes):
        raise ShapeError("all input arrays must have the same shape to stack")
    (ax,) = _axes(axis, len(shape) + 1)
    pos = ax + len(shape) + 1
    expanded = [ir.reshape(n, n.ndim, shape[:pos] + (1,) + shape[pos:]) for n in nodes]
    return Tracer(ir.concat(expanded, ax))


@at_user_line
def getitem(x, key):
    n = as_node(x)
    key = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, Tracer) for k in key):
        raise _fail("indexing with a traced array", "index with constant integer arrays, or use np.where")
    if any(isinstance(k, (list, np.ndarray)) for k in key):
        return _gather(n, key)
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > n.ndim:
        raise ShapeError(f"too many indices for an array of dimension {n.ndim}")
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
                    f"index {k} is out of bounds for axis {dim} with size {size}"
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
        raise ShapeError(f"too many indices for an array of dimension {n.ndim}")
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
                raise ShapeError(f"index out of bounds for axis {dim} with size {size}")
            layout.append(("a", len(arrays)))
            arrays.append(ir.const_node(np.asarray(arr % size, dtype=np.intp), keep_dtype=True))
        dim += 1
    return Tracer(ir.gather(n, tuple(layout), n.shape, arrays))


@at_user_line
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


@at_user_line
def var(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    count, centered = _spread(x, axis, "var", dtype, out, kw)
    return _per_degree_of_freedom(reduce_sum(centered * centered, axis, keepdims), count, ddof)


@at_user_line
def std(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    count, centered = _spread(x, axis, "std", dtype, out, kw)
    if count == 1 and count - ddof > 0:
        # one element per reduction: the std is the constant 0 (NaN for inf/NaN), whose derivative is
        # 0; sqrt(var) would give sqrt'(0) * 0 = inf * 0 = NaN. |x - mean| is the same value.
        spread = reduce_sum(ufunc("absolute", centered), axis, keepdims)
        return spread if ddof == 0 else spread * (1 / sympy.sqrt(sympy.nsimplify(1 - ddof)))
    return ufunc("sqrt", _per_degree_of_freedom(reduce_sum(centered * centered, axis, keepdims), count, ddof))


@at_user_line
def cumsum(x, axis=None, dtype=None, out=None):
    _no_extra({"dtype": dtype, "out": out}, "cumsum")
    n = as_node(x)
    if axis is None:
        n, axis = ir.reshape(n, n.ndim, (n.size,)), 0
    (ax,) = _axes(axis, n.ndim)
    return Tracer(ir.cumsum(n, ax))


@at_user_line
def squeeze(x, axis=None):
    n = as_node(x)
    axes = [a for a in range(-n.ndim, 0) if n.shape[a] == 1] if axis is None else list(_axes(axis, n.ndim))
    if any(n.shape[a] != 1 for a in axes):
        raise ShapeError("cannot select an axis to squeeze out which has size not equal to one")
    return Tracer(ir.reshape(n, n.ndim, tuple(d for i, d in enumerate(n.shape) if i - n.ndim not in axes)))


@at_user_line
def expand_dims(x, axis):
    n = as_node(x)
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    ndim = n.ndim + len(axes)
    new = sorted(a % ndim for a in axes)
    shape, it = [], iter(n.shape)
    for i in range(ndim):
        shape.append(1 if i in new else next(it))
    return Tracer(ir.reshape(n, n.ndim, tuple(shape)))


@at_user_line
def broadcast_to(x, shape, subok=False):
    n = as_node(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    try:
        return Tracer(ir.broadcast(n, n.ndim, shape))
    except (ShapeError, ValueError) as e:
        raise ShapeError(f"{e}") from None


@at_user_line
def moveaxis(x, source, destination):
    n = as_node(x)
    src = [a % n.ndim for a in ((source,) if isinstance(source, numbers.Integral) else source)]
    dst = [a % n.ndim for a in ((destination,) if isinstance(destination, numbers.Integral) else destination)]
    order = [a for a in range(n.ndim) if a not in src]
    for d, s_ in sorted(zip(dst, src)):
        order.insert(d, s_)
    return Tracer(ir.transpose(n, order))


@at_user_line
def split(x, indices_or_sections, axis=0):
    n = as_node(x)
    (ax,) = _axes(axis, n.ndim)
    size = n.shape[ax]
    if isinstance(indices_or_sections, numbers.Integral):
        if size % indices_or_sections:
            raise ShapeError("array split does not result in an equal division")
        step = size // indices_or_sections
        bounds = list(range(0, size + 1, step))
    else:
        bounds = [0] + [min(int(i), size) for i in indices_or_sections] + [size]
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = (Ellipsis, slice(lo, hi)) + (slice(None),) * (-ax - 1)
        parts.append(getitem(Tracer(n), key))
    return parts


@at_user_line
def outer(a, b, out=None):
    x, y = as_node(a), as_node(b)
    x, y = ir.reshape(x, x.ndim, (x.size,)), ir.reshape(y, y.ndim, (y.size,))
    return Tracer(ir.einsum("i,j->ij", x, y))


@at_user_line
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
            raise ShapeError("shape-mismatch for sum in tensordot")
        tb[j] = ta[i]
    out_ = [c for i, c in enumerate(ta) if i not in ax_a] + [c for j, c in enumerate(tb) if j not in ax_b]
    return Tracer(ir.einsum(f"{''.join(ta)},{''.join(tb)}->{''.join(out_)}", x, y))


@at_user_line
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
        raise ShapeError(f"einsum {subscripts!r} needs {len(terms)} operands")
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
    except ShapeError:
        raise


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


@at_user_line
def diagonal(x, offset=0, axis1=0, axis2=1):
    n = as_node(x)
    a, b = sorted((axis1 % n.ndim, axis2 % n.ndim))
    if (a, b) != (axis1 % n.ndim, axis2 % n.ndim):
        offset = -offset
    return Tracer(_take_diagonal(n, a, b, offset))


@at_user_line
def trace_(x, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return reduce_sum(diagonal(x, offset, axis1, axis2), axis=-1)


@at_user_line
def diag(v, k=0):
    n = as_node(v)
    if n.ndim == 2:
        return diagonal(v, k)
    if n.ndim != 1:
        raise ShapeError("diag needs a 1-D or 2-D array")
    size = n.shape[0] + abs(k)
    r = np.arange(n.shape[0]) + max(0, -k)
    c = np.arange(n.shape[0]) + max(0, k)
    idx = [ir.const_node(r.astype(np.intp), keep_dtype=True), ir.const_node(c.astype(np.intp), keep_dtype=True)]
    return Tracer(ir.scatter_add(n, (("a", 0), ("a", 1)), (size, size), idx))


@at_user_line
def norm(x, ord=None, axis=None, keepdims=False):
    n = as_node(x)
    if ord in (None, "fro", 2) and (ord != 2 or axis is not None or n.ndim == 1):
        return ufunc("sqrt", reduce_sum(x * x, axis, keepdims))
    if ord == 1 and (n.ndim == 1 or axis is not None):
        return reduce_sum(ufunc("absolute", x), axis, keepdims)
    if ord == np.inf and (n.ndim == 1 or axis is not None):
        return extreme(ufunc("absolute", x), axis, keepdims, "max")
    raise _fail(f"np.linalg.norm with ord={ord!r} on a {n.ndim}-D array", "use ord=None/'fro', 1 or inf on vectors")


@at_user_line
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
