"""One path from IR to a loaded callable: optimize -> emit -> load, for the transforms, the
command-line tool and torchlike alike, plus the version that keys every cache entry."""

from __future__ import annotations

import functools
import hashlib
import json

from . import load
from .sample_sum import setting as sample_sum_setting
from .errors import CompileError, SymdiffError

# front ends decide nothing a compiled entry contains: every other module of the package does
FRONT_ENDS = ("cli", "torchlike", "__main__")


@functools.lru_cache(maxsize=1)
def version() -> str:
    """symdiff's version plus a digest of its own code and templates, so that cache entries made
    by any other build of symdiff (including a development checkout) are never reused.

    Every module of the package counts except the front ends, found by listing the package, so a
    new module is covered without being named here. A new process computes this before its first
    disk-cache hit: it reads the files with bare ``os`` calls (no buffered file objects, no
    ``relpath``), which is most of the warm-start time otherwise."""
    import os

    from . import __version__
    from .resources import template_dir

    here, templates = os.path.dirname(os.path.abspath(__file__)), template_dir()
    files = [(name, os.path.join(templates, name)) for name in os.listdir(templates) if name.endswith(".j2")]
    files += _package_sources(here, "")
    h = hashlib.sha256()
    for rel, path in sorted(files):
        h.update(rel.encode() + _read_bytes(path))
    return f"{__version__}+{h.hexdigest()[:12]}"


def _package_sources(folder: str, prefix: str) -> list:
    """(path relative to the package with "/" separators, path) of every non-front-end module."""
    import os

    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(FRONT_ENDS) or name == "__pycache__":
                continue
            if entry.is_dir(follow_symlinks=False):
                found += _package_sources(entry.path, prefix + name + "/")
            elif name.endswith(".py"):
                found.append((prefix + name, entry.path))
    return found


def _read_bytes(path: str) -> bytes:
    import os

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def render(title, plans, backend="numpy", regenerate=None):
    """Render plans into one module; wrap SymPy/jinja2 failures in CompileError."""
    from . import emit

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
    from . import emit, ir, optimize
    from .dispatch import _base

    transforms = list(transforms)
    if not transforms:
        raise SymdiffError("emit_module needs at least one transform")
    first = transforms[0]
    shared: dict = {}  # argument specs -> input nodes, so that plans with equal specs share inputs
    plans = []
    for t in transforms:
        _, specs, core_ranks, call = t._specs(args)  # derivative() plans for scalars, the others for shapes
        key = repr((specs, sorted(core_ranks.items())))
        if key not in shared:
            shared[key] = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
        plans.append(t.plan(shared[key], None, core_ranks, call)[0])
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
    source, _, _ = render(title, plans, backend or first.backend, regenerate)
    return source


def compile_graph(in_nodes, outputs, name: str = "f", summary: str = "Generated function."):
    """Compile IR ``outputs`` (over input nodes ``in_nodes``, positions 0..n-1) into a callable.

    The lower-level entry point for front ends that build IR themselves (``symdiff.torchlike``):
    optimize, emit and load with the same cache as the transforms. The callable takes the input
    arrays positionally and returns a list of arrays, one per output."""
    from . import emit, ir, optimize

    in_nodes, outputs = list(in_nodes), list(outputs)
    for i, n in enumerate(in_nodes):
        if n.op != "input" or n.params[0] != i:
            raise SymdiffError(f"compile_graph: input {i} must be ir.input_node({i}, ...)")
    key = hashlib.sha256(
        # the inputs too: an input the outputs never read is still a parameter (its count and shape)
        json.dumps({"graph": ir.structure_key(outputs), "inputs": [[list(n.shape), str(n.dtype)] for n in in_nodes],
                    "name": name, "version": version(),
                    "sample_sum": sample_sum_setting()}).encode()
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
        source, (digests,), (const_names,) = render(summary, [plan])
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
