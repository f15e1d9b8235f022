"""Indexing on trailing axes: basic indexing and its adjoint (``index``/``scatter``), integer-array
indexing and its adjoint (``gather``/``scatter_add``), and ``pack`` (entries written into a zero
array: the per-point derivative cores of scalarize).
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np
import sympy

from ..errors import ShapeError
from ..graph import Node, const_node, lead_shape
from . import elementwise as ew
from . import masks, shape
from .base import Op, refilled, register, unbroadcast
from .reductions import np_sum
from .surface import array_method, as_node, is_traced, negative_axes, numpy_function, refuse


def index(x: Node, idx: tuple) -> Node:
    """Basic indexing of the trailing axes. ``idx`` is normalized: one entry per core axis
    (int or (start, stop, step)), plus None entries that insert an axis."""
    r = sum(1 for e in idx if e is not None)
    core = x.shape[x.ndim - r :]
    out, k = [], 0
    for e in idx:
        if e is None:
            out.append(1)
            continue
        if isinstance(e, tuple):
            out.append(len(range(*e)))
        k += 1
    return Node("index", (x,), lead_shape(x.shape, r) + tuple(out), x.dtype, (idx, core))


def scatter(g: Node, idx: tuple, core) -> Node:
    """The adjoint of ``index``: a zero array of trailing shape ``core`` with ``g`` written at ``idx``."""
    r_out = len(index_shape(idx, core))
    return Node("scatter", (g,), lead_shape(g.shape, r_out) + tuple(core), g.dtype, (idx, tuple(core)))


def gather(x: Node, layout: tuple, core, index_nodes) -> Node:
    """Integer-array indexing of the trailing axes. ``layout`` has one entry per key item:
    ("s", (start, stop, step)), ("a", k) for index array k, or None for a new axis. Index arrays
    known only when the generated code runs (an argument) make it a ``dynamic_gather``."""
    key = gather_key(layout, [np.zeros(n.shape, dtype=np.intp) for n in index_nodes])
    out_core = np.empty(core, dtype=np.int8)[key].shape
    name = "gather" if _constant(index_nodes) else "dynamic_gather"
    return Node(name, (x, *index_nodes), lead_shape(x.shape, len(core)) + out_core, x.dtype, (layout, tuple(core)))


def scatter_add(g: Node, layout: tuple, core, index_nodes) -> Node:
    """The adjoint of ``gather``: zeros of trailing shape ``core`` with ``g`` added at the key."""
    key = gather_key(layout, [np.zeros(n.shape, dtype=np.intp) for n in index_nodes])
    r_out = np.empty(core, dtype=np.int8)[key].ndim
    name = "scatter_add" if _constant(index_nodes) else "dynamic_scatter_add"
    return Node(name, (g, *index_nodes), lead_shape(g.shape, r_out) + tuple(core), g.dtype, (layout, tuple(core)))


def _take_axis(layout, core, index_nodes):
    """The (negative) axis a gather indexes with one 1-D array, every other axis whole (np.take's
    form, the array API standard's ``take``), or None."""
    if len(index_nodes) != 1 or index_nodes[0].ndim != 1 or len(layout) != len(core) or None in layout:
        return None
    arrays = [k for k, e in enumerate(layout) if e[0] == "a"]
    whole = all(e[0] == "a" or e[1] == (0, d, 1) for e, d in zip(layout, core))
    return arrays[0] - len(core) if len(arrays) == 1 and whole else None


def _constant(index_nodes) -> bool:
    """Whether every index array is known at trace time (a constant of the generated code)."""
    return all(n.op == "const" for n in index_nodes)


def gather_key(layout, arrays) -> tuple:
    key = []
    for e in layout:
        if e is None:
            key.append(None)
        elif e[0] == "s":
            start, stop, step = e[1]
            key.append(slice(start, None if stop < 0 else stop, step))
        else:
            key.append(arrays[e[1]])
    return tuple(key)


def _positions(arrays) -> list:
    """Index arrays as integers: symbolic evaluation (per-point cores) hands them over as SymPy numbers."""
    return [a if getattr(a, "dtype", None) != object else np.asarray(a).astype(np.intp) for a in arrays]


def pack(entries, where, core, dtype: str, lead=()) -> Node:
    """An array of trailing shape ``core`` that is zero except at ``where[k]`` (a list of core
    positions), which hold ``entries[k]`` (broadcast over leading axes)."""
    return Node("pack", tuple(entries), tuple(lead) + tuple(core), dtype, (tuple(map(tuple, where)), tuple(core)))


def index_shape(idx, core):
    out = []
    for e in idx:
        if e is None:
            out.append(1)
        elif isinstance(e, tuple):
            out.append(len(range(*e)))
    return tuple(out)


def index_text(idx) -> str:
    """A normalized basic index as source text for the trailing axes."""
    parts = ["..."]
    for e in idx:
        if e is None:
            parts.append("None")
        elif isinstance(e, tuple):
            start, stop, step = e
            if step < 0 and stop < 0:
                text = f"{start}::{step}"
            else:
                text = f"{start}:{stop}" + (f":{step}" if step != 1 else "")
            parts.append(text)
        else:
            parts.append(str(e))
    return ", ".join(parts)


def _gather_text(layout, index_names) -> str:
    """An integer-array index as source text (index arrays by name)."""
    parts = ["..."]
    for e in layout:
        if e is None:
            parts.append("None")
        elif e[0] == "a":
            parts.append(index_names[e[1]])
        else:
            parts.append(index_text((e[1],))[5:])
    return ", ".join(parts)


def _slices(idx) -> tuple:
    """A normalized basic index as a numpy key for the trailing axes."""
    out = []
    for e in idx:
        if e is None:
            out.append(None)
        elif isinstance(e, tuple):
            start, stop, step = e
            out.append(slice(start, None if stop < 0 else stop, step))
        else:
            out.append(e)
    return (Ellipsis,) + tuple(out)


def _only_new_axes(idx, core) -> bool:
    """True if an index selects every element and only inserts axes: a reshape."""
    k = 0
    for e in idx:
        if e is None:
            continue
        if not isinstance(e, tuple) or e != (0, core[k], 1):
            return False
        k += 1
    return True


def _zeros_like_core(x, r_out, core, symbolic):
    out = np.zeros(x.shape[: x.ndim - r_out] + tuple(core), dtype=object if symbolic else x.dtype)
    if symbolic:
        out[...] = sympy.S.Zero
    return out


@register
class Index(Op):
    """Basic indexing of the trailing axes: integers, slices, new axes."""

    name = "index"
    linear = True
    moves_entries = True

    def per_point(self, node, arguments, outputs):
        return id(node.inputs[0]) in arguments and all(isinstance(e, int) for e in node.params[0])

    def vjp(self, node, g, wanted, n_lead):
        idx, core = node.params
        yield 0, scatter(g, idx, core)

    def jvp(self, node, tangents, lead):
        return index(tangents[0], node.params[0])

    def evaluate(self, node, xs, symbolic):
        return xs[0][_slices(node.params[0])]

    def statement(self, node, emit):
        idx, _core = node.params
        x, target = node.inputs[0], emit.name(node)
        columns = ", ".join(str(e) for e in idx) if all(isinstance(e, int) for e in idx) else None
        if emit.numba:
            return {"op": "column", "target": target, "x": emit.name(x), "index": columns}
        if columns is not None and emit.batched(node) and x.op == "input":
            # columns of a batch of points: read from one contiguous core-first copy, not strided
            return {"op": "index", "target": target, "x": emit.core_first(x), "index": columns}
        return {"op": "index", "target": target, "x": emit.name(x), "index": index_text(idx)}

    def fold(self, node, values):
        idx, core = node.params
        if _only_new_axes(idx, core):
            return shape.reshape(node.inputs[0], len(core), node.shape[node.ndim - len(index_shape(idx, core)) :])
        return refilled(node, values)


@register
class Scatter(Op):
    """The adjoint of ``index``: zeros with the indexed part written."""

    name = "scatter"
    linear = True
    moves_entries = True

    def vjp(self, node, g, wanted, n_lead):
        yield 0, index(g, node.params[0])

    def jvp(self, node, tangents, lead):
        idx, core = node.params
        return scatter(tangents[0], idx, core)

    def evaluate(self, node, xs, symbolic):
        idx, core = node.params
        (x,) = xs
        out = _zeros_like_core(x, len(index_shape(idx, core)), core, symbolic)
        out[_slices(idx)] = x
        return out

    def statement(self, node, emit):
        idx, core = node.params
        return {"op": "scatter", "target": emit.name(node), "x": emit.name(node.inputs[0]), "index": index_text(idx),
                "core": core, "shape": node.shape, "batched": emit.batched(node), "r_in": len(index_shape(idx, core))}

    def fold(self, node, values):
        idx, core = node.params
        if _only_new_axes(idx, core):
            return shape.reshape(node.inputs[0], len(index_shape(idx, core)), node.shape[node.ndim - len(core) :])
        return ew.fill(0, node.shape, node.dtype) if values[0] == 0 else None


@register
class Gather(Op):
    """Integer-array indexing; the index arrays (known at trace time) are constant inputs after the array."""

    name = "gather"
    # one 1-D index array on one axis (np.take, np.roll, np.repeat, x[[0, 2]]) is the standard's take
    array_api_template = "{{ s.target }} = xp.take({{ s.x }}, {{ s.indices }}, axis={{ s.take_axis }})"
    spelled = ("indexing with integer arrays on several axes or a multi-dimensional index array "
               "(x[[0, 1], [1, 2]], np.diagonal, np.trace, np.einsum('ii->i'))")
    linear = True
    moves_entries = True

    def vjp(self, node, g, wanted, n_lead):
        layout, core = node.params
        yield 0, scatter_add(g, layout, core, node.inputs[1:])

    def jvp(self, node, tangents, lead):
        return gather(tangents[0], *node.params, node.inputs[1:])

    def evaluate(self, node, xs, symbolic):
        return xs[0][(Ellipsis,) + gather_key(node.params[0], _positions(xs[1:]))]

    def statement(self, node, emit):
        layout, core = node.params
        names = [emit.name(i) for i in node.inputs[1:]]
        s = {"op": "index", "target": emit.name(node), "x": emit.name(node.inputs[0]),
             "index": _gather_text(layout, names), "of": self.name}
        if emit.array_api:
            axis = _take_axis(layout, core, node.inputs[1:])
            s.update(take_axis=axis, indices=emit.name(node.inputs[1]) if axis is not None else None,
                     standard=axis is not None)
        elif len(layout) == 1 and layout[0] is not None and layout[0][0] == "a":
            # one index array on the last axis: np.take (several times faster than x[..., idx] on stacks)
            s.update(op="take", index=names[layout[0][1]])
        return s

    def fold(self, node, values):
        return refilled(node, values)


@register
class ScatterAdd(Op):
    """The adjoint of ``gather``: zeros with the gathered part added (repeated indices sum)."""

    name = "scatter_add"
    array_api_template, spelled = False, "the derivative of indexing with an integer array (np.add.at)"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        layout, core = node.params
        yield 0, gather(g, layout, core, node.inputs[1:])

    def jvp(self, node, tangents, lead):
        return scatter_add(tangents[0], *node.params, node.inputs[1:])

    def evaluate(self, node, xs, symbolic):
        layout, core = node.params
        x = xs[0]
        key = (Ellipsis,) + gather_key(layout, _positions(xs[1:]))
        r_out = np.empty(core, dtype=np.int8)[key[1:]].ndim
        out = _zeros_like_core(x, r_out, core, symbolic)
        np.add.at(out, key, x)
        return out

    def statement(self, node, emit):
        layout, core = node.params
        text = _gather_text(layout, [emit.name(i) for i in node.inputs[1:]])
        r_in = node.inputs[0].ndim - (node.ndim - len(core))
        return {"op": "scatter_add", "target": emit.name(node), "x": emit.name(node.inputs[0]), "index": text,
                "core": core, "shape": node.shape, "batched": emit.batched(node), "r_in": r_in}

    def sparsity(self, node, patterns):
        """Each entry sums the entries of ``g`` added at it (the adjoint of gather's pattern)."""
        from . import patterns as pat

        if any(n.op != "const" for n in node.inputs[1:]):
            return pat.everything(node, patterns)
        key = (Ellipsis,) + gather_key(node.params[0], [n.params[0].value.astype(np.intp) for n in node.inputs[1:]])
        targets = np.arange(node.size).reshape(node.shape)[key]
        if targets.shape != node.inputs[0].shape:
            return pat.everything(node, patterns)
        return pat.grouped(patterns[0], targets, node.size)

    def fold(self, node, values):
        return ew.fill(0, node.shape, node.dtype) if values[0] == 0 else None


@register
class Pack(Op):
    """Entries (broadcast over leading axes) written at fixed core positions of a zero array."""

    name = "pack"
    linear = True
    moves_entries = True

    def per_point(self, node, arguments, outputs):  # an output, its entries written per point
        return any(node is o for o in outputs) and node.ndim == len(node.params[1])

    def vjp(self, node, g, wanted, n_lead):
        where, _core = node.params
        for i in wanted:
            total = None
            for pos in where[i]:
                total = masks.add(total, index(g, tuple(pos)) if pos else g)
            yield i, unbroadcast(total, g.shape[:n_lead] + node.inputs[i].shape, n_lead)

    def jvp(self, node, tangents, lead):
        where, core = node.params
        kept = [(x, w) for x, w in zip(tangents, where) if x is not None]
        return pack([x for x, _ in kept], [w for _, w in kept], core, node.dtype, lead)

    def evaluate(self, node, xs, symbolic):
        where, _core = node.params
        out = np.zeros(node.shape, dtype=object if symbolic else node.dtype)
        if symbolic:
            out[...] = sympy.S.Zero
        for value, positions in zip(xs, where):
            for pos in positions:
                out[(Ellipsis,) + tuple(pos)] = value
        return out

    def fold(self, node, values):
        if not any(v == 0 for v in values):
            return None
        kept = [(x, w) for x, w, v in zip(node.inputs, node.params[0], values) if v != 0]
        lead = node.shape[: node.ndim - len(node.params[1])]
        if not kept:
            return ew.fill(0, node.shape, node.dtype)
        return pack([x for x, _ in kept], [w for _, w in kept], node.params[1], node.dtype, lead)


# ---------------------------------------------------------------------------------------------
# numpy's indexing: x[key], diagonals, np.split
# ---------------------------------------------------------------------------------------------


@array_method("__getitem__")
def getitem(a, key):
    x = as_node(a)
    key = key if isinstance(key, tuple) else (key,)
    if len(key) == 1 and is_traced(key[0]) and x.ndim == 1 == as_node(key[0]).ndim:
        from .sorting import reorder

        reordered = reorder(x, as_node(key[0]), -1)  # x[np.argsort(y)]: a run-time permutation
        if reordered is not None:
            return reordered
    if any(isinstance(k, (bool, np.bool_)) for k in key):  # numpy: a new axis of length 1 or 0, not x[1]
        raise refuse("indexing with a boolean scalar", "use x[None] or np.where")
    if any(is_traced(k) or isinstance(k, (list, np.ndarray)) for k in key):
        from .advanced import advanced_index

        return advanced_index(x, key)
    key = _without_ellipsis(key, x.ndim)
    idx, dim = [], 0
    for k in key:
        if k is None:
            idx.append(None)
            continue
        size = x.shape[dim]
        if isinstance(k, slice):
            idx.append(k.indices(size))
        elif isinstance(k, numbers.Integral):
            if not -size <= k < size:
                raise ShapeError(f"index {k} is out of bounds for axis {dim} with size {size}")
            idx.append(int(k) % size)
        else:
            raise refuse(f"indexing with {type(k).__name__}", "use ints, slices, ... and None")
        dim += 1
    if None not in idx and all(e == (0, x.shape[i], 1) for i, e in enumerate(idx)):
        return x
    return index(x, tuple(idx))


def _without_ellipsis(key: tuple, ndim: int) -> tuple:
    """``key`` with its ``...`` (or the missing trailing axes) spelled out as full slices."""
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > ndim:
        raise ShapeError(f"too many indices for an array of dimension {ndim}")
    dots = [i for i, k in enumerate(key) if k is Ellipsis]  # `is`: index arrays compare elementwise
    if len(dots) > 1:
        raise refuse("an index with more than one '...'")
    if dots:
        i = dots[0]
        return key[:i] + (slice(None),) * (ndim - n_real) + key[i + 1 :]
    return key + (slice(None),) * (ndim - n_real)


def take_diagonal(x: Node, i: int, j: int, offset: int = 0) -> Node:
    """Axes i < j replaced by their diagonal, appended last (numpy's diagonal convention)."""
    from .shape import transpose

    rest = [a for a in range(x.ndim) if a not in (i, j)]
    x = transpose(x, rest + [i, j])
    rows, cols = x.shape[-2], x.shape[-1]
    length = max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))
    r = np.arange(length) + max(0, -offset)
    c = np.arange(length) + max(0, offset)
    layout = tuple(("s", (0, d, 1)) for d in x.shape[:-2]) + (("a", 0), ("a", 1))
    positions = [const_node(r.astype(np.intp), keep_dtype=True), const_node(c.astype(np.intp), keep_dtype=True)]
    return gather(x, layout, x.shape, positions)


@numpy_function(np.diagonal, method="diagonal")
def np_diagonal(a, offset=0, axis1=0, axis2=1):
    x = as_node(a)
    i, j = sorted((axis1 % x.ndim, axis2 % x.ndim))
    if (i, j) != (axis1 % x.ndim, axis2 % x.ndim):
        offset = -offset
    return take_diagonal(x, i, j, offset)


@numpy_function(np.trace, method="trace")
def np_trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return np_sum(np_diagonal(a, offset, axis1, axis2), axis=-1)


@numpy_function(np.diag)
def np_diag(v, k=0):
    x = as_node(v)
    if x.ndim == 2:
        return np_diagonal(v, k)
    if x.ndim != 1:
        raise ShapeError("diag needs a 1-D or 2-D array")
    size = x.shape[0] + abs(k)
    r = np.arange(x.shape[0]) + max(0, -k)
    c = np.arange(x.shape[0]) + max(0, k)
    positions = [const_node(r.astype(np.intp), keep_dtype=True), const_node(c.astype(np.intp), keep_dtype=True)]
    return scatter_add(x, (("a", 0), ("a", 1)), (size, size), positions)


@numpy_function(np.split)
def np_split(ary, indices_or_sections, axis=0):
    x = as_node(ary)
    (axis,) = negative_axes(axis, x.ndim)
    size = x.shape[axis]
    if isinstance(indices_or_sections, numbers.Integral):
        if size % indices_or_sections:
            raise ShapeError("array split does not result in an equal division")
        bounds = list(range(0, size + 1, size // indices_or_sections))
    else:
        bounds = [0] + [min(int(i), size) for i in indices_or_sections] + [size]
    rest = (slice(None),) * (-axis - 1)
    return [getitem(ary, (Ellipsis, slice(lo, hi)) + rest) for lo, hi in itertools.pairwise(bounds)]
