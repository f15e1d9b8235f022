"""Elementwise operations: a SymPy body over placeholders, applied to broadcast inputs.

SymPy supplies every local derivative (``primitives.local_derivative``), so this one op covers every
ufunc of the table of elementwise functions (``ufuncs.TABLE``: names, SymPy meaning, printing per
backend, in-place ufunc, result dtype); arrays of one repeated number (``fill``) are elementwise nodes
without inputs.
"""

from __future__ import annotations

import sys

import numpy as np
import sympy

from ..errors import ShapeError
from ..graph import Node, bind, placeholder, result_dtype
from ..primitives import Where, lift_selects, local_derivative
from . import masks, ufuncs
from .base import Op, pad_rank, register, unbroadcast
from .surface import (
    array_method,
    as_node,
    as_operand,
    number,
    numpy_function,
    refuse,
    refuse_given,
    shape_argument,
    ufunc,
)


def elementwise(body, inputs, shape=None, dtype: str | None = None) -> Node:
    """Apply a scalar SymPy body to broadcast inputs. ``shape`` is only needed without inputs."""
    body = sympy.sympify(body)
    inputs = tuple(inputs)
    if shape is None:
        try:
            shape = np.broadcast_shapes(*(n.shape for n in inputs))
        except ValueError:
            raise ShapeError(
                "operands could not be broadcast together with shapes "
                + " ".join(str(n.shape) for n in inputs)
            ) from None
    if dtype is None:
        dtype = _integer_dtype(body, inputs) or result_dtype(*(n.dtype for n in inputs))
    return Node("elementwise", inputs, shape, dtype, (body,))


def _integer_dtype(body, inputs) -> str | None:
    """numpy's integer dtype for sums, products and powers of integer arrays (index arithmetic such
    as ``labels - 1``, which must stay an index), else None."""
    if not inputs or any(np.dtype(n.dtype).kind not in "iu" for n in inputs):
        return None
    for e in sympy.preorder_traversal(body):
        if not (isinstance(e, (sympy.Symbol, sympy.Integer, sympy.Add, sympy.Mul))
                or isinstance(e, sympy.Pow) and e.exp.is_Integer and e.exp >= 0):
            return None
    return str(np.result_type(*(n.dtype for n in inputs)))


def fill(value, shape, dtype: str = "float64") -> Node:
    """An array of one repeated number: an elementwise node with no inputs."""
    return elementwise(sympy.sympify(value), (), shape=shape, dtype=dtype)


def cast(node: Node, dtype: str) -> Node:
    """``node`` as ``dtype`` (itself if it has that dtype already)."""
    return node if node.dtype == dtype else elementwise(placeholder(0), (node,), dtype=dtype)


def is_fill(node: Node, value=None) -> bool:
    if node.op != "elementwise" or node.inputs or not node.body.is_number:
        return False
    return value is None or node.body == value


def shifted(body: sympy.Expr, k: int) -> sympy.Expr:
    """Rename placeholders a_i -> a_{i+k}, so other inputs can be placed in front."""
    syms = sorted(body.free_symbols, key=lambda s: s.name)
    return body.xreplace({s: placeholder(int(s.name[1:]) + k) for s in syms})


@register
class Elementwise(Op):
    """A SymPy body over placeholders applied to broadcast inputs (every ufunc; fills without inputs)."""

    name = "elementwise"

    def batched_operand_ranks(self, node):
        return [node.ndim] * len(node.inputs)

    def per_point(self, node, arguments, outputs):
        # numba cannot call scipy.special: such a body stays numpy code
        return node.shape == () and node.dtype in ("float64", "float32", "bool") and not ufuncs.calls_scipy(node.body)

    def vjp(self, node, g, wanted, n_lead):
        xs = node.inputs
        mask = masks.mask(g)
        for i in wanted:
            d = local_derivative(node.body, placeholder(i))
            if d == 0:
                continue
            if d.is_number and mask is None:
                c = elementwise(d * placeholder(0), (g,))
            else:
                product = lift_selects(placeholder(0) * shifted(d, 1))
                body, inputs = masks.build(mask, lambda live, p=product: p, (g, *xs)) if mask else (product, (g, *xs))
                c = elementwise(body, inputs)
            yield i, unbroadcast(c, g.shape[:n_lead] + xs[i].shape, n_lead)

    def jvp(self, node, tangents, lead):
        xs = node.inputs
        terms, args = [], list(xs)
        for i, t in enumerate(tangents):
            if t is None:
                continue
            d = local_derivative(node.body, placeholder(i))
            if d == 0:
                continue
            args.append(pad_rank(t, node.ndim, xs[i].ndim))
            terms.append(d * placeholder(len(args) - 1))
        if not terms:
            return None
        return elementwise(lift_selects(sympy.Add(*terms)), args)

    def sparsity(self, node, patterns):
        """The union of the broadcast patterns of the inputs the body's derivative involves (a
        select's condition does not count: its derivative is zero)."""
        from . import patterns as pat

        parts = [pat.take_rows(p, pat.broadcast_rows(x, node.shape)) for i, (x, p) in enumerate(zip(node.inputs, patterns))
                 if p.nnz and local_derivative(node.body, placeholder(i)) != 0]
        return pat.union(parts, node.size, patterns[0].shape[1])

    def evaluate(self, node, xs, symbolic):
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
        from ..printing import Printer

        names = {"np": np}
        if "scipy.special" in sys.modules:  # bodies with scipy.special functions print calls to it
            names["scipy"] = sys.modules["scipy"]
        f = sympy.lambdify(syms, body, modules=[names, "numpy"], printer=Printer)
        with np.errstate(all="ignore"):
            return np.asarray(f(*arrays), dtype=node.dtype) + np.zeros(node.shape, dtype=node.dtype)


@register
class Input(Op):
    """An argument of the generated function (``params[0]`` is its position)."""

    name = "input"
    leaf = passed_in = True

    def per_point(self, node, arguments, outputs):
        return True


@register
class Const(Op):
    """An array the traced function read: data of the generated function, never pasted."""

    name = "const"
    leaf = passed_in = True

    def evaluate(self, node, xs, symbolic):
        return node.params[0].value


# ---------------------------------------------------------------------------------------------
# numpy functions that build one elementwise node (the ufuncs themselves: ``trace.ufunc``)
# ---------------------------------------------------------------------------------------------


@numpy_function(np.where)
def np_where(condition, x=None, y=None):
    if x is None or y is None:
        raise refuse("np.where with one argument", "pass np.where(condition, x, y)")
    return select(condition, x, y)


def select(condition, x, y) -> Node:
    """``x`` where ``condition`` holds, else ``y`` (a ``Where`` body: its derivative is a select too)."""
    c = as_operand(condition)
    truth = {sympy.true: sympy.Integer(1), sympy.false: sympy.Integer(0)}
    items = [it if isinstance(it, Node) else truth.get(it, it) for it in (c, as_operand(x), as_operand(y))]
    symbols, nodes = bind(items)
    dtype = result_dtype(*(n.dtype for n in nodes[1:] if n is not c)) if len(nodes) > 1 else None
    return elementwise(Where(*symbols), nodes, dtype=dtype)


@numpy_function(np.clip)
def np_clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kwargs):
    refuse_given("clip", out=out, **kwargs)
    low, high = (a_min if min is None else min), (a_max if max is None else max)
    r = a
    if low is not None and low is not np._NoValue:
        r = ufunc("maximum", r, low)
    if high is not None and high is not np._NoValue:
        r = ufunc("minimum", r, high)
    return as_node(r)


@array_method("clip")
def clip_method(a, min=None, max=None, out=None, **kwargs):
    return np_clip(a, min=min, max=max, out=out, **kwargs)


@array_method("astype")
def astype(a, dtype, order="K", casting="unsafe", subok=True, copy=True):
    if np.dtype(dtype).kind != "f":
        raise refuse(f"astype({np.dtype(dtype)}) of a traced value", "derivatives need floating dtypes")
    return cast(as_node(a), str(np.dtype(dtype)))


def _like(a, value, dtype, shape) -> Node:
    x = as_node(a)
    return fill(value, x.shape if shape is None else shape_argument(shape), str(np.dtype(dtype or x.dtype)))


@numpy_function(np.ones_like)
def np_ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(a, 1, dtype, shape)


@numpy_function(np.zeros_like)
def np_zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(a, 0, dtype, shape)


@numpy_function(np.full_like)
def np_full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(a, number(fill_value), dtype, shape)
