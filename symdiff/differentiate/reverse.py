"""Reverse mode (VJP) on the IR: cotangents flow from the outputs back to the inputs.

A cotangent of a node ``N`` has shape ``L + N.shape``: ``L`` is a basis of directions carried along
the leading axes (``()`` for a gradient, ``(K,)`` for a vectorized Jacobian). Each op's own rule
(``symdiff.ops``) gives its inputs' contributions; cotangents zeroed by a select keep it outside
(``ops.masks``), and so do their contributions through the linear ops.
"""

from __future__ import annotations

import numpy as np
import sympy

from .. import ir, ops, origins
from ..ir import Node, placeholder
from ..ops import masks
from ..ops.base import zeros
from ..primitives import Greater, Where


def _differentiable(node: Node) -> bool:
    return np.dtype(node.dtype).kind == "f"


def active_nodes(outputs, wrt) -> set:
    """ids of nodes on a path from ``wrt`` to ``outputs`` (the only ones that carry derivatives)."""
    depends = {id(n) for n in wrt}
    for n in ir.toposort(outputs):
        if id(n) not in depends and _differentiable(n) and any(id(i) in depends for i in n.inputs):
            depends.add(id(n))
    return depends


add = masks.add  # the sum of two cotangents (None is zero), masks kept outside


def vjp(outputs, cotangents, wrt, lead=()):
    """Cotangents of ``wrt`` given ``cotangents`` (shape ``lead + out.shape``) of ``outputs``."""
    n_lead = len(lead)
    active = active_nodes(outputs, wrt)
    ct: dict = {}
    for o, g in zip(outputs, cotangents):
        if id(o) in active and g is not None:
            ct[id(o)] = add(ct.get(id(o)), g)
    for node in reversed(ir.toposort(outputs)):
        g = ct.get(id(node))
        if g is None or ops.of(node).leaf:
            continue
        wanted = [i for i, x in enumerate(node.inputs) if id(x) in active]
        scope = origins.enter(origins.derived(node.origin, wrt, rule=node))  # the rule's nodes derive from node's line
        try:
            for i, contribution in _masked_rule(node, g, wanted, n_lead):
                x = node.inputs[i]
                if id(x) in active and contribution is not None:
                    ct[id(x)] = add(ct.get(id(x)), contribution)
        finally:
            origins.leave(scope)
    return [ct.get(id(w)) or zeros(tuple(lead) + w.shape, w.dtype) for w in wrt]


def _masked_rule(node: Node, g: Node, wanted: list, n_lead: int):
    """The op's VJP rule, with the mask of ``g`` carried through linear ops: the same rule applied
    to ``g``'s liveness (1 where g may be nonzero, else 0) says where each contribution may be
    nonzero, and the contribution is selected there (elsewhere it is a structural 0)."""
    op = ops.of(node)
    mask = masks.mask(g) if op.linear else None
    if mask is None:
        yield from op.vjp(node, g, wanted, n_lead)
        return
    body, inputs = masks.build(mask, lambda live: sympy.S.One, (g,))
    live = dict(op.vjp(node, ir.elementwise(body, inputs), wanted, n_lead))
    for i, contribution in op.vjp(node, g, wanted, n_lead):
        selected = Where(Greater(placeholder(1), 0), placeholder(0), 0)
        yield i, ir.elementwise(selected, (contribution, live[i]))
