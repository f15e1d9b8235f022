"""The recorded graph: ``grad_fn`` objects and how each one becomes symdiff IR.

A ``grad_fn`` remembers its operand tensors and how to rebuild its result as an IR node from the
operands' nodes. For an ordinary operation that is the operation's numpy expression run on
``symdiff.trace.Tracer`` objects (the same expression that computed the eager value on arrays);
for a gradient returned with ``create_graph=True`` it is the symbolic derivative graph itself, so a
second ``backward`` differentiates the derivative. No derivative rule lives here: gradients come
from ``symdiff.differentiate``.
"""

from __future__ import annotations

from functools import cache

import sympy

from .. import ir
from ..trace import Tracer, as_node

SECOND_BACKWARD = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they "
    "have already been freed). Saved intermediate values of the graph are freed when you call .backward() "
    "or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time "
    "or if you need to access saved tensors after calling backward."
)


class BackwardFunction:
    """Base of every ``grad_fn`` class; the subclass name is PyTorch's (``SumBackward0``, ...)."""

    __slots__ = ("__weakref__", "_build", "_freed", "_inputs", "_saves", "_versions")

    def __init__(self, inputs, build, saves: bool):
        self._inputs = tuple(inputs)
        self._build = build
        self._saves = saves
        self._versions = tuple(t._vc[0] for t in self._inputs)
        self._freed = False

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object at {id(self):#x}>"

    @property
    def next_functions(self):
        out = []
        for t in self._inputs:
            if t.grad_fn is not None:
                out.append((t.grad_fn, 0))
            elif t.requires_grad:
                out.append((AccumulateGrad(t), 0))
            else:
                out.append((None, 0))
        return tuple(out)

    def node(self, operand_nodes) -> ir.Node:
        """The IR node of this function's result, given its operands' nodes."""
        if self._freed and self._saves:
            raise RuntimeError(SECOND_BACKWARD)
        return self._build(*operand_nodes)


class AccumulateGrad:
    """What ``next_functions`` shows for a leaf that requires grad."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self):#x}>"


@cache
def function_class(name: str) -> type:
    return type(name, (BackwardFunction,), {"__slots__": (), "__module__": __name__})


def record(name: str, fn, inputs, dtype, saves: bool = True) -> BackwardFunction:
    """The grad_fn of ``fn(*inputs)``: ``fn`` is a numpy expression that also runs on tracers;
    ``dtype`` (numpy) is the result's."""

    def build(*nodes):
        return ir.cast(as_node(fn(*(Tracer(n) for n in nodes))), str(dtype))

    return function_class(name)(inputs, build, saves)


def substitute(root: ir.Node, mapping: dict) -> ir.Node:
    """``root`` with the nodes whose ids are in ``mapping`` replaced (the rest rebuilt on top)."""
    new: dict = {}
    for n in ir.toposort([root]):
        if id(n) in mapping:
            new[id(n)] = mapping[id(n)]
            continue
        inputs = tuple(new[id(i)] for i in n.inputs)
        new[id(n)] = n if all(a is b for a, b in zip(inputs, n.inputs)) else ir.Node(n.op, inputs, n.shape, n.dtype, n.params)
    return new[id(root)]


def derivative_function(grad_node: ir.Node, in_nodes, operands) -> BackwardFunction:
    """The grad_fn of a gradient returned with ``create_graph=True``: its graph is ``grad_node``
    (over ``in_nodes``, whose values are the tensors ``operands``)."""
    reached = {id(n) for n in ir.toposort([grad_node])}
    used = [i for i, n in enumerate(in_nodes) if id(n) in reached]
    placeholders = [in_nodes[i] for i in used]

    def build(*nodes):
        return substitute(grad_node, {id(p): n for p, n in zip(placeholders, nodes)})

    return function_class(derivative_name(grad_node))([operands[i] for i in used], build, True)


_STRUCTURAL_NAMES = {
    "sum": "SumBackward1",
    "reshape": "ViewBackward0",
    "broadcast": "ExpandBackward0",
    "transpose": "PermuteBackward0",
    "einsum": "MmBackward0",
    "index": "SliceBackward0",
    "scatter": "SliceBackwardBackward0",
    "concat": "CatBackward0",
    "prod": "ProdBackward1",
}


def derivative_name(node: ir.Node) -> str:
    """PyTorch's name for the last operation of a derivative graph (``AddBackward0`` for a sum of
    contributions, ``MulBackward0`` for a product, ...)."""
    if node.op != "elementwise":
        return _STRUCTURAL_NAMES.get(node.op, "CopyBackwards")
    body = node.body
    if body.is_Add:
        return "AddBackward0"
    if body.is_Mul:
        return "NegBackward0" if len(body.args) == 2 and -1 in body.args else "MulBackward0"
    if body.is_Pow:
        return "PowBackward0"
    if isinstance(body, sympy.Function):
        return type(body).__name__.capitalize() + "Backward0"
    return "CopyBackwards"
