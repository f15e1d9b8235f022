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
from ..graph import Node, placeholder, result_dtype
from ..primitives import lift_selects, local_derivative
from . import masks, ufuncs  # noqa: F401  (ufuncs: the table of the functions this op applies)
from .base import Op, pad_rank, register, unbroadcast


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
        dtype = result_dtype(*(n.dtype for n in inputs))
    return Node("elementwise", inputs, shape, dtype, (body,))


def fill(value, shape, dtype: str = "float64") -> Node:
    """An array of one repeated number: an elementwise node with no inputs."""
    return elementwise(sympy.sympify(value), (), shape=shape, dtype=dtype)


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


@register
class Const(Op):
    """An array the traced function read: data of the generated function, never pasted."""

    name = "const"
    leaf = passed_in = True

    def evaluate(self, node, xs, symbolic):
        return node.params[0].value
