"""numpy's advanced indexing of traced arrays, as one ``gather``: integer arrays known at trace time,
boolean masks known at trace time (their positions, np.nonzero), integer arrays known only when the
generated code runs (an integer argument: ``dynamic_gather``), and index arrays separated by a slice,
``...`` or ``None`` (their broadcast axes come first, as numpy puts them).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import ShapeError
from ..graph import Node, const_node
from .base import register
from .indexing import Gather, ScatterAdd, _without_ellipsis, gather
from .shape import transpose
from .surface import as_node, is_traced, refuse


class _MaskAxis:
    """One axis of a constant boolean mask: the positions it selects and the mask's length there."""

    __slots__ = ("length", "positions")

    def __init__(self, positions, length):
        self.positions, self.length = positions, length


def advanced_index(x: Node, key: tuple) -> Node:
    """``x[key]`` for a key holding index arrays (constant or traced integers) or constant masks."""
    key = _without_ellipsis(_masks_as_positions(key), x.ndim)
    entries, axes, dim = [], [], 0
    for k in key:
        if k is None:
            entries.append(None)
            continue
        size = x.shape[dim]
        entries.append(("s", k.indices(size)) if isinstance(k, slice) else ("a", _index_node(k, dim, size)))
        axes.append(dim)
        dim += 1
    arrays = [i for i, e in enumerate(entries) if e is not None and e[0] == "a"]
    if arrays != list(range(arrays[0], arrays[-1] + 1)):
        # separated index arrays: numpy puts their broadcast axes first, then the other axes in order
        order = arrays + [i for i in range(len(entries)) if i not in arrays]
        real = [i for i in range(len(entries)) if entries[i] is not None]
        x = transpose(x, [axes[real.index(i)] for i in order if entries[i] is not None])
        entries = [entries[i] for i in order]
    layout, nodes = [], []
    for e in entries:
        if e is None or e[0] == "s":
            layout.append(e)
        else:
            layout.append(("a", len(nodes)))
            nodes.append(e[1])
    return gather(x, tuple(layout), x.shape, nodes)


def _masks_as_positions(key: tuple) -> tuple:
    """``key`` with each constant boolean mask replaced by its positions, one entry per axis it spans."""
    out = []
    for k in key:
        if isinstance(k, (list, np.ndarray)) and not is_traced(k):
            arr = np.asarray(k)
            if arr.dtype.kind == "b" and arr.ndim:
                out.extend(_MaskAxis(p, n) for p, n in zip(np.nonzero(arr), arr.shape))
                continue
        out.append(k)
    return tuple(out)


def _index_node(k, axis: int, size: int) -> Node:
    """An integer key item as an index array node: a constant (checked and made non-negative) or a
    traced integer array (checked where the generated code indexes, as numpy does)."""
    if is_traced(k):
        return runtime_positions(k)
    if isinstance(k, _MaskAxis):
        if k.length != size:
            raise ShapeError(
                f"boolean index did not match indexed array along axis {axis}; size of axis is {size} "
                f"but size of corresponding boolean axis is {k.length}"
            )
        return const_node(k.positions.astype(np.intp), keep_dtype=True)
    if not isinstance(k, (list, np.ndarray, numbers.Integral)):
        raise refuse(f"indexing with {type(k).__name__}", "use ints, slices, ..., None and integer or boolean arrays")
    arr = np.asarray(k)
    if arr.size == 0 and isinstance(k, list):
        arr = arr.astype(np.intp)  # x[[]]: numpy's empty integer index
    if arr.dtype.kind not in "iu":
        raise refuse(f"indexing with an array of dtype {arr.dtype}", "use integer or boolean arrays")
    if arr.size and (arr.max() >= size or arr.min() < -size):
        raise ShapeError(f"index out of bounds for axis {axis} with size {size}")
    return const_node(np.asarray(arr % size, dtype=np.intp), keep_dtype=True)


def runtime_positions(k) -> Node:
    """A traced index array: integers (an integer argument, or computed from one), never differentiated."""
    node = as_node(k)
    kind = np.dtype(node.dtype).kind
    if kind == "b":
        raise refuse(
            "boolean-mask indexing with a traced mask (its result shape depends on the data)",
            "use np.where(mask, x, 0) and reduce, or build the mask from constant arrays",
        )
    if kind not in "iu":
        raise refuse(f"indexing with a traced {node.dtype} array", "index with integer arrays")
    return node


def _unbatched(node: Node, emit):
    """Run-time index arrays index the core axes: batch axes of a ``signature=`` argument would be
    taken for core axes of the index."""
    if any(emit.batched(i) for i in node.inputs[1:]):
        raise ShapeError(
            "an integer index argument with batch axes (signature=) is not supported: "
            "pass the index array without batch axes"
        )


@register
class DynamicGather(Gather):
    """Integer-array indexing by positions known when the generated code runs (an integer argument).

    numpy's own indexing runs there, so an index out of range raises IndexError as numpy does; the
    positions are data and get no derivative."""

    name = "dynamic_gather"
    opaque = True  # its positions are data, not symbols: no per-point SymPy formula across it

    def statement(self, node, emit):
        _unbatched(node, emit)
        return super().statement(node, emit)


@register
class DynamicScatterAdd(ScatterAdd):
    """The adjoint of ``dynamic_gather``: np.add.at at the run-time positions (repeated ones sum)."""

    name = "dynamic_scatter_add"
    opaque = True

    def statement(self, node, emit):
        _unbatched(node, emit)
        return super().statement(node, emit)
