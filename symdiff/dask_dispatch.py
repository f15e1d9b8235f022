"""Transforms called on Dask arrays: a lazy Dask result, never a compute.

Two paths, chosen by what the transform computes:

* per point (``signature=`` transforms and ``derivative``): every point of the batch axes is
  independent, so each chunk runs the compiled kernel on its numpy block
  (``dask.array.apply_gufunc``); core axes are rechunked into one piece, output shapes and dtypes
  are declared from one run on a one-point sample, so Dask never calls the kernel to guess them.
* whole arrays (a loss reduced over the rows of X): the generated module is run on the Dask arrays
  themselves. numpy's dispatch protocols (``__array_ufunc__``, ``__array_function__``) and the
  array API namespace of ``backend="array_api"`` make each generated line a Dask operation, so
  ``np.sum``/``@`` over a chunked axis become Dask reductions and X is never put together. Any step
  that would compute (a function Dask does not implement falls back to numpy on the whole array)
  is stopped and reported.

Dask is imported only when a call passes a Dask array (``is_dask_call`` checks type modules).
"""

from __future__ import annotations

import traceback
import weakref

import numpy as np

from . import environment, pytrees
from .errors import ShapeError, SymdiffError

BACKENDS = ("numpy", "numba", "numba_parallel", "array_api")  # backends whose generated code these paths can run


def _is_dask(v) -> bool:
    return type(v).__module__.startswith("dask.")


def is_dask_call(args, kwargs) -> bool:
    """Whether a call passes a Dask array (positional, keyword or a leaf of a pytree), without importing dask."""
    for v in (*args, *kwargs.values()):
        if _is_dask(v) or (pytrees.is_tree_argument(v) and any(_is_dask(x) for x in pytrees.flatten(v)[0])):
            return True
    return False


def call(transform, args, kwargs):
    """The transform's result for a call with Dask arrays: Dask arrays in the usual structure, not computed."""
    if transform.backend not in BACKENDS:
        raise SymdiffError(
            f"{transform.kind} of {transform.__name__} was called on Dask arrays, which backend={transform.backend!r} "
            f"cannot run; use one of {', '.join(map(repr, BACKENDS))} or call .compute() on the arguments first"
        )
    if transform.kind == "derivative" or transform.signature is not None:
        return _per_point(transform, args, kwargs)
    return whole_array(transform, args, kwargs)


_entries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # transform -> {key: (unchanged, entry)}


def _compiled(transform, args, kwargs):
    """``transform._compile`` for numpy stand-ins of a Dask call, remembered per transform and argument
    key while what the function reads is unchanged (as the numpy path's guarded runners are): a
    Dask call does not trace again to build its next graph."""
    from .arguments import _dispatch_key
    from .dispatch import _base

    key = _dispatch_key(args, transform.kind == "derivative", kwargs, transform._static_at(len(args)),
                        transform._static_names)
    try:
        table = _entries.setdefault(transform, {})
    except TypeError:
        table = None
    hit = table.get(key) if table is not None and key is not None else None
    if hit is not None and hit[0]():
        return hit[1]
    entry = transform._compile(args, kwargs)
    reads = environment.read_set(_base(transform)) if table is not None and key is not None else None
    if reads is not None:
        table[key] = (reads.guard(), entry)
    return entry


# ---------------------------------------------------------------------------------------------
# per point: one compiled kernel per chunk
# ---------------------------------------------------------------------------------------------


def _per_point(transform, args, kwargs):
    import dask.array as da

    from .dask_kernel import Kernel
    from .dispatch import _call_leaves

    if any(_is_dask(v) for v in kwargs.values()) or any(pytrees.is_tree_argument(a) for a in args):
        raise SymdiffError(
            f"{transform.kind} of {transform.__name__} maps over chunks of its positional array arguments; "
            "pass keyword arrays as numpy arrays (each chunk gets all of them) and pytrees as separate arrays"
        )
    n = len(args)
    _, _, call0 = transform._split(args, kwargs)
    fixed = {p for p, _ in call0.fixed}
    traced_at = [i for i in range(n) if i not in fixed]
    cores = (transform.signature[0] if transform.kind != "derivative" else [()] * len(traced_at))
    if len(cores) != len(traced_at):
        raise ShapeError(f"signature has {len(cores)} inputs but the call passed {len(traced_at)} array arguments")
    core_rank = dict(zip(traced_at, map(len, cores)))

    sample = list(args)
    for i in traced_at:  # one point of each argument, of its dtype and core shape: what is compiled
        a = args[i]
        shape, dtype = np.shape(a), _dtype(a)
        core = core_rank[i]
        if len(shape) < core:
            raise ShapeError(f"argument {transform._arg_name(i)!r} has shape {shape}, fewer axes than its core "
                             f"dimensions {cores[traced_at.index(i)]} in the signature")
        _known(transform, i, shape[len(shape) - core :], "its core axes")
        sample[i] = np.ones((1,) * (len(shape) - core) + tuple(shape[len(shape) - core :]), dtype)
    compiled, consts, meta, _, call = _compiled(transform, sample, kwargs)
    leaves = _call_leaves(n, call)
    samples, keywords = leaves(sample, kwargs) if leaves else (sample, kwargs)
    keywords = {k: keywords[k] for k in meta.get("keywords", ())}
    kernel = Kernel(compiled.key, compiled.source, meta["name"], keywords, consts, None)
    with np.errstate(all="ignore"):
        outs = kernel(*samples)
    outs = outs if isinstance(outs, tuple) else (outs,)
    kernel.n_out = len(outs)

    batch_nd = max(np.ndim(a) - core_rank[i] for i, a in zip(traced_at, samples))
    in_sigs, arrays = [], []
    for j, (i, a) in enumerate(zip(traced_at, (args[i] for i in traced_at))):
        names = [f"i{j}_{k}" for k in range(core_rank[i])]
        in_sigs.append("(" + ",".join(names) + ")")
        if _is_dask(a) and core_rank[i]:  # core axes never split: each chunk holds whole points
            a = a.rechunk({a.ndim - 1 - k: -1 for k in range(core_rank[i])})
        arrays.append(a)
    arrays = _aligned(arrays, [core_rank[i] for i in traced_at])
    out_sigs, sizes = [], {}
    for j, o in enumerate(outs):
        core = o.shape[batch_nd:]
        if o.shape[:batch_nd] != (1,) * batch_nd:
            raise SymdiffError(f"output {j} of {transform.kind} of {transform.__name__} is not batched over the points")
        names = [f"o{j}_{k}" for k in range(len(core))]
        sizes.update(zip(names, core))
        out_sigs.append("(" + ",".join(names) + ")")
    signature = ",".join(in_sigs) + "->" + ",".join(out_sigs)
    result = da.apply_gufunc(kernel, signature, *arrays, output_dtypes=[o.dtype for o in outs],
                             output_sizes=sizes, vectorize=False, allow_rechunk=False)
    flat = [result] if len(outs) == 1 else list(result)
    tree = meta["tree"]
    return flat[tree] if isinstance(tree, int) else pytrees.unflatten(tree, flat)


def _aligned(arrays, core_ranks):
    """The arrays with one chunking of each batch axis (numpy arrays as one-chunk Dask arrays):
    apply_gufunc refuses batch axes chunked differently (two Dask arguments, or a Dask and a numpy one)."""
    from dask.array.core import unify_chunks

    batch_nd = max(np.ndim(a) - c for a, c in zip(arrays, core_ranks))
    pairs = []
    for j, (a, c) in enumerate(zip(arrays, core_ranks)):
        nb = np.ndim(a) - c
        pairs += [a, tuple(f"b{k}" for k in range(batch_nd - nb, batch_nd)) + tuple(f"c{j}_{k}" for k in range(c))]
    return unify_chunks(*pairs, warn=False)[1]


def _dtype(a):
    if isinstance(a, float):
        return np.float64
    dtype = getattr(a, "dtype", None)  # a Dask array's, without computing it
    return np.asarray(a).dtype if dtype is None else dtype


# ---------------------------------------------------------------------------------------------
# whole arrays: the generated module on Dask arrays
# ---------------------------------------------------------------------------------------------


class _ComputeForced(Exception):
    pass


def _forbidden(*_, **__):
    raise _ComputeForced


def _known(transform, i, shape, what="its shape"):
    """Refuse a Dask array whose sizes are not known yet (after boolean indexing, say): code is compiled for sizes."""
    if any(d != d for d in shape):  # NaN: an unknown chunk size
        raise ShapeError(
            f"argument {transform._arg_name(i)!r} of the {transform.kind} of {transform.__name__} is a Dask array "
            f"whose {what} {tuple(shape)} are not known yet: call .compute_chunk_sizes() on it first"
        )


def _stand_in(v):
    """A numpy array of ``v``'s shape and dtype that owns no memory (for tracing and keying only)."""
    if _is_dask(v):
        return np.broadcast_to(np.zeros((), v.dtype), v.shape)
    if pytrees.is_tree_argument(v):
        return pytrees.map_leaves(_stand_in, v)
    return v


def whole_array(transform, args, kwargs):
    """Run the transform's generated module with the Dask arrays themselves: a lazy result.

    The generated code is compiled for the arguments' shapes and dtypes (stand-ins that own no
    memory are traced), then called with the Dask arrays while Dask is not allowed to compute:
    a generated line that would compute raises a SymdiffError naming it. With
    ``backend="array_api"`` the module takes its namespace from the Dask arrays; with the numpy
    backend numpy dispatches each call to Dask."""
    import dask

    from .dispatch import _call_leaves

    for i, v in enumerate(args):
        if _is_dask(v):
            _known(transform, i, v.shape)
    compiled, consts, meta, _, call = _compiled(transform, [_stand_in(a) for a in args],
                                                {k: _stand_in(v) for k, v in kwargs.items()})
    fn = compiled.function(meta["name"])
    leaves = _call_leaves(len(args), call)
    a, k = leaves(list(args), kwargs) if leaves else (args, kwargs)
    keywords = {name: k[name] for name in meta.get("keywords", ())}
    if transform.backend == "array_api":  # one namespace for all inputs: numpy arrays become one-chunk Dask arrays
        a, keywords, consts = ([_as_dask(v) for v in a], {n: _as_dask(v) for n, v in keywords.items()},
                               {n: _as_dask(v) for n, v in consts.items()})
    what = f"{transform.kind} of {transform.__name__}"
    try:
        with dask.config.set(scheduler=_forbidden):
            out = fn(*a, **keywords, **consts)
    except _ComputeForced as e:
        raise SymdiffError(
            f"the generated code of the {what} would compute a Dask array at {_generated_line(e, compiled)}: "
            "call .compute() on the arguments first, or map a per-point function over chunks with signature="
        ) from None
    except (NotImplementedError, TypeError, ValueError, AttributeError) as e:  # AttributeError: a function
        # the array API namespace of Dask lacks (array_api_compat.dask has no take_along_axis)
        reason = str(e).splitlines()[0][:200] if str(e) else ""
        raise SymdiffError(
            f"the generated code of the {what} does not run on Dask arrays at {_generated_line(e, compiled)} "
            f"({type(e).__name__}: {reason}): call .compute() on the arguments first, or use signature= for a "
            "per-point function"
        ) from None
    flat = list(out) if isinstance(out, tuple) else [out]
    tree = meta["tree"]
    return flat[tree] if isinstance(tree, int) else pytrees.unflatten(tree, flat)


def _as_dask(v):
    import dask.array as da

    return da.from_array(v, chunks=-1) if isinstance(v, np.ndarray) else v


def _generated_line(error, compiled) -> str:
    """'line N: <code>' of the generated module where ``error`` was raised, or 'a generated line'."""
    lines = compiled.source.splitlines()
    for frame, lineno in reversed(list(traceback.walk_tb(error.__traceback__))):
        if frame.f_globals is compiled.namespace:
            offset = 0 if frame.f_code.co_filename.startswith("<") else 2  # a disk entry has a 2-line header
            at = lineno - offset
            if 0 < at <= len(lines):
                return f"line {at}: {lines[at - 1].strip()!r}"
    return "a generated line"
