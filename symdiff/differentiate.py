"""Stage 2, differentiate: reverse mode (VJP) and forward mode (JVP) on the IR.

Both transforms return new IR nodes, so derivatives compose to any order. Cotangents and tangents
of a node ``N`` have shape ``L + N.shape``: ``L`` is a basis of directions carried along the leading
axes (``()`` for a plain gradient, ``(K,)`` for a vectorized Jacobian). Elementwise nodes ask SymPy
for local derivatives of their bodies; every other node has a short structural rule below.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sympy

from . import ir
from .ir import Node, placeholder
from .primitives import Greater, Where, lift_selects, local_derivative


def _differentiable(node: Node) -> bool:
    return np.dtype(node.dtype).kind == "f"


def active_nodes(outputs, wrt) -> set:
    """ids of nodes on a path from ``wrt`` to ``outputs`` (the only ones that carry derivatives)."""
    depends = {id(n) for n in wrt}
    for n in ir.toposort(outputs):
        if id(n) not in depends and _differentiable(n) and any(id(i) in depends for i in n.inputs):
            depends.add(id(n))
    return depends


def add(a: Node | None, b: Node | None) -> Node | None:
    if a is None:
        return b
    if b is None:
        return a
    ma, mb = _mask(a), _mask(b)
    if ma is not None and mb is not None:  # zero where both are: the sum keeps the selects outside
        tree = _either(_relabel(ma, 1), _relabel(mb, 2))
        body, inputs = _build(tree, lambda live: sympy.Add(*(placeholder(i - 1) for i in sorted(live))), (a, b))
        return ir.elementwise(body, inputs)
    return ir.elementwise(placeholder(0) + placeholder(1), (a, b))


# ---------------------------------------------------------------------------------------------
# Masked cotangents. The VJP of np.where(c, x, y) sends Where(c, g, 0) to x; x's own VJP then
# multiplies by x's local derivative, which may be NaN or inf exactly where c is false (sqrt of the
# negative numbers the other branch handles), and 0 * NaN is NaN. So the selects that zero a
# cotangent stay outside of every contribution computed from it, Where(c, g * f'(x), 0), and outside
# of sums of such cotangents.
#
# A mask is the select skeleton of an elementwise body: a tree of _Select nodes whose leaves are the
# frozensets of terms that are live (nonzero) there; the empty set is a structural zero.
# ---------------------------------------------------------------------------------------------


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


def _mask(node: Node):
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


def _build(tree, leaf, inputs):
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


def unbroadcast(x: Node, target: tuple, n_lead: int) -> Node:
    """Sum ``x`` (shape ``L + s``) down to ``target`` (``L + t``, ``t`` broadcastable to ``s``)."""
    target = tuple(target)
    if x.shape == target:
        return x
    r_x, r_t = x.ndim - n_lead, len(target) - n_lead
    axes = list(range(-r_x, -r_t)) if r_x > r_t else []
    for k in range(1, r_t + 1):
        if target[-k] == 1 and x.shape[-k] != 1:
            axes.append(-k)
    out = ir.reduce_sum(x, axes)
    return ir.reshape(out, out.ndim - n_lead, target[n_lead:]) if n_lead or out.shape != target else out


def pad_rank(t: Node, rank: int, core_rank: int) -> Node:
    """Insert size-1 axes in front of the trailing ``core_rank`` axes until they number ``rank``."""
    if core_rank >= rank:
        return t
    core = t.shape[t.ndim - core_rank :]
    return ir.reshape(t, core_rank, (1,) * (rank - core_rank) + core)


def zeros(shape, dtype) -> Node:
    return ir.fill(0, shape, dtype)


def _shifted(body: sympy.Expr, k: int) -> sympy.Expr:
    """Rename placeholders a_i -> a_{i+k}, so other inputs can be placed in front."""
    syms = sorted(body.free_symbols, key=lambda s: s.name)
    return body.xreplace({s: placeholder(int(s.name[1:]) + k) for s in syms})


# ---------------------------------------------------------------------------------------------
# Reverse mode
# ---------------------------------------------------------------------------------------------


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
        if g is None or node.op in ("input", "const"):
            continue
        for i, contribution in _masked_rule(node, g, active, n_lead):
            x = node.inputs[i]
            if id(x) in active and contribution is not None:
                ct[id(x)] = add(ct.get(id(x)), contribution)
    return [ct.get(id(w)) or zeros(tuple(lead) + w.shape, w.dtype) for w in wrt]


# Ops whose VJP moves, copies or sums the entries of the cotangent (max/min: times a 0/1 mask over a
# positive count), so the same rule applied to a 0/1 liveness says where a contribution may be nonzero
_LINEAR = {"sum", "cumsum", "pack", "gather", "scatter_add", "reshape", "broadcast", "transpose", "index",
           "scatter", "concat", "max", "min"}


def _masked_rule(node: Node, g: Node, active: set, n_lead: int):
    """``_vjp_rule``, with the mask of ``g`` carried through the linear structural ops: the same rule
    applied to ``g``'s liveness (1 where g may be nonzero, else 0) says where each contribution may
    be nonzero, and the contribution is selected there (elsewhere it is a structural 0)."""
    mask = _mask(g) if node.op in _LINEAR else None
    if mask is None:
        yield from _vjp_rule(node, g, active, n_lead)
        return
    body, inputs = _build(mask, lambda live: sympy.S.One, (g,))
    live = dict(_vjp_rule(node, ir.elementwise(body, inputs), active, n_lead))
    for i, contribution in _vjp_rule(node, g, active, n_lead):
        selected = Where(Greater(placeholder(1), 0), placeholder(0), 0)
        yield i, ir.elementwise(selected, (contribution, live[i]))


def _vjp_rule(node: Node, g: Node, active: set, n_lead: int):
    op, xs = node.op, node.inputs
    wanted = [i for i, x in enumerate(xs) if id(x) in active]
    if op == "elementwise":
        mask = _mask(g)
        for i in wanted:
            d = local_derivative(node.body, placeholder(i))
            if d == 0:
                continue
            if d.is_number and mask is None:
                c = ir.elementwise(d * placeholder(0), (g,))
            else:
                product = lift_selects(placeholder(0) * _shifted(d, 1))
                body, inputs = _build(mask, lambda live, p=product: p, (g, *xs)) if mask else (product, (g, *xs))
                c = ir.elementwise(body, inputs)
            yield i, unbroadcast(c, g.shape[:n_lead] + xs[i].shape, n_lead)
    elif op == "sum":
        (axes,) = node.params
        x = xs[0]
        with_ones = tuple(1 if k - x.ndim in axes else d for k, d in enumerate(x.shape))
        r_out = node.ndim
        yield 0, ir.broadcast(ir.reshape(g, r_out, with_ones), x.ndim, x.shape)
    elif op == "prod":
        (axes,) = node.params
        x = xs[0]
        with_ones = tuple(1 if k - x.ndim in axes else d for k, d in enumerate(x.shape))
        gp = ir.elementwise(placeholder(0) * placeholder(1), (g, node))
        gp = ir.broadcast(ir.reshape(gp, node.ndim, with_ones), x.ndim, x.shape)
        yield 0, ir.elementwise(placeholder(0) / placeholder(1), (gp, x))
    elif op in ("max", "min"):
        (axes,) = node.params
        x = xs[0]
        mask, count = _extreme_mask(node)
        q = ir.elementwise(placeholder(0) / placeholder(1), (g, count))
        with_ones = tuple(1 if k - x.ndim in axes else d for k, d in enumerate(x.shape))
        q = ir.broadcast(ir.reshape(q, node.ndim, with_ones), x.ndim, x.shape)
        yield 0, ir.elementwise(placeholder(0) * placeholder(1), (q, mask))
    elif op == "cumsum":
        axis, reverse = node.params
        yield 0, ir.cumsum(g, axis, not reverse)
    elif op == "pack":
        where, core = node.params
        for i in wanted:
            total = None
            for pos in where[i]:
                total = add(total, ir.index(g, tuple(pos)) if pos else g)
            yield i, unbroadcast(total, g.shape[:n_lead] + xs[i].shape, n_lead)
    elif op == "gather":
        layout, core = node.params
        yield 0, ir.scatter_add(g, layout, core, xs[1:])
    elif op == "scatter_add":
        layout, core = node.params
        yield 0, ir.gather(g, layout, core, xs[1:])
    elif op == "reshape":
        r_in, new_core = node.params
        x = xs[0]
        yield 0, ir.reshape(g, len(new_core), x.shape[x.ndim - r_in :])
    elif op == "broadcast":
        r_in, target = node.params
        x = xs[0]
        yield 0, unbroadcast(g, g.shape[: g.ndim - len(target)] + x.shape[x.ndim - r_in :], g.ndim - len(target))
    elif op == "transpose":
        (perm,) = node.params
        yield 0, ir.transpose(g, tuple(np.argsort(perm)))
    elif op == "index":
        idx, core = node.params
        yield 0, ir.scatter(g, idx, core)
    elif op == "scatter":
        idx, core = node.params
        yield 0, ir.index(g, idx)
    elif op == "concat":
        (axis,) = node.params
        offset = 0
        for i, x in enumerate(xs):
            size = x.shape[axis]
            if i in wanted:
                core = node.shape[node.ndim + axis :]
                idx = ((offset, offset + size, 1),) + tuple((0, d, 1) for d in core[1:])
                yield i, ir.index(g, idx)
            offset += size
    elif op == "einsum":
        (spec,) = node.params
        ins, out = spec.split("->")
        terms = ins.split(",")
        for i in wanted:
            others = [t for j, t in enumerate(terms) if j != i]
            term = terms[i]
            available = set(out).union(*others) if others else set(out)
            produced = "".join(c for c in term if c in available)
            sub = f"{','.join([out] + others)}->{produced}"
            c = ir.einsum(sub, g, *(x for j, x in enumerate(xs) if j != i))
            if produced != term:  # axes summed only inside operand i: broadcast back
                core = xs[i].shape[xs[i].ndim - len(term) :]
                with_ones = tuple(d if ch in produced else 1 for ch, d in zip(term, core))
                c = ir.reshape(c, len(produced), tuple(d for ch, d in zip(term, core) if ch in produced))
                c = ir.transpose(c, _order(produced, [ch for ch in term if ch in produced]))
                c = ir.reshape(c, len(produced), with_ones)
                c = ir.broadcast(c, len(term), core)
            yield i, unbroadcast(c, g.shape[:n_lead] + xs[i].shape, n_lead)
    else:  # pragma: no cover - every op the tracer records has a rule
        raise NotImplementedError(f"no reverse-mode rule for {op}")


def _extreme_mask(node: Node):
    """Where x attains its max/min (1.0, else 0.0) and how often: ties share the derivative equally,
    as in JAX."""
    from .primitives import Equal, Where

    (axes,) = node.params
    x = node.inputs[0]
    with_ones = tuple(1 if k - x.ndim in axes else d for k, d in enumerate(x.shape))
    m = ir.broadcast(ir.reshape(node, node.ndim, with_ones), x.ndim, x.shape)
    mask = ir.elementwise(Where(Equal(placeholder(0), placeholder(1)), 1, 0), (x, m), dtype=x.dtype)
    return mask, ir.reduce_sum(mask, axes)


def _order(have: str, want: list) -> tuple:
    return tuple(have.index(c) for c in want)


# ---------------------------------------------------------------------------------------------
# Forward mode
# ---------------------------------------------------------------------------------------------


def jvp(outputs, wrt, tangents, lead=()):
    """Tangents of ``outputs`` given ``tangents`` (shape ``lead + w.shape``) of ``wrt``."""
    n_lead = len(lead)
    lead = tuple(lead)
    active = active_nodes(outputs, wrt)
    tan = {id(w): t for w, t in zip(wrt, tangents) if t is not None}
    for node in ir.toposort(outputs):
        if id(node) in tan or id(node) not in active or node.op in ("input", "const"):
            continue
        ts = [tan.get(id(x)) if id(x) in active else None for x in node.inputs]
        if all(t is None for t in ts):
            continue
        t = _jvp_rule(node, ts, lead)
        if t is not None and t.shape != lead + node.shape:
            t = ir.broadcast(pad_rank(t, node.ndim, t.ndim - n_lead), node.ndim, node.shape)
        tan[id(node)] = t
    return [tan.get(id(o)) or zeros(lead + o.shape, o.dtype) for o in outputs]


def _jvp_rule(node: Node, ts, lead):
    op, xs = node.op, node.inputs

    def filled(i):
        return ts[i] if ts[i] is not None else zeros(lead + xs[i].shape, xs[i].dtype)

    if op == "elementwise":
        terms, args = [], list(xs)
        for i, t in enumerate(ts):
            if t is None:
                continue
            d = local_derivative(node.body, placeholder(i))
            if d == 0:
                continue
            args.append(pad_rank(t, node.ndim, xs[i].ndim))
            terms.append(d * placeholder(len(args) - 1))
        if not terms:
            return None
        return ir.elementwise(lift_selects(sympy.Add(*terms)), args)
    if op == "einsum":
        (spec,) = node.params
        lead_rank = node.ndim - len(spec.split("->")[1])
        total = None
        for i, t in enumerate(ts):
            if t is None:
                continue
            term_rank = len(spec.split("->")[0].split(",")[i])
            t = pad_rank(t, lead_rank + term_rank, xs[i].ndim)
            total = add(total, ir.einsum(spec, *(t if j == i else x for j, x in enumerate(xs))))
        return total
    if op == "prod":
        (axes,) = node.params
        x = xs[0]
        with_ones = tuple(1 if k - x.ndim in axes else d for k, d in enumerate(x.shape))
        ratio = ir.elementwise(
            placeholder(0) * placeholder(1) / placeholder(2),
            (ts[0], ir.reshape(node, node.ndim, with_ones), x),
        )
        return ir.reduce_sum(ratio, axes)
    if op == "concat":
        return ir.concat([filled(i) for i in range(len(xs))], node.params[0])
    t = ts[0]
    if op in ("max", "min"):
        mask, count = _extreme_mask(node)
        s = ir.reduce_sum(ir.elementwise(placeholder(0) * placeholder(1), (t, mask)), node.params[0])
        return ir.elementwise(placeholder(0) / placeholder(1), (s, count))
    if op == "cumsum":
        return ir.cumsum(t, *node.params)
    if op == "pack":
        where, core = node.params
        kept = [(x, w) for x, w in zip(ts, where) if x is not None]
        return ir.pack([x for x, _ in kept], [w for _, w in kept], core, node.dtype, lead)
    if op == "gather":
        return ir.gather(t, *node.params, xs[1:])
    if op == "scatter_add":
        return ir.scatter_add(t, *node.params, xs[1:])
    if op == "sum":
        return ir.reduce_sum(t, node.params[0])
    if op == "reshape":
        r_in, new_core = node.params
        return ir.reshape(t, r_in, new_core)
    if op == "broadcast":
        r_in, target = node.params
        return ir.broadcast(t, r_in, target)
    if op == "transpose":
        return ir.transpose(t, node.params[0])
    if op == "index":
        return ir.index(t, node.params[0])
    if op == "scatter":
        idx, core = node.params
        return ir.scatter(t, idx, core)
    raise NotImplementedError(f"no forward-mode rule for {op}")  # pragma: no cover
