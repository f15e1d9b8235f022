"""The call path of a transform: from a call with arrays to the compiled function's result.

A call is keyed by its argument types, shapes, dtypes, static values (declared static, or Python
ints, bools, strings, None and tuples of them) and pytree structures. A key seen before
runs its compiled function at once, behind a guard that what the function reads is unchanged
(``environment``); otherwise the compiled entry is found through the on-disk index (a new process:
no trace, no SymPy) or by tracing and keying the IR (``pipeline`` compiles it on a miss). A call made
while another function is traced is traced into that program instead (nested transforms).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import threading

import numpy as np

from . import dask_dispatch, environment, load, pytrees, scalar_entry
from .arguments import (
    Call,
    _auto_static,
    _dispatch_key,
    _keyword_call,
    _scalar_call,
    _static_value,
    _token,
)
from .errors import CompileError, DtypeError, ShapeError, SymdiffError
from .pipeline import render, version
from .sample_sum import setting as sample_sum_setting


class Dispatch:
    """The calling half of ``transforms.Transform``: argument specs, keys, compilation, runners."""

    def __call__(self, *args, **kwargs):
        if self._static_names or self._static_nums:
            key = _dispatch_key(args, self.kind == "derivative", kwargs, self._static_at(len(args)), self._static_names)
        elif kwargs:
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
        if dask_dispatch.is_dask_call(args, kwargs):  # lazy Dask results, never a compute
            return dask_dispatch.call(self, args, kwargs)
        self._last_call = ([_stand_in(a) for a in args], {k: _stand_in(v) for k, v in kwargs.items()})
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
            compiled, consts, call = found
            meta = compiled.meta
            scalar_call = _scalar_call(args, call)
        else:
            compiled, consts, meta, scalar_call, call = self._compile(args, kwargs, reads, memo)
            if alias:
                load.remember(alias, compiled.key)
        keywords = tuple(meta.get("keywords", ())) if kwargs else None  # None: no keyword arguments to sort out
        runner = _runner(compiled.function(meta["name"]), consts, meta["tree"], scalar_call, keywords,
                         _call_leaves(len(args), call), self.backend == "array_api")
        if scalar_call and not consts and keywords is None and _call_leaves(len(args), call) is None:
            runner = scalar_entry.fast_runner(compiled, meta["name"], runner, args, meta["tree"])
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
        traced, _, call = self._split(args, kwargs)
        if meta.get("origin") != self._origin(call, len(traced)):
            load.forget(alias, "its entry was compiled for another function")
            return None
        available = reads.arrays(memo) if meta["constants"] else {}
        if any(d not in available for d in meta["constants"]):
            return None  # an array built while tracing (not one the function reads): trace again
        return compiled, {n: available[d] for n, d in zip(meta["constant_names"], meta["constants"])}, call

    def _origin(self, call, n_traced) -> str:
        """What names a generated function after this transform: the function's name, the transform
        chain, the parameter names and the static values baked in. An entry may be shared by equal
        math, never by other names or other static values."""
        base = _base(self)
        parts = [getattr(base, "__qualname__", None) or getattr(base, "__name__", "f"), self._chain,
                 self._traced_names(n_traced, call), list(call.keywords)]
        statics = [[self._arg_name(p), _token(v)] for p, v in call.fixed]
        statics += [[k, _token(v)] for k, v in sorted(call.static.items())]
        if statics:
            parts.append(statics)
        if call.trees or call.keyword_trees:  # the structure of each pytree argument
            parts.append([[p, tree] for p, tree, _ in call.trees + call.keyword_trees])
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]

    def _static_at(self, n):
        """Positions among ``n`` positional arguments declared static (static_argnums/static_argnames)."""
        at = {p % n for p in self._static_nums if -n <= p < n}
        if self._static_names:
            at.update(i for i, name in enumerate(self.param_names[:n]) if name in self._static_names)
        return at

    def _split(self, args, kwargs):
        """(traced positional arguments, keyword array operands, ``Call``). Static positional
        arguments -- declared, or Python ints, bools, strings, None and tuples of them at positions
        nothing differentiates -- go into ``Call.fixed`` and reach the function as they are."""
        n = len(args)
        declared = self._static_at(n) if self._static_nums or self._static_names else ()
        wrt = {p % n for p in self._wrt_nums if -n <= p < n}
        fixed, traced, trees = [], [], []
        for i, a in enumerate(args):
            if i in declared or (i not in wrt and _auto_static(a)):
                fixed.append((i, _static_value(a, f"argument {self._arg_name(i)!r}")))
            elif pytrees.is_tree_argument(a):
                leaves, tree, paths = pytrees.flatten(a)
                if not leaves:
                    raise SymdiffError(f"argument {self._arg_name(i)!r} is a {type(a).__name__} that holds no arrays")
                traced.extend(leaves)
                trees.append((i, tree, tuple(paths)))
            else:
                traced.append(a)
        call, operands = _keyword_call(kwargs, self._static_names)
        if fixed or trees:
            call = Call(call.keywords, call.static, fixed, trees, call.keyword_trees)
        return traced, operands, call

    def _nested(self, args, kwargs):
        """This transform called while another function is being traced (or on traced values): its
        result is traced into the enclosing program. Its inputs are fresh nodes, so that values of
        the enclosing trace it closes over stay distinct from its own arguments, then replaced by
        the argument values."""
        from . import ir, trace

        traced, operands, call = self._split(args, kwargs)
        actual = [trace.as_node(a) for a in (*traced, *operands)]
        fresh = [ir.fresh_input(i, n.shape, n.dtype) for i, n in enumerate(actual)]
        flat, tree = _flatten(self.symbolic(fresh, call=call))
        flat = ir.substitute(flat, {id(f): a for f, a in zip(fresh, actual)})
        return _wrap(_unflatten(tree, flat))

    def _specs(self, args, kwargs=None):
        """Arrays (positional, then keyword arrays), their (shape, dtype) specs, batched core ranks and the ``Call``."""
        from . import trace

        if not args and not kwargs:
            raise SymdiffError(f"{self.kind} of {self.__name__} needs at least one argument")
        args, operands, call = self._split(args, kwargs or {})
        arrays, specs, core_ranks = [], [], {}
        cores = self.signature[0] if self.signature else None
        if cores is not None and call.trees:
            raise SymdiffError("signature= needs array arguments; pass the leaves of a pytree argument as arrays")
        if cores is not None and len(cores) != len(args):
            static = f" (and {len(call.fixed)} static)" if call.fixed else ""
            raise ShapeError(f"signature has {len(cores)} inputs but the call passed {len(args)} arguments{static}")
        wrt = self._wrt_list(len(args), call)
        names = self._traced_names(len(args), call)
        dims: dict = {}
        for i, a in enumerate((*args, *operands)):
            what = (f"argument {names[i]!r}" if i < len(args)
                    else f"keyword argument {call.keywords[i - len(args)]!r}")
            if isinstance(a, np.ma.MaskedArray):
                raise DtypeError(
                    f"{what} is a numpy masked array; symdiff would silently ignore its mask: "
                    "pass np.ma.filled(a, fill_value) or a.data explicitly"
                )
            arr = np.asarray(a) if self.backend != "array_api" else _array_spec(a)
            if arr.dtype.kind == "c":
                raise DtypeError(f"{what} is complex ({arr.dtype}): complex numbers are not supported yet: pass the real and imaginary parts as two real arguments")
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
        """Trace, key by the IR, and compile on a miss: (entry, keyword constants, meta, scalar call, ``Call``)."""
        from . import ir
        from .transforms import _primal

        arrays, specs, core_ranks, call = self._specs(args, kwargs)
        in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
        base_fun = _base(self)
        if reads is None:
            reads = environment.read_set(base_fun, strict=False)  # names for the arrays it reads
        with _tracing_context(base_fun, reads, memo or environment.DigestMemo()):
            base_out = _primal(base_fun, in_nodes, None, call)
        flat_base, _ = _flatten(base_out)
        constants = {n.params[0].digest: n.params[0] for n in ir.toposort(flat_base) if n.op == "const"}
        origin = self._origin(call, len(arrays) - len(call.keywords))
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
                    "sample_sum": sample_sum_setting(),  # SYMDIFF_SAMPLE_SUM changes the generated code
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
        return compiled, consts, meta, _scalar_call(args, call), call

    def _build(self, in_nodes, base_out, core_ranks, call, origin):
        plan, tree, values = self.plan(in_nodes, base_out, core_ranks, call)
        source, (digests,), (const_names,) = render(plan.summary, [plan], self.backend)
        meta = {"name": plan.name, "tree": tree, "constants": digests, "constant_names": const_names,
                "backend": self.backend, "keywords": list(call.keywords), "origin": origin}
        return source, meta, values

    def source(self, *args, **kwargs) -> str:
        """The generated module that runs for arguments like ``args``: exactly the code that executes."""
        return self._compile(args, kwargs)[0].source


def _stand_in(a):
    """``a``, or for an array a zero-memory one of its shape and dtype: what the rich display
    (``symdiff.display``) needs of the last compiled call, without keeping the user's data alive."""
    return np.broadcast_to(np.zeros((), a.dtype), a.shape) if isinstance(a, np.ndarray) else a


def _base(t):
    while isinstance(t, Dispatch):
        t = t.fun
    return t


def _chain_spec(t):
    spec = []
    while isinstance(t, Dispatch):
        spec.append([t.kind, repr(t.positions), t.has_aux, t.order, repr(t.signature), t.backend])
        if t.static_argnums or t.static_argnames:
            spec[-1].append(repr((t.static_argnums, t.static_argnames)))
        t = t.fun
    return spec


def _chain_kinds(t):
    kinds = []
    while isinstance(t, Dispatch):
        kinds.append(t.kind)
        t = t.fun
    return kinds


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
    """(output nodes, the structure holding them) of a transform's result (``pytrees``)."""
    from . import ir

    flat, structure, _ = pytrees.flatten(tree, is_leaf=lambda t: isinstance(t, ir.Node))
    return flat, structure


_unflatten = pytrees.unflatten


def _wrap(tree):
    from . import ir, trace

    return pytrees.map_leaves(lambda t: trace.Tracer(t) if isinstance(t, ir.Node) else t, tree)


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
                       version(), np.__version__, sample_sum_setting()])
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
    if not reads.checks and not any(isinstance(v, np.ndarray) for _, v in reads.values):
        return runner
    if hasattr(runner, "with_guard"):  # a scalar entry: guard and call in one function
        return runner.with_guard(reads, _STALE)
    unchanged = reads.guard()

    def run(*a, **k):
        if not unchanged():
            return _STALE
        return runner(*a, **k) if k else runner(*a)

    return run


def _call_leaves(n, call):
    """What turns a call's ``n`` positional arguments and its keyword arguments into those of the
    generated function (static ones dropped, pytrees flattened), or None where they are the same."""
    if not call.fixed and not call.trees and not call.keyword_trees:
        return None
    fixed, trees = {p for p, _ in call.fixed}, {p for p, _, _ in call.trees}
    keep = tuple(i for i in range(n) if i not in fixed)
    if not trees and not call.keyword_trees:
        return lambda a, k: ([a[i] for i in keep], k)

    def leaves(a, k):
        out = []
        for i in range(n):
            if i in trees:
                out.extend(pytrees.flatten(a[i])[0])
            elif i not in fixed:
                out.append(a[i])
        if call.keyword_trees:
            k = dict(k)
            for name, _, names in call.keyword_trees:
                k.update(zip(names, pytrees.flatten(k.pop(name))[0]))
        return out, k

    return leaves


def _runner(fn, consts, tree, scalar_call, keywords=None, arguments=None, any_array=False):
    """The cheapest call of a compiled function that still returns results in the API's form.
    Static values were baked in by the trace: only keyword arrays (``keywords``) and the positional
    arguments ``arguments(args, kwargs)`` gives (all if None) reach ``fn``. ``any_array`` (the array
    API backend): results that are not numpy's stay the arrays the generated code made."""
    finish = _finish_any if any_array else _finish
    if arguments is not None:
        run = _runner(fn, consts, tree, scalar_call, keywords, None, any_array)

        def call(*a, **k):
            a, k = arguments(a, k)
            return run(*a, **k)

        return call
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
        return lambda *a, **k: finish(fn(*a, **k), scalar_call)

    def run(*a, **k):
        flat = fn(*a, **k)
        if not isinstance(flat, tuple):  # a generated function with one output returns it bare
            flat = (flat,)
        return _unflatten(tree, [finish(v, scalar_call) for v in flat])

    return run


def _finish_any(value, scalar_call):
    return _finish(value, scalar_call) if isinstance(value, (np.ndarray, np.generic, float)) else value


def _array_spec(a):
    """A stand-in with the shape and dtype of array ``a`` of any array API library (a torch, JAX,
    CuPy or Dask array is neither copied to the host nor computed); numpy's own as they are."""
    if isinstance(a, (np.ndarray, np.generic)) or not (hasattr(a, "shape") and hasattr(a, "dtype")):
        return np.asarray(a)
    try:
        dtype = np.dtype(str(a.dtype).rsplit(".", 1)[-1])  # torch.float64, array_api_strict.float64
        return np.broadcast_to(np.zeros((), dtype), tuple(int(d) for d in a.shape))
    except (TypeError, ValueError):
        raise DtypeError(f"cannot read the shape and dtype of a {type(a).__name__} "
                         f"(shape {a.shape}, dtype {a.dtype})") from None


def _finish(value, scalar_call):
    if scalar_call and value.__class__ is float:
        return value
    value = np.asarray(value)
    if scalar_call and value.ndim == 0:
        return float(value)
    return value
