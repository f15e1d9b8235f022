"""Forward mode (JVP) on the IR: tangents flow from the inputs to the outputs, each op by its own rule.

A tangent of a node ``N`` has shape ``L + N.shape`` (``L``: the leading basis axes of a vectorized
Jacobian, or ``()``).
"""

from __future__ import annotations

from .. import ir, ops, origins
from ..ops.base import pad_rank, zeros
from .reverse import active_nodes


def jvp(outputs, wrt, tangents, lead=()):
    """Tangents of ``outputs`` given ``tangents`` (shape ``lead + w.shape``) of ``wrt``."""
    n_lead = len(lead)
    lead = tuple(lead)
    active = active_nodes(outputs, wrt)
    tan = {id(w): t for w, t in zip(wrt, tangents) if t is not None}
    for node in ir.toposort(outputs):
        if id(node) in tan or id(node) not in active or ops.of(node).leaf:
            continue
        ts = [tan.get(id(x)) if id(x) in active else None for x in node.inputs]
        if all(t is None for t in ts):
            continue
        scope = origins.enter(origins.derived(node.origin, wrt, rule=node))  # the rule's nodes derive from node's line
        try:
            t = ops.of(node).jvp(node, ts, lead)
            if t is not None and t.shape != lead + node.shape:
                t = ir.broadcast(pad_rank(t, node.ndim, t.ndim - n_lead), node.ndim, node.shape)
        finally:
            origins.leave(scope)
        tan[id(node)] = t
    return [tan.get(id(o)) or zeros(lead + o.shape, o.dtype) for o in outputs]
