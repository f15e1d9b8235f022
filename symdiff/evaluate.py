"""A direct interpreter of IR graphs on numpy arrays.

Used to build ``.formula()`` (run on object arrays of SymPy symbols) and, in tests, as a reference
that shares no code with the emitter.
"""

from __future__ import annotations

import numpy as np
import sympy

from . import ir
from .ir import placeholder


def evaluate(outputs, inputs: dict, symbolic: bool = False) -> list:
    """Values of ``outputs`` given ``inputs`` (input position -> array)."""
    values: dict = {}
    for node in ir.toposort(outputs):
        xs = [values[id(i)] for i in node.inputs]
        value = _step(node, xs, inputs, symbolic)
        if symbolic:  # numpy reductions of object arrays return bare SymPy objects or floats
            value = np.vectorize(sympy.sympify, otypes=[object])(np.asarray(value, dtype=object))
        values[id(node)] = value
    return [values[id(o)] for o in outputs]


def _step(node, xs, inputs, symbolic):
    op = node.op
    if op == "input":
        return inputs[node.params[0]]
    if op == "const":
        return node.params[0].value
    if op == "eye":
        eye = np.eye(node.params[0], dtype=int).reshape(node.shape)
        return np.vectorize(sympy.Integer, otypes=[object])(eye) if symbolic else eye.astype(node.dtype)
    if op == "elementwise":
        return _elementwise(node, xs, symbolic)
    x = xs[0] if xs else None
    if op == "sum":
        return np.sum(x, axis=node.params[0]) if x.ndim else x
    if op == "prod":
        return np.prod(x, axis=node.params[0])
    if op == "reshape":
        r_in, core = node.params
        return np.reshape(x, x.shape[: x.ndim - r_in] + core)
    if op == "broadcast":
        r_in, core = node.params
        return np.broadcast_to(x, x.shape[: x.ndim - r_in] + core)
    if op == "transpose":
        (perm,) = node.params
        r = len(perm)
        return np.transpose(x, tuple(range(x.ndim - r)) + tuple(x.ndim - r + p for p in perm))
    if op == "index":
        return x[(Ellipsis,) + _key(node.params[0])]
    if op == "scatter":
        idx, core = node.params
        r_out = len(ir.index_shape(idx, core))
        out = np.zeros(x.shape[: x.ndim - r_out] + core, dtype=object if symbolic else x.dtype)
        out[(Ellipsis,) + _key(idx)] = x
        return out
    if op in ("max", "min"):
        if symbolic:
            return _object_extreme(x, node.params[0], sympy.Max if op == "max" else sympy.Min)
        return (np.max if op == "max" else np.min)(x, axis=node.params[0])
    if op == "pack":
        where, core = node.params
        out = np.zeros(node.shape, dtype=object if symbolic else node.dtype)
        if symbolic:
            out[...] = sympy.S.Zero
        for value, positions in zip(xs, where):
            for pos in positions:
                out[(Ellipsis,) + tuple(pos)] = value
        return out
    if op == "cumsum":
        axis, reverse = node.params
        if reverse:
            return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)
        return np.cumsum(x, axis=axis)
    if op in ("gather", "scatter_add"):
        layout, core = node.params
        key = (Ellipsis,) + ir.gather_key(layout, xs[1:])
        if op == "gather":
            return x[key]
        r_out = np.empty(core, dtype=np.int8)[key[1:]].ndim
        out = np.zeros(x.shape[: x.ndim - r_out] + core, dtype=object if symbolic else x.dtype)
        if symbolic:
            out[...] = sympy.S.Zero
        np.add.at(out, key, x)
        return out
    if op == "concat":
        return np.concatenate(xs, axis=node.params[0])
    if op == "einsum":
        spec = node.params[0]
        ins, out = spec.split("->")
        text = ",".join("..." + t for t in ins.split(",")) + "->..." + out
        if symbolic:
            return _object_einsum(text, xs)
        return np.einsum(text, *xs)
    raise NotImplementedError(op)  # pragma: no cover


def _key(idx):
    out = []
    for e in idx:
        if e is None:
            out.append(None)
        elif isinstance(e, tuple):
            start, stop, step = e
            out.append(slice(start, None if stop < 0 else stop, step))
        else:
            out.append(e)
    return tuple(out)


def _elementwise(node, xs, symbolic):
    body = node.body
    if not xs:
        value = body if symbolic else float(body)
        return np.full(node.shape, value, dtype=object if symbolic else node.dtype)
    arrays = np.broadcast_arrays(*[np.asarray(x, dtype=object if symbolic else None) for x in xs])
    syms = [placeholder(i) for i in range(len(xs))]
    if symbolic:
        out = np.empty(arrays[0].shape, dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = body.xreplace({s: a[idx] for s, a in zip(syms, arrays)})
        return out
    from .emit import Printer

    f = sympy.lambdify(syms, body, modules=[{"np": np}, "numpy"], printer=Printer)
    with np.errstate(all="ignore"):
        return np.asarray(f(*arrays), dtype=node.dtype) + np.zeros(node.shape, dtype=node.dtype)


def _object_extreme(x, axes, fn):
    keep = [a for a in range(-x.ndim, 0) if a not in axes]
    moved = np.moveaxis(x, list(axes), list(range(-len(axes), 0)))
    flat = moved.reshape(tuple(x.shape[a] for a in keep) + (-1,))
    out = np.empty(flat.shape[:-1], dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*flat[idx])
    return out


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
