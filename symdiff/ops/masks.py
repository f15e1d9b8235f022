"""Masked cotangents: the derivative of a select is a select, so no NaN leaks from the untaken branch.

The VJP of np.where(c, x, y) sends Where(c, g, 0) to x; x's own VJP then multiplies by x's local
derivative, which may be NaN or inf exactly where c is false (sqrt of the negative numbers the other
branch handles), and 0 * NaN is NaN. So the selects that zero a cotangent stay outside of every
contribution computed from it, Where(c, g * f'(x), 0), and outside of sums of such cotangents.

A mask is the select skeleton of an elementwise body: a tree of _Select nodes whose leaves are the
frozensets of terms that are live (nonzero) there; the empty set is a structural zero.
"""

from __future__ import annotations

from typing import NamedTuple

import sympy

from ..graph import Node, placeholder
from ..primitives import Where
from . import elementwise as ew


def add(a: Node | None, b: Node | None) -> Node | None:
    """The sum of two cotangents or tangents (None is zero); where both are masked, the selects stay outside."""
    if a is None:
        return b
    if b is None:
        return a
    ma, mb = mask(a), mask(b)
    if ma is not None and mb is not None:  # zero where both are: the sum keeps the selects outside
        tree = _either(_relabel(ma, 1), _relabel(mb, 2))
        body, inputs = build(tree, lambda live: sympy.Add(*(placeholder(i - 1) for i in sorted(live))), (a, b))
        return ew.elementwise(body, inputs)
    return ew.elementwise(placeholder(0) + placeholder(1), (a, b))


class _Select(NamedTuple):
    key: sympy.Expr  # the condition over symbols naming its nodes: equal keys, equal conditions
    cond: sympy.Expr  # the condition over placeholders 0.. for ``nodes``
    nodes: tuple
    then: object
    other: object


def _skeleton(body, inputs):
    if not isinstance(body, Where):
        return frozenset() if body == 0 else frozenset({0})
    c, x, y = body.args
    then, other = _skeleton(x, inputs), _skeleton(y, inputs)
    if then == other:
        return then
    used = sorted(int(s.name[1:]) for s in c.free_symbols)
    cond = c.xreplace({placeholder(i): placeholder(k) for k, i in enumerate(used)})
    key = c.xreplace({placeholder(i): sympy.Symbol(f"node{id(inputs[i])}") for i in used})
    return _Select(key, cond, tuple(inputs[i] for i in used), then, other)


def mask(node: Node):
    """The select skeleton of ``node`` if it is zero somewhere by construction, else None."""
    if node.op != "elementwise" or not isinstance(node.body, Where):
        return None
    tree = _skeleton(node.body, node.inputs)
    return tree if isinstance(tree, _Select) else None


def _relabel(tree, term: int):
    if not isinstance(tree, _Select):
        return frozenset({term}) if tree else tree
    return tree._replace(then=_relabel(tree.then, term), other=_relabel(tree.other, term))


def _restrict(tree, known: dict):
    while isinstance(tree, _Select) and tree.key in known:
        tree = tree.then if known[tree.key] else tree.other
    return tree


def _either(a, b, known=None):
    """The skeleton of a sum: a term is live where it is live in ``a`` or ``b``."""
    known = known or {}
    a, b = _restrict(a, known), _restrict(b, known)
    if not isinstance(a, _Select) and not isinstance(b, _Select):
        return a | b
    s = a if isinstance(a, _Select) else b
    then = _either(a, b, {**known, s.key: True})
    other = _either(a, b, {**known, s.key: False})
    return then if then == other else s._replace(then=then, other=other)


def build(tree, leaf, inputs):
    """The body ``tree`` describes, with ``leaf(live terms)`` at its leaves, over ``inputs`` plus the
    conditions' nodes (appended as needed). Returns (body, inputs)."""
    inputs = list(inputs)

    def go(t):
        if not isinstance(t, _Select):
            return leaf(t) if t else sympy.S.Zero
        then, other = go(t.then), go(t.other)
        slots = {}
        for k, n in enumerate(t.nodes):
            if not any(n is x for x in inputs):
                inputs.append(n)
            slots[placeholder(k)] = placeholder(next(j for j, x in enumerate(inputs) if x is n))
        return Where(t.cond.xreplace(slots), then, other)

    body = go(tree)
    return body, tuple(inputs)
