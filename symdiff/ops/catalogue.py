"""``docs/operations.md``, written from the tables the tracer and the registry actually use.

Regenerate with ``python3 -m symdiff.ops.catalogue > docs/operations.md``; a test fails when the
page and the code disagree, so the page never promises an operation symdiff does not trace.
"""

from __future__ import annotations

import inspect

import numpy as np

# Where the derivative of a numpy function is not defined everywhere (or not as a mathematician would
# write it), what symdiff does; the ufuncs' conventions are in their table entries (ufuncs.TABLE).
# docs/domain_edges.md has the full story.
CONVENTIONS = {
    "np.where": "the derivative of a select is a select: no NaN/inf from the branch not taken",
    "np.max": "ties share the derivative equally (as JAX)",
    "np.min": "ties share the derivative equally (as JAX)",
    "np.amax": "ties share the derivative equally (as JAX)",
    "np.amin": "ties share the derivative equally (as JAX)",
    "np.prod": "reverse mode divides by the inputs: NaN at exact zeros",
    "np.std": "derivative 0 over an axis of length 1",
    "np.clip": "0.5/0.5 split at the bounds (maximum/minimum)",
    "np.linalg.norm": "ord None/'fro'/2 (vectors), 1 and inf; 'nuc', 2, -2 (matrices, through the SVD)",
    "np.linalg.svd": "distinct nonzero singular values (as JAX); full_matrices=True only for square matrices",
    "np.linalg.det": "derivative det(A) inv(A)^T: NaN/inf at singular A (JAX uses a cofactor rule there)",
    "np.linalg.slogdet": "the sign has derivative 0; log|det| has inv(A)^T",
    "np.linalg.cholesky": "derivatives as JAX: the input is read as symmetric (tangents symmetrized)",
    "np.linalg.eigh": "distinct eigenvalues (F_ij = 1/(w_j - w_i)); input read as symmetric, as JAX",
    "np.linalg.qr": "tall or square, full column rank (as JAX); modes 'reduced', 'r', and 'complete' for square input",
    "np.linalg.pinv": "derivative assumes constant rank (as JAX); rcond=/rtol= passed to numpy, not differentiated",
    "np.sort": "the gradient follows the stable sorting permutation of the values at run time (ties: first in, first out)",
    "np.cumprod": "exact at zeros, every order (a scan of products, no division; unlike np.prod)",
    "np.nan_to_num": "1 at finite entries, 0 at NaN/inf (the replacements are constants)",
    "np.select": "as np.where: the derivative of the choice selected, no NaN/inf from the others",
    "np.tril": "0 outside the triangle (a select: inf/NaN there do not leak)",
    "np.triu": "0 outside the triangle (a select: inf/NaN there do not leak)",
    "np.sinc": "derivatives at 0 from the Taylor series (no 0/0)",
    "np.einsum": "numpy's whole grammar: implicit output, '...', sublists; optimize= is accepted and ignored",
    "np.take": "indices may be an integer argument (data, no derivative; out of range: IndexError when run)",
    "np.take_along_axis": "indices may be an integer argument (data, no derivative; out of range: IndexError when run)",
}


def _array_api_section() -> list:
    """What has no equivalent on the Python array API standard (``backend="array_api"``): the table's
    functions without an ``xp`` form and the forms of ops that say so (``Op.spelled``)."""
    from . import REGISTRY
    from .ufuncs import without_array_api

    missing = sorted(set(without_array_api().values()))
    ops = sorted({op.spelled for op in REGISTRY.values() if op.spelled})
    return [
        "",
        "## On the array API standard",
        "",
        "With `backend=\"array_api\"` everything above runs on the standard's functions (see",
        "[array_api.md](array_api.md)) except these, which raise `CompileError` when the transform compiles:",
        "",
        *(f"- `{name}`" for name in missing),
        *(f"- {text}" for text in ops),
    ]


def _table(header, rows) -> list:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def render() -> str:
    """The text of docs/operations.md."""
    from .. import trace
    from .base import REGISTRY
    from .surface import FUNCTIONS, numpy_name
    from .ufuncs import NUMPY, SCIPY

    lines = [
        "# Operations",
        "",
        "What symdiff traces and differentiates, generated from the tables its tracer and op registry use",
        "(`python3 -m symdiff.ops.catalogue > docs/operations.md`; a test keeps this page in step with the",
        "code). Anything not listed here raises `TraceError` naming your line. Derivative conventions where a",
        "derivative is not defined everywhere are in the last column; details in",
        "[domain_edges.md](domain_edges.md).",
        "",
        "## Elementwise ufuncs",
        "",
        "Every derivative of every order comes from SymPy. Backends: `numpy` (default) and `numba` (fused",
        "per-point loops) for all of these.",
        "",
    ]
    rows = [(f"`np.{n}`", str(nin), e.convention) for (n, nin), e in sorted(NUMPY.items())]
    lines += _table(["ufunc", "arguments", "convention"], rows)
    lines += [
        "",
        "## scipy.special ufuncs",
        "",
        "Traced when scipy is installed and the function calls them (`pip install 'symdiff[scipy]'`);",
        "generated code then imports `scipy.special`. The numba backend runs them as numpy code.",
        "",
    ]
    rows = [(f"`scipy.special.{n}`", e.convention) for n, e in sorted(SCIPY.items())]
    lines += _table(["function", "convention"], rows)
    lines += _array_api_section()
    lines += ["", "## numpy functions", ""]
    rows = sorted((f"`{numpy_name(f)}`", CONVENTIONS.get(numpy_name(f), "")) for f, impl in FUNCTIONS.items()
                  if impl.__module__.startswith("symdiff."))
    lines += _table(["function", "convention"], rows)
    methods = sorted(
        name for name, member in vars(trace.Tracer).items()
        if inspect.isfunction(member) and not name.startswith("_") and name not in ("item", "tolist")
        and member.__module__.startswith("symdiff.")
    )
    lines += ["", "## Array methods and attributes", "",
              ", ".join(f"`x.{m}()`" for m in methods) + ", `x.T`, `x.mT`, `x.shape`, `x.ndim`, `x.size`,",
              "`x.dtype`, operators (`+ - * / // ** @`, comparisons, unary `-`, `abs()`) and indexing (integers, slices,",
              "`...`, `None`, integer arrays, boolean masks built from constants). Integer-array arguments index as data",
              "(no derivative; out of range: IndexError when the generated code runs); index arrays separated by a slice",
              "put their axes first, as in numpy.", "",
              "## IR operations (the op registry, `symdiff/ops/`)", "",
              "What traced programs are made of; each op holds its own derivative, evaluation and folding rules.", ""]
    rows = []
    for name in sorted(REGISTRY):
        op = REGISTRY[name]
        if not type(op).__module__.startswith("symdiff.ops."):
            continue  # registered by user code (docs/extending.md's example), not part of symdiff
        doc = (inspect.getdoc(type(op)) or "").split("\n")[0] if type(op).__doc__ else ""
        family = type(op).__module__.rsplit(".", 1)[-1]
        opaque = "user rule" if family == "custom" else "own rules only"
        kind = "leaf" if op.leaf else opaque if op.opaque else "linear" if op.linear else ""
        rows.append((f"`{name}`", family, kind, doc))
    lines += _table(["op", "family", "kind", "what"], rows)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
    _ = np  # numpy is imported by the tracer the page describes
