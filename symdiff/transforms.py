"""The public transforms: ``grad``, ``value_and_grad``, ``jacobian``, ``hessian``, ``derivative``.

A transform describes a derivative of a function: ``symbolic`` builds its IR from the function's
(``trace -> differentiate``, in ``symbolic.py``), ``plan`` turns that into the emitter's data model
(``views.py``, with the ``graph`` and ``formula`` views), and the call path (``dispatch``) compiles
and runs it. A transform's result is again a function, so it can be called with arrays or traced by
another transform (its derivative graph is inlined): ``grad(grad(f))``. This module only says what a
transform is; the compiler behind it is loaded on the first call that misses the cache.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json

import numpy as np

from . import pytrees
from .arguments import NO_KEYWORDS
from .dispatch import Dispatch, _base, _chain_spec, _parse_signature, _trace_context
from .errors import SymdiffError

BACKENDS = ("numpy", "numba", "array_api")


class Transform(Dispatch):
    """A derivative of ``fun``: callable on arrays, traceable by other transforms, inspectable."""

    def __init__(self, fun, kind, argnums=0, wrt=None, has_aux=False, signature=None, order=1, backend="numpy",
                 static_argnums=(), static_argnames=(), parallel=False):
        if not callable(fun):
            raise SymdiffError(f"{kind} expects a function, got {type(fun).__name__}")
        if backend not in BACKENDS:
            raise SymdiffError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if backend == "numba" and importlib.util.find_spec("numba") is None:
            raise SymdiffError("backend='numba' needs numba: pip install 'symdiff[numba]'")
        if backend == "array_api" and importlib.util.find_spec("array_api_compat") is None:
            raise SymdiffError("backend='array_api' needs array-api-compat: pip install 'symdiff[array-api]'")
        self.backend = _parallel_backend(backend) if parallel else backend
        if kind == "derivative" and (not isinstance(order, int) or order < 0):
            raise SymdiffError(f"order must be a non-negative integer, got {order!r}")
        self.fun, self.kind, self.has_aux, self.order = fun, kind, has_aux, order
        self.signature = _parse_signature(signature) if signature is not None else None
        self.argnums, self.wrt = argnums, wrt
        self.param_names = _param_names(fun)
        self.positions = self._resolve_positions(argnums, wrt)
        self.static_argnums, self.static_argnames = _static_spec(static_argnums, static_argnames)
        inner = fun if isinstance(fun, Transform) else None
        # static arguments hold for the whole chain: an inner transform would receive a traced value
        self._static_nums = frozenset(self.static_argnums) | (inner._static_nums if inner else frozenset())
        self._static_names = frozenset(self.static_argnames) | frozenset(
            self.param_names[p] for p in self._static_nums if 0 <= p < len(self.param_names)
        ) | (inner._static_names if inner else frozenset())
        pos = self.positions if isinstance(self.positions, tuple) else (self.positions,)
        self._wrt_nums = frozenset(pos) | (inner._wrt_nums if inner else frozenset())
        clash = [p for p in pos if p in self._static_nums or (0 <= p < len(self.param_names)
                                                             and self.param_names[p] in self._static_names)]
        if clash:
            raise SymdiffError(_static_clash(self._arg_name(clash[0]) if clash[0] >= 0 else f"argnums {clash[0]}"))
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

    def _layout(self, n_traced, call=None):
        """(position, input node indices) of each traced positional argument: static arguments
        (``call.fixed``) have none, a pytree argument (``call.trees``) one per leaf."""
        fixed = {q for q, _ in call.fixed} if call is not None else set()
        sizes = {q: len(paths) for q, _, paths in call.trees} if call is not None else {}
        out, p, i = [], 0, 0
        while i < n_traced:
            if p not in fixed:
                k = sizes.get(p, 1)
                out.append((p, list(range(i, i + k))))
                i += k
            p += 1
        return out

    def _wrt_groups(self, n_traced, call=None):
        """(pytree structure or None, input node indices) of each argument differentiated, among
        ``n_traced`` traced positional input nodes."""
        layout = self._layout(n_traced, call)
        n_args = len(layout) + (len(call.fixed) if call is not None else 0)
        nodes = dict(layout)
        trees = {q: tree for q, tree, _ in call.trees} if call is not None else {}
        pos = self.positions if isinstance(self.positions, tuple) else (self.positions,)
        groups = []
        for p in pos:
            if not -n_args <= p < n_args:
                if self.wrt is not None:
                    raise SymdiffError(
                        f"{self._arg_name(p)!r} must be passed positionally to be differentiated "
                        f"(keyword arguments are data or constants); the call passed {n_args} positional arguments"
                    )
                raise SymdiffError(f"argnums {p} is out of range for a call with {n_args} positional arguments")
            p %= n_args
            if p not in nodes:
                raise SymdiffError(_static_clash(self._arg_name(p)))
            groups.append((trees.get(p), nodes[p]))
        return groups

    def _wrt_list(self, n_traced, call=None):
        """Input node indices (among ``n_traced`` traced positional ones) to differentiate with
        respect to: positions count static arguments, indices do not; a pytree gives all its leaves."""
        return [i for _, nodes in self._wrt_groups(n_traced, call) for i in nodes]

    def _traced_names(self, n_traced, call=None):
        """The names of the ``n_traced`` traced positional input nodes (``params_w`` for a leaf)."""
        paths = {q: ps for q, _, ps in call.trees} if call is not None else {}
        names = []
        for p, _ in self._layout(n_traced, call):
            name = self._arg_name(p)
            names += [f"{name}_{path}" for path in paths[p]] if p in paths else [name]
        return names

    def symbolic(self, in_nodes, base_out=None, batched=False, call=None):
        """Output nodes of this transform, as a function of ``in_nodes``.

        ``call`` (a ``Call``) says which of the last ``in_nodes`` are keyword arguments and which
        static keyword values the function receives; by default every node is positional."""
        from .symbolic import outputs

        return outputs(self, in_nodes, base_out, batched, call)

    def _arg_name(self, p):
        return self.param_names[p] if p < len(self.param_names) else f"arg{p}"

    def plan(self, in_nodes, base_out=None, core_ranks=None, call=None):
        """The emitter's data model of this transform's generated function (and its output tree)."""
        from .views import plan

        return plan(self, in_nodes, base_out, core_ranks, call)

    def graph(self, *args, format="text", **kwargs) -> str:
        """The optimized IR of this transform for arguments like ``args``: ``format`` 'text' (a
        listing), 'dot' or 'mermaid' (picture text, no dependency) or 'svg' (needs Graphviz)."""
        from .views import graph

        return graph(self, args, kwargs, format)

    def _repr_markdown_(self):
        """Jupyter's view: what is computed and, once compiled, the formula and shapes."""
        from .display import transform_markdown

        return transform_markdown(self)

    def formula(self, *args, **kwargs):
        """The result as SymPy: an expression for scalars, a Matrix or Array for arrays."""
        from .views import formula

        return formula(self, args, kwargs)


def _primal(fun, in_nodes, base_out, call=None):
    from . import trace

    call = call or NO_KEYWORDS
    if isinstance(fun, Transform):
        return fun.symbolic(in_nodes, base_out, call=call)
    if base_out is not None:
        return base_out
    context = _trace_context(fun)
    structure: list = []
    out = trace.run(_called_as_given(fun, call, structure), in_nodes, call.keywords, call.static, *context)
    return pytrees.unflatten(structure[0], list(out)) if structure else out


def _called_as_given(fun, call, structure):
    """``fun`` taking the traced positional leaves: static arguments are put back at their
    positions and pytree arguments (positional and keyword) rebuilt; a result holding namedtuples or dataclasses goes back
    as its leaves (its structure appended to ``structure``), which tracing passes through."""
    fixed, trees = dict(call.fixed), {q: (tree, len(paths)) for q, tree, paths in call.trees}
    from .rewrite import rewritten

    fun = rewritten(fun)  # the user's function itself: `if` on traced values becomes selects

    @functools.wraps(fun)
    def as_given(*traced, **kwargs):
        args, i, p = [], 0, 0
        while i < len(traced) or p in fixed:
            if p in fixed:
                args.append(fixed[p])
            elif p in trees:
                tree, k = trees[p]
                args.append(pytrees.unflatten(tree, traced[i : i + k]))
                i += k
            else:
                args.append(traced[i])
                i += 1
            p += 1
        for name, tree, names in call.keyword_trees:
            kwargs[name] = pytrees.unflatten(tree, [kwargs.pop(n) for n in names])
        out = fun(*args, **kwargs)
        if pytrees.has_class(out):
            leaves, tree, _ = pytrees.flatten(out)
            structure.append(tree)
            return pytrees.Packed(leaves)
        return out

    return as_given


def _static_spec(static_argnums, static_argnames):
    """(static_argnums, static_argnames) as tuples of ints and of names, checked."""
    nums = (static_argnums,) if isinstance(static_argnums, (int, np.integer)) else static_argnums
    names = (static_argnames,) if isinstance(static_argnames, str) else static_argnames
    try:
        nums, names = tuple(nums), tuple(names)
    except TypeError:
        raise SymdiffError(
            f"static_argnums must be an int or a tuple of ints and static_argnames a name or a tuple of names, "
            f"got {static_argnums!r} and {static_argnames!r}"
        ) from None
    if not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in nums):
        raise SymdiffError(f"static_argnums must be an int or a tuple of ints, got {static_argnums!r}")
    if not all(isinstance(n, str) for n in names):
        raise SymdiffError(f"static_argnames must be a name or a tuple of names, got {static_argnames!r}")
    return tuple(int(p) for p in nums), names


def _static_clash(name) -> str:
    return (
        f"argument {name!r} is static (static_argnums/static_argnames, or a Python int, bool, str or None "
        "passed positionally) and cannot be differentiated: remove it from argnums/wrt or from the static arguments"
    )


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


def _parallel_backend(backend):
    """``parallel=True``: the fused loops of the numba backend run over the points on every core."""
    if backend != "numba":
        raise SymdiffError(f"parallel=True runs numba's fused loops on several cores: use it with backend='numba', "
                           f"not {backend!r} (numpy code is vectorized per operation; its BLAS calls use threads already)")
    return "numba_parallel"


def _decorator(kind, fun, **kw):
    if fun is None:
        return lambda f: Transform(f, kind, **kw)
    return Transform(fun, kind, **kw)


def _sparse(kind, fun, argnums, signature=None, **kw):
    """The sparse form of a ``jacobian`` or ``hessian`` transform (``symdiff.sparse``, loaded only here)."""
    from .sparse import Sparse

    if signature is not None:
        raise SymdiffError(f"{kind}(sparse=True) takes one point, not signature=: a batch of points has one "
                           "small dense derivative per point (drop sparse=True)")

    if fun is None:
        return lambda f: Sparse(f, kind, argnums, kw)
    return Sparse(fun, kind, argnums, kw)


def grad(fun=None, argnums=0, *, wrt=None, has_aux=False, signature=None, backend="numpy",
         static_argnums=(), static_argnames=(), parallel=False):
    """Gradient of a scalar-valued ``fun`` (like ``jax.grad``); the result has the argument's shape and dtype.

    Static arguments (``static_argnums``/``static_argnames``, and Python ints, bools, strings and
    None passed positionally) reach ``fun`` as Python values: each value compiles once."""
    return _decorator("grad", fun, argnums=argnums, wrt=wrt, has_aux=has_aux, signature=signature, backend=backend,
                      static_argnums=static_argnums, static_argnames=static_argnames, parallel=parallel)


def value_and_grad(fun=None, argnums=0, *, wrt=None, has_aux=False, signature=None, backend="numpy",
                   static_argnums=(), static_argnames=(), parallel=False):
    """``(fun(*args), grad(fun)(*args))`` computed together, sharing work."""
    return _decorator(
        "value_and_grad", fun, argnums=argnums, wrt=wrt, has_aux=has_aux, signature=signature, backend=backend,
        static_argnums=static_argnums, static_argnames=static_argnames, parallel=parallel,
    )


def jacobian(fun=None, argnums=0, *, wrt=None, signature=None, backend="numpy", static_argnums=(), static_argnames=(),
             sparse=False, parallel=False):
    """Jacobian with shape ``out.shape + in.shape`` (like ``jax.jacrev``).

    ``sparse=True``: a ``scipy.sparse.csr_array`` of shape ``(out.size, in.size)`` from one
    forward- or reverse-mode product per colour of the pattern (``symdiff[sparse]``)."""
    if sparse:
        return _sparse("jacobian", fun, argnums, signature=signature, wrt=wrt, backend=backend,
                       static_argnums=static_argnums, static_argnames=static_argnames, parallel=parallel)
    return _decorator("jacobian", fun, argnums=argnums, wrt=wrt, signature=signature, backend=backend,
                      static_argnums=static_argnums, static_argnames=static_argnames, parallel=parallel)


def hessian(fun=None, argnums=0, *, wrt=None, signature=None, backend="numpy", static_argnums=(), static_argnames=(),
            sparse=False, parallel=False):
    """Hessian of a scalar-valued ``fun``, shape ``in.shape + in.shape``.

    ``sparse=True``: a symmetric ``scipy.sparse.csr_array`` of shape ``(n, n)`` from one
    Hessian-vector product per colour of the pattern (``symdiff[sparse]``)."""
    if sparse:
        return _sparse("hessian", fun, argnums, signature=signature, wrt=wrt, backend=backend,
                       static_argnums=static_argnums, static_argnames=static_argnames, parallel=parallel)
    return _decorator("hessian", fun, argnums=argnums, wrt=wrt, signature=signature, backend=backend,
                      static_argnums=static_argnums, static_argnames=static_argnames, parallel=parallel)


def derivative(fun=None, order=1, argnums=0, *, wrt=None, backend="numpy", static_argnums=(), static_argnames=(),
               parallel=False):
    """Elementwise ``order``-th derivative of a function of scalars, broadcast like a ufunc.

    ``wrt=("x", "x", "z")`` differentiates in sequence (SymPy's ``diff(f, x, x, z)``)."""
    if isinstance(fun, int) and not callable(fun):
        fun, order = None, fun
    return _decorator("derivative", fun, order=order, argnums=argnums, wrt=wrt, backend=backend,
                      static_argnums=static_argnums, static_argnames=static_argnames, parallel=parallel)


def jacobian_sparsity(fun, argnums=0, *, wrt=None, static_argnums=(), static_argnames=()):
    """The structural nonzero pattern of ``jacobian(fun)``: called like ``fun``, it returns a boolean
    ``scipy.sparse.csr_array`` of shape ``(out.size, in.size)``, read from the traced program (needs
    ``symdiff[sparse]``). Usable as ``jac_sparsity=`` of scipy's least_squares and solve_ivp."""
    from .sparsity import jacobian_sparsity as impl

    return impl(fun, argnums, wrt=wrt, static_argnums=static_argnums, static_argnames=static_argnames)


def hessian_sparsity(fun, argnums=0, *, wrt=None, static_argnums=(), static_argnames=()):
    """The structural nonzero pattern of ``hessian(fun)``, shape ``(n, n)``, boolean and symmetric:
    the Jacobian pattern of the gradient graph (needs ``symdiff[sparse]``)."""
    from .sparsity import hessian_sparsity as impl

    return impl(fun, argnums, wrt=wrt, static_argnums=static_argnums, static_argnames=static_argnames)
