"""Products: ``einsum`` over trailing axes, and the numpy functions that lower to it (matmul, ``@``, dot,
tensordot, outer, einsum with repeated letters, vector and Frobenius norms). np.linalg is ``linalg.py``.
"""

from __future__ import annotations

import numbers
import string

import numpy as np
import sympy

from ..errors import ShapeError
from ..graph import Node, lead_shape, result_dtype
from . import elementwise as ew
from . import einsum_grammar, masks, shape
from .base import Op, pad_rank, register, unbroadcast
from .reductions import extreme, np_sum
from .surface import array_method, as_node, numpy_function, refuse, refuse_given, ufunc


def einsum(spec: str, *operands: Node) -> Node:
    """Explicit-subscript einsum over the trailing axes; leading axes broadcast."""
    if not all(c.isascii() and (c.isalpha() or c in ",->") for c in spec) or spec.count("->") != 1:
        raise ShapeError(f"einsum subscripts must be letters, commas and one '->', got {spec!r}")
    ins, out = spec.split("->")
    terms = ins.split(",")
    if len(terms) != len(operands):
        raise ShapeError(f"einsum '{spec}' needs {len(terms)} operands, got {len(operands)}")
    sizes: dict = {}
    leads = []
    for term, op in zip(terms, operands):
        if len(term) > op.ndim:
            raise ShapeError(f"einsum '{spec}': operand of shape {op.shape} has too few axes")
        core = op.shape[op.ndim - len(term) :]
        for ch, d in zip(term, core):
            if sizes.setdefault(ch, d) != d:
                if sizes[ch] == 1:
                    sizes[ch] = d
                elif d != 1:
                    raise ShapeError(f"einsum '{spec}': axis '{ch}' has sizes {sizes[ch]} and {d}")
        leads.append(lead_shape(op.shape, len(term)))
    lead = np.broadcast_shapes(*leads)
    dtype = result_dtype(*(o.dtype for o in operands))
    return Node("einsum", operands, tuple(lead) + tuple(sizes[c] for c in out), dtype, (spec,))


def _order(have: str, want: list) -> tuple:
    return tuple(have.index(c) for c in want)


@register
class Einsum(Op):
    """A sum of products over named trailing axes (matmul, dot, tensordot, outer, trace)."""

    name = "einsum"
    spelled = "np.einsum with a repeated index in one operand (a diagonal or trace)"

    def batched_operand_ranks(self, node):
        ins, out = node.params[0].split("->")
        lead = node.ndim - len(out)
        return [lead + len(term) for term in ins.split(",")]

    def vjp(self, node, g, wanted, n_lead):
        xs = node.inputs
        (spec,) = node.params
        ins, out = spec.split("->")
        terms = ins.split(",")
        for i in wanted:
            others = [t for j, t in enumerate(terms) if j != i]
            term = terms[i]
            available = set(out).union(*others) if others else set(out)
            produced = "".join(c for c in term if c in available)
            sub = f"{','.join([out] + others)}->{produced}"
            c = einsum(sub, g, *(x for j, x in enumerate(xs) if j != i))
            if produced != term:  # axes summed only inside operand i: broadcast back
                core = xs[i].shape[xs[i].ndim - len(term) :]
                with_ones = tuple(d if ch in produced else 1 for ch, d in zip(term, core))
                c = shape.reshape(c, len(produced), tuple(d for ch, d in zip(term, core) if ch in produced))
                c = shape.transpose(c, _order(produced, [ch for ch in term if ch in produced]))
                c = shape.reshape(c, len(produced), with_ones)
                c = shape.broadcast(c, len(term), core)
            yield i, unbroadcast(c, g.shape[:n_lead] + xs[i].shape, n_lead)

    def jvp(self, node, tangents, lead):
        xs = node.inputs
        (spec,) = node.params
        lead_rank = node.ndim - len(spec.split("->")[1])
        total = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            term_rank = len(spec.split("->")[0].split(",")[i])
            t = pad_rank(t, lead_rank + term_rank, xs[i].ndim)
            total = masks.add(total, einsum(spec, *(t if j == i else x for j, x in enumerate(xs))))
        return total

    def evaluate(self, node, xs, symbolic):
        spec = node.params[0]
        ins, out = spec.split("->")
        text = ",".join("..." + t for t in ins.split(",")) + "->..." + out
        return _object_einsum(text, xs) if symbolic else np.einsum(text, *xs)

    def fold(self, node, values):
        return ew.fill(0, node.shape, node.dtype) if any(v == 0 for v in values) else None

    def sparsity(self, node, patterns):
        from . import patterns as pat

        return pat.einsum_pattern(node.params[0], node, patterns)

    def statement(self, node, emit):
        return _einsum(emit.name(node), node, [emit.name(i) for i in node.inputs], [emit.batched(i) for i in node.inputs],
                       emit.swapped)


def _object_einsum(text, xs):
    """np.einsum for object arrays of SymPy expressions, through explicit broadcasting."""
    ins, out = text.replace("...", "").split("->")
    terms = ins.split(",")
    letters = sorted(set("".join(terms)))
    sizes = {}
    for t, x in zip(terms, xs):
        for ch, d in zip(t, x.shape[x.ndim - len(t) :]):
            sizes[ch] = max(sizes.get(ch, 1), d)
    leads = [x.shape[: x.ndim - len(t)] for t, x in zip(terms, xs)]
    lead = np.broadcast_shapes(*leads)
    result = np.empty(lead + tuple(sizes[c] for c in out), dtype=object)
    for lidx in np.ndindex(lead) if lead else [()]:
        for oidx in np.ndindex(tuple(sizes[c] for c in out)) if out else [()]:
            fixed = dict(zip(out, oidx))
            free = [c for c in letters if c not in fixed]
            total = sympy.S.Zero
            for fidx in np.ndindex(tuple(sizes[c] for c in free)) if free else [()]:
                env = {**fixed, **dict(zip(free, fidx))}
                term = sympy.S.One
                for t, x, ld in zip(terms, xs, leads):
                    li = lidx[len(lidx) - len(ld) :] if ld else ()
                    li = tuple(0 if d == 1 else i for i, d in zip(li, ld))
                    term *= x[li + tuple(env[c] for c in t)]
                total += term
            result[lidx + oidx] = total
    return result


def _einsum(target, node, operands, batched, swapped):
    spec = node.params[0]
    ins, out = spec.split("->")
    terms = ins.split(",")
    leads = [x.ndim - len(t) for x, t in zip(node.inputs, terms)]
    mm = _matmul_form(terms, out)
    if mm is not None:
        (ta, tb), swap = mm
        vector = len(terms[0]) == 1 or len(terms[1]) == 1
        if not vector or (not any(leads) and not any(batched)):
            if vector:
                a, b = operands
            elif swap:  # (A B)^T = B^T A^T
                a = operands[1] if tb else swapped(operands[1])
                b = operands[0] if ta else swapped(operands[0])
            else:
                a = swapped(operands[0]) if ta else operands[0]
                b = swapped(operands[1]) if tb else operands[1]
            return {"op": "matmul", "target": target, "a": a, "b": b}
    text = ",".join("..." + t for t in terms) + "->..." + out
    broadcast = _broadcast_form(terms, out, operands)
    return {"op": "einsum", "target": target, "spec": text, "operands": operands, "broadcast": broadcast,
            "standard": broadcast is not None}


def _broadcast_form(terms, out, operands):
    """np.einsum as the array API standard can write it: each operand's trailing axes moved into one
    order (output letters, then summed ones) with new axes for the letters it lacks, the product,
    then a sum over the trailing summed axes. None if a letter repeats within one operand."""
    if any(len(set(t)) != len(t) for t in terms):
        return None
    order = list(out) + sorted(set("".join(terms)) - set(out))
    factors = []
    for name, t in zip(operands, terms):
        mine = sorted(t, key=order.index)
        src, dst = [t.index(c) - len(t) for c in mine], [k - len(t) for k in range(len(t))]
        value = name if src == dst else f"xp.moveaxis({name}, {tuple(src)}, {tuple(dst)})"
        spread = [":" if c in t else "None" for c in order]
        factors.append(value if len(mine) == len(order) else f"{value}[..., {', '.join(spread)}]")
    summed = [k - len(order) for k in range(len(out), len(order))]
    return {"factors": factors, "axes": summed}


def _matmul_form(terms, out):
    """If the 2-operand einsum is a (possibly transposed) matrix product, say how to write it with @."""
    if len(terms) != 2:
        return None
    a, b = terms
    shared = set(a) & set(b)
    if len(shared) != 1 or shared & set(out) or len(set(a + b)) != len(a + b) - 1:
        return None
    (c,) = shared
    a_free, b_free = a.replace(c, ""), b.replace(c, "")
    if len(a) > 2 or len(b) > 2:
        return None
    if len(a) == 1 or len(b) == 1:  # vector forms: only the plain ones numpy's @ understands
        if len(a) == 2 and a[1] == c and out == a_free and len(b) == 1:
            return (False, False), False
        if len(b) == 2 and b[0] == c and out == b_free and len(a) == 1:
            return (False, False), False
        if len(a) == 1 and len(b) == 1 and out == "":
            return (False, False), False
        return None
    ta, tb = a[0] == c, b[1] == c
    if out == a_free + b_free:
        return (ta, tb), False
    if out == b_free + a_free:
        return (ta, tb), True
    return None


# ---------------------------------------------------------------------------------------------
# numpy's products, all lowered to einsum
# ---------------------------------------------------------------------------------------------


@numpy_function(np.matmul)
def np_matmul(x1, x2, out=None, **kwargs):
    refuse_given("matmul", out=out, **kwargs)
    x, y = as_node(x1), as_node(x2)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("matmul: input operand does not have enough dimensions")
    if x.shape[-1] != y.shape[-2 if y.ndim >= 2 else -1]:
        raise ShapeError(f"matmul: shapes {x.shape} and {y.shape} are not aligned")
    if x.ndim == 1 and y.ndim == 1:
        return einsum("i,i->", x, y)
    if x.ndim == 1 and y.ndim > 2:  # a vector with a stack of matrices: as a 1-row matrix, as numpy does
        r = as_node(np_matmul(shape.reshape(x, 1, (1, x.shape[-1])), y))
        return shape.reshape(r, 2, (r.shape[-1],))
    if y.ndim == 1 and x.ndim > 2:
        r = as_node(np_matmul(x, shape.reshape(y, 1, (y.shape[-1], 1))))
        return shape.reshape(r, 2, (r.shape[-2],))
    spec = "j,jk->k" if x.ndim == 1 else "ij,j->i" if y.ndim == 1 else "ij,jk->ik"
    return einsum(spec, x, y)


@array_method("__matmul__")
def matmul_operator(a, b):
    return np_matmul(a, b)


@array_method("__rmatmul__")
def reflected_matmul_operator(a, b):
    return np_matmul(b, a)


def _letters(k, skip=""):
    return [c for c in string.ascii_lowercase if c not in skip][:k]


@numpy_function(np.dot)
def np_dot(a, b, out=None):
    refuse_given("dot", out=out)
    x, y = as_node(a), as_node(b)
    if x.ndim == 0 or y.ndim == 0:
        return ufunc("multiply", a, b)
    if x.ndim <= 2 and y.ndim <= 2:
        return np_matmul(a, b)
    xs = _letters(x.ndim)
    ys = _letters(y.ndim, skip="".join(xs))
    summed = y.ndim - 2 if y.ndim >= 2 else y.ndim - 1
    ys[summed] = xs[-1]
    out_letters = xs[:-1] + [c for i, c in enumerate(ys) if i != summed]
    return einsum(f"{''.join(xs)},{''.join(ys)}->{''.join(out_letters)}", x, y)


@array_method("dot")
def dot_method(a, other, out=None):
    return np_dot(a, other, out)


@numpy_function(np.outer)
def np_outer(a, b, out=None):
    refuse_given("outer", out=out)
    x, y = as_node(a), as_node(b)
    return einsum("i,j->ij", shape.reshape(x, x.ndim, (x.size,)), shape.reshape(y, y.ndim, (y.size,)))


@numpy_function(np.tensordot)
def np_tensordot(a, b, axes=2):
    x, y = as_node(a), as_node(b)
    if isinstance(axes, numbers.Integral):
        ax_a, ax_b = list(range(x.ndim - axes, x.ndim)), list(range(axes))
    else:
        ax_a, ax_b = ([k] if isinstance(k, numbers.Integral) else list(k) for k in axes)
    ax_a, ax_b = [k % x.ndim for k in ax_a], [k % y.ndim for k in ax_b]
    letters = iter(string.ascii_lowercase)
    ta = [next(letters) for _ in range(x.ndim)]
    tb = [next(letters) for _ in range(y.ndim)]
    for i, j in zip(ax_a, ax_b):
        if x.shape[i] != y.shape[j]:
            raise ShapeError("shape-mismatch for sum in tensordot")
        tb[j] = ta[i]
    out = [c for i, c in enumerate(ta) if i not in ax_a] + [c for j, c in enumerate(tb) if j not in ax_b]
    return einsum(f"{''.join(ta)},{''.join(tb)}->{''.join(out)}", x, y)


@numpy_function(np.einsum)
def np_einsum(*operands, out=None, optimize=False, **kwargs):
    """numpy's whole grammar (see ``einsum_grammar``); ``optimize`` only changes numpy's speed: ignored."""
    refuse_given("einsum", out=out, **kwargs)
    spec, nodes = einsum_grammar.explicit(operands)
    return einsum(spec, *nodes)


@numpy_function(np.linalg.norm)
def np_linalg_norm(x, ord=None, axis=None, keepdims=False):
    n = as_node(x)
    if ord in (None, "fro", 2) and (ord != 2 or axis is not None or n.ndim == 1):
        return ufunc("sqrt", np_sum(x * x, axis, keepdims=keepdims))
    if ord == 1 and (n.ndim == 1 or axis is not None):
        return np_sum(ufunc("absolute", x), axis, keepdims=keepdims)
    if ord == np.inf and (n.ndim == 1 or axis is not None):
        return extreme(ufunc("absolute", x), axis, keepdims, "max")
    if ord in ("nuc", 2, -2) and n.ndim >= 2 and (axis is None and n.ndim == 2 or _last_two(axis, n.ndim)):
        from .linalg import matrix_norm

        return matrix_norm(n, ord, keepdims)
    raise refuse(f"np.linalg.norm with ord={ord!r} on a {n.ndim}-D array",
                 "use ord=None/'fro', 1 or inf on vectors, or 'nuc', 2, -2 on matrices")


def _last_two(axis, ndim) -> bool:
    return isinstance(axis, tuple) and len(axis) == 2 and [a % ndim for a in axis] == [ndim - 2, ndim - 1]
