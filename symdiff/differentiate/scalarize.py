"""Small cores, element by element: derivatives of per-point functions with a handful of inputs.

For a function of at most ``MAX_ELEMENTS`` scalars (the per-point core of a ``signature=`` call,
e.g. an 8-variable Rosenbrock), the whole graph is evaluated on SymPy symbols, one per element, and
every derivative entry becomes its own elementwise expression over the input columns. Afterwards
structurally zero entries are not computed at all, the two entries of a symmetric pair are computed
once, and the result is assembled by one ``pack`` node into a preallocated array. Larger arrays keep
the shape-generic path (vectorized forward-over-reverse) instead.
"""

from __future__ import annotations

import numpy as np
import sympy

from .. import ir, ops
from ..evaluate import evaluate
from ..ir import Node, placeholder
from ..primitives import clean_derivative, lift_selects

MAX_ELEMENTS = 16
MAX_OPS = 4000


def applicable(in_nodes, primal: Node) -> bool:
    total = sum(n.size for n in in_nodes)
    if not (0 < total <= MAX_ELEMENTS and primal.size <= MAX_ELEMENTS):
        return False
    nodes = ir.toposort([primal])
    # every intermediate array is scalarized too: only small graphs of small arrays qualify; a
    # user-defined rule is differentiated by its rule only, never through its formula
    return len(nodes) <= 400 and all(n.size <= 4 * MAX_ELEMENTS and not ops.of(n).opaque for n in nodes)


def element_symbols(in_nodes):
    """One real SymPy symbol per input element, and the object arrays that hold them."""
    arrays, columns = {}, {}
    for pos, n in enumerate(in_nodes):
        arr = np.empty(n.shape, dtype=object)
        for idx in np.ndindex(n.shape):
            s = sympy.Dummy(f"x{pos}_{'_'.join(map(str, idx))}", real=True)
            arr[idx] = s
            columns[s] = (pos, idx)
        arrays[pos] = arr
    return arrays, columns


def scalar_outputs(primal: Node, in_nodes):
    """The primal as an object array of SymPy expressions, or None when too large."""
    arrays, columns = element_symbols(in_nodes)
    positions = {id(n): p for p, n in enumerate(in_nodes)}
    # evaluate() looks inputs up by position: rename the graph's leaves to positions
    leaves = {p: arrays[p] for p in range(len(in_nodes))}
    (value,) = evaluate([_positional(primal, positions)], leaves, symbolic=True)
    value = np.asarray(value, dtype=object)
    if sum(sympy.count_ops(e) for e in value.flat) > MAX_OPS:
        return None
    return value, arrays, columns


def _positional(out: Node, positions: dict) -> Node:
    """Replace the nodes standing for arguments by input nodes numbered by position."""
    mapping: dict = {}
    for n in ir.toposort([out]):
        if id(n) in positions:
            mapping[id(n)] = ir.input_node(positions[id(n)], n.shape, n.dtype)
            continue
        inputs = tuple(mapping[id(i)] for i in n.inputs)
        mapping[id(n)] = n if inputs == n.inputs else ir.copy_node(n, inputs)
    return mapping[id(out)]


class Builder:
    """Turns SymPy entries over element symbols into IR over columns of the argument nodes."""

    def __init__(self, in_nodes, columns):
        self.in_nodes, self.columns = in_nodes, columns
        self._index: dict = {}

    def column(self, s) -> Node:
        if s not in self._index:
            pos, idx = self.columns[s]
            node = self.in_nodes[pos]
            self._index[s] = ir.index(node, tuple(idx)) if idx else node
        return self._index[s]

    def entry(self, expr, dtype) -> Node:
        syms = sorted(expr.free_symbols, key=lambda s: s.name)
        if not syms:
            return ir.fill(expr, (), dtype)
        body = expr.xreplace({s: placeholder(i) for i, s in enumerate(syms)})
        return ir.elementwise(body, [self.column(s) for s in syms], dtype=dtype)

    def pack(self, entries: dict, shape, dtype) -> Node:
        """An array of ``shape`` whose listed entries are given (each written at one or more
        positions) and whose other entries are structurally zero."""
        if tuple(shape) == () and len(entries) == 1:
            return self.entry(next(iter(entries)), dtype)
        nodes = [self.entry(expr, dtype) for expr in entries]
        return ir.pack(nodes, list(entries.values()), shape, dtype)


class TooLarge(Exception):
    """The entries grew past the budget: the vectorized path is the better choice."""


def _budget(exprs):
    if sum(sympy.count_ops(e) for e in exprs) > MAX_OPS:
        raise TooLarge


def derivative_arrays(value, arrays, wrt_positions, order: int):
    """SymPy arrays of d^order value / d wrt^order, with each distinct entry derived once.

    Raises TooLarge when the entries outgrow ``MAX_OPS`` operations."""
    results = []
    for p in wrt_positions:
        w = arrays[p]
        if order == 1:
            results.append(_jac(value, w))
        else:
            results.append(_hess(value[()], w))
    return results


def _local(e, i):
    """d e / d (argument i of e): the chain rule's local factor, without calling ``sympy.diff``."""
    if e.is_Add:
        return sympy.S.One
    if e.is_Mul:
        return sympy.Mul(*(e.args[:i] + e.args[i + 1 :]))
    if e.is_Pow:
        b, n = e.args
        return n * b ** (n - 1) if i == 0 else e * sympy.log(b)
    return clean_derivative(e.fdiff(i + 1))


def reverse_gradient(f, wrt):
    """Gradient of the SymPy expression ``f`` by reverse accumulation over its DAG (each shared
    subexpression visited once): an order of magnitude faster than ``sympy.diff`` per variable.

    The adjoints of the branches of a select carry the mask ``Where(c, 1, 0)``; the results are
    lifted into selects (``Where(c, g*f', 0)``), so the branch not taken cannot leak its NaN."""
    targets = set(wrt)
    order, seen, stack = [], set(), [(f, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if a not in seen and not a.is_number)
    adjoint = {f: sympy.S.One}
    for e in reversed(order):
        g = adjoint.get(e)
        if g is None or e.is_Symbol:
            continue
        for i, a in enumerate(e.args):
            if a.is_number or not (a.free_symbols & targets):
                continue
            adjoint[a] = adjoint.get(a, sympy.S.Zero) + g * _local(e, i)
    return [lift_selects(adjoint.get(w, sympy.S.Zero)) for w in wrt]


def _jac(value, w):
    flat = list(w.flat)
    out = np.empty(value.shape + w.shape, dtype=object)
    for oi in np.ndindex(value.shape):
        grads = reverse_gradient(value[oi], flat)
        _budget(grads)
        for wi, g in zip(np.ndindex(w.shape), grads):
            out[oi + wi] = g
    return out


def _hess(f, w):
    flat = list(w.flat)
    n = len(flat)
    out = np.empty((n, n), dtype=object)
    grad = reverse_gradient(f, flat)
    _budget(grad)
    for i, g in enumerate(grad):
        row = reverse_gradient(g, flat[i:])
        _budget(row)  # symmetric: only the upper triangle is derived
        for j, h in enumerate(row, start=i):
            out[i, j] = out[j, i] = h
    return out.reshape(w.shape + w.shape)


def entries_of(arr) -> dict:
    """Nonzero entries of an object array, grouped by expression: {expr: [positions]}."""
    entries: dict = {}
    for idx in np.ndindex(arr.shape):
        e = arr[idx]
        if e != 0:
            entries.setdefault(e, []).append(idx)
    return entries
