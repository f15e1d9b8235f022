"""Shape operations on trailing axes: reshape, broadcast, transpose, concatenate, and the basis ``eye``.

All are linear: their derivative rules move entries around and never compute.
"""

from __future__ import annotations

import numbers
import string

import numpy as np
import sympy

from ..errors import ShapeError
from ..graph import Node, lead_shape, result_dtype
from . import elementwise as ew
from .base import Op, numpy_dtype_name, refilled, register, unbroadcast
from .surface import array_method, as_node, negative_axes, numpy_function, refuse, shape_argument


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
    dtypes = [n.dtype for n in nodes]
    exact = all(np.dtype(d).kind in "iu" for d in dtypes)  # integers (index arrays) stay integers, as in numpy
    return Node("concat", nodes, shape, str(np.result_type(*dtypes)) if exact else result_dtype(*dtypes), (axis,))


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
    moves_entries = True

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
        return refilled(node, values)


@register
class Broadcast(Op):
    """Size-1 trailing axes stretched (numpy broadcasting made explicit)."""

    name = "broadcast"
    linear = True
    moves_entries = True

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
        return refilled(node, values)


@register
class Transpose(Op):
    """Permutation of the trailing axes."""

    name = "transpose"
    linear = True
    moves_entries = True

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
        lead = node.ndim - r  # (static unless batched) for the array API's permute_dims / moveaxis
        axes = None if batched else list(range(lead)) + [lead + p for p in perm]
        return {"op": "transpose", "target": target, "x": x, "matrix_t": None, "swap": False, "spec": spec,
                "axes": axes, "moved": [p - r for p in perm]}

    def fold(self, node, values):
        return refilled(node, values)


@register
class Concat(Op):
    """Concatenation along one axis (np.concatenate, np.stack)."""

    name = "concat"
    linear = True
    moves_entries = True

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


# ---------------------------------------------------------------------------------------------
# numpy's shape functions
# ---------------------------------------------------------------------------------------------


@numpy_function(np.reshape)
def np_reshape(a, shape=None, order="C", copy=None):
    if order != "C":
        raise refuse(f"reshape with order={order!r}", "only C order is supported")
    x = as_node(a)
    shape = shape_argument(shape)
    if list(shape).count(-1) > 1:
        raise ShapeError("can only specify one unknown dimension in reshape")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or x.size % known:
            raise ShapeError(f"cannot reshape an array of size {x.size} into shape {shape}")
        shape = tuple(x.size // known if d == -1 else d for d in shape)
    return reshape(x, x.ndim, shape)


@array_method("reshape")
def reshape_method(a, *shape, order="C", copy=None):
    return np_reshape(a, shape[0] if len(shape) == 1 else shape, order)


@numpy_function(np.ravel, method="ravel")
def np_ravel(a, order="C"):
    return np_reshape(a, -1, order)


@array_method("flatten")
def flatten_method(a, order="C"):
    return np_reshape(a, -1, order)


@numpy_function(np.transpose)
def np_transpose(a, axes=None):
    x = as_node(a)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(k % x.ndim for k in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"axes {axes} do not match an array of dimension {x.ndim}")
    return transpose(x, perm)


@array_method("transpose")
def transpose_method(a, *axes):
    return np_transpose(a, axes[0] if len(axes) == 1 else (axes or None))


@array_method("T", attribute=True)
def matrix_transpose(a):
    return np_transpose(a)


@numpy_function(np.swapaxes, method="swapaxes")
def np_swapaxes(a, axis1, axis2):
    x = as_node(a)
    perm = list(range(x.ndim))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(x, perm)


@array_method("mT", attribute=True)
def stacked_matrix_transpose(a):
    return np_swapaxes(a, -1, -2)


@numpy_function(np.moveaxis)
def np_moveaxis(a, source, destination):
    x = as_node(a)
    src = [k % x.ndim for k in ((source,) if isinstance(source, numbers.Integral) else source)]
    dst = [k % x.ndim for k in ((destination,) if isinstance(destination, numbers.Integral) else destination)]
    order = [k for k in range(x.ndim) if k not in src]
    for d, s_ in sorted(zip(dst, src)):
        order.insert(d, s_)
    return transpose(x, order)


@numpy_function(np.squeeze, method="squeeze")
def np_squeeze(a, axis=None):
    x = as_node(a)
    axes = [k for k in range(-x.ndim, 0) if x.shape[k] == 1] if axis is None else list(negative_axes(axis, x.ndim))
    if any(x.shape[k] != 1 for k in axes):
        raise ShapeError("cannot select an axis to squeeze out which has size not equal to one")
    return reshape(x, x.ndim, tuple(d for i, d in enumerate(x.shape) if i - x.ndim not in axes))


@numpy_function(np.expand_dims)
def np_expand_dims(a, axis):
    x = as_node(a)
    axes = shape_argument(axis)
    ndim = x.ndim + len(axes)
    new = sorted(k % ndim for k in axes)
    sizes = iter(x.shape)
    return reshape(x, x.ndim, tuple(1 if i in new else next(sizes) for i in range(ndim)))


@numpy_function(np.atleast_1d)
def np_atleast_1d(*arys):
    if len(arys) != 1:
        raise refuse("np.atleast_1d of several arrays", "call it once per array")
    x = as_node(arys[0])
    return x if x.ndim else reshape(x, 0, (1,))


@numpy_function(np.broadcast_to)
def np_broadcast_to(array, shape, subok=False):
    x = as_node(array)
    try:
        return broadcast(x, x.ndim, shape_argument(shape))
    except ValueError as e:
        raise ShapeError(f"{e}") from None


@numpy_function(np.concatenate)
def np_concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    nodes = [as_node(a) for a in arrays]
    if axis is None:
        nodes = [reshape(n, n.ndim, (n.size,)) for n in nodes]
        axis = 0
    if nodes[0].ndim == 0:
        raise ShapeError("zero-dimensional arrays cannot be concatenated")
    (axis,) = negative_axes(axis, nodes[0].ndim)
    return concat(nodes, axis)


@numpy_function(np.stack)
def np_stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    nodes = [as_node(a) for a in arrays]
    core = nodes[0].shape
    if any(n.shape != core for n in nodes):
        raise ShapeError("all input arrays must have the same shape to stack")
    (axis,) = negative_axes(axis, len(core) + 1)
    at = axis + len(core) + 1
    return concat([reshape(n, n.ndim, core[:at] + (1,) + core[at:]) for n in nodes], axis)


@numpy_function(np.copy, method="copy")
def np_copy(a, order="K", subok=False):
    return as_node(a)  # traced values are never written in place: a copy is the value itself


@numpy_function(np.shape)
def np_shape(a):
    return as_node(a).shape


@numpy_function(np.ndim)
def np_ndim(a):
    return as_node(a).ndim


@numpy_function(np.size)
def np_size(a, axis=None):
    x = as_node(a)
    return x.size if axis is None else x.shape[axis]
