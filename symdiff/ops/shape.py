"""Shape operations on trailing axes: reshape, broadcast, transpose, concatenate, and the basis ``eye``.

All are linear: their derivative rules move entries around and never compute.
"""

from __future__ import annotations

import string

import numpy as np
import sympy

from ..errors import ShapeError
from ..graph import Node, lead_shape, result_dtype
from . import elementwise as ew
from .base import Op, numpy_dtype_name, register, unbroadcast


def eye_basis(shape, dtype: str) -> Node:
    """The standard basis of arrays of ``shape``, stacked on a leading axis: eye(n).reshape(n, *shape)."""
    n = int(np.prod(shape, dtype=np.int64))
    return Node("eye", (), (n,) + tuple(shape), dtype, (n,))


def reshape(x: Node, r_in: int, new_core) -> Node:
    """Reshape the trailing ``r_in`` axes into ``new_core``."""
    new_core = tuple(int(d) for d in new_core)
    old_core = x.shape[x.ndim - r_in :]
    if int(np.prod(old_core, dtype=np.int64)) != int(np.prod(new_core, dtype=np.int64)):
        raise ShapeError(f"cannot reshape an array of shape {old_core} into shape {new_core}")
    if old_core == new_core:
        return x
    return Node("reshape", (x,), lead_shape(x.shape, r_in) + new_core, x.dtype, (r_in, new_core))


def broadcast(x: Node, r_in: int, target_core) -> Node:
    """Broadcast the trailing ``r_in`` axes of ``x`` to ``target_core`` (numpy's rules)."""
    target_core = tuple(int(d) for d in target_core)
    core = x.shape[x.ndim - r_in :]
    if np.broadcast_shapes(core, target_core) != target_core:
        raise ShapeError(f"cannot broadcast shape {core} to {target_core}")
    if core == target_core:
        return x
    if r_in < len(target_core):  # align explicitly, so the node only ever stretches size-1 axes
        x = reshape(x, r_in, (1,) * (len(target_core) - r_in) + core)
        r_in = len(target_core)
    return Node("broadcast", (x,), lead_shape(x.shape, r_in) + target_core, x.dtype, (r_in, target_core))


def transpose(x: Node, perm) -> Node:
    """Permute the trailing ``len(perm)`` axes."""
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))):
        return x
    r = len(perm)
    core = x.shape[x.ndim - r :]
    return Node("transpose", (x,), lead_shape(x.shape, r) + tuple(core[p] for p in perm), x.dtype, (perm,))


def concat(nodes, axis: int) -> Node:
    """Concatenate along a negative axis; leading axes must agree."""
    nodes = tuple(nodes)
    ref = nodes[0].shape
    for n in nodes[1:]:
        if len(n.shape) != len(ref) or any(
            a != b for i, (a, b) in enumerate(zip(n.shape, ref)) if i - len(ref) != axis
        ):
            raise ShapeError(
                f"all arrays must match except along the concatenation axis: {[n.shape for n in nodes]}"
            )
    shape = list(ref)
    shape[axis] = sum(n.shape[axis] for n in nodes)
    return Node("concat", nodes, shape, result_dtype(*(n.dtype for n in nodes)), (axis,))


@register
class Eye(Op):
    """The standard basis of a Jacobian's input or output space, stacked on a leading axis."""

    name = "eye"
    leaf = True

    def evaluate(self, node, xs, symbolic):
        eye = np.eye(node.params[0], dtype=int).reshape(node.shape)
        return np.vectorize(sympy.Integer, otypes=[object])(eye) if symbolic else eye.astype(node.dtype)

    def statement(self, node, emit):
        return {"op": "eye", "target": emit.name(node), "n": node.params[0], "shape": node.shape,
                "dtype": numpy_dtype_name(node.dtype)}


@register
class Reshape(Op):
    """New shape of the trailing axes, same elements."""

    name = "reshape"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        r_in, new_core = node.params
        x = node.inputs[0]
        yield 0, reshape(g, len(new_core), x.shape[x.ndim - r_in :])

    def jvp(self, node, tangents, lead):
        return reshape(tangents[0], *node.params)

    def evaluate(self, node, xs, symbolic):
        r_in, core = node.params
        (x,) = xs
        return np.reshape(x, x.shape[: x.ndim - r_in] + core)

    def statement(self, node, emit):
        r_in, core = node.params
        return {"op": "reshape", "target": emit.name(node), "x": emit.name(node.inputs[0]), "r_in": r_in,
                "core": core, "shape": node.shape, "batched": emit.batched(node)}

    def fold(self, node, values):
        return None if values[0] is None else ew.fill(values[0], node.shape, node.dtype)


@register
class Broadcast(Op):
    """Size-1 trailing axes stretched (numpy broadcasting made explicit)."""

    name = "broadcast"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        r_in, target = node.params
        x = node.inputs[0]
        yield 0, unbroadcast(g, g.shape[: g.ndim - len(target)] + x.shape[x.ndim - r_in :], g.ndim - len(target))

    def jvp(self, node, tangents, lead):
        return broadcast(tangents[0], *node.params)

    def evaluate(self, node, xs, symbolic):
        r_in, core = node.params
        (x,) = xs
        return np.broadcast_to(x, x.shape[: x.ndim - r_in] + core)

    def statement(self, node, emit):
        _, core = node.params
        return {"op": "broadcast", "target": emit.name(node), "x": emit.name(node.inputs[0]), "r_in": len(core),
                "core": core, "shape": node.shape, "batched": emit.batched(node)}

    def fold(self, node, values):
        return None if values[0] is None else ew.fill(values[0], node.shape, node.dtype)


@register
class Transpose(Op):
    """Permutation of the trailing axes."""

    name = "transpose"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        yield 0, transpose(g, tuple(np.argsort(node.params[0])))

    def jvp(self, node, tangents, lead):
        return transpose(tangents[0], node.params[0])

    def evaluate(self, node, xs, symbolic):
        (perm,) = node.params
        (x,) = xs
        r = len(perm)
        return np.transpose(x, tuple(range(x.ndim - r)) + tuple(x.ndim - r + p for p in perm))

    def statement(self, node, emit):
        (perm,) = node.params
        target, x, batched = emit.name(node), emit.name(node.inputs[0]), emit.batched(node)
        r = len(perm)
        if r >= 2 and list(perm) == list(range(r - 2)) + [r - 1, r - 2]:
            # x.T for a plain matrix; np.swapaxes for stacks (``.mT`` needs numpy >= 2)
            plain = node.ndim == 2 and not batched
            return {"op": "transpose", "target": target, "x": x, "matrix_t": "T" if plain else None, "swap": not plain}
        letters = string.ascii_lowercase[:r]
        spec = f"...{letters}->...{''.join(letters[p] for p in perm)}"
        return {"op": "transpose", "target": target, "x": x, "matrix_t": None, "swap": False, "spec": spec}

    def fold(self, node, values):
        return None if values[0] is None else ew.fill(values[0], node.shape, node.dtype)


@register
class Concat(Op):
    """Concatenation along one axis (np.concatenate, np.stack)."""

    name = "concat"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        from .indexing import index

        (axis,) = node.params
        offset = 0
        for i, x in enumerate(node.inputs):
            size = x.shape[axis]
            if i in wanted:
                core = node.shape[node.ndim + axis :]
                idx = ((offset, offset + size, 1),) + tuple((0, d, 1) for d in core[1:])
                yield i, index(g, idx)
            offset += size

    def jvp(self, node, tangents, lead):
        filled = [t if t is not None else ew.fill(0, lead + x.shape, x.dtype) for t, x in zip(tangents, node.inputs)]
        return concat(filled, node.params[0])

    def evaluate(self, node, xs, symbolic):
        return np.concatenate(xs, axis=node.params[0])

    def statement(self, node, emit):
        return {"op": "concat", "target": emit.name(node), "axis": node.params[0],
                "operands": [emit.name(i) for i in node.inputs]}

    def fold(self, node, values):
        if None not in values and len(set(values)) == 1:  # every part is the same number
            return ew.fill(values[0], node.shape, node.dtype)
        return None
