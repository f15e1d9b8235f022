"""Sparsity patterns of Jacobians and Hessians, read from the IR before computing anything.

``propagate`` walks a traced graph once, asking each op for its rule (``Op.sparsity``), from the
identity pattern of the differentiated arguments. A Hessian's pattern is the Jacobian pattern of the
gradient graph (built by reverse mode), so it is exact wherever the rules are. scipy is needed here
only: the core never imports this module.
"""

from __future__ import annotations

import numpy as np

from . import ir, ops, optimize, pytrees
from .errors import SymdiffError
from .ops import patterns as pat


def propagate(out, wrt) -> object:
    """The pattern of ``out`` (rows: its entries in C order) over the entries of the ``wrt`` nodes
    (columns: each node's entries in C order, one node after the other)."""
    sp = pat.scipy_sparse()
    n = sum(w.size for w in wrt)
    start, offset = {}, 0
    for w in wrt:
        start[id(w)] = offset
        offset += w.size
    memo: dict = {}
    for node in ir.toposort([out]):
        if id(node) in start:
            s = start[id(node)]
            memo[id(node)] = sp.csr_array(
                (np.ones(node.size, dtype=bool), np.arange(s, s + node.size), np.arange(node.size + 1)),
                shape=(node.size, n))
        elif not node.inputs or np.dtype(node.dtype).kind != "f":  # leaves; integers and masks have no derivative
            memo[id(node)] = pat.empty(node.size, n)
        else:
            memo[id(node)] = ops.of(node).sparsity(node, [memo[id(i)] for i in node.inputs])
    return memo[id(out)]


def _traced(t, args, kwargs):
    """(input nodes, the differentiated ones, ``Call``) of transform ``t`` called with ``args``."""
    _, specs, _, call = t._specs(args, kwargs)
    in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
    n_positional = len(in_nodes) - len(call.keywords)
    return in_nodes, [in_nodes[p] for p in t._wrt_list(n_positional, call)], call


def _stacked(outs, wrt):
    sp = pat.scipy_sparse()
    parts = [propagate(o, wrt) for o in outs]
    return sp.csr_array(parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr"))


def jacobian_pattern(fun, argnums, kw, args, kwargs):
    from .symbolic import _primal_output
    from .transforms import Transform

    t = Transform(fun, "jacobian", argnums=argnums, **kw)
    in_nodes, wrt, call = _traced(t, args, kwargs)
    primal, _ = _primal_output(t, in_nodes, None, call)
    if not isinstance(primal, ir.Node):
        raise SymdiffError(f"a sparse Jacobian needs {getattr(fun, '__name__', 'the function')} to return one "
                           f"array, got a {type(primal).__name__}: concatenate the outputs (np.concatenate of "
                           "their ravels), or use the dense jacobian")
    return _stacked([primal], wrt)


def gradient_graph(fun, argnums, kw, args, kwargs):
    """(the optimized gradient nodes, input nodes, differentiated nodes, ``Call``) of ``fun``."""
    from .transforms import Transform

    g = Transform(fun, "grad", argnums=argnums, **kw)
    in_nodes, wrt, call = _traced(g, args, kwargs)
    grads = g.symbolic(in_nodes, call=call)
    grads = pytrees.flatten(grads, is_leaf=lambda n: isinstance(n, ir.Node))[0]  # several arguments, pytrees
    return optimize.optimize(grads, keep=in_nodes, lower=False), in_nodes, wrt, call


def hessian_pattern(fun, argnums, kw, args, kwargs):
    grads, _, wrt, _ = gradient_graph(fun, argnums, kw, args, kwargs)
    return _stacked(grads, wrt)


def jacobian_sparsity(fun, argnums=0, *, wrt=None, static_argnums=(), static_argnames=()):
    """A function of the same arguments as ``fun`` returning the structural nonzero pattern of its
    Jacobian: a boolean ``scipy.sparse.csr_array`` of shape ``(out.size, in.size)`` (several
    ``argnums``: their entries side by side), read from the program, never by evaluating it."""
    kw = {"wrt": wrt, "static_argnums": static_argnums, "static_argnames": static_argnames}
    return lambda *args, **kwargs: jacobian_pattern(fun, argnums, kw, args, kwargs)


def hessian_sparsity(fun, argnums=0, *, wrt=None, static_argnums=(), static_argnames=()):
    """The structural nonzero pattern of the Hessian of a scalar ``fun``: a boolean symmetric
    ``scipy.sparse.csr_array`` of shape ``(n, n)``, the Jacobian pattern of its gradient graph."""
    kw = {"wrt": wrt, "static_argnums": static_argnums, "static_argnames": static_argnames}
    return lambda *args, **kwargs: hessian_pattern(fun, argnums, kw, args, kwargs)
