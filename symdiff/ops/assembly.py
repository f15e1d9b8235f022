"""numpy's assembly functions (stack, split, tile, pad, roll, flip, triangles, kron, diff, cumprod,
take, select...) composed of the structural ops (slices, gathers, concatenation, reshape, broadcast,
einsum) and the ufunc table, so they need no derivative rules of their own (sorting: ``sorting``).
"""

from __future__ import annotations

import itertools
import numbers
import string

import numpy as np

from ..errors import DtypeError, ShapeError
from ..graph import Node, const_node
from . import elementwise as ew
from .advanced import runtime_positions
from .indexing import gather, getitem, index, np_diag, np_split
from .products import einsum
from .shape import broadcast, concat, reshape, transpose
from .sorting import reorder
from .surface import _as_tracers, as_node, is_traced, negative_axes, numpy_function, refuse, refuse_given, ufunc


def _apply(name: str, *args) -> Node:
    """numpy's ufunc ``name`` on nodes, tracers or constants, as a node."""
    return as_node(ufunc(name, *(_as_tracers(a) for a in args)))


def _axis(axis, ndim: int) -> int:
    """A non-negative axis, checked."""
    return negative_axes(axis, ndim)[0] + ndim


def _slice(x: Node, axis: int, start=None, stop=None, step=None) -> Node:
    """``x[..., start:stop:step, ...]`` along ``axis`` (non-negative)."""
    idx = [(0, d, 1) for d in x.shape]
    idx[axis] = slice(start, stop, step).indices(x.shape[axis])
    return index(x, tuple(idx))


def _positions(x: Node, axis: int, positions) -> Node:
    """``x`` indexed along ``axis`` by the constant integer array ``positions`` (np.take)."""
    return take_at(x, axis, const_node(np.asarray(positions, dtype=np.intp), keep_dtype=True))


def take_at(x: Node, axis: int, positions: Node) -> Node:
    """``x`` indexed along ``axis`` by the integer node ``positions`` (np.take)."""
    layout = tuple(("a", 0) if k == axis else ("s", (0, d, 1)) for k, d in enumerate(x.shape))
    return gather(x, layout, x.shape, [positions])


def _along(x: Node, axis: int, positions: Node) -> Node:
    """np.take_along_axis with the integer node ``positions`` (a constant or a run-time permutation)."""
    if positions.ndim != x.ndim:
        raise ShapeError("`indices` and `arr` must have the same number of dimensions")
    arrays, layout = [], []
    for k, d in enumerate(x.shape):
        layout.append(("a", k))
        if k == axis:
            arrays.append(positions)
        else:
            ones = [1] * x.ndim
            ones[k] = d
            arrays.append(const_node(np.arange(d, dtype=np.intp).reshape(ones), keep_dtype=True))
    return gather(x, tuple(layout), x.shape, arrays)


def _moved(x: Node, source: int, destination: int) -> Node:
    order = [k for k in range(x.ndim) if k != source]
    order.insert(destination, source)
    return transpose(x, order)


def _ints(value, what: str):
    if is_traced(value):
        raise refuse(f"{what} given by a traced value", "pass Python integers or constant arrays")
    return value


# ---------------------------------------------------------------------------------------------
# Dimensions
# ---------------------------------------------------------------------------------------------


def _at_least(arys, rank: int, grow):
    nodes = [as_node(a) for a in arys]
    out = [x if x.ndim >= rank else reshape(x, x.ndim, grow(x.shape)) for x in nodes]
    return out[0] if len(out) == 1 else tuple(_as_tracers(out))


@numpy_function(np.atleast_2d)
def np_atleast_2d(*arys):
    return _at_least(arys, 2, lambda s: (1,) * (2 - len(s)) + s)


@numpy_function(np.atleast_3d)
def np_atleast_3d(*arys):
    return _at_least(arys, 3, lambda s: {0: (1, 1, 1), 1: (1,) + s + (1,), 2: s + (1,)}[len(s)])


# ---------------------------------------------------------------------------------------------
# Stacking and splitting
# ---------------------------------------------------------------------------------------------


def _joined(tup, rank: int, axis_of_1d: int | None, axis: int):
    if not tup:
        raise ShapeError("need at least one array to concatenate")
    nodes = [as_node(a) for a in tup]
    if rank == 1:
        nodes = [x if x.ndim else reshape(x, 0, (1,)) for x in nodes]
    else:
        nodes = [as_node(np_atleast_2d(x) if rank == 2 else np_atleast_3d(x)) for x in nodes]
    if axis_of_1d is not None and nodes[0].ndim == 1:
        axis = axis_of_1d
    return concat(nodes, axis - nodes[0].ndim)


@numpy_function(np.hstack)
def np_hstack(tup, *, dtype=None, casting="same_kind"):
    refuse_given("np.hstack", dtype=dtype)
    return _joined(tup, 1, 0, 1)


@numpy_function(np.vstack)
def np_vstack(tup, *, dtype=None, casting="same_kind"):
    refuse_given("np.vstack", dtype=dtype)
    return _joined(tup, 2, None, 0)


@numpy_function(np.dstack)
def np_dstack(tup):
    return _joined(tup, 3, None, 2)


@numpy_function(np.column_stack)
def np_column_stack(tup):
    nodes = [as_node(a) for a in tup]
    nodes = [reshape(x, x.ndim, (x.size, 1)) if x.ndim < 2 else x for x in nodes]
    return concat(nodes, 1 - nodes[0].ndim)


@numpy_function(np.append)
def np_append(arr, values, axis=None):
    x, v = as_node(arr), as_node(values)
    if axis is None:
        return concat([reshape(x, x.ndim, (x.size,)), reshape(v, v.ndim, (v.size,))], -1)
    (axis,) = negative_axes(axis, x.ndim)
    return concat([x, v], axis)


@numpy_function(np.array_split)
def np_array_split(ary, indices_or_sections, axis=0):
    x = as_node(ary)
    axis = _axis(axis, x.ndim)
    size = x.shape[axis]
    sections = _ints(indices_or_sections, "np.array_split sections")
    if isinstance(sections, numbers.Integral):
        if sections <= 0:
            raise ValueError("number sections must be larger than 0.")
        each, extra = divmod(size, sections)
        bounds = np.cumsum([0] + extra * [each + 1] + (sections - extra) * [each]).tolist()
    else:
        bounds = [0] + list(sections) + [size]
    rest = (slice(None),) * (x.ndim - axis - 1)
    return [getitem(x, (Ellipsis, slice(lo, hi)) + rest) for lo, hi in itertools.pairwise(bounds)]


def _split_at_least(ary, indices_or_sections, rank: int, axis: int, name: str):
    x = as_node(ary)
    if x.ndim < rank:
        raise ShapeError(f"{name} only works on arrays of {rank} or more dimensions")
    return np_split(x, indices_or_sections, axis)


@numpy_function(np.hsplit)
def np_hsplit(ary, indices_or_sections):
    x = as_node(ary)
    return _split_at_least(x, indices_or_sections, 1, 1 if x.ndim > 1 else 0, "hsplit")


@numpy_function(np.vsplit)
def np_vsplit(ary, indices_or_sections):
    return _split_at_least(ary, indices_or_sections, 2, 0, "vsplit")


@numpy_function(np.dsplit)
def np_dsplit(ary, indices_or_sections):
    return _split_at_least(ary, indices_or_sections, 3, 2, "dsplit")


# ---------------------------------------------------------------------------------------------
# Repetition and padding
# ---------------------------------------------------------------------------------------------


@numpy_function(np.tile)
def np_tile(A, reps):
    x = as_node(A)
    reps = tuple(int(r) for r in np.atleast_1d(_ints(reps, "np.tile reps")))
    n = max(len(reps), x.ndim)
    shape = (1,) * (n - x.ndim) + x.shape
    reps = (1,) * (n - len(reps)) + reps
    spread = reshape(x, x.ndim, tuple(d for s in shape for d in (1, s)))
    stretched = broadcast(spread, 2 * n, tuple(d for r, s in zip(reps, shape) for d in (r, s)))
    return reshape(stretched, 2 * n, tuple(r * s for r, s in zip(reps, shape)))


@numpy_function(np.repeat, method="repeat")
def np_repeat(a, repeats, axis=None):
    x = as_node(a)
    if axis is None:
        x, axis = reshape(x, x.ndim, (x.size,)), 0
    axis = _axis(axis, x.ndim)
    return _positions(x, axis, np.repeat(np.arange(x.shape[axis]), _ints(repeats, "np.repeat repeats")))


_PAD_BY_POSITION = ("edge", "reflect", "symmetric", "wrap")


@numpy_function(np.pad)
def np_pad(array, pad_width, mode="constant", **kwargs):
    x = as_node(array)
    widths = np.broadcast_to(np.asarray(_ints(pad_width, "np.pad pad_width"), dtype=np.intp), (x.ndim, 2))
    if mode == "constant":
        if set(kwargs) - {"constant_values"}:
            raise refuse(f"np.pad with {', '.join(sorted(kwargs))}=")
        fills = kwargs.get("constant_values", 0)
        if is_traced(fills):
            raise refuse("np.pad with traced constant_values", "pad with zeros and add the values")
        fills = np.broadcast_to(np.asarray(fills, dtype=float), (x.ndim, 2))
        for axis, ((before, after), (low, high)) in enumerate(zip(widths, fills)):
            parts = []
            for width, value in ((before, low), (None, None), (after, high)):
                if width is None:
                    parts.append(x)
                elif width:
                    parts.append(ew.fill(float(value), x.shape[:axis] + (int(width),) + x.shape[axis + 1 :], x.dtype))
            x = concat(parts, axis - x.ndim) if len(parts) > 1 else x
        return x
    if mode not in _PAD_BY_POSITION:
        raise refuse(f"np.pad with mode={mode!r}", f"modes: constant, {', '.join(_PAD_BY_POSITION)}")
    if kwargs.get("reflect_type", "even") != "even" or set(kwargs) - {"reflect_type"}:
        raise refuse(f"np.pad with {kwargs}", "only reflect_type='even'")
    for axis, (before, after) in enumerate(widths):
        if before or after:
            x = _positions(x, axis, np.pad(np.arange(x.shape[axis]), (before, after), mode=mode))
    return x


# ---------------------------------------------------------------------------------------------
# Rearranging
# ---------------------------------------------------------------------------------------------


@numpy_function(np.roll)
def np_roll(a, shift, axis=None):
    x = as_node(a)
    if axis is None:
        return reshape(as_node(np_roll(reshape(x, x.ndim, (x.size,)), shift, 0)), 1, x.shape)
    shifts, axes = np.broadcast_arrays(_ints(shift, "np.roll shift"), axis)
    for s, ax in zip(shifts.ravel(), axes.ravel()):
        ax = _axis(int(ax), x.ndim)
        n = x.shape[ax]
        s = int(s) % n if n else 0
        if s:
            x = concat([_slice(x, ax, n - s, n), _slice(x, ax, 0, n - s)], ax - x.ndim)
    return x


@numpy_function(np.rollaxis)
def np_rollaxis(a, axis, start=0):
    x = as_node(a)
    axis = _axis(axis, x.ndim)
    if not -x.ndim <= start <= x.ndim:
        raise ShapeError(f"start {start} is out of bounds for an array of dimension {x.ndim}")
    start = start + x.ndim if start < 0 else start
    if axis < start:
        start -= 1
    return x if axis == start else _moved(x, axis, start)


@numpy_function(np.flip)
def np_flip(m, axis=None):
    x = as_node(m)
    for ax in negative_axes(axis, x.ndim):
        x = _slice(x, ax + x.ndim, None, None, -1)
    return x


@numpy_function(np.fliplr)
def np_fliplr(m):
    if as_node(m).ndim < 2:
        raise ShapeError("Input must be >= 2-d.")
    return as_node(np_flip(m, 1))


@numpy_function(np.flipud)
def np_flipud(m):
    if as_node(m).ndim < 1:
        raise ShapeError("Input must be >= 1-d.")
    return as_node(np_flip(m, 0))


@numpy_function(np.rot90)
def np_rot90(m, k=1, axes=(0, 1)):
    x = as_node(m)
    a0, a1 = (_axis(a, x.ndim) for a in axes)
    if a0 == a1:
        raise ShapeError("Axes must be different.")
    k %= 4
    if k == 0:
        return x
    if k == 2:
        return np_flip(np_flip(x, a0), a1)
    perm = list(range(x.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    return transpose(as_node(np_flip(x, a1)), perm) if k == 1 else np_flip(transpose(x, perm), a1)


# ---------------------------------------------------------------------------------------------
# Triangles, diagonals and products
# ---------------------------------------------------------------------------------------------


def _triangle(m, keep) -> Node:
    x = as_node(m)
    if x.ndim < 1:
        raise ShapeError("tril/triu need an array of at least one dimension")
    rows, cols = x.shape[-2:] if x.ndim >= 2 else (x.shape[-1], x.shape[-1])
    return ew.select(keep(rows, cols), x, 0)  # a select: inf/NaN outside the triangle become 0, as in numpy


@numpy_function(np.tril)
def np_tril(m, k=0):
    return _triangle(m, lambda r, c: np.tri(r, c, k, dtype=bool))


@numpy_function(np.triu)
def np_triu(m, k=0):
    return _triangle(m, lambda r, c: ~np.tri(r, c, k - 1, dtype=bool))


@numpy_function(np.diagflat)
def np_diagflat(v, k=0):
    x = as_node(v)
    return np_diag(reshape(x, x.ndim, (x.size,)), k)


@numpy_function(np.kron)
def np_kron(a, b):
    x, y = as_node(a), as_node(b)
    n = max(x.ndim, y.ndim)
    x = reshape(x, x.ndim, (1,) * (n - x.ndim) + x.shape)
    y = reshape(y, y.ndim, (1,) * (n - y.ndim) + y.shape)
    if n == 0:
        return _apply("multiply", x, y)
    left, right = string.ascii_letters[:n], string.ascii_letters[n : 2 * n]
    spec = f"{left},{right}->{''.join(p + q for p, q in zip(left, right))}"
    return reshape(einsum(spec, x, y), 2 * n, tuple(p * q for p, q in zip(x.shape, y.shape)))


@numpy_function(np.inner)
def np_inner(a, b):
    x, y = as_node(a), as_node(b)
    if x.ndim == 0 or y.ndim == 0:
        return _apply("multiply", x, y)
    if x.shape[-1] != y.shape[-1]:
        raise ShapeError(f"np.inner: last dimensions {x.shape[-1]} and {y.shape[-1]} differ")
    left, right = string.ascii_letters[: x.ndim - 1], string.ascii_letters[x.ndim - 1 : x.ndim + y.ndim - 2]
    return einsum(f"{left}z,{right}z->{left}{right}", x, y)


@numpy_function(np.cross)
def np_cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    x, y = as_node(a), as_node(b)
    x, y = _moved(x, _axis(axisa, x.ndim), x.ndim - 1), _moved(y, _axis(axisb, y.ndim), y.ndim - 1)
    if x.shape[-1] != 3 or y.shape[-1] != 3:
        raise refuse("np.cross of vectors of length 2", "pad them with a zero third component")
    u = [_slice(x, x.ndim - 1, i, i + 1) for i in range(3)]
    v = [_slice(y, y.ndim - 1, i, i + 1) for i in range(3)]
    parts = [_apply("subtract", _apply("multiply", u[i], v[j]), _apply("multiply", u[j], v[i]))
             for i, j in ((1, 2), (2, 0), (0, 1))]
    c = concat(parts, -1)
    return _moved(c, c.ndim - 1, _axis(axisc, c.ndim))


# ---------------------------------------------------------------------------------------------
# Differences and running products
# ---------------------------------------------------------------------------------------------


@numpy_function(np.diff)
def np_diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    x = as_node(a)
    if x.ndim == 0:
        raise ShapeError("diff requires input that is at least one dimensional")
    axis = _axis(axis, x.ndim)
    parts = []
    for extra in (prepend, None, append):
        if extra is None:
            parts.append(x)
        elif extra is not np._NoValue:
            e = as_node(extra)
            if e.ndim == 0:
                e = broadcast(e, 0, x.shape[:axis] + (1,) + x.shape[axis + 1 :])
            parts.append(e)
    x = concat(parts, axis - x.ndim) if len(parts) > 1 else x
    for _ in range(n):
        x = _apply("subtract", _slice(x, axis, 1, None), _slice(x, axis, None, -1))
    return x


@numpy_function(np.cumprod, method="cumprod")
def np_cumprod(a, axis=None, dtype=None, out=None):
    """A scan of products (Hillis-Steele: y *= y shifted by 1, 2, 4, ...): ceil(log2 n) products of
    shifted copies, never a division, so every derivative is exact at zeros too."""
    refuse_given("np.cumprod", dtype=dtype, out=out)
    x = as_node(a)
    if axis is None:
        x, axis = reshape(x, x.ndim, (x.size,)), 0
    axis = _axis(axis, x.ndim)
    y = x
    n, shift = x.shape[axis], 1
    while shift < n:
        ones = ew.fill(1, x.shape[:axis] + (shift,) + x.shape[axis + 1 :], x.dtype)
        y = _apply("multiply", y, concat([ones, _slice(y, axis, 0, n - shift)], axis - x.ndim))
        shift *= 2
    return y


# ---------------------------------------------------------------------------------------------
# Selection: take, take_along_axis, sort, select, nan_to_num
# ---------------------------------------------------------------------------------------------


@numpy_function(np.take, method="take")
def np_take(a, indices, axis=None, out=None, mode="raise"):
    refuse_given("np.take", out=out)
    x = as_node(a)
    if axis is None:
        x, axis = reshape(x, x.ndim, (x.size,)), 0
    axis = _axis(axis, x.ndim)
    if is_traced(indices) and mode == "raise":  # known when the generated code runs
        return take_at(x, axis, runtime_positions(indices))
    positions = np.take(np.arange(x.shape[axis]), _ints(indices, "np.take indices"), mode=mode)
    return _positions(x, axis, positions)


@numpy_function(np.take_along_axis)
def np_take_along_axis(arr, indices, axis=-1):
    x = as_node(arr)
    if axis is None:
        x, axis = reshape(x, x.ndim, (x.size,)), 0
    axis = _axis(axis, x.ndim)
    if is_traced(indices):
        order = as_node(indices)
        reordered = reorder(x, order, axis - x.ndim) if order.ndim == x.ndim else None
        return _along(x, axis, runtime_positions(indices)) if reordered is None else reordered
    positions = np.asarray(indices)
    if positions.dtype.kind not in "iu":
        raise refuse(f"np.take_along_axis with indices of dtype {positions.dtype}", "use integer indices")
    positions = np.asarray(positions % max(x.shape[axis], 1), dtype=np.intp)
    return _along(x, axis, const_node(positions, keep_dtype=True))


@numpy_function(np.select)
def np_select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ShapeError("list of cases must be same length as list of conditions")
    result = default
    for condition, choice in reversed(list(zip(condlist, choicelist))):
        result = ew.select(condition, choice, result)
    return as_node(result)


@numpy_function(np.nan_to_num)
def np_nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    v = as_node(x)
    if np.dtype(v.dtype).kind != "f":
        return v
    big = np.finfo(v.dtype).max
    posinf = big if posinf is None else posinf
    neginf = -big if neginf is None else neginf
    finite = _apply("less_equal", _apply("absolute", v), big)  # False for inf and NaN
    outside = ew.select(_apply("greater", v, 0), posinf, ew.select(_apply("less", v, 0), neginf, nan))
    return ew.select(finite, v, outside)


# ---------------------------------------------------------------------------------------------
# Ranges and elementwise functions that are not ufuncs
# ---------------------------------------------------------------------------------------------


@numpy_function(np.linspace)
def np_linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise DtypeError(f"np.linspace with dtype={np.dtype(dtype)} is not differentiable")
    lo, hi = as_node(start), as_node(stop)
    core = np.broadcast_shapes(lo.shape, hi.shape)
    num = int(num)
    div = num - 1 if endpoint else num
    delta = _apply("subtract", hi, lo)
    steps = np.arange(num, dtype=float).reshape((num,) + (1,) * len(core))
    y = _apply("add", lo, _apply("multiply", steps / div if div > 0 else steps, delta))
    y = broadcast(y, y.ndim, (num,) + core)
    if endpoint and num > 1:  # numpy's last value is exactly stop
        y = concat([_slice(y, 0, None, -1), broadcast(hi, hi.ndim, (1,) + core)], -y.ndim)
    y = _moved(y, 0, _axis(axis, y.ndim))
    if retstep:
        step = _apply("true_divide", delta, div) if div > 0 else ew.fill(float("nan"), core)
        return tuple(_as_tracers([y, step]))
    return y


@numpy_function(np.sinc)
def np_sinc(x):
    return _apply("sinc", x)
