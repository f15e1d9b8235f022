"""User-defined rules as ops: one node per call of a ``custom_jvp``/``custom_vjp`` function.

At the call, the function, the rule and (for custom_vjp) the forward and backward passes are traced
once over fresh inputs; the node keeps those graphs. Its derivatives apply them to the node's real
inputs: a JVP rule is linear in its tangents and ``bwd`` is linear in its cotangent, so forward and
reverse mode (and tangents or cotangents with leading basis axes) are forward- or reverse-mode
passes through those linear graphs. Before emission a node is replaced by its function's graph
(``lower``): generated code computes the function, the rules shape only its derivatives.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ShapeError, TraceError
from ..graph import Node, fresh_input, structure_key, substitute
from .base import Op, register


class _Traced:
    """The graphs of one call: ``primal`` over fresh inputs ``primals``; the rule's graphs over the
    primals and fresh ``tangents`` (custom_jvp: the tangent output) or a fresh output cotangent ``g``
    (custom_vjp: one cotangent per argument). A call made while the same function's rule is being
    traced (the rule calls the function itself, as rules do) traces its rule when first needed."""

    def __init__(self, name: str, primals: tuple, primal: Node, trace_rule):
        self.name, self.primals, self.primal = name, primals, primal
        self._trace_rule, self._rule = trace_rule, None
        self.key = structure_key([primal, *primals])  # completed with the rule's structure below

    def rule(self):
        """(fresh rule inputs, rule outputs), traced on first use."""
        if self._rule is None:
            from ..optimize import optimize

            inputs, outputs = self._trace_rule(self.primals)
            # fused and in stable forms before anything differentiates it, as the traced function is
            outputs = tuple(optimize(list(outputs), keep=[*self.primals, *inputs], lower=False))
            self._rule = inputs, outputs
            self.key = structure_key([self.primal, *outputs, *self.primals, *inputs])
        return self._rule

    def bound(self, node: Node, outputs) -> list:
        """``outputs`` with the fresh primal inputs replaced by the node's real inputs."""
        return substitute(list(outputs), {id(p): x for p, x in zip(self.primals, node.inputs)})

    def __repr__(self) -> str:  # shown in graph listings and folded into cache keys
        return f"{self.name}#{self.key[:16]}"


class _Custom(Op):
    opaque = True  # its derivative comes from its rule only: never differentiated through its formula

    def evaluate(self, node, xs, symbolic):
        from ..evaluate import evaluate

        traced = node.params[0]
        (value,) = evaluate([traced.primal], dict(enumerate(xs)), symbolic)
        return value

    def lower(self, node):
        (value,) = node.params[0].bound(node, [node.params[0].primal])
        return value


@register
class CustomJVP(_Custom):
    """A call of a ``symdiff.custom_jvp`` function: derivatives from its JVP rule."""

    name = "custom_jvp"

    def vjp(self, node, g, wanted, n_lead):
        from .. import differentiate

        traced = node.params[0]
        fresh, (tangent,) = traced.rule()
        (tangent,) = traced.bound(node, [tangent])
        cts = differentiate.vjp([tangent], [g], [fresh[i] for i in wanted], lead=g.shape[:n_lead])
        yield from zip(wanted, cts)

    def jvp(self, node, tangents, lead):
        from .. import differentiate

        traced = node.params[0]
        fresh, (tangent,) = traced.rule()
        (tangent,) = traced.bound(node, [tangent])
        pairs = [(fresh[i], t) for i, t in enumerate(tangents) if t is not None]
        (out,) = differentiate.jvp([tangent], [p for p, _ in pairs], [t for _, t in pairs], lead=lead)
        return out


@register
class CustomVJP(_Custom):
    """A call of a ``symdiff.custom_vjp`` function: derivatives from its fwd/bwd."""

    name = "custom_vjp"

    def vjp(self, node, g, wanted, n_lead):
        from .. import differentiate

        traced = node.params[0]
        (g_fresh,), cotangents = traced.rule()
        cts = traced.bound(node, [cotangents[i] for i in wanted])
        for i, ct in zip(wanted, cts):  # bwd is linear in g: push g (with its basis axes) through it
            (c,) = differentiate.jvp([ct], [g_fresh], [g], lead=g.shape[:n_lead])
            yield i, c

    def jvp(self, node, tangents, lead):
        from .. import differentiate

        traced = node.params[0]
        (g_fresh,), cotangents = traced.rule()
        live = [i for i, t in enumerate(tangents) if t is not None]
        cts = traced.bound(node, [cotangents[i] for i in live])
        # J t is the transpose of g -> bwd(g) applied to t: reverse mode through the linear bwd graph
        (out,) = differentiate.vjp(cts, [tangents[i] for i in live], [g_fresh], lead=lead)
        return out


# ---------------------------------------------------------------------------------------------
# Calls from traced code
# ---------------------------------------------------------------------------------------------


def _name(obj) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _primal_graph(obj, args, kwargs):
    from .. import trace

    nodes = [trace.as_node(a) for a in args]
    primals = tuple(fresh_input(i, n.shape, n.dtype, "primal") for i, n in enumerate(nodes))
    out = trace.run(obj.fun, list(primals), static=kwargs)
    if not isinstance(out, Node):
        raise TraceError(f"{_name(obj)} must return one array to have a custom derivative rule")
    return nodes, primals, out


def _check(value, like: Node, what: str) -> Node:
    from .. import trace

    node = trace.to_nodes(value)
    if not isinstance(node, Node) or node.shape != like.shape:
        got = getattr(node, "shape", type(value).__name__)
        raise ShapeError(f"{what} has shape {got}, but it must have the shape {like.shape} of its primal")
    return node


class _RuleTraces(threading.local):
    def __init__(self):
        self.running: set = set()  # ids of custom functions whose rules are being traced


_rule_traces = _RuleTraces()


def _make_node(op: str, obj, args, kwargs, trace_rule) -> object:
    """The traced result of calling ``obj`` on ``args``: one node holding the function's graph; the
    rule is traced now, unless the call comes from inside the same function's rule."""
    from .. import trace

    nodes, primals, out = _primal_graph(obj, args, kwargs)

    def traced_rule(fresh_primals):
        _rule_traces.running.add(id(obj))
        try:
            return trace_rule(fresh_primals, out)
        finally:
            _rule_traces.running.discard(id(obj))

    traced = _Traced(_name(obj), primals, out, traced_rule)
    if id(obj) not in _rule_traces.running:
        traced.rule()
    return trace.Tracer(Node(op, tuple(nodes), out.shape, out.dtype, (traced,)))


def call_custom_jvp(obj, args, kwargs):
    """The node of one call of a ``custom_jvp`` function on traced arguments."""
    from .. import trace

    if obj.jvp is None:
        raise TraceError(f"{_name(obj)} is a custom_jvp function without a rule: define it with @{_name(obj)}.defjvp")

    def trace_rule(primals, out):
        tangents = tuple(fresh_input(i, p.shape, p.dtype, "tangent") for i, p in enumerate(primals))
        n = len(primals)

        def rule(*xs):
            result = obj.jvp(tuple(xs[:n]), tuple(xs[n:]))
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TraceError(f"the jvp rule of {_name(obj)} must return (primal_out, tangent_out)")
            return result

        _, tangent = trace.run(rule, list(primals) + list(tangents))
        return tangents, (_check(tangent, out, f"the tangent from {_name(obj)}'s rule"),)

    return _make_node("custom_jvp", obj, args, kwargs, trace_rule)


def call_custom_vjp(obj, args, kwargs):
    """The node of one call of a ``custom_vjp`` function on traced arguments."""
    from .. import trace

    if obj.fwd is None or obj.bwd is None:
        raise TraceError(f"{_name(obj)} is a custom_vjp function without rules: call {_name(obj)}.defvjp(fwd, bwd)")

    def trace_rule(primals, out):
        held: list = []  # the residuals, as the forward pass returned them

        def forward(*xs):
            result = obj.fwd(*xs)
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TraceError(f"the fwd of {_name(obj)} must return (out, residuals)")
            held.append(result[1])
            return result[0]

        trace.run(forward, list(primals))
        g = fresh_input(0, out.shape, out.dtype, "cotangent")

        def backward(g_tracer):
            result = obj.bwd(held[0], g_tracer)
            if not isinstance(result, (tuple, list)) or len(result) != len(primals):
                raise TraceError(
                    f"the bwd of {_name(obj)} must return a tuple of {len(primals)} cotangents, one per argument"
                )
            return tuple(np.zeros(p.shape) if c is None else c for c, p in zip(result, primals))

        cts = trace.run(backward, [g])
        return (g,), tuple(_check(c, p, f"cotangent {i} from {_name(obj)}'s bwd") for i, (c, p) in enumerate(zip(cts, primals)))

    return _make_node("custom_vjp", obj, args, kwargs, trace_rule)
