"""Compile time and size of high-order derivatives: symdiff vs plain sympy.diff + sympy.cse.

    python benchmarks/high_order.py [--max-order 8] [--limit 120] [--json PATH]

For k = 1..max-order, the k-th derivative of f(x) = sin(exp(x)*x)/(1+x**2):

- symdiff: ``symdiff.derivative(f, k)`` compiled on a cold cache (empty SYMDIFF_CACHE_DIR, empty
  in-memory and SymPy caches, new Transform); "ops" counts the operations of the generated function
  that runs (``.source``): every assignment's right-hand side parsed back into SymPy and measured
  with ``sympy.count_ops``, summed, which is exactly how the cse'd SymPy form is measured; "ast ops"
  counts the arithmetic operators and calls in the same code with Python's ``ast``.
- SymPy: ``sympy.diff(f, (x, k))`` then ``sympy.cse``; ``count_ops`` before and after cse
  (after = sum over the replacements and the reduced expression).

Each symdiff result is checked against mpmath's high-precision derivative at a few points.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numpy as np
import sympy as sp
from common import (
    BenchTimeout,
    Stopwatch,
    clear_sympy_cache,
    fmt_time,
    fresh_symdiff_cache,
    markdown_table,
    time_limit,
    w3,
    w3_exact_derivatives,
)
from sympy.parsing.sympy_parser import parse_expr

import symdiff

POINTS = (0.0, 0.13, 0.5, 0.77, 1.0)


def _function_body(source):
    """The assignments and the return of the (single) generated function."""
    tree = ast.parse(source)
    fn = next(node for node in tree.body if isinstance(node, ast.FunctionDef))
    return [node for node in fn.body if isinstance(node, (ast.Assign, ast.Return))]


def ast_ops(source):
    """Arithmetic operators, negations and calls in the generated function."""
    count = 0
    for stmt in _function_body(source):
        for node in ast.walk(stmt):
            if isinstance(node, (ast.BinOp, ast.Call)) or isinstance(node, ast.UnaryOp) and isinstance(
                node.op, ast.USub
            ):
                count += 1
    return count


def source_count_ops(source):
    """sympy.count_ops summed over the right-hand sides of the generated function's statements.

    Returns None when a statement is not a plain expression SymPy can parse (array code)."""
    total = 0
    names = {}
    for stmt in _function_body(source):
        text = ast.unparse(stmt.value).replace("np.", "")
        if text.isidentifier():  # `return t42`: no operation
            continue
        try:
            expr = parse_expr(text, local_dict=names, evaluate=False)
        except Exception:  # noqa: BLE001 - not a scalar expression (array code): no count
            return None
        for s in expr.free_symbols:
            names.setdefault(s.name, s)
        total += sp.count_ops(expr)
    return total


def symdiff_row(k, limit):
    row = {"order": k}
    xs = np.linspace(0.0, 1.0, 11)
    try:
        with fresh_symdiff_cache(), time_limit(limit), Stopwatch() as sw:
            d = symdiff.derivative(w3, k)
            d(xs)
        row["symdiff_compile_s"] = sw.seconds
        source = d.source(xs)
    except BenchTimeout:
        row["symdiff_error"] = f"timeout > {limit:g} s"
        return row
    except Exception as e:  # noqa: BLE001 - a failed compile is a table entry
        row["symdiff_error"] = f"{type(e).__name__}: {str(e)[:120]}"
        return row
    row["symdiff_ops"] = source_count_ops(source)
    row["symdiff_ast_ops"] = ast_ops(source)
    row["symdiff_statements"] = len(_function_body(source))
    exact = w3_exact_derivatives(POINTS, k)
    got = np.asarray(d(np.array(POINTS)))
    row["symdiff_rel_err"] = float(np.max(np.abs(got - exact) / np.maximum(np.abs(exact), 1e-300)))
    return row


def sympy_row(k, limit):
    row = {}
    x = sp.Symbol("x", real=True)
    clear_sympy_cache()
    try:
        with time_limit(limit):
            with Stopwatch() as sw:
                expr = sp.diff(sp.sin(sp.exp(x) * x) / (1 + x**2), (x, k))
            row["sympy_diff_s"] = sw.seconds
            row["sympy_ops"] = int(sp.count_ops(expr))
            with Stopwatch() as sw:
                replacements, reduced = sp.cse(expr)
            row["sympy_cse_s"] = sw.seconds
            row["sympy_cse_ops"] = int(sum(sp.count_ops(v) for _, v in replacements) + sp.count_ops(reduced))
    except BenchTimeout:
        row["sympy_error"] = f"timeout > {limit:g} s"
    return row


def render(rows):
    header = ["k", "symdiff compile (cold)", "symdiff ops (count_ops)", "growth", "ast ops", "rel err vs mpmath",
              "sympy.diff", "count_ops", "growth", "sympy.cse", "count_ops after cse", "growth",
              "diff + cse"]
    body, prev = [], {}

    def growth(key, r):
        a, b = prev.get(key), r.get(key)
        return f"{b / a:.2f}x" if a and b else "—"

    for r in rows:
        sd_err = r.get("symdiff_error")
        sp_err = r.get("sympy_error")
        body.append([
            r["order"],
            sd_err or fmt_time(r["symdiff_compile_s"]),
            "—" if sd_err else r["symdiff_ops"],
            growth("symdiff_ops", r),
            "—" if sd_err else r["symdiff_ast_ops"],
            "—" if sd_err else f"{r['symdiff_rel_err']:.0e}",
            sp_err or fmt_time(r["sympy_diff_s"]),
            "—" if sp_err else r["sympy_ops"],
            growth("sympy_ops", r),
            "—" if sp_err else fmt_time(r["sympy_cse_s"]),
            "—" if sp_err else r["sympy_cse_ops"],
            growth("sympy_cse_ops", r),
            "—" if sp_err else fmt_time(r["sympy_diff_s"] + r["sympy_cse_s"]),
        ])
        prev = r
    return markdown_table(header, body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-order", type=int, default=8)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds allowed per compile / per sympy.diff")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "high_order.json"))
    args = parser.parse_args(argv)
    os.environ["SYMDIFF_CACHE_DIR"] = tempfile.mkdtemp(prefix="symdiff-bench-run-")

    # one throwaway compile so that k=1 is not charged symdiff's and SymPy's one-time imports
    with fresh_symdiff_cache():
        symdiff.derivative(lambda t: np.sin(t) * t, 2)(np.ones(3))

    rows = []
    for k in range(1, args.max_order + 1):
        row = symdiff_row(k, args.limit)
        row.update(sympy_row(k, args.limit))
        rows.append(row)
        print(f"k={k} done", file=sys.stderr, flush=True)

    print("# High-order derivatives of sin(exp(x)*x)/(1+x**2): symdiff vs sympy.diff + sympy.cse\n")
    print(render(rows))
    print("\nops: sympy.count_ops (symdiff: summed over the generated function's statements, i.e. its cse'd form). "
          "growth: ratio to the previous order.")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump({"function": "sin(exp(x)*x)/(1+x**2)", "symdiff": symdiff.__version__, "sympy": sp.__version__,
                       "rows": rows}, fh, indent=1)
    print(f"JSON: {os.path.relpath(args.json)}")


if __name__ == "__main__":
    main()
