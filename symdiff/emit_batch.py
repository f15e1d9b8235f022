"""Part of emission: leading batch axes. Which nodes of a function carry the batch axes of its
batched (``signature=``) arguments, and the size-1 axes operands of lower rank need so that numpy's
trailing alignment pairs the right axes."""

from __future__ import annotations

from . import ir
from .ir import Node


def batched_nodes(outputs, plan) -> set:
    batched = {id(plan.inputs[p]) for p in plan.core_ranks}
    for n in ir.toposort(outputs):
        if any(id(i) in batched for i in n.inputs):
            batched.add(id(n))
    return batched


def align_batched(outputs, plan) -> list:
    """With batch axes in front of every batched array, operands of lower rank need explicit
    size-1 axes so that numpy's trailing alignment pairs the right axes."""
    if not plan.core_ranks:
        return outputs
    batched = batched_nodes(outputs, plan)
    mapping: dict = {}
    for node in ir.toposort(outputs):
        inputs = [mapping[id(i)] for i in node.inputs]
        if node.op == "elementwise":
            inputs = [_pad(x, node.ndim) if id(orig) in batched else x for x, orig in zip(inputs, node.inputs)]
        elif node.op == "einsum":
            terms = node.params[0].split("->")[0].split(",")
            lead = node.ndim - len(node.params[0].split("->")[1])
            inputs = [
                _pad(x, lead + len(t)) if id(orig) in batched else x
                for x, orig, t in zip(inputs, node.inputs, terms)
            ]
        new = node if all(a is b for a, b in zip(inputs, node.inputs)) else ir.copy_node(node, inputs)
        mapping[id(node)] = new
        if id(node) in batched:
            batched.add(id(new))
    return [mapping[id(o)] for o in outputs]


def _pad(x: Node, rank: int) -> Node:
    if x.ndim >= rank:
        return x
    return ir.reshape(x, x.ndim, (1,) * (rank - x.ndim) + x.shape)
