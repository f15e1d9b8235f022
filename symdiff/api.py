"""The public transforms: thin wrappers that string the pipeline together.

``trace -> differentiate -> optimize -> emit -> load``, in that order, for every transform. A
transform's result is again a function, so it can be called with arrays (compiled and cached) or
traced by another transform (its derivative graph is inlined), which is how ``grad(grad(f))`` works.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re

import contextlib
import importlib
import importlib.util
import sys
import threading

import numpy as np

from . import environment, load
from .errors import CompileError, DtypeError, NotScalarError, ShapeError, SymdiffError, TraceError


class _Lazy:
    """A module imported on first use: SymPy and the compiler stages are needed to compile, not
    to run cached code, so ``import symdiff`` and cache hits stay fast."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


sympy = _Lazy("sympy")
D = _Lazy("symdiff.differentiate")
ops = _Lazy("symdiff.ops")
emit = _Lazy("symdiff.emit")
ir = _Lazy("symdiff.ir")
optimize = _Lazy("symdiff.optimize")
scalarize = _Lazy("symdiff.scalarize")
trace = _Lazy("symdiff.trace")


def placeholder(i):
    return ir.placeholder(i)


def evaluate(*args, **kwargs):
    return importlib.import_module("symdiff.evaluate").evaluate(*args, **kwargs)

BACKENDS = ("numpy", "numba")
# front ends decide nothing a compiled entry contains: every other module of the package does
FRONT_ENDS = ("cli", "torchlike", "__main__")
TAYLOR_FROM_ORDER = 3  # from this order on, derivative() propagates Taylor coefficients
_SUMMARY = {
    "grad": "Gradient of {f} with respect to {wrt}.",
    "value_and_grad": "Value and gradient of {f} with respect to {wrt}.",
    "jacobian": "Jacobian of {f} with respect to {wrt} (output axes first, then input axes).",
    "hessian": "Hessian of {f} with respect to {wrt}.",
    "derivative": "Derivative of order {order} of {f} with respect to {wrt}, elementwise over broadcast arguments.",
}


@functools.lru_cache(maxsize=1)
def version() -> str:
    """symdiff's version plus a digest of its own code and templates, so that cache entries made
    by any other build of symdiff (including a development checkout) are never reused."""
    import os

    from . import __version__
    from .resources import template_dir

    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    files = [os.path.join(template_dir(), n) for n in os.listdir(template_dir()) if n.endswith(".j2")]
    for root, dirs, names in os.walk(here):
        dirs[:] = [d for d in dirs if not d.startswith(FRONT_ENDS) and d != "__pycache__"]
        files += [os.path.join(root, n) for n in names if n.endswith(".py") and not n.startswith(FRONT_ENDS)]
    for path in sorted(files, key=lambda p: os.path.relpath(p, here)):
        with open(path, "rb") as fh:
            h.update(os.path.relpath(path, here).encode() + fh.read())
    return f"{__version__}+{h.hexdigest()[:12]}"


class Transform:
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

    # -- argument selection -------------------------------------------------------------------
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

    # -- the symbolic core ----------------------------------------------------------------------
    def symbolic(self, in_nodes, base_out=None, batched=False, call=None):
        """Output nodes of this transform, as a function of ``in_nodes``.

        ``call`` (a ``Call``) says which of the last ``in_nodes`` are keyword arguments and which
        static keyword values the function receives; by default every node is positional."""
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
            grads = D.vjp([primal], [ir.fill(1, (), primal.dtype)], wrt)
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
            grads = D.vjp([primal], [ir.fill(1, (), primal.dtype)], wrt)
            rows = []
            for g in grads:
                rows.append(tuple(_jacobian(g, w) for w in wrt))
            result = rows[0][0] if single else tuple(rows)
        return (result, aux) if self.has_aux else result

    def _scalarized(self, in_nodes, primal, wrt_pos, single):
        """Small cores: every derivative entry its own expression; zeros skipped, symmetry used."""
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
                from .taylor import derivative_node

                return derivative_node(body, operands, wrt_pos[0], self.order, dtype)
            d = self._derivative_expr(body, wrt_pos)
        except SymdiffError:
            raise
        except Exception as e:  # SymPy internals: say what was being differentiated
            raise CompileError(f"SymPy failed to differentiate {body}: {type(e).__name__}: {e}") from e
        return ir.elementwise(d, operands, dtype=dtype)

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
        variables = [scalars[p] for p in wrt_pos]
        for v in variables if isinstance(self.positions, tuple) else variables * self.order:
            (out,) = D.jvp([out], [v], [ir.fill(1, (), v.dtype)])
        (fused,) = optimize.optimize([out], keep=scalars)
        return fused

    def _derivative_expr(self, body, wrt_pos):
        """The derivative as one SymPy expression over placeholders (``diff`` in one call)."""
        from .primitives import clean_derivative

        variables = [placeholder(p) for p in wrt_pos]
        sequence = variables if isinstance(self.positions, tuple) else variables * self.order
        return clean_derivative(sympy.diff(body, *sequence)) if sequence else body

    def _arg_name(self, p):
        return self.param_names[p] if p < len(self.param_names) else f"arg{p}"

    # -- calling --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if kwargs:
            key = _dispatch_key(args, self.kind == "derivative", kwargs)
        elif len(args) == 1 and args[0].__class__ is float:  # the common scalar call, kept cheap
            key = _ONE_FLOAT
        else:
            key = _dispatch_key(args, self.kind == "derivative")
        hit = self._dispatch.get(key)
        if hit is not None:
            result = hit(*args, **kwargs) if kwargs else hit(*args)
            if result is not _STALE:
                return result
        traced = sys.modules.get("symdiff.trace")  # no trace can be running before it is imported
        if traced is not None and (
            traced.active() or any(isinstance(a, traced.Tracer) for a in (*args, *kwargs.values()))
        ):
            return self._nested(args, kwargs)
        return self._call_compiled(key, args, kwargs)

    def _call_compiled(self, key, args, kwargs):
        """Run the compiled entry for these arguments, finding it without a trace where that is sound."""
        base = _base(self)
        reads = environment.read_set(base) if key is not None else None  # None: only a trace can tell
        shared = _shared_runners(base) if reads is not None else None
        if shared is not None:  # another transform object of the same function compiled it already
            hit = shared.get((self._chain, key))
            if hit is not None:
                result = hit(*args, **kwargs)
                if result is not _STALE:
                    self._dispatch[key] = hit
                    return result
        memo = environment.DigestMemo()  # each array is hashed at most once in this call
        alias = _persistent_alias(self, key, reads, memo) if reads is not None else None
        found = self._recall(alias, reads, memo, args, kwargs) if alias else None
        if found is not None:  # a new process with a warm disk cache: no trace, no SymPy
            compiled, consts = found
            meta = compiled.meta
            scalar_call = all(_is_python_scalar(a) for a in args)
        else:
            compiled, consts, meta, scalar_call = self._compile(args, kwargs, reads, memo)
            if alias:
                load.remember(alias, compiled.key)
        keywords = tuple(meta.get("keywords", ())) if kwargs else None  # None: no keyword arguments to sort out
        runner = _runner(compiled.function(meta["name"]), consts, meta["tree"], scalar_call, keywords)
        if reads is not None:
            guarded = _guarded(runner, reads)
            self._dispatch[key] = guarded
            if shared is not None:
                shared[(self._chain, key)] = guarded
        return runner(*args, **kwargs)

    def _recall(self, alias, reads, memo, args, kwargs):
        """(entry, keyword constants) recorded for ``alias`` by an earlier process, if it is usable."""
        recalled = load.recall(alias)
        compiled = load.lookup_existing(recalled) if recalled else None
        if compiled is None:
            return None
        meta = compiled.meta
        if meta.get("origin") != self._origin(len(args), tuple(k for k in kwargs if not _is_static(kwargs[k]))):
            load.forget(alias, "its entry was compiled for another function")
            return None
        available = reads.arrays(memo) if meta["constants"] else {}
        if any(d not in available for d in meta["constants"]):
            return None  # an array built while tracing (not one the function reads): trace again
        return compiled, {n: available[d] for n, d in zip(meta["constant_names"], meta["constants"])}

    def _origin(self, n_positional, keywords) -> str:
        """What names a generated function after this transform: the function's name, the transform
        chain and the parameter names. An entry may be shared by equal math, never by other names."""
        base = _base(self)
        text = json.dumps([getattr(base, "__qualname__", None) or getattr(base, "__name__", "f"), self._chain,
                           [self._arg_name(i) for i in range(n_positional)], list(keywords)])
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def _nested(self, args, kwargs):
        """This transform called while another function is being traced (or on traced values): its
        result is traced into the enclosing program. Its inputs are fresh nodes, so that values of
        the enclosing trace it closes over stay distinct from its own arguments, then replaced by
        the argument values."""
        call, operands = _keyword_call(kwargs)
        actual = [trace.as_node(a) for a in (*args, *operands)]
        fresh = [ir.fresh_input(i, n.shape, n.dtype) for i, n in enumerate(actual)]
        flat, tree = _flatten(self.symbolic(fresh, call=call))
        flat = ir.substitute(flat, {id(f): a for f, a in zip(fresh, actual)})
        return _wrap(_unflatten(tree, flat))

    def _specs(self, args, kwargs=None):
        """Arrays (positional, then keyword arrays), their (shape, dtype) specs, batched core ranks and the ``Call``."""
        if not args and not kwargs:
            raise SymdiffError(f"{self.kind} of {self.__name__} needs at least one argument")
        call, operands = _keyword_call(kwargs or {})
        arrays, specs, core_ranks = [], [], {}
        cores = self.signature[0] if self.signature else None
        if cores is not None and len(cores) != len(args):
            raise ShapeError(f"signature has {len(cores)} inputs but the call passed {len(args)} arguments")
        wrt = self._wrt_list(len(args))
        dims: dict = {}
        for i, a in enumerate((*args, *operands)):
            what = (f"argument {self._arg_name(i)!r}" if i < len(args)
                    else f"keyword argument {call.keywords[i - len(args)]!r}")
            if isinstance(a, np.ma.MaskedArray):
                raise DtypeError(
                    f"{what} is a numpy masked array; symdiff would silently ignore its mask: "
                    "pass np.ma.filled(a, fill_value) or a.data explicitly"
                )
            arr = np.asarray(a)
            if arr.dtype == object or arr.dtype.kind not in "biuf":
                raise DtypeError(f"{what} is a {type(a).__name__}, not a real number array")
            if arr.dtype.kind in "biu" and i in wrt:
                trace.check_differentiable(arr.dtype, what)
            shape = arr.shape
            if self.kind == "derivative":  # elementwise: every argument is a batch of scalars
                shape = ()
                core_ranks[i] = 0
            elif cores is not None and i < len(args):
                core = cores[i]
                if arr.ndim < len(core):
                    raise ShapeError(
                        f"{what} has shape {arr.shape}, fewer axes than its core dimensions {core} in the signature"
                    )
                shape = arr.shape[arr.ndim - len(core) :]
                for name, d in zip(core, shape):
                    if name.isdigit() and int(name) != d or dims.setdefault(name, d) != d:
                        raise ShapeError(f"{what}: core dimension {name} is {d}, expected {dims.get(name, name)}")
                if arr.ndim > len(core):
                    core_ranks[i] = len(core)
            arrays.append(arr)
            specs.append((shape, str(arr.dtype)))
        return arrays, specs, core_ranks, call

    def _compile(self, args, kwargs=None, reads=None, memo=None):
        """Trace, key by the IR, and compile on a miss: (entry, keyword constants, meta, scalar call)."""
        arrays, specs, core_ranks, call = self._specs(args, kwargs)
        in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
        base_fun = _base(self)
        if reads is None:
            reads = environment.read_set(base_fun, strict=False)  # names for the arrays it reads
        with _tracing_context(base_fun, reads, memo or environment.DigestMemo()):
            base_out = _primal(base_fun, in_nodes, None, call)
        flat_base, _ = _flatten(base_out)
        constants = {n.params[0].digest: n.params[0] for n in ir.toposort(flat_base) if n.op == "const"}
        origin = self._origin(len(args), call.keywords)
        key = hashlib.sha256(
            json.dumps(
                {
                    "graph": ir.structure_key(flat_base),
                    "chain": _chain_spec(self),
                    "origin": origin,
                    "constant_names": sorted((d, c.name or "") for d, c in constants.items()),
                    "specs": specs,
                    "batched": sorted(core_ranks.items()),
                    "version": version(),
                }
            ).encode()
        ).hexdigest()[:32]
        build_consts: dict = {}

        def build():
            source, meta, values = self._build(in_nodes, base_out, core_ranks, call, origin)
            build_consts.update(values)
            return source, meta

        try:
            compiled = load.lookup(key, build)
        except SymdiffError:
            raise
        except (RecursionError, MemoryError, NotImplementedError, ValueError, TypeError, AttributeError, KeyError, SyntaxError) as e:
            raise CompileError(f"compiling the {self.kind} of {self.__name__} failed: {type(e).__name__}: {e}") from e
        meta = compiled.meta
        values = {**{d: c.value for d, c in constants.items()}, **build_consts}
        missing = [d for d in meta["constants"] if d not in values]
        if missing:  # a constant created while differentiating a re-traced inner function
            source, meta, extra = self._build(in_nodes, base_out, core_ranks, call, origin)
            values.update(extra)
        consts = {name: values[d] for name, d in zip(meta["constant_names"], meta["constants"])}
        return compiled, consts, meta, all(_is_python_scalar(a) for a in args)

    def _build(self, in_nodes, base_out, core_ranks, call, origin):
        plan, tree, values = self.plan(in_nodes, base_out, core_ranks, call)
        source, (digests,), (const_names,) = _render(plan.summary, [plan], self.backend)
        meta = {"name": plan.name, "tree": tree, "constants": digests, "constant_names": const_names,
                "backend": self.backend, "keywords": list(call.keywords), "origin": origin}
        return source, meta, values

    def plan(self, in_nodes, base_out=None, core_ranks=None, call=None):
        """The emitter's data model of this transform's generated function (and its output tree)."""
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

    # -- inspection -----------------------------------------------------------------------------
    def source(self, *args, **kwargs) -> str:
        """The generated module that runs for arguments like ``args``: exactly the code that executes."""
        return self._compile(args, kwargs)[0].source

    def graph(self, *args, **kwargs) -> str:
        """The optimized IR of this transform for arguments like ``args``, as text."""
        arrays, specs, core_ranks, call = self._specs(args, kwargs)
        in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
        flat, _ = _flatten(self.symbolic(in_nodes, call=call))
        return ir.format_graph(optimize.optimize(flat))

    def formula(self, *args, **kwargs):
        """The result as SymPy: an expression for scalars, a Matrix or Array for arrays."""
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


def _render(title, plans, backend="numpy", regenerate=None):
    """Render plans into one module; wrap SymPy/jinja2 failures in CompileError."""
    try:
        source, digests = emit.render(title, [], plans, version(), backend, regenerate)
    except SymdiffError:
        raise
    except Exception as e:
        raise CompileError(f"emitting {', '.join(p.name for p in plans)} failed: {type(e).__name__}: {e}") from e
    return source, digests, [p.constant_names for p in plans]


def emit_module(transforms, *args, title=None, backend=None, regenerate=None) -> str:
    """One standalone module holding the generated function of every transform for ``args``.

    With several transforms it also holds ``all_<name>``, which computes every result in one pass so
    that they share their common subexpressions."""
    transforms = list(transforms)
    if not transforms:
        raise SymdiffError("emit_module needs at least one transform")
    first = transforms[0]
    shared: dict = {}  # argument specs -> input nodes, so that plans with equal specs share inputs
    plans = []
    for t in transforms:
        _, specs, core_ranks, _ = t._specs(args)  # derivative() plans for scalars, the others for shapes
        key = repr((specs, sorted(core_ranks.items())))
        if key not in shared:
            shared[key] = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
        plans.append(t.plan(shared[key], None, core_ranks)[0])
    names = {p.name for p in plans}
    if len(names) != len(plans):
        raise SymdiffError("two of the requested transforms are the same; request each once")
    if len(plans) > 1 and len(shared) == 1:
        (in_nodes,) = shared.values()
        outputs = [o for p in plans for o in p.outputs]
        base = getattr(_base(first), "__name__", "f")
        combined = emit.FunctionPlan(
            name=emit.sanitize(f"all_{base}", names | set(plans[0].param_names)),
            summary="All of the above in one pass, sharing common subexpressions.",
            param_names=plans[0].param_names,
            inputs=in_nodes,
            outputs=optimize.optimize(outputs),
            output_dtypes=[o.dtype for o in outputs],
            doc=["Returns, in this order:"] + [f"    the results of {p.name}" for p in plans],
            core_ranks=plans[0].core_ranks,
            elementwise=all(p.elementwise for p in plans),
        )
        plans.append(combined)
    title = title or "; ".join(p.summary for p in plans[: len(transforms)])
    source, _, _ = _render(title, plans, backend or first.backend, regenerate)
    return source


def _to_sympy(v):
    v = np.asarray(v, dtype=object)
    if v.ndim == 0:
        return sympy.sympify(v[()])
    if v.ndim <= 2:
        return sympy.Matrix(v.reshape(v.shape[0], -1) if v.ndim == 2 else v.reshape(-1, 1))
    return sympy.Array(v.tolist())


def _short_formula(flat, names):
    if len(flat) != 1 or flat[0].op != "elementwise" or any(i.op != "input" for i in flat[0].inputs):
        return None
    body = flat[0].body
    if sympy.count_ops(body) > 30:
        return None
    subs = {placeholder(i): sympy.Symbol(names[x.params[0]], real=True) for i, x in enumerate(flat[0].inputs)}
    return str(body.xreplace(subs))


def _cast(node, dtype):
    if node.dtype == dtype:
        return node
    return ir.elementwise(placeholder(0), (node,), dtype=dtype)


def _jacobian(out: ir.Node, w: ir.Node) -> ir.Node:
    """d out / d w with shape out.shape + w.shape, vectorized over a basis axis (no Python loop)."""
    dtype = ir.result_dtype(out.dtype, w.dtype)
    n_in, n_out = w.size, out.size
    if n_in <= n_out:
        basis = ir.eye_basis(w.shape, dtype)
        (t,) = D.jvp([out], [w], [basis], lead=(n_in,))
        t = ir.transpose(t, tuple(range(1, t.ndim)) + (0,))
        return ir.reshape(t, t.ndim, out.shape + w.shape)
    basis = ir.eye_basis(out.shape, dtype)
    (g,) = D.vjp([out], [basis], [w], lead=(n_out,))
    return ir.reshape(g, g.ndim, out.shape + w.shape)


def _scalar_body(node, scalars):
    """(SymPy body, free nodes) of a scalar graph: the body is over placeholders ``a0..`` for
    ``scalars`` (by position) followed by one placeholder per free node (a value that does not
    depend on ``scalars``: a closed-over constant, or a value of an enclosing trace). None if a
    value that depends on ``scalars`` is computed by anything but elementwise work."""
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
    call = call or NO_KEYWORDS
    if isinstance(fun, Transform):
        return fun.symbolic(in_nodes, base_out, call=call)
    if base_out is not None:
        return base_out
    return trace.run(fun, in_nodes, call.keywords, call.static, *_trace_context(fun))


def _base(t):
    while isinstance(t, Transform):
        t = t.fun
    return t


def _chain_spec(t):
    spec = []
    while isinstance(t, Transform):
        spec.append([t.kind, repr(t.positions), t.has_aux, t.order, repr(t.signature), t.backend])
        t = t.fun
    return spec


def _chain_kinds(t):
    kinds = []
    while isinstance(t, Transform):
        kinds.append(t.kind)
        t = t.fun
    return kinds


def _param_names(fun):
    if isinstance(fun, Transform):
        return fun.param_names
    try:
        params = inspect.signature(fun).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _sanitized_params(names):
    taken: set = set()
    return [emit.sanitize(n, taken) for n in names]


_SIG = re.compile(r"^\s*(\((?:\s*\w+\s*(?:,\s*\w+\s*)*)?\)(?:\s*,\s*\((?:\s*\w+\s*(?:,\s*\w+\s*)*)?\))*)\s*->\s*(\((?:\s*\w+\s*(?:,\s*\w+\s*)*)?\))\s*$")


def _parse_signature(sig: str):
    """numpy's generalized-ufunc signature, e.g. '(n),(n,k)->()', as (input cores, output core)."""
    m = _SIG.match(sig) if isinstance(sig, str) else None
    if not m:
        raise ShapeError(
            f"malformed signature {sig!r}: use numpy's gufunc syntax, e.g. '(n)->()' or '(n),(n,k)->()'"
        )
    groups = re.findall(r"\(([^)]*)\)", m.group(1))
    cores = [tuple(d.strip() for d in g.split(",") if d.strip()) for g in groups]
    out = tuple(d.strip() for d in m.group(2).strip("()").split(",") if d.strip())
    return cores, out


def _flatten(tree):
    flat: list = []

    def go(t):
        if isinstance(t, ir.Node):
            flat.append(t)
            return len(flat) - 1
        if isinstance(t, (tuple, list)):
            return {"t": type(t).__name__, "c": [go(x) for x in t]}
        if isinstance(t, dict):
            return {"t": "dict", "k": [str(k) for k in t], "c": [go(v) for v in t.values()]}
        raise SymdiffError(f"cannot return a {type(t).__name__} from a differentiated function")

    return flat, go(tree)


def _unflatten(tree, flat):
    if isinstance(tree, int):
        return flat[tree]
    children = [_unflatten(c, flat) for c in tree["c"]]
    if tree["t"] == "dict":
        return dict(zip(tree["k"], children))
    return tuple(children) if tree["t"] == "tuple" else list(children)


def _wrap(tree):
    if isinstance(tree, ir.Node):
        return trace.Tracer(tree)
    if isinstance(tree, (tuple, list)):
        return type(tree)(_wrap(t) for t in tree)
    if isinstance(tree, dict):
        return {k: _wrap(v) for k, v in tree.items()}
    return tree


class Call:
    """How the user's function is called besides its positional arguments: the names of keyword
    arguments that are arrays (the last input nodes, data of the generated function) and the
    static keyword values (Python numbers and strings: constants of the trace, part of its key)."""

    __slots__ = ("keywords", "static")

    def __init__(self, keywords=(), static=None):
        self.keywords, self.static = tuple(keywords), dict(static or {})


NO_KEYWORDS = Call()
_STATIC_TYPES = (bool, int, float, complex, str, type(None))


def _is_static(v) -> bool:
    """Python numbers, strings, None and tuples of them: values a trace bakes in (as JAX's static arguments)."""
    if isinstance(v, tuple):
        return all(_is_static(x) for x in v)
    return isinstance(v, _STATIC_TYPES) and not isinstance(v, np.generic)


def _keyword_call(kwargs):
    """(Call, keyword array operands in order) for the keyword arguments of a call."""
    if not kwargs:
        return NO_KEYWORDS, []
    keywords, operands, static = [], [], {}
    for name in sorted(kwargs):
        v = kwargs[name]
        if _is_static(v):
            static[name] = v
        elif isinstance(v, (np.ndarray, np.generic, list)) or _is_tracer(v):
            keywords.append(name)
            operands.append(v)
        else:
            raise SymdiffError(
                f"keyword argument {name!r} is a {type(v).__name__}: pass arrays (data of the generated code) "
                "or Python numbers and strings (constants of the trace)"
            )
    return Call(keywords, static), operands


def _is_tracer(v) -> bool:
    traced = sys.modules.get("symdiff.trace")
    return traced is not None and isinstance(v, traced.Tracer)


def _dispatch_key(args, shape_free: bool, kwargs=None):
    """What the compiled code depends on in the arguments, or None when only a trace can tell."""
    key = []
    for a in args:
        cls = a.__class__
        if cls is float or cls is int:
            key.append(cls)
        elif cls is np.ndarray:
            key.append(a.dtype if shape_free else (a.shape, a.dtype))
        else:
            return None
    if kwargs:
        for name in sorted(kwargs):
            v = kwargs[name]
            if v.__class__ is np.ndarray:
                key.append((name, v.dtype if shape_free else (v.shape, v.dtype)))
            elif _is_static(v):
                key.append((name, "static", type(v), v))
            else:
                return None
    return tuple(key)


_context = threading.local()  # the function being compiled, what it reads, and this call's digests


@contextlib.contextmanager
def _tracing_context(fun, reads, memo):
    previous = getattr(_context, "value", None)
    _context.value = (fun, reads, memo)
    try:
        yield
    finally:
        _context.value = previous


def _trace_context(fun):
    """(reads, digest memo) for tracing ``fun``: the arrays it reads get the user's names."""
    value = getattr(_context, "value", None)
    if value is not None and value[0] is fun:
        return value[1], value[2]
    return environment.read_set(fun, strict=False), None


def _persistent_alias(t, key, reads, memo):
    """A digest of everything a trace of ``t`` with these arguments could read (the function's code,
    defaults, closures and globals, recursively; the transform chain; symdiff's and numpy's
    versions). A new process finds its compiled entry through it without tracing or SymPy."""
    base = _base(t)
    text = json.dumps([reads.digest(memo), getattr(base, "__qualname__", None), _chain_spec(t), repr(key),
                       version(), np.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _shared_runners(fun):
    """Guarded runners of every transform of ``fun`` in this process (a new transform object made
    for each call finds the compiled code of the previous one), or None if ``fun`` cannot be held."""
    try:
        table = load.runners.get(fun)
        if table is None:
            table = load.runners[fun] = {}
        return table
    except TypeError:  # not hashable or not weakly referenceable
        return None


_STALE = object()  # what a guarded runner returns when something the function reads has changed
_ONE_FLOAT = (float,)


def _guarded(runner, reads):
    """``runner`` that first checks that everything the function reads is unchanged (else _STALE)."""
    if not reads.checks:
        return runner
    unchanged = reads.guard()

    def run(*a, **k):
        if not unchanged():
            return _STALE
        return runner(*a, **k) if k else runner(*a)

    return run


def _runner(fn, consts, tree, scalar_call, keywords=None):
    """The cheapest call of a compiled function that still returns results in the API's form.
    Static keyword values were baked in by the trace; only keyword arrays (``keywords``) reach ``fn``."""
    if keywords is not None or consts:
        keywords = keywords or ()
        inner, wanted = fn, tuple(keywords)
        fn = lambda *a, **k: inner(*a, **{n: k[n] for n in wanted}, **consts)  # noqa: E731
    if scalar_call:  # Python floats become numpy scalars: 1/0 is inf as in numpy, not an exception
        inner_s = fn
        fn = lambda *a, **k: inner_s(*map(np.float64, a), **k)  # noqa: E731
    if isinstance(tree, int):
        if scalar_call and not consts and keywords is None:
            return lambda *a: float(fn(*a))
        return lambda *a, **k: _finish(fn(*a, **k), scalar_call)

    def run(*a, **k):
        flat = fn(*a, **k)
        if not isinstance(flat, tuple):  # a generated function with one output returns it bare
            flat = (flat,)
        return _unflatten(tree, [_finish(v, scalar_call) for v in flat])

    return run


def _is_python_scalar(a):
    return isinstance(a, (int, float)) and not isinstance(a, bool)


def _finish(value, scalar_call):
    if scalar_call and value.__class__ is float:
        return value
    value = np.asarray(value)
    if scalar_call and value.ndim == 0:
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


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


def compile_graph(in_nodes, outputs, name: str = "f", summary: str = "Generated function."):
    """Compile IR ``outputs`` (over input nodes ``in_nodes``, positions 0..n-1) into a callable.

    The lower-level entry point for front ends that build IR themselves (``symdiff.torchlike``):
    optimize, emit and load with the same cache as the transforms. The callable takes the input
    arrays positionally and returns a list of arrays, one per output."""
    in_nodes, outputs = list(in_nodes), list(outputs)
    for i, n in enumerate(in_nodes):
        if n.op != "input" or n.params[0] != i:
            raise SymdiffError(f"compile_graph: input {i} must be ir.input_node({i}, ...)")
    key = hashlib.sha256(
        json.dumps({"graph": ir.structure_key(outputs), "name": name, "version": version()}).encode()
    ).hexdigest()[:32]
    values = {n.params[0].digest: n.params[0].value for n in ir.toposort(outputs) if n.op == "const"}

    def build():
        flat = optimize.optimize(outputs)
        taken: set = set()
        plan = emit.FunctionPlan(
            name=emit.sanitize(name, set()),
            summary=summary,
            param_names=[emit.sanitize(f"x{i}", taken) for i in range(len(in_nodes))],
            inputs=in_nodes,
            outputs=flat,
            output_dtypes=[o.dtype for o in outputs],
        )
        source, (digests,), (const_names,) = _render(summary, [plan])
        return source, {"name": plan.name, "constants": digests, "constant_names": const_names}

    compiled = load.lookup(key, build)
    meta = compiled.meta
    fn = compiled.function(meta["name"])
    consts = {n: values[d] for n, d in zip(meta["constant_names"], meta["constants"])}
    single = len(outputs) == 1

    def call(*arrays):
        out = fn(*arrays, **consts)
        return [out] if single else list(out)

    call.source = compiled.source
    return call
