"""The public transforms: ``grad``, ``value_and_grad``, ``jacobian``, ``hessian``, ``derivative``.

A transform describes a derivative of a function: ``symbolic`` builds its IR from the function's
(``trace -> differentiate``), ``plan`` turns that into the emitter's data model, and the call path
(``dispatch``) compiles and runs it. A transform's result is again a function, so it can be called
with arrays or traced by another transform (its derivative graph is inlined): ``grad(grad(f))``.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json

import numpy as np

from .dispatch import (
    NO_KEYWORDS,
    Dispatch,
    _base,
    _chain_kinds,
    _chain_spec,
    _flatten,
    _parse_signature,
    _trace_context,
    _unflatten,
)
from .errors import CompileError, NotScalarError, SymdiffError, TraceError

BACKENDS = ("numpy", "numba")


TAYLOR_FROM_ORDER = 3  # from this order on, derivative() propagates Taylor coefficients


_SUMMARY = {
    "grad": "Gradient of {f} with respect to {wrt}.",
    "value_and_grad": "Value and gradient of {f} with respect to {wrt}.",
    "jacobian": "Jacobian of {f} with respect to {wrt} (output axes first, then input axes).",
    "hessian": "Hessian of {f} with respect to {wrt}.",
    "derivative": "Derivative of order {order} of {f} with respect to {wrt}, elementwise over broadcast arguments.",
}



class Transform(Dispatch):
    """A derivative of ``fun``: callable on arrays, traceable by other transforms, inspectable."""

    def __init__(self, fun, kind, argnums=0, wrt=None, has_aux=False, signature=None, order=1, backend="numpy"):
        if not callable(fun):
            raise SymdiffError(f"{kind} expects a function, got {type(fun).__name__}")
        if backend not in BACKENDS:
            raise SymdiffError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if backend == "numba" and importlib.util.find_spec("numba") is None:
            raise SymdiffError("backend='numba' needs numba: pip install 'symdiff[numba]'")
        self.backend = backend
        if kind == "derivative" and (not isinstance(order, int) or order < 0):
            raise SymdiffError(f"order must be a non-negative integer, got {order!r}")
        self.fun, self.kind, self.has_aux, self.order = fun, kind, has_aux, order
        self.signature = _parse_signature(signature) if signature is not None else None
        self.argnums, self.wrt = argnums, wrt
        self.param_names = _param_names(fun)
        self.positions = self._resolve_positions(argnums, wrt)
        functools.update_wrapper(self, fun, assigned=("__module__", "__name__", "__qualname__"), updated=())
        self._chain = tuple(tuple(step) for step in _chain_spec(self))
        self._dispatch: dict = {}  # argument types/shapes/dtypes -> runner guarded by what the function reads

    @property
    def base_function(self):
        """The user's function at the bottom of a chain of transforms."""
        return _base(self)

    def chain_text(self) -> str:
        """The chain of transforms above the user's function, as text (part of every cache key)."""
        return json.dumps(self._chain)

    def _resolve_positions(self, argnums, wrt):
        if wrt is not None:
            names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
            unknown = [n for n in names if n not in self.param_names]
            if unknown:
                raise SymdiffError(
                    f"wrt names {unknown} are not parameters of {self.__name__ if hasattr(self, '__name__') else 'the function'}"
                    f" (its parameters are {list(self.param_names)})"
                )
            positions = tuple(self.param_names.index(n) for n in names)
            return positions if not isinstance(wrt, str) else positions[0]
        if isinstance(argnums, (tuple, list)):
            return tuple(int(a) for a in argnums)
        if not isinstance(argnums, (int, np.integer)):
            raise SymdiffError(f"argnums must be an int or a tuple of ints, got {argnums!r}")
        return int(argnums)

    def _wrt_list(self, n_args):
        """Positions (among the ``n_args`` positional arguments) to differentiate with respect to."""
        pos = self.positions if isinstance(self.positions, tuple) else (self.positions,)
        out = []
        for p in pos:
            if not -n_args <= p < n_args:
                if self.wrt is not None:
                    raise SymdiffError(
                        f"{self._arg_name(p)!r} must be passed positionally to be differentiated "
                        f"(keyword arguments are data or constants); the call passed {n_args} positional arguments"
                    )
                raise SymdiffError(f"argnums {p} is out of range for a call with {n_args} positional arguments")
            out.append(p % n_args)
        return out

    def symbolic(self, in_nodes, base_out=None, batched=False, call=None):
        """Output nodes of this transform, as a function of ``in_nodes``.

        ``call`` (a ``Call``) says which of the last ``in_nodes`` are keyword arguments and which
        static keyword values the function receives; by default every node is positional."""
        from . import differentiate
        from . import ir
        from . import optimize
        from .differentiate import scalarize
        from . import trace

        call = call or NO_KEYWORDS
        wrt_pos = self._wrt_list(len(in_nodes) - len(call.keywords))
        for p in wrt_pos:
            trace.check_differentiable(in_nodes[p].dtype, f"argument {self._arg_name(p)!r}")
        if self.kind == "derivative":
            return self._derivative(in_nodes, wrt_pos, base_out, call)
        primal = _primal(self.fun, in_nodes, base_out, call)
        aux = None
        if self.has_aux:
            if not (isinstance(primal, tuple) and len(primal) == 2):
                raise SymdiffError("has_aux=True needs the function to return a pair (output, aux)")
            primal, aux = primal
        if isinstance(primal, ir.Node):  # fuse and stabilize before differentiating
            (primal,) = optimize.optimize([primal], keep=in_nodes, lower=False)
        if not isinstance(primal, ir.Node):
            raise SymdiffError(
                f"{self.kind} needs the function to return one array, got a {type(primal).__name__}"
                + ("; pass has_aux=True to return (output, aux)" if isinstance(primal, tuple) else "")
            )
        wrt = [in_nodes[p] for p in wrt_pos]
        single = not isinstance(self.positions, tuple)
        # element by element pays for batches of small per-point problems (sparse, symmetric entries)
        if batched and (single or self.kind != "hessian") and scalarize.applicable(in_nodes, primal):
            result = self._scalarized(in_nodes, primal, wrt_pos, single)
            if result is not None:
                return (result, aux) if self.has_aux else result
        if self.kind in ("grad", "value_and_grad"):
            if primal.shape != ():
                raise NotScalarError(
                    f"{self.kind} only applies to functions with a scalar output, but {self.__name__} returns "
                    f"shape {primal.shape}; use symdiff.jacobian for array outputs, symdiff.derivative for "
                    "elementwise derivatives of scalar functions, or signature='(n)->()' for a batch of points"
                )
            grads = differentiate.vjp([primal], [ir.fill(1, (), primal.dtype)], wrt)
            grads = [_cast(g, w.dtype) for g, w in zip(grads, wrt)]
            result = grads[0] if single else tuple(grads)
            if self.kind == "value_and_grad":
                result = (primal, result)
        elif self.kind == "jacobian":
            jacs = [_jacobian(primal, w) for w in wrt]
            result = jacs[0] if single else tuple(jacs)
        else:  # hessian
            if primal.shape != ():
                raise NotScalarError(
                    f"hessian needs a scalar output, but {self.__name__} returns shape {primal.shape}; "
                    "use jacobian(jacobian(f)) for array outputs, or signature='(n)->()' for a batch of points"
                )
            grads = differentiate.vjp([primal], [ir.fill(1, (), primal.dtype)], wrt)
            rows = []
            for g in grads:
                rows.append(tuple(_jacobian(g, w) for w in wrt))
            result = rows[0][0] if single else tuple(rows)
        return (result, aux) if self.has_aux else result

    def _scalarized(self, in_nodes, primal, wrt_pos, single):
        """Small cores: every derivative entry its own expression; zeros skipped, symmetry used."""
        from . import ir
        from .differentiate import scalarize

        if self.kind in ("grad", "value_and_grad", "hessian") and primal.shape != ():
            return None  # let the general path raise its error
        got = scalarize.scalar_outputs(primal, in_nodes)
        if got is None:
            return None
        value, arrays, columns = got
        build = scalarize.Builder(in_nodes, columns)
        order = 2 if self.kind == "hessian" else 1
        results = []
        try:
            derived = scalarize.derivative_arrays(value, arrays, wrt_pos, order)
        except scalarize.TooLarge:
            return None
        for p, d in zip(wrt_pos, derived):
            w = in_nodes[p]
            dtype = w.dtype if self.kind in ("grad", "value_and_grad") else ir.result_dtype(primal.dtype, w.dtype)
            results.append(build.pack(scalarize.entries_of(d), d.shape, dtype))
        result = results[0] if single else tuple(results)
        if self.kind == "value_and_grad":
            result = (build.entry(value[()], primal.dtype), result)
        return result

    def _derivative(self, in_nodes, wrt_pos, base_out, call):
        from . import ir, ops, optimize, origins

        scalars = [n if n.shape == () else ir.fresh_input(i, (), n.dtype) for i, n in enumerate(in_nodes)]
        fresh = any(n.shape != () for n in in_nodes) or base_out is None
        out = _primal(self.fun, scalars, None if fresh else base_out, call)
        if not isinstance(out, ir.Node):
            raise SymdiffError("derivative needs a function that returns one scalar")
        if out.shape != ():
            raise NotScalarError(
                f"derivative needs a function of scalars that returns a scalar, but {self.__name__} returns "
                f"shape {out.shape}; use symdiff.jacobian for array functions"
            )
        dtype = ir.result_dtype(*(in_nodes[p].dtype for p in wrt_pos))
        (fused,) = optimize.optimize([out], keep=scalars, lower=False)
        if any(ops.of(n).opaque for n in ir.toposort([fused])):  # user-defined rules: no closed form
            body, free = self._scalar_body_or_fail(self._derivative_by_rules(fused, scalars, wrt_pos), scalars)
            return ir.elementwise(body, list(in_nodes) + free, dtype=dtype)
        body, free = self._scalar_body_or_fail(fused, scalars)  # free: values that do not depend on the arguments
        operands = list(in_nodes) + free
        try:
            if not isinstance(self.positions, tuple) and self.order >= TAYLOR_FROM_ORDER:
                from .differentiate.taylor import derivative_node

                return derivative_node(body, operands, wrt_pos[0], self.order, dtype)
            d = self._derivative_expr(body, wrt_pos)
        except SymdiffError:
            raise
        except Exception as e:  # SymPy internals: say what was being differentiated
            raise CompileError(f"SymPy failed to differentiate {body}: {type(e).__name__}: {e}") from e
        out = ir.elementwise(d, operands, dtype=dtype)
        sequence = [(p,) for p in wrt_pos] if isinstance(self.positions, tuple) else [wrt_pos] * self.order
        out.origin = fused.origin
        for positions in sequence:  # the derivative of the function's lines, for the generated comment
            out.origin = origins.derived(out.origin, positions=positions)
        return out

    def _scalar_body_or_fail(self, node, scalars):
        composed = _scalar_body(node, scalars)
        if composed is None:
            raise TraceError(
                f"derivative needs {self.__name__} to be built from elementwise operations on scalar arguments; "
                "use symdiff.grad or symdiff.jacobian for functions with array operations"
            )
        return composed

    def _derivative_by_rules(self, out, scalars, wrt_pos):
        """The derivative as a graph, by forward mode on the IR (one JVP per differentiation): the way
        through user-defined rules, which give SymPy no formula to differentiate."""
        from . import differentiate
        from . import ir
        from . import optimize

        variables = [scalars[p] for p in wrt_pos]
        for v in variables if isinstance(self.positions, tuple) else variables * self.order:
            (out,) = differentiate.jvp([out], [v], [ir.fill(1, (), v.dtype)])
        (fused,) = optimize.optimize([out], keep=scalars)
        return fused

    def _derivative_expr(self, body, wrt_pos):
        """The derivative as one SymPy expression over placeholders (``diff`` in one call)."""
        from .graph import placeholder
        import sympy

        from .primitives import clean_derivative

        variables = [placeholder(p) for p in wrt_pos]
        sequence = variables if isinstance(self.positions, tuple) else variables * self.order
        return clean_derivative(sympy.diff(body, *sequence)) if sequence else body

    def _arg_name(self, p):
        return self.param_names[p] if p < len(self.param_names) else f"arg{p}"

    def plan(self, in_nodes, base_out=None, core_ranks=None, call=None):
        """The emitter's data model of this transform's generated function (and its output tree)."""
        from . import emit
        from . import ir
        from . import optimize

        core_ranks = core_ranks or {}
        call = call or NO_KEYWORDS
        out = self.symbolic(in_nodes, base_out, batched=bool(core_ranks), call=call)
        flat, tree = _flatten(out)
        flat = optimize.optimize(flat)
        n_positional = len(in_nodes) - len(call.keywords)
        names = _sanitized_params([self._arg_name(i) for i in range(n_positional)] + list(call.keywords))
        wrt_names = [names[p] for p in self._wrt_list(n_positional)]
        base_name = getattr(_base(self), "__name__", "f")
        fname = emit.sanitize(f"{self.kind}_{base_name}", set(names))
        summary = _SUMMARY[self.kind].format(
            f=emit.sanitize(base_name, set()), wrt=", ".join(wrt_names), order=self.order
        )
        if _base(self) is not self.fun:
            summary += f" (composed: {' of '.join(_chain_kinds(self))})"
        doc = ["Arguments:"]
        for i, n in enumerate(in_nodes):
            shape = "any shape (broadcast)" if self.kind == "derivative" else f"shape {n.shape}"
            batch = " with leading batch axes" if i in core_ranks and self.kind != "derivative" else ""
            doc.append(f"    {names[i]}: {n.dtype}, {shape}{batch}")
        doc.append("Returns:")
        batch = "..., " if core_ranks and self.kind != "derivative" else ""
        for o in flat:
            shape = f"({batch}{', '.join(map(str, o.shape))})" if batch else str(o.shape)
            doc.append(f"    {o.dtype} array of shape {shape}" if self.kind != "derivative" else f"    {o.dtype} array")
        formula = _short_formula(flat, names)
        if formula:
            doc += ["Formula:", f"    {formula}"]
        plan = emit.FunctionPlan(
            name=fname,
            summary=summary,
            param_names=names,
            inputs=in_nodes,
            outputs=flat,
            output_dtypes=[o.dtype for o in flat],
            doc=doc,
            core_ranks=core_ranks,
            keyword_inputs=len(call.keywords),
            elementwise=self.kind == "derivative",
        )
        values = {n.params[0].digest: n.params[0].value for n in ir.toposort(flat) if n.op == "const"}
        return plan, tree, values

    def graph(self, *args, **kwargs) -> str:
        """The optimized IR of this transform for arguments like ``args``, as text."""
        from . import ir
        from . import optimize

        arrays, specs, core_ranks, call = self._specs(args, kwargs)
        in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
        flat, _ = _flatten(self.symbolic(in_nodes, call=call))
        return ir.format_graph(optimize.optimize(flat))

    def formula(self, *args, **kwargs):
        """The result as SymPy: an expression for scalars, a Matrix or Array for arrays."""
        from . import ir
        from . import ops
        from . import optimize
        from .evaluate import evaluate
        from .graph import placeholder
        import sympy

        arrays, specs, _, call = self._specs(args, kwargs)
        n_positional = len(args)
        names = _sanitized_params([self._arg_name(i) for i in range(n_positional)] + list(call.keywords))
        if self.kind == "derivative":  # one closed form, whatever the generated program looks like
            in_nodes = [ir.input_node(i, (), d) for i, (_, d) in enumerate(specs)]
            wrt_pos = self._wrt_list(n_positional)
            (fused,) = optimize.optimize([_primal(self.fun, in_nodes, None, call)], keep=in_nodes, lower=False)
            by_rules = any(ops.of(n).opaque for n in ir.toposort([fused]))
            if by_rules:
                fused = self._derivative_by_rules(fused, in_nodes, wrt_pos)
            body, free = self._scalar_body_or_fail(fused, in_nodes)
            if any(not (n.op == "const" and n.shape == ()) for n in free):
                raise SymdiffError("formula() of a derivative needs a function of its scalar arguments and numbers")
            values = {placeholder(len(in_nodes) + k): sympy.Float(float(n.params[0].value)) for k, n in enumerate(free)}
            d = body.xreplace(values) if by_rules else self._derivative_expr(body.xreplace(values), wrt_pos)
            return d.xreplace({placeholder(i): sympy.Symbol(n, real=True) for i, n in enumerate(names)})
        in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
        out = self.symbolic(in_nodes, call=call)
        flat, tree = _flatten(out)
        flat = optimize.optimize(flat)
        if sum(int(np.prod(s, dtype=np.int64)) for s, _ in specs) > 400:
            raise SymdiffError("formula() scalarizes every element; use arguments with at most 400 elements")
        inputs = {}
        for i, (shape, _) in enumerate(specs):
            if shape == ():
                inputs[i] = np.array(sympy.Symbol(names[i], real=True), dtype=object)
            else:
                arr = np.empty(shape, dtype=object)
                for idx in np.ndindex(shape):
                    arr[idx] = sympy.Symbol(f"{names[i]}_{'_'.join(map(str, idx))}", real=True)
                inputs[i] = arr
        values = evaluate(flat, inputs, symbolic=True)
        return _unflatten(tree, [_to_sympy(v) for v in values])


def _to_sympy(v):
    import sympy

    v = np.asarray(v, dtype=object)
    if v.ndim == 0:
        return sympy.sympify(v[()])
    if v.ndim <= 2:
        return sympy.Matrix(v.reshape(v.shape[0], -1) if v.ndim == 2 else v.reshape(-1, 1))
    return sympy.Array(v.tolist())


def _short_formula(flat, names):
    from .graph import placeholder
    import sympy

    if len(flat) != 1 or flat[0].op != "elementwise" or any(i.op != "input" for i in flat[0].inputs):
        return None
    body = flat[0].body
    if sympy.count_ops(body) > 30:
        return None
    subs = {placeholder(i): sympy.Symbol(names[x.params[0]], real=True) for i, x in enumerate(flat[0].inputs)}
    return str(body.xreplace(subs))


def _cast(node, dtype):
    from . import ir
    from .graph import placeholder

    if node.dtype == dtype:
        return node
    return ir.elementwise(placeholder(0), (node,), dtype=dtype)


def _jacobian(out, w):
    """d out / d w with shape out.shape + w.shape, vectorized over a basis axis (no Python loop)."""
    from . import differentiate
    from . import ir

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


def _scalar_body(node, scalars):
    """(SymPy body, free nodes) of a scalar graph: the body is over placeholders ``a0..`` for
    ``scalars`` (by position) followed by one placeholder per free node (a value that does not
    depend on ``scalars``: a closed-over constant, or a value of an enclosing trace). None if a
    value that depends on ``scalars`` is computed by anything but elementwise work."""
    from . import ir
    from .graph import placeholder

    memo: dict = {id(s): placeholder(i) for i, s in enumerate(scalars)}
    depends = {id(s) for s in scalars}
    for n in ir.toposort([node]):
        if any(id(i) in depends for i in n.inputs):
            depends.add(id(n))
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


def _primal(fun, in_nodes, base_out, call=None):
    from . import trace

    call = call or NO_KEYWORDS
    if isinstance(fun, Transform):
        return fun.symbolic(in_nodes, base_out, call=call)
    if base_out is not None:
        return base_out
    return trace.run(fun, in_nodes, call.keywords, call.static, *_trace_context(fun))


def _param_names(fun):
    if isinstance(fun, Transform):
        return fun.param_names
    try:
        params = inspect.signature(fun).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _sanitized_params(names):
    from . import emit

    taken: set = set()
    return [emit.sanitize(n, taken) for n in names]


def _decorator(kind, fun, **kw):
    if fun is None:
        return lambda f: Transform(f, kind, **kw)
    return Transform(fun, kind, **kw)


def grad(fun=None, argnums=0, *, wrt=None, has_aux=False, signature=None, backend="numpy"):
    """Gradient of a scalar-valued ``fun`` (like ``jax.grad``); the result has the argument's shape and dtype."""
    return _decorator("grad", fun, argnums=argnums, wrt=wrt, has_aux=has_aux, signature=signature, backend=backend)


def value_and_grad(fun=None, argnums=0, *, wrt=None, has_aux=False, signature=None, backend="numpy"):
    """``(fun(*args), grad(fun)(*args))`` computed together, sharing work."""
    return _decorator(
        "value_and_grad", fun, argnums=argnums, wrt=wrt, has_aux=has_aux, signature=signature, backend=backend
    )


def jacobian(fun=None, argnums=0, *, wrt=None, signature=None, backend="numpy"):
    """Jacobian with shape ``out.shape + in.shape`` (like ``jax.jacrev``)."""
    return _decorator("jacobian", fun, argnums=argnums, wrt=wrt, signature=signature, backend=backend)


def hessian(fun=None, argnums=0, *, wrt=None, signature=None, backend="numpy"):
    """Hessian of a scalar-valued ``fun``, shape ``in.shape + in.shape``."""
    return _decorator("hessian", fun, argnums=argnums, wrt=wrt, signature=signature, backend=backend)


def derivative(fun=None, order=1, argnums=0, *, wrt=None, backend="numpy"):
    """Elementwise ``order``-th derivative of a function of scalars, broadcast like a ufunc.

    ``wrt=("x", "x", "z")`` differentiates in sequence (SymPy's ``diff(f, x, x, z)``)."""
    if isinstance(fun, int) and not callable(fun):
        fun, order = None, fun
    return _decorator("derivative", fun, order=order, argnums=argnums, wrt=wrt, backend=backend)
