"""``torch.autograd.functional``: ``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``hvp``, ``vhp``.

All are built on ``autograd.grad`` (reverse mode, compiled by symdiff): a Jacobian is one
vector-Jacobian product per output entry, and those share one compiled gradient because only the
cotangent's values change. Inputs and outputs follow PyTorch's conventions: a tensor or a tuple of
tensors each, the result nested the same way.
"""

from __future__ import annotations

import numpy as np

from ..engine import grad
from ..functions import stack
from ..grad_mode import enable_grad
from ..tensor import Tensor

__all__ = ["hessian", "hvp", "jacobian", "jvp", "vhp", "vjp"]


def _as_tuple(x, what):
    single = isinstance(x, Tensor)
    items = (x,) if single else tuple(x)
    for t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"The {what} given to the function must be either a Tensor or a tuple of Tensors "
                            f"but the given {what} is {type(t).__name__}.")
    return single, items


def _grad_inputs(inputs, create_graph):
    """Fresh leaves (or, with create_graph, differentiable views) standing for ``inputs``."""
    return tuple(t.view_as(t) if create_graph and t.requires_grad else t.detach().requires_grad_(True) for t in inputs)


def _zeros_or(g, like, create_graph):
    if g is None:
        return Tensor._make(np.zeros_like(like._value))
    return g if create_graph else g.detach()


def _call(func, inputs, create_graph):
    single_in, items = _as_tuple(inputs, "inputs")
    items = _grad_inputs(items, create_graph)
    with enable_grad():
        out = func(*items)
    single_out, outs = _as_tuple(out, "outputs")
    return single_in, items, single_out, outs


def _vjps(outs, items, cotangents, create_graph):
    pairs = [(o, v) for o, v in zip(outs, cotangents) if o.requires_grad]
    if not pairs:
        return [Tensor._make(np.zeros_like(t._value)) for t in items]
    gs = grad([o for o, _ in pairs], items, [v for _, v in pairs], retain_graph=True, create_graph=create_graph,
              allow_unused=True)
    return [_zeros_or(g, t, create_graph) for g, t in zip(gs, items)]


def _detach(t, create_graph):
    return t if create_graph else t.detach()


def _jacobian_rows(func, inputs, create_graph):
    """(single input?, single output?, rows) with rows[i][j] = d outputs[i] / d inputs[j]."""
    single_in, items, single_out, outs = _call(func, inputs, create_graph)
    rows = []
    for o in outs:
        blocks = [[] for _ in items]
        for k in range(o.numel()):
            v = np.zeros(o._value.size, dtype=o._value.dtype)
            v[k] = 1
            cot = [Tensor._make(v.reshape(o._value.shape)) if q is o else Tensor._make(np.zeros_like(q._value))
                   for q in outs]
            for j, g in enumerate(_vjps(outs, items, cot, create_graph)):
                blocks[j].append(g)
        row = []
        for j, t in enumerate(items):
            shape = tuple(o.shape) + tuple(t.shape)
            if not blocks[j]:
                row.append(Tensor._make(np.zeros(shape, dtype=t._value.dtype)))
            elif create_graph:
                row.append(stack(blocks[j]).reshape(shape))
            else:
                row.append(Tensor._make(np.stack([b._value for b in blocks[j]]).reshape(shape)))
        rows.append(tuple(row))
    return single_in, single_out, outs, rows


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """d func / d inputs: shape ``output.shape + input.shape`` per (output, input) pair."""
    single_in, single_out, _, rows = _jacobian_rows(func, inputs, create_graph)
    if single_out and single_in:
        return rows[0][0]
    if single_out:
        return rows[0]
    if single_in:
        return tuple(r[0] for r in rows)
    return tuple(rows)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Jacobian of the gradient of a scalar ``func``."""
    single_in, items = _as_tuple(inputs, "inputs")

    def gradient(*xs):
        out = func(*xs)
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise RuntimeError("The function given to hessian should return a single Tensor with a single element")
        gs = grad(out.reshape(()), xs, create_graph=True, allow_unused=True)
        gs = tuple(_zeros_or(g, x, True) for g, x in zip(gs, xs))
        return gs[0] if single_in else gs

    return jacobian(gradient, items[0] if single_in else items, create_graph=create_graph)


def _vectors(v, tensors, what):
    """``v`` as a tuple; None is allowed only where ``tensors`` is one single-element tensor."""
    if v is None:
        if len(tensors) != 1 or tensors[0].numel() != 1:
            raise RuntimeError(f"The vector v can only be None if {what} a single Tensor with a single element.")
        return (Tensor._make(np.ones_like(tensors[0]._value)),)
    return _as_tuple(v, "v")[1]


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T J)``."""
    single_in, items, single_out, outs = _call(func, inputs, create_graph)
    vs = _vectors(v, outs, "the user-provided function returns")
    gs = _vjps(outs, items, vs, create_graph)
    outputs = tuple(_detach(o, create_graph) for o in outs)
    return (outputs[0] if single_out else outputs), (gs[0] if single_in else tuple(gs))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), J v)`` from the Jacobian (reverse mode, one pass per output entry)."""
    _, items = _as_tuple(inputs, "inputs")
    vs = _vectors(v, items, "the input to the user-provided function is")
    _, single_out, outs, jac = _jacobian_rows(func, items, create_graph)
    results = []
    for i, o in enumerate(outs):
        total = None
        for j, t in enumerate(items):
            block = jac[i][j]
            term = (block.reshape(o.numel(), t.numel()) @ vs[j].reshape(t.numel())).reshape(tuple(o.shape))
            total = term if total is None else total + term
        results.append(total if create_graph else total.detach())
    outputs = tuple(_detach(o, create_graph) for o in outs)
    return (outputs[0] if single_out else outputs), (results[0] if single_out else tuple(results))


def _hessian_product(func, inputs, v, create_graph):
    single_in, items = _as_tuple(inputs, "inputs")
    _, vs = _as_tuple(v, "v")
    xs = _grad_inputs(items, True)
    with enable_grad():
        out = func(*xs)
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise RuntimeError("The function given to hvp should return a single Tensor with a single element")
        gs = grad(out.reshape(()), xs, create_graph=True, allow_unused=True)
        dot = None
        for g, w in zip(gs, vs):
            if g is not None and g.requires_grad:
                term = (g * w).sum()
                dot = term if dot is None else dot + term
    if dot is None:
        hv = [Tensor._make(np.zeros_like(x._value)) for x in xs]
    else:
        hv = [_zeros_or(h, x, create_graph) for h, x in zip(grad(dot, xs, create_graph=create_graph, allow_unused=True), xs)]
    out = _detach(out, create_graph)
    return out, (hv[0] if single_in else tuple(hv))


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H v)`` (the Hessian is symmetric, so this equals ``vhp``)."""
    return _hessian_product(func, inputs, v, create_graph)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T H)``."""
    return _hessian_product(func, inputs, v, create_graph)
