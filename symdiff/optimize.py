"""Stage 3, optimize: make the IR smaller before it is emitted.

Guarantees afterwards: identical nodes are merged, arrays that are one repeated number (structural
zeros above all) are folded into the bodies that use them, identity operations are gone, and chains
of elementwise nodes are fused into single SymPy bodies. Common subexpressions *across* bodies are
left to ``sympy.cse`` at emission, where all outputs of one generated function are seen together.
"""

from __future__ import annotations

import numpy as np
import sympy

from . import ir, ops, origins
from .ir import Node, placeholder
from .primitives import Where, _Comparison, stable_forms


def optimize(outputs: list, keep=(), lower: bool = True) -> list:
    """The optimized equivalent of ``outputs``; nodes in ``keep`` survive unchanged (so derivatives
    can still be taken with respect to them). ``lower=False`` keeps the nodes of user-defined rules
    (before differentiation); otherwise they become the graphs of their functions."""
    if lower:
        outputs = ops.lower(outputs)
    keep = {id(k) for k in keep}
    outputs = _rebuild(outputs, _fold, keep)
    outputs = _fuse(outputs, keep)
    return _rebuild(outputs, _fold_stable, keep)


def _fold_stable(node: Node) -> Node:
    node = _fold(node)
    if node.op == "elementwise" and node.inputs:
        body = _as_numbers(stable_forms(node.body), node.dtype)
        if body != node.body:
            node = Node("elementwise", node.inputs, node.shape, node.dtype, (body,))
    return node


def _as_numbers(body, dtype: str):
    """A comparison computing a non-bool node as 1/0: printed as it is, it would be a bool array, which
    float arithmetic downstream does not mind but a scatter-add (logical or: 1 + 1 = True), an einsum
    and the returned dtype do (the gradient of ``sum(v * (v > 0))`` was a bool array)."""
    boolean = isinstance(body, _Comparison) or (isinstance(body, sympy.logic.boolalg.Boolean) and not body.is_Symbol)
    if dtype != "bool" and boolean:
        return Where(body, 1, 0)
    return body


def _rebuild(outputs, rewrite, keep=frozenset()) -> list:
    """Recreate the graph bottom-up through ``rewrite``, merging structurally identical nodes."""
    interned = _Interned()

    def visit(node, original):
        if id(original) in keep:
            return interned.first(original)
        scope = origins.enter(original.origin)  # what a rewrite makes of a node comes from the node's line
        try:
            new = rewrite(node)
        finally:
            origins.leave(scope)
        return interned.first(new)

    return ir.rewrite(outputs, visit)


class _Interned:
    """The first node of each ``_key``, without computing the key of every elementwise node.

    An elementwise key rebuilds the whole body over its operands (milliseconds for a large body), so
    elementwise nodes are first sorted by a cheap key that equal keys share: shape, dtype and the
    operands the body uses. Full keys are computed only when two nodes share a cheap key."""

    def __init__(self):
        self._exact: dict = {}  # key -> first node
        self._by_cheap: dict = {}  # cheap key -> the one node seen (key not needed yet) or {key: first node}

    def first(self, node: Node) -> Node:
        if node.op != "elementwise" or not node.inputs:
            return self._exact.setdefault(_key(node), node)
        ids = [id(x) for x in node.inputs]
        if len(set(ids)) == len(ids):  # renaming distinct placeholders to distinct operands keeps every symbol
            by_position = {placeholder(i): _operand_symbol(k) for i, k in enumerate(ids)}
            used = frozenset(by_position.get(s, s) for s in node.body.free_symbols)
            key = None
        else:  # a repeated operand can cancel (a0 - a1 over (x, x)): ask the key itself
            key = _key(node)
            used = frozenset(key[1].free_symbols)
        cheap = (node.shape, node.dtype, used)
        seen = self._by_cheap.get(cheap)
        if seen is None:
            self._by_cheap[cheap] = node if key is None else {key: node}
            return node
        if not isinstance(seen, dict):
            seen = self._by_cheap[cheap] = {_key(seen): seen}
        return seen.setdefault(key if key is not None else _key(node), node)


def _key(node: Node):
    if node.op == "input":
        return ("input", node.params, node.shape, node.dtype)
    if node.op == "elementwise" and node.inputs:
        # the body over the operands themselves: minimum(x, y) and minimum(y, x) are one node
        operands = {placeholder(i): _operand_symbol(id(x)) for i, x in enumerate(node.inputs)}
        return ("elementwise", node.body.xreplace(operands), node.shape, node.dtype)
    params = tuple(p.digest if isinstance(p, ir.Constant) else p for p in node.params)
    return (node.op, tuple(id(i) for i in node.inputs), node.shape, node.dtype, params)


def _operand_symbol(node_id: int) -> sympy.Symbol:
    return sympy.Symbol(f"n{node_id}")


def _fill_value(node: Node):
    return node.body if ir.is_fill(node) else None


def _fold(node: Node) -> Node:
    """``node`` folded by its op's rule: one-number inputs folded into a one-number result, identity
    indexing turned into a reshape (``Op.fold``)."""
    if node.op == "elementwise":
        return _fold_elementwise(node)
    folded = ops.of(node).fold(node, [_fill_value(i) for i in node.inputs])
    return node if folded is None else folded


def _fold_elementwise(node: Node) -> Node:
    if node.body.has(sympy.re, sympy.im):
        node = Node("elementwise", node.inputs, node.shape, node.dtype, (_real(node.body),))
    body, inputs = node.body, list(node.inputs)
    if len(set(map(id, inputs))) < len(inputs):  # operands merged into one node: one placeholder each
        first: dict = {}
        for x in inputs:
            first.setdefault(id(x), len(first))
        body = body.xreplace({placeholder(i): placeholder(first[id(x)]) for i, x in enumerate(inputs)})
        unique = tuple({id(x): x for x in inputs}.values())
        return _fold_elementwise(Node("elementwise", unique, node.shape, node.dtype, (body,)))
    if body.is_number:
        return ir.fill(body, node.shape, node.dtype) if inputs else node
    values = [_fill_value(x) for x in inputs]
    if all(v is not None for v in values):
        value = body.xreplace({placeholder(i): v for i, v in enumerate(values)})
        if value.is_number:
            return ir.fill(value, node.shape, node.dtype)
    # inline one-number inputs whose shape the output does not need
    keep, subs = [], {}
    for i, x in enumerate(inputs):
        v = _fill_value(x)
        others = [y for j, y in enumerate(inputs) if j != i and _fill_value(y) is None]
        if v is not None and _shape_kept(others, node.shape):
            subs[placeholder(i)] = v
        else:
            keep.append(i)
    if subs:
        body = body.xreplace(subs)
        if body.is_number:
            return ir.fill(body, node.shape, node.dtype)
        body, inputs = _renumber(body, [inputs[i] for i in keep], keep)
        new = Node("elementwise", tuple(inputs), node.shape, node.dtype, (body,))
        return _fold_elementwise(new) if len(inputs) != len(node.inputs) else new
    # identity: a0 on an input of the same shape and dtype
    if body == placeholder(0) and len(inputs) == 1 and inputs[0].shape == node.shape and inputs[0].dtype == node.dtype:
        return inputs[0]
    return _drop_unused(node)


def _real(body):
    """Arrays are real: re(e) is e and im(e) is 0. (SymPy's derivative of |u| for a u it cannot tell
    is real has both; emitted, np.real(e) was a view of e, overwritten with e when e was evaluated in
    place, and np.imag(e) a read-only array of zeros.)"""
    return body.replace(sympy.re, lambda a: a).replace(sympy.im, lambda a: sympy.S.Zero)


def _shape_kept(inputs, shape) -> bool:
    if not inputs:
        return shape == ()
    return np.broadcast_shapes(*(x.shape for x in inputs)) == tuple(shape)


def _renumber(body, inputs, old_positions):
    mapping = {placeholder(old): placeholder(new) for new, old in enumerate(old_positions)}
    return body.xreplace(mapping), inputs


def _drop_unused(node: Node) -> Node:
    used = {int(s.name[1:]) for s in node.body.free_symbols}
    if len(used) == len(node.inputs):
        return node
    keep = [i for i in range(len(node.inputs)) if i in used]
    inputs = [node.inputs[i] for i in keep]
    if not _shape_kept(inputs, node.shape):
        return node
    body, inputs = _renumber(node.body, inputs, keep)
    return Node("elementwise", tuple(inputs), node.shape, node.dtype, (body,))


# A fused body nests no deeper than this: SymPy walks expressions recursively, so a loop of a few dozen
# iterations fused into one body would exceed Python's recursion limit (a CompileError); deeper chains
# become several arrays instead.
MAX_FUSED_DEPTH = 40
# ... and is no larger than this as a tree: SymPy's walks (free_symbols, has, xreplace) visit a shared
# subexpression once per use, so inlining a body that uses its operand in both branches of a select,
# level after level, made an 84-node body a tree of 7e7 nodes and a compile of many minutes.
MAX_FUSED_TREE = 20000


def _extent(expr) -> tuple:
    """How deeply ``expr`` nests and how many nodes a tree walk of it visits, counted once per
    distinct subexpression and without recursion (deep or heavily shared bodies are what it guards
    against)."""
    known: dict = {}
    stack = [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if ready:
            below = [known[a] for a in e.args]
            known[e] = (1 + max((d for d, _ in below), default=0), 1 + sum(n for _, n in below))
        elif e not in known:
            known[e] = None
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if a not in known)
    return known[expr]


def _depth(expr) -> int:
    return _extent(expr)[0]


def _fusable(body) -> bool:
    depth, size = _extent(body)
    return depth < MAX_FUSED_DEPTH and size <= MAX_FUSED_TREE


def _fuse(outputs: list, keep=frozenset()) -> list:
    """Inline every elementwise node that has a single consumer into that consumer's body."""
    uses: dict = {}
    for node in ir.toposort(outputs):
        for i in set(map(id, node.inputs)):
            uses[i] = uses.get(i, 0) + 1
    for o in outputs:
        uses[id(o)] = uses.get(id(o), 0) + 1

    def inlinable(x: Node) -> bool:
        return (
            x.op == "elementwise"
            and id(x) not in keep
            and x.inputs
            and uses.get(id(x), 0) == 1
            and (x.dtype == "bool" or x.dtype == ir.result_dtype(*(i.dtype for i in x.inputs)))
            and _fusable(x.body)
        )

    def rewrite(node: Node) -> Node:
        if node.op != "elementwise" or not any(inlinable(x) for x in node.inputs):
            return node
        new_inputs: list = []
        subs = {}

        def slot(x):
            if x not in new_inputs:
                new_inputs.append(x)
            return placeholder(new_inputs.index(x))

        inlined = [node.origin]
        for i, x in enumerate(node.inputs):
            if inlinable(x) and _shape_kept(list(x.inputs), x.shape):
                inner = {placeholder(j): slot(y) for j, y in enumerate(x.inputs)}
                subs[placeholder(i)] = x.body.xreplace(inner)
                inlined.append(x.origin)
            else:
                subs[placeholder(i)] = slot(x)
        body = node.body.xreplace(subs)
        if not _shape_kept(new_inputs, node.shape) or _extent(body)[1] > MAX_FUSED_TREE:
            return node
        fused = Node("elementwise", tuple(new_inputs), node.shape, node.dtype, (body,))
        fused.origin = origins.merge(inlined)  # the lines of the chain, when they are one file's
        return fused

    # inlining is transitive because the rebuild visits producers first and use counts are per node
    def visit(node, original):
        if id(original) in keep:
            return original
        uses[id(node)] = uses.get(id(original), 0)
        new = rewrite(node)
        uses[id(new)] = uses.get(id(original), 0)
        return new

    return ir.rewrite(outputs, visit)


def count_ops(outputs) -> int:
    """Operations in the elementwise bodies plus one per structural node (a size-free measure)."""
    total = 0
    for n in ir.toposort(outputs):
        if n.op == "elementwise":
            total += int(sympy.count_ops(n.body))
        elif n.op not in ("input", "const"):
            total += 1
    return total
