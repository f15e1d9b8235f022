"""Sorting: ``argsort``, the permutation sorting the values (computed when the generated code runs,
so no derivative), ``argmax``/``argmin`` (likewise: positions, used as indices), and ``permute``, entries reordered by a permutation (linear: its adjoint reorders by
the inverse permutation). np.sort is one of each, so its derivatives follow the run-time order.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..graph import Node
from .base import Op, refilled, register, unbroadcast
from .shape import reshape
from .surface import as_node, negative_axes, numpy_function, refuse_given


def argsort(x: Node, axis: int) -> Node:
    """The stable sorting permutation of ``x`` along the negative ``axis``, computed at run time."""
    return Node("argsort", (x,), x.shape, "int64", (axis,))


def argextreme(name: str, x: Node, axis: int) -> Node:
    """np.argmax / np.argmin of ``x`` along the negative ``axis`` (first position on ties), at run time."""
    return Node(name, (x,), x.shape[:axis] + x.shape[axis:][1:], "int64", (axis,))


def permute(x: Node, order: Node, axis: int) -> Node:
    """np.take_along_axis(x, order, axis) for a permutation ``order`` of the negative ``axis``
    (leading axes broadcast): its adjoint is the same op with the inverse permutation."""
    return Node("permute", (x, order), np.broadcast_shapes(x.shape, order.shape), x.dtype, (axis,))


@register
class Argsort(Op):
    """The stable permutation sorting one axis, computed at run time; no derivative (piecewise constant).

    np.sort's gradient follows the permutation it reorders by."""

    name = "argsort"
    opaque = True  # no formula of its value: the per-point SymPy paths must not be taken across it
    template = "{{ s.target }} = np.argsort({{ s.x }}, axis={{ s.params[0] }}, kind='stable')"
    array_api_template = "{{ s.target }} = xp.argsort({{ s.x }}, axis={{ s.params[0] }}, stable=True)"

    def vjp(self, node, g, wanted, n_lead):
        yield from ()

    def jvp(self, node, tangents, lead):
        return None

    def evaluate(self, node, xs, symbolic):
        return np.argsort(xs[0], axis=node.params[0], kind="stable")


class _ArgExtreme(Op):
    """The position of the largest (smallest) entry along one axis, first on ties; an integer computed
    at run time, so no derivative: ``x[np.argmax(x)]`` differentiates through the index it picks."""

    opaque = True
    template = "{{ s.target }} = np.{{ s.op }}({{ s.x }}, axis={{ s.params[0] }})"
    array_api_template = "{{ s.target }} = xp.{{ s.op }}({{ s.x }}, axis={{ s.params[0] }})"

    def vjp(self, node, g, wanted, n_lead):
        yield from ()

    def jvp(self, node, tangents, lead):
        return None

    def evaluate(self, node, xs, symbolic):
        return getattr(np, self.name)(xs[0], axis=node.params[0])


@register
class Argmax(_ArgExtreme):
    name = "argmax"


@register
class Argmin(_ArgExtreme):
    name = "argmin"


@register
class Permute(Op):
    """Entries reordered along one axis by a permutation given as an integer array (np.sort's gather)."""

    name = "permute"
    linear = True
    moves_entries = True
    template = "{{ s.target }} = np.take_along_axis({{ s.x }}, {{ s.order }}, axis={{ s.params[0] }})"
    array_api_template = "{{ s.target }} = xp.take_along_axis({{ s.x }}, {{ s.order }}, axis={{ s.params[0] }})"

    def batched_operand_ranks(self, node):
        return [node.ndim, node.ndim]

    def vjp(self, node, g, wanted, n_lead):
        x, order = node.inputs
        (axis,) = node.params
        back = permute(g, argsort(order, axis), axis)
        yield 0, unbroadcast(back, g.shape[:n_lead] + x.shape, n_lead)

    def jvp(self, node, tangents, lead):
        return None if tangents[0] is None else permute(tangents[0], node.inputs[1], node.params[0])

    def evaluate(self, node, xs, symbolic):
        x, order = xs
        rank = max(x.ndim, order.ndim)
        x, order = (np.reshape(a, (1,) * (rank - a.ndim) + a.shape) for a in (x, order))
        return np.take_along_axis(x, order, axis=node.params[0])

    def statement(self, node, emit):
        x, order = node.inputs
        ranks = [n.ndim + emit.batched(n) for n in (x, order)]  # at run time, with the batch axis
        texts = [emit.name(n) + (f"[{'None, ' * (max(ranks) - r)}...]" if r < max(ranks) else "")
                 for n, r in zip((x, order), ranks)]
        return {"op": self.name, "target": emit.name(node), "x": texts[0], "order": texts[1],
                "params": node.params, "inputs": [emit.name(n) for n in node.inputs]}

    def fold(self, node, values):
        return refilled(node, values)


@numpy_function(np.sort)  # not x.sort(): that sorts in place
def np_sort(a, axis=-1, kind=None, order=None, *, stable=None):
    refuse_given("np.sort", order=order)
    x = as_node(a)
    if axis is None:
        x, axis = reshape(x, x.ndim, (x.size,)), -1
    axis = negative_axes(axis, x.ndim)[0]
    return permute(x, argsort(x, axis), axis)


@numpy_function(np.argsort)
def np_argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """The permutation as an integer array (always the stable one); reordering by it (np.take_along_axis,
    or ``x[p]`` for vectors) follows it in every derivative."""
    refuse_given("np.argsort", order=order)
    x = as_node(a)
    if axis is None:
        x, axis = reshape(x, x.ndim, (x.size,)), -1
    return argsort(x, negative_axes(axis, x.ndim)[0])


def reorder(x: Node, order: Node, axis: int) -> Node | None:
    """``x`` reordered along the negative ``axis`` by a traced ``order`` that is a run-time sorting
    permutation of such an axis (np.argsort's), else None (an arbitrary traced index is not traced)."""
    if order.op != "argsort" or order.params[0] % order.ndim != axis % max(order.ndim, 1):
        return None
    if order.shape[axis] != x.shape[axis]:
        raise ShapeError(f"a permutation of {order.shape[axis]} entries cannot reorder an axis of {x.shape[axis]}")
    return permute(x, order, axis)


def _arg_extreme(name, spelled):
    @numpy_function(getattr(np, name), method=name)
    def implementation(a, axis=None, out=None, *, keepdims=False):
        refuse_given(spelled, out=out)
        x = as_node(a)
        if axis is None:
            x, axis = reshape(x, x.ndim, (x.size,)), -1
        axis = negative_axes(axis, x.ndim)[0]
        found = argextreme(name, x, axis)
        return reshape(found, found.ndim, x.shape[:axis] + (1,) + x.shape[axis:][1:]) if keepdims else found

    return implementation


np_argmax = _arg_extreme("argmax", "np.argmax")
np_argmin = _arg_extreme("argmin", "np.argmin")
