"""Stage 2, differentiate: reverse mode (VJP) and forward mode (JVP) on the IR.

Both transforms return new IR nodes, so derivatives compose to any order. Cotangents and tangents
of a node ``N`` have shape ``L + N.shape``: ``L`` is a basis of directions carried along the leading
axes (``()`` for a plain gradient, ``(K,)`` for a vectorized Jacobian). Elementwise nodes ask SymPy
for local derivatives of their bodies; every other node has a short structural rule below.
"""

from __future__ import annotations

import numpy as np
import sympy

from . import ir
from .ir import Node, placeholder
from .primitives import local_derivative


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
    return ir.elementwise(placeholder(0) + placeholder(1), (a, b))


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
        for i, contribution in _vjp_rule(node, g, active, n_lead):
            x = node.inputs[i]
            if id(x) in active and contribution is not None:
                ct[id(x)] = add(ct.get(id(x)), contribution)
    return [ct.get(id(w)) or zeros(tuple(lead) + w.shape, w.dtype) for w in wrt]


def _vjp_rule(node: Node, g: Node, active: set, n_lead: int):
    op, xs = node.op, node.inputs
    wanted = [i for i, x in enumerate(xs) if id(x) in active]
    if op == "elementwise":
        for i in wanted:
            d = local_derivative(node.body, placeholder(i))
            if d == 0:
                continue
            if d.is_number:
                c = ir.elementwise(d * placeholder(0), (g,))
            else:
                c = ir.elementwise(placeholder(0) * _shifted(d, 1), (g, *xs))
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
        return ir.elementwise(sympy.Add(*terms), args)
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
