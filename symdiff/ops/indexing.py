"""Indexing on trailing axes: basic indexing and its adjoint (``index``/``scatter``), integer-array
indexing and its adjoint (``gather``/``scatter_add``), and ``pack`` (entries written into a zero
array: the per-point derivative cores of scalarize).
"""

from __future__ import annotations

import numpy as np
import sympy

from ..graph import Node, lead_shape
from . import elementwise as ew
from . import masks, shape
from .base import Op, register, unbroadcast


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
    ("s", (start, stop, step)), ("a", k) for index array k, or None for a new axis."""
    key = gather_key(layout, [np.zeros(n.shape, dtype=np.intp) for n in index_nodes])
    out_core = np.empty(core, dtype=np.int8)[key].shape
    return Node("gather", (x, *index_nodes), lead_shape(x.shape, len(core)) + out_core, x.dtype, (layout, tuple(core)))


def scatter_add(g: Node, layout: tuple, core, index_nodes) -> Node:
    """The adjoint of ``gather``: zeros of trailing shape ``core`` with ``g`` added at the key."""
    key = gather_key(layout, [np.zeros(n.shape, dtype=np.intp) for n in index_nodes])
    r_out = np.empty(core, dtype=np.int8)[key].ndim
    return Node("scatter_add", (g, *index_nodes), lead_shape(g.shape, r_out) + tuple(core), g.dtype, (layout, tuple(core)))


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
        return None if values[0] is None else ew.fill(values[0], node.shape, node.dtype)


@register
class Scatter(Op):
    """The adjoint of ``index``: zeros with the indexed part written."""

    name = "scatter"
    linear = True

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
    """Integer-array indexing; the index arrays are constant inputs after the array."""

    name = "gather"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        layout, core = node.params
        yield 0, scatter_add(g, layout, core, node.inputs[1:])

    def jvp(self, node, tangents, lead):
        return gather(tangents[0], *node.params, node.inputs[1:])

    def evaluate(self, node, xs, symbolic):
        return xs[0][(Ellipsis,) + gather_key(node.params[0], xs[1:])]

    def statement(self, node, emit):
        text = _gather_text(node.params[0], [emit.name(i) for i in node.inputs[1:]])
        return {"op": "index", "target": emit.name(node), "x": emit.name(node.inputs[0]), "index": text}

    def fold(self, node, values):
        return None if values[0] is None else ew.fill(values[0], node.shape, node.dtype)


@register
class ScatterAdd(Op):
    """The adjoint of ``gather``: zeros with the gathered part added (repeated indices sum)."""

    name = "scatter_add"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        layout, core = node.params
        yield 0, gather(g, layout, core, node.inputs[1:])

    def jvp(self, node, tangents, lead):
        return scatter_add(tangents[0], *node.params, node.inputs[1:])

    def evaluate(self, node, xs, symbolic):
        layout, core = node.params
        x = xs[0]
        key = (Ellipsis,) + gather_key(layout, xs[1:])
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

    def fold(self, node, values):
        return ew.fill(0, node.shape, node.dtype) if values[0] == 0 else None


@register
class Pack(Op):
    """Entries (broadcast over leading axes) written at fixed core positions of a zero array."""

    name = "pack"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        where, core = node.params
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
        where, core = node.params
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
