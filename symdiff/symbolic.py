"""What a transform computes, as IR: ``trace -> differentiate`` for each kind of transform.

``outputs`` builds the derivative graph of a ``transforms.Transform`` over given input nodes:
gradients and Hessians by reverse mode, Jacobians by forward or reverse mode over a basis axis,
per-point cores entry by entry (``differentiate.scalarize``), and ``derivative`` as one SymPy
expression (``sympy.diff`` in one call, or Taylor coefficients from ``TAYLOR_FROM_ORDER`` on, or
forward mode through user-defined rules). Kept apart from ``transforms`` so that defining and
calling a transform whose code is cached loads none of this.
"""

from __future__ import annotations

import numpy as np

from . import differentiate, ir, ops, optimize, origins, pytrees, trace
from .arguments import NO_KEYWORDS
from .errors import CompileError, NotScalarError, SymdiffError, TraceError
from .graph import placeholder
from .transforms import _primal

TAYLOR_FROM_ORDER = 3  # from this order on, derivative() propagates Taylor coefficients
MAX_FORMULA_TERMS = 5000  # past this written-out size, derivative() differentiates the graph instead


def outputs(t, in_nodes, base_out=None, batched=False, call=None):
    """Output nodes of transform ``t`` as a function of ``in_nodes`` (see ``Transform.symbolic``)."""
    call = call or NO_KEYWORDS
    n_positional = len(in_nodes) - len(call.keywords)
    groups = t._wrt_groups(n_positional, call)
    wrt_pos = [i for _, nodes in groups for i in nodes]
    for p in wrt_pos:
        trace.check_differentiable(in_nodes[p].dtype, f"argument {t._traced_names(n_positional, call)[p]!r}")
    trees = any(tree is not None for tree, _ in groups)
    if t.kind == "derivative":
        if trees:
            raise SymdiffError("derivative differentiates scalars elementwise; use grad or jacobian for a pytree argument")
        return _derivative(t, in_nodes, wrt_pos, base_out, call)
    primal, aux = _primal_output(t, in_nodes, base_out, call)
    single = not isinstance(t.positions, tuple)
    if not isinstance(primal, ir.Node):  # the Jacobian of a pytree result: one per leaf, in its place
        leaves, structure, _ = pytrees.flatten(primal, is_leaf=lambda n: isinstance(n, ir.Node))
        wrt = [in_nodes[p] for p in wrt_pos]
        jacs = [_regrouped(t, _by_kind(t, leaf, wrt, False), groups, single) for leaf in leaves]
        result = pytrees.unflatten(structure, jacs)
        return (result, aux) if t.has_aux else result
    result = None
    # element by element pays for batches of small per-point problems (sparse, symmetric entries)
    if batched and (single or t.kind != "hessian") and not trees:
        from .differentiate import scalarize

        if scalarize.applicable(in_nodes, primal):
            result = _scalarized(t, in_nodes, primal, wrt_pos, single)
    if result is None and trees:  # one result per leaf, then in the structure of its argument
        result = _regrouped(t, _by_kind(t, primal, [in_nodes[p] for p in wrt_pos], False), groups, single)
    if result is None:
        result = _by_kind(t, primal, [in_nodes[p] for p in wrt_pos], single)
    return (result, aux) if t.has_aux else result


def _regrouped(t, result, groups, single):
    """Per-leaf results of ``_by_kind`` put in the structure of the arguments they belong to, as
    JAX does: the gradient with respect to a dict of arrays is a dict of the same keys."""

    def by_argument(items):
        out, k = [], 0
        for tree, nodes in groups:
            part = list(items[k : k + len(nodes)])
            k += len(nodes)
            out.append(pytrees.unflatten(tree, part) if tree is not None else part[0])
        return out[0] if single else tuple(out)

    if t.kind == "value_and_grad":
        return result[0], by_argument(result[1])
    if t.kind == "hessian":
        return by_argument([by_argument(row) for row in result])
    return by_argument(result)


def _primal_output(t, in_nodes, base_out, call):
    """(the function's output node, fused and stabilized; its aux output or None)."""
    primal = _primal(t.fun, in_nodes, base_out, call)
    aux = None
    if t.has_aux:
        if not (isinstance(primal, tuple) and len(primal) == 2):
            raise SymdiffError("has_aux=True needs the function to return a pair (output, aux)")
        primal, aux = primal
    if isinstance(primal, ir.Node):  # fuse and stabilize before differentiating
        (primal,) = optimize.optimize([primal], keep=in_nodes, lower=False)
    elif t.kind == "jacobian" and isinstance(primal, (tuple, list, dict)):  # a pytree result
        leaves, structure, _ = pytrees.flatten(primal, is_leaf=lambda n: isinstance(n, ir.Node))
        if leaves:
            return pytrees.unflatten(structure, optimize.optimize(leaves, keep=in_nodes, lower=False)), aux
    if not isinstance(primal, ir.Node):
        raise SymdiffError(
            f"{t.kind} needs the function to return one array, got a {type(primal).__name__}"
            + ("; pass has_aux=True to return (output, aux)" if isinstance(primal, tuple) else "")
        )
    return primal, aux


def _by_kind(t, primal, wrt, single):
    """The gradient, value and gradient, Jacobian or Hessian of ``primal`` with respect to ``wrt``."""
    if t.kind == "jacobian":
        jacs = [_jacobian(primal, w) for w in wrt]
        return jacs[0] if single else tuple(jacs)
    value = primal
    if primal.shape != ():  # one element, of shape (1,) or (1, 1): its gradient, as autograd gives
        if primal.size != 1:
            raise NotScalarError(_not_scalar(t, primal.shape))
        primal = ir.reshape(primal, primal.ndim, ())
    grads = differentiate.vjp([primal], [ir.fill(1, (), primal.dtype)], wrt)
    if t.kind == "hessian":
        rows = [tuple(_jacobian(g, w) for w in wrt) for g in grads]
        return rows[0][0] if single else tuple(rows)
    grads = [ir.cast(g, w.dtype) for g, w in zip(grads, wrt)]
    result = grads[0] if single else tuple(grads)
    return (value, result) if t.kind == "value_and_grad" else result


def _not_scalar(t, shape) -> str:
    if t.kind == "hessian":
        return (
            f"hessian needs a scalar output, but {t.__name__} returns shape {shape}; "
            "use jacobian(jacobian(f)) for array outputs, or signature='(n)->()' for a batch of points"
        )
    return (
        f"{t.kind} only applies to functions with a scalar output, but {t.__name__} returns "
        f"shape {shape}; use symdiff.jacobian for array outputs, symdiff.derivative for "
        "elementwise derivatives of scalar functions, or signature='(n)->()' for a batch of points"
    )


def _scalarized(t, in_nodes, primal, wrt_pos, single):
    """Small cores: every derivative entry its own expression; zeros skipped, symmetry used."""
    from .differentiate import scalarize

    if t.kind in ("grad", "value_and_grad", "hessian") and primal.shape != ():
        return None  # let the general path raise its error
    got = scalarize.scalar_outputs(primal, in_nodes)
    if got is None:
        return None
    value, arrays, columns = got
    build = scalarize.Builder(in_nodes, columns)
    order = 2 if t.kind == "hessian" else 1
    results = []
    try:
        derived = scalarize.derivative_arrays(value, arrays, wrt_pos, order)
    except scalarize.TooLarge:
        return None
    for p, d in zip(wrt_pos, derived):
        w = in_nodes[p]
        dtype = w.dtype if t.kind in ("grad", "value_and_grad") else ir.result_dtype(primal.dtype, w.dtype)
        results.append(build.pack(scalarize.entries_of(d), d.shape, dtype))
    result = results[0] if single else tuple(results)
    if t.kind == "value_and_grad":
        result = (build.entry(value[()], primal.dtype), result)
    return result


# -- derivative(): one elementwise expression ----------------------------------------------------


def _derivative(t, in_nodes, wrt_pos, base_out, call):
    scalars = [n if n.shape == () else ir.fresh_input(i, (), n.dtype) for i, n in enumerate(in_nodes)]
    fresh = any(n.shape != () for n in in_nodes) or base_out is None
    out = _primal(t.fun, scalars, None if fresh else base_out, call)
    if not isinstance(out, ir.Node):
        raise SymdiffError("derivative needs a function that returns one scalar")
    if out.shape != ():
        raise NotScalarError(
            f"derivative needs a function of scalars that returns a scalar, but {t.__name__} returns "
            f"shape {out.shape}; use symdiff.jacobian for array functions"
        )
    dtype = ir.result_dtype(*(in_nodes[p].dtype for p in wrt_pos))
    (fused,) = optimize.optimize([out], keep=scalars, lower=False)
    if any(ops.of(n).opaque for n in ir.toposort([fused])):  # user-defined rules: no closed form
        body, free = scalar_body_or_fail(t, derivative_by_rules(t, fused, scalars, wrt_pos), scalars)
        return ir.elementwise(body, list(in_nodes) + free, dtype=dtype)
    if written_out_size(fused) > MAX_FORMULA_TERMS:  # one expression would be exponentially long
        scalar_body_or_fail(t, fused, scalars, compose=False)
        graph = derivative_by_rules(t, fused, scalars, wrt_pos)
        return _broadcast_to_all(lifted(graph, scalars, in_nodes), in_nodes, dtype)
    body, free = scalar_body_or_fail(t, fused, scalars)  # free: values that do not depend on the arguments
    operands = list(in_nodes) + free
    try:
        if not isinstance(t.positions, tuple) and t.order >= TAYLOR_FROM_ORDER:
            from .differentiate.taylor import derivative_node

            return derivative_node(body, operands, wrt_pos[0], t.order, dtype)
        d = derivative_expr(t, body, wrt_pos)
    except SymdiffError:
        raise
    except Exception as e:  # SymPy internals: say what was being differentiated
        raise CompileError(f"SymPy failed to differentiate {body}: {type(e).__name__}: {e}") from e
    out = ir.elementwise(d, operands, dtype=dtype)
    sequence = [(p,) for p in wrt_pos] if isinstance(t.positions, tuple) else [wrt_pos] * t.order
    out.origin = fused.origin
    for positions in sequence:  # the derivative of the function's lines, for the generated comment
        out.origin = origins.derived(out.origin, positions=positions, rule=fused)
    return out


def scalar_body_or_fail(t, node, scalars, compose=True):
    composed = scalar_body(node, scalars, compose)
    if composed is None:
        raise TraceError(
            f"derivative needs {t.__name__} to be built from elementwise operations on scalar arguments; "
            "use symdiff.grad or symdiff.jacobian for functions with array operations"
        )
    return composed


def written_out_size(out) -> int:
    """How long the graph is written out as one expression: SymPy would share a value used twice in
    memory, but ``diff``, its automatic simplification and printing walk the tree, whose size can
    double per line of a loop like ``a = np.sin(a) + 0.1 * a``. Linear in the graph."""
    size: dict = {}
    for n in ir.toposort([out]):
        inputs = [size[id(i)] for i in n.inputs]
        size[id(n)] = _tree_size(n.body, inputs) if n.op == "elementwise" else 1 + sum(inputs)
    return size[id(out)]


def _tree_size(body, input_sizes) -> int:
    """Nodes of ``body`` as a tree, a placeholder counting as the size of what it stands for."""
    size = {placeholder(k): s for k, s in enumerate(input_sizes)}
    stack = [body]
    while stack:
        e = stack[-1]
        pending = [a for a in e.args if a not in size]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        size[e] = 1 + sum(size[a] for a in e.args)
    return size[body]


def lifted(graph, scalars, in_nodes):
    """A graph of elementwise work over scalar stand-ins, rebuilt over the real (array) arguments:
    each node broadcasts its operands as numpy would."""
    stand_in = {id(s): n for s, n in zip(scalars, in_nodes)}

    def over_arrays(node, original):
        if id(original) in stand_in:
            return stand_in[id(original)]
        if node.inputs and node.shape != np.broadcast_shapes(*(i.shape for i in node.inputs)):
            if node.op != "elementwise":
                raise CompileError(f"derivative: cannot apply {node.op} elementwise over the arguments' shapes")
            return ir.elementwise(node.body, node.inputs, dtype=node.dtype)
        return node

    (out,) = ir.rewrite([graph], over_arrays)
    return out


def _broadcast_to_all(out, in_nodes, dtype):
    """The result has the broadcast shape of every argument, used or not (as one formula over all
    of them would), and the derivative's dtype."""
    shape = np.broadcast_shapes(out.shape, *(n.shape for n in in_nodes))
    return ir.cast(ir.broadcast(out, out.ndim, shape), dtype)


def derivative_by_rules(t, out, scalars, wrt_pos):
    """The derivative as a graph, by forward mode on the IR (one JVP per differentiation): the way
    through user-defined rules, which give SymPy no formula to differentiate."""
    variables = [scalars[p] for p in wrt_pos]
    for v in variables if isinstance(t.positions, tuple) else variables * t.order:
        (out,) = differentiate.jvp([out], [v], [ir.fill(1, (), v.dtype)])
    (fused,) = optimize.optimize([out], keep=scalars)
    return fused


def derivative_expr(t, body, wrt_pos):
    """The derivative as one SymPy expression over placeholders (``diff`` in one call)."""
    import sympy

    from .primitives import clean_derivative

    variables = [placeholder(p) for p in wrt_pos]
    sequence = variables if isinstance(t.positions, tuple) else variables * t.order
    return clean_derivative(sympy.diff(body, *sequence)) if sequence else body


def scalar_body(node, scalars, compose=True):
    """(SymPy body, free nodes) of a scalar graph: the body is over placeholders ``a0..`` for
    ``scalars`` (by position) followed by one placeholder per free node (a value that does not
    depend on ``scalars``: a closed-over constant, or a value of an enclosing trace). None if a
    value that depends on ``scalars`` is computed by anything but elementwise work. With
    ``compose=False`` only that check is made, and (None, []) stands for success."""
    memo: dict = {id(s): placeholder(i) for i, s in enumerate(scalars)}
    depends = {id(s) for s in scalars}
    for n in ir.toposort([node]):
        if any(id(i) in depends for i in n.inputs):
            if not compose and n.op != "elementwise":
                return None
            depends.add(id(n))
    if not compose:
        return None, []
    free: list = []

    def compose(n):
        if id(n) not in memo:
            if id(n) not in depends:
                free.append(n)
                memo[id(n)] = placeholder(len(scalars) + len(free) - 1)
            elif n.op == "elementwise":
                parts = [compose(x) for x in n.inputs]
                memo[id(n)] = None if None in parts else n.body.xreplace(
                    {placeholder(i): p for i, p in enumerate(parts)}
                )
            else:
                memo[id(n)] = None
        return memo[id(n)]

    body = compose(node)
    return None if body is None else (body, free)


# -- small helpers -------------------------------------------------------------------------------


def _jacobian(out, w):
    """d out / d w with shape out.shape + w.shape, vectorized over a basis axis (no Python loop)."""
    dtype = ir.result_dtype(out.dtype, w.dtype)
    n_in, n_out = w.size, out.size
    if n_in <= n_out:
        basis = ir.eye_basis(w.shape, dtype)
        (t,) = differentiate.jvp([out], [w], [basis], lead=(n_in,))
        t = ir.transpose(t, tuple(range(1, t.ndim)) + (0,))
        return ir.reshape(t, t.ndim, out.shape + w.shape)
    basis = ir.eye_basis(out.shape, dtype)
    (g,) = differentiate.vjp([out], [basis], [w], lead=(n_out,))
    return ir.reshape(g, g.ndim, out.shape + w.shape)
