"""Reductions over trailing axes: sum, prod, max, min, and the cumulative sum.

``axes`` are negative (counted from the end of the shape), so leading batch and basis axes pass
through every rule untouched.
"""

from __future__ import annotations

import numpy as np
import sympy

from ..graph import Node, placeholder
from ..primitives import Equal, Max, Min, Where
from . import elementwise as ew
from . import shape
from .base import Op, refilled, register, with_ones
from .surface import as_node, at_user_line, is_traced, negative_axes, numpy_function, refuse_given, ufunc


def _reduced(op: str, x: Node, axes) -> Node:
    """The node of reduction ``op`` over the given negative axes (relative to the end of the shape)."""
    axes = tuple(sorted(set(axes)))
    keep = [d for i, d in enumerate(x.shape) if i - x.ndim not in axes]
    return Node(op, (x,), keep, x.dtype, (axes,))


def reduce_sum(x: Node, axes) -> Node:
    """Sum over the given negative axes (none: ``x`` itself)."""
    return _reduced("sum", x, axes) if axes else x


def reduce_prod(x: Node, axes) -> Node:
    """Product over the given negative axes (none: ``x`` itself)."""
    return _reduced("prod", x, axes) if axes else x


def reduce_extreme(x: Node, axes, which: str) -> Node:
    """``max`` or ``min`` over negative axes."""
    return _reduced(which, x, axes)


def cumsum(x: Node, axis: int, reverse: bool = False) -> Node:
    """Cumulative sum along a negative axis (``reverse`` sums from the end: the adjoint)."""
    return Node("cumsum", (x,), x.shape, x.dtype, (axis, reverse))


def _back(g: Node, node: Node) -> Node:
    """A reduced array (shape of ``node``) broadcast back over the reduced axes of its input."""
    x = node.inputs[0]
    return shape.broadcast(shape.reshape(g, node.ndim, with_ones(x, node.params[0])), x.ndim, x.shape)


def _reduction_sparsity(self, node, patterns):
    """Each entry of a reduction depends on the entries it reduces (sum, prod, max, min alike)."""
    from . import patterns as pat

    x = node.inputs[0]
    targets = np.broadcast_to(np.arange(node.size).reshape(with_ones(x, node.params[0])), x.shape)
    return pat.grouped(patterns[0], targets, node.size)


def _reduction_statement(op: str, node, emit) -> dict:
    (axes,) = node.params
    return {"op": op, "target": emit.name(node), "x": emit.name(node.inputs[0]), "axes": list(axes),
            "all": not emit.batched(node) and len(axes) == node.inputs[0].ndim}


@register
class Sum(Op):
    """Sum over trailing axes."""

    sparsity = _reduction_sparsity

    name = "sum"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        yield 0, _back(g, node)

    def jvp(self, node, tangents, lead):
        return reduce_sum(tangents[0], node.params[0])

    def evaluate(self, node, xs, symbolic):
        (x,) = xs
        return np.sum(x, axis=node.params[0]) if x.ndim else x

    def statement(self, node, emit):
        return _reduction_statement("sum", node, emit)

    def fold(self, node, values):
        if values[0] is None:
            return None
        count = node.inputs[0].size // max(node.size, 1)
        return ew.fill(values[0] * count, node.shape, node.dtype)


@register
class Prod(Op):
    """Product over trailing axes."""

    sparsity = _reduction_sparsity

    name = "prod"

    def vjp(self, node, g, wanted, n_lead):
        gp = _back(ew.elementwise(placeholder(0) * placeholder(1), (g, node)), node)
        yield 0, ew.elementwise(placeholder(0) / placeholder(1), (gp, node.inputs[0]))

    def jvp(self, node, tangents, lead):
        x = node.inputs[0]
        ratio = ew.elementwise(
            placeholder(0) * placeholder(1) / placeholder(2),
            (tangents[0], shape.reshape(node, node.ndim, with_ones(x, node.params[0])), x),
        )
        return reduce_sum(ratio, node.params[0])

    def evaluate(self, node, xs, symbolic):
        return np.prod(xs[0], axis=node.params[0])

    def statement(self, node, emit):
        return _reduction_statement("prod", node, emit)

    def fold(self, node, values):
        if values[0] is None:
            return None
        count = node.inputs[0].size // max(node.size, 1)
        return ew.fill(values[0] ** count, node.shape, node.dtype)


def extreme_mask(node: Node):
    """Where x attains its max/min (1.0, else 0.0) and how often: ties share the derivative equally,
    as in JAX."""
    (axes,) = node.params
    x = node.inputs[0]
    m = shape.broadcast(shape.reshape(node, node.ndim, with_ones(x, axes)), x.ndim, x.shape)
    mask = ew.elementwise(Where(Equal(placeholder(0), placeholder(1)), 1, 0), (x, m), dtype=x.dtype)
    return mask, reduce_sum(mask, axes)


class _Extreme(Op):
    sparsity = _reduction_sparsity
    linear = True
    numpy_function = staticmethod(np.max)
    sympy_function = Max

    def vjp(self, node, g, wanted, n_lead):
        mask, count = extreme_mask(node)
        q = _back(ew.elementwise(placeholder(0) / placeholder(1), (g, count)), node)
        yield 0, ew.elementwise(placeholder(0) * placeholder(1), (q, mask))

    def jvp(self, node, tangents, lead):
        mask, count = extreme_mask(node)
        s = reduce_sum(ew.elementwise(placeholder(0) * placeholder(1), (tangents[0], mask)), node.params[0])
        return ew.elementwise(placeholder(0) / placeholder(1), (s, count))

    def evaluate(self, node, xs, symbolic):
        (x,) = xs
        axes = node.params[0]
        if not symbolic:
            return self.numpy_function(x, axis=axes)
        keep = [a for a in range(-x.ndim, 0) if a not in axes]
        moved = np.moveaxis(x, list(axes), list(range(-len(axes), 0)))
        flat = moved.reshape(tuple(x.shape[a] for a in keep) + (-1,))
        out = np.empty(flat.shape[:-1], dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = self.sympy_function(*flat[idx])
        return out

    def fold(self, node, values):
        return refilled(node, values)

    def statement(self, node, emit):
        return {**_reduction_statement("extreme", node, emit), "fn": self.name}


@register
class Max(_Extreme):
    """Maximum over trailing axes."""

    name = "max"


@register
class Min(_Extreme):
    """Minimum over trailing axes."""

    name = "min"
    numpy_function = staticmethod(np.min)
    sympy_function = Min


@register
class CumSum(Op):
    """Cumulative sum along one axis (reversed: the adjoint)."""

    name = "cumsum"
    linear = True

    def vjp(self, node, g, wanted, n_lead):
        axis, reverse = node.params
        yield 0, cumsum(g, axis, not reverse)

    def jvp(self, node, tangents, lead):
        return cumsum(tangents[0], *node.params)

    def evaluate(self, node, xs, symbolic):
        axis, reverse = node.params
        (x,) = xs
        if reverse:
            return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)
        return np.cumsum(x, axis=axis)

    def sparsity(self, node, patterns):
        """Entry p along the axis depends on entries q <= p (q >= p reversed) of its line."""
        from . import patterns as pat

        axis, reverse = node.params
        lines = np.moveaxis(np.arange(node.size).reshape(node.shape), axis, -1).reshape(-1, node.shape[axis])
        later, earlier = np.tril_indices(node.shape[axis])
        if reverse:
            later, earlier = earlier, later
        return pat.grouped(patterns[0], lines[:, later], node.size, sources=lines[:, earlier])

    def statement(self, node, emit):
        axis, reverse = node.params
        return {"op": "cumsum", "target": emit.name(node), "x": emit.name(node.inputs[0]), "axis": axis,
                "reverse": reverse}

    template = """
{%- if s.reverse %}{{ s.target }} = np.flip(np.cumsum(np.flip({{ s.x }}, axis={{ s.axis }}), axis={{ s.axis }}), axis={{ s.axis }})
{%- else %}{{ s.target }} = np.cumsum({{ s.x }}, axis={{ s.axis }})
{%- endif %}"""
    array_api_template = """
{%- if s.reverse %}{{ s.target }} = xp.flip(xp.cumulative_sum(xp.flip({{ s.x }}, axis={{ s.axis }}), axis={{ s.axis }}), axis={{ s.axis }})
{%- else %}{{ s.target }} = xp.cumulative_sum({{ s.x }}, axis={{ s.axis }})
{%- endif %}"""


@numpy_function(np.cumsum, method="cumsum")
def np_cumsum(a, axis=None, dtype=None, out=None):
    refuse_given("cumsum", dtype=dtype, out=out)
    x = as_node(a)
    if axis is None:
        x, axis = shape.reshape(x, x.ndim, (x.size,)), 0
    (axis,) = negative_axes(axis, x.ndim)
    return cumsum(x, axis)


# ---------------------------------------------------------------------------------------------
# numpy's reductions (keepdims puts the reduced axes back as size 1)
# ---------------------------------------------------------------------------------------------


def _kept(x: Node, reduced: Node, axes, keepdims) -> Node:
    return shape.reshape(reduced, reduced.ndim, with_ones(x, axes)) if keepdims else reduced


@numpy_function(np.sum, method="sum")
def np_sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    refuse_given("sum", dtype=dtype, out=out, initial=initial, where=where)
    x = as_node(a)
    axes = negative_axes(axis, x.ndim)
    return _kept(x, reduce_sum(x, axes), axes, keepdims)


def _count(x: Node, axis) -> int:
    """How many elements each reduction over ``axis`` combines."""
    return int(np.prod([x.shape[a] for a in negative_axes(axis, x.ndim)], dtype=np.int64))


@numpy_function(np.mean, method="mean")
def np_mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    refuse_given("mean", dtype=dtype, out=out, where=where)
    return np_sum(a, axis, keepdims=keepdims) * (sympy.Integer(1) / _count(as_node(a), axis))


@numpy_function(np.prod, method="prod")
def np_prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    refuse_given("prod", dtype=dtype, out=out, initial=initial, where=where)
    x = as_node(a)
    axes = negative_axes(axis, x.ndim)
    return _kept(x, reduce_prod(x, axes), axes, keepdims) if axes else x


def extreme(a, axis, keepdims, which: str) -> Node:
    x = as_node(a)
    axes = negative_axes(axis, x.ndim)
    return _kept(x, reduce_extreme(x, axes, which), axes, keepdims) if axes else x


@numpy_function(np.max, np.amax, method="max")
def np_max(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    refuse_given("max", out=out, initial=initial, where=where)
    return extreme(a, axis, keepdims, "max")


@numpy_function(np.min, np.amin, method="min")
def np_min(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    refuse_given("min", out=out, initial=initial, where=where)
    return extreme(a, axis, keepdims, "min")


def _per_degree_of_freedom(total, count, ddof):
    """total / (count - ddof), with numpy's divisor max(count - ddof, 0): inf or NaN at 0."""
    if count - ddof <= 0:  # zeros of the full shape: a 0-d divisor trips the emitter (see the tests)
        return ufunc("true_divide", total, np.zeros(as_node(total).shape))
    return total * (sympy.Integer(1) / sympy.nsimplify(count - ddof))


@numpy_function(np.var, method="var")
def np_var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None, correction=None):
    refuse_given("var", dtype=dtype, out=out, where=where, mean=mean, correction=correction)
    centered = a - np_mean(a, axis, keepdims=True)
    return _per_degree_of_freedom(np_sum(centered * centered, axis, keepdims=keepdims), _count(as_node(a), axis), ddof)


@numpy_function(np.std, method="std")
def np_std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None, correction=None):
    refuse_given("std", dtype=dtype, out=out, where=where, mean=mean, correction=correction)
    count = _count(as_node(a), axis)
    centered = a - np_mean(a, axis, keepdims=True)
    if count == 1 and count - ddof > 0:
        # one element per reduction: the std is the constant 0 (NaN for inf/NaN), whose derivative is
        # 0; sqrt(var) would give sqrt'(0) * 0 = inf * 0 = NaN. |x - mean| is the same value.
        spread = np_sum(ufunc("absolute", centered), axis, keepdims=keepdims)
        return spread if ddof == 0 else spread * (1 / sympy.sqrt(sympy.nsimplify(1 - ddof)))
    return ufunc("sqrt", _per_degree_of_freedom(np_sum(centered * centered, axis, keepdims=keepdims), count, ddof))


@at_user_line
def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) without overflow: the max is subtracted first (its derivative cancels).

    Works on numpy arrays too, so a function that uses it runs with or without symdiff."""
    if not is_traced(x):
        x = np.asarray(x)
        m = np.max(x, axis=axis, keepdims=True)
        r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return r if keepdims else np.squeeze(r, axis=axis)
    m = np_max(x, axis, keepdims=True)
    r = ufunc("log", np_sum(ufunc("exp", x - m), axis, keepdims=True)) + m
    return r if keepdims else shape.np_squeeze(r, axis)
