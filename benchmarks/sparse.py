"""Sparse Hessians and Jacobians (issue 13): colouring plus compressed products, side by side.

    python benchmarks/sparse.py                    # Rosenbrock n = 1e4, 1e5, 1e6; dense at 3,000; 2-D Brusselator 128x128
    python benchmarks/sparse.py --sizes 1e4 1e5 --grid 32     # quicker
    python benchmarks/sparse.py --only rosenbrock             # or --only brusselator

Rosenbrock: ``hessian(f, sparse=True)`` evaluation time against ``grad(f)`` at the same point (target
<= 10x), the compile time with an empty cache (pattern + colouring + code generation + the first call;
target < 5 s at 1e6), nnz and colours; the dense ``hessian(f)`` at n = 3,000 for comparison; CasADi's
sparse Hessian when ``casadi`` imports (skipped otherwise). Brusselator: ``solve_ivp(method="BDF")``
with the sparse symdiff Jacobian against scipy's finite differences given ``jac_sparsity``: wall time,
Jacobian evaluations, and the largest difference of the final states.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

import common

sys.path.insert(0, os.path.join(common.REPO, "examples"))
from sparse_solvers import brusselator, rosen

import symdiff


def rosenbrock_rows(sizes):
    rows = []
    for n in sizes:
        x = np.random.default_rng(0).normal(size=n)
        with common.fresh_symdiff_cache():
            start = time.perf_counter()
            h = symdiff.hessian(rosen, sparse=True)
            compiled = h.compiled(x)
            pattern_time = time.perf_counter() - start
            h(x)
            compile_time = time.perf_counter() - start
            g = symdiff.grad(rosen)
            g(x)
            t_h, _, _ = common.measure(h, (x,), repeats=5)
            t_g, _, _ = common.measure(g, (x,), repeats=5)
            reference = h(x)
        rows.append([f"{n:.0e}", compiled.pattern.nnz, compiled.colours.max() + 1, common.fmt_time(pattern_time),
                     common.fmt_time(compile_time), common.fmt_time(t_h), common.fmt_time(t_g), f"{t_h / t_g:.1f}x",
                     casadi_time(n, reference)])
    return rows


def casadi_time(n, reference):
    """CasADi's sparse Hessian (MX graph, ``casadi.hessian``): time per evaluation, its setup, and
    the largest difference from symdiff's ``reference`` (skipped when casadi is not installed)."""
    try:
        import casadi
    except ImportError:
        return "not installed"
    start = time.perf_counter()
    x = casadi.MX.sym("x", n)
    f = casadi.sum1(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    hess = casadi.Function("h", [x], [casadi.hessian(f, x)[0]])
    point = np.random.default_rng(0).normal(size=n)
    h = hess(point).sparse()
    setup = time.perf_counter() - start
    seconds, _, _ = common.measure(hess, (point,), repeats=3)
    diff = abs(h - reference).max()
    return f"{common.fmt_time(seconds)} (setup {common.fmt_time(setup)}, max diff {diff:.0e})"


def dense_row(n=3000):
    x = np.random.default_rng(0).normal(size=n)
    dense = symdiff.hessian(rosen)
    dense(x)
    sparse = symdiff.hessian(rosen, sparse=True)
    sparse(x)
    t_d, _, _ = common.measure(dense, (x,), repeats=3)
    t_s, _, _ = common.measure(sparse, (x,), repeats=5)
    err = np.abs(sparse(x).toarray() - dense(x)).max()
    return [n, common.fmt_time(t_d), f"{n * n * 8 / 2**20:.0f} MB", common.fmt_time(t_s),
            f"{t_d / t_s:.0f}x", f"{err:.1e}"]


def brusselator_rows(n, t_end):
    from scipy.integrate import solve_ivp

    rhs, y0 = brusselator(n)
    start = time.perf_counter()
    jac = symdiff.jacobian(rhs, sparse=True)
    compiled = jac.compiled(y0)
    jac(y0)
    compile_time = time.perf_counter() - start
    pattern = compiled.pattern
    spent = {"jac": 0.0, "rhs": 0.0}

    def timed(key, f):
        def call(t, y):
            start = time.perf_counter()
            try:
                return f(y)
            finally:
                spent[key] += time.perf_counter() - start
        return call

    runs = {}
    for name, kw in [("symdiff sparse jac", {"jac": timed("jac", jac)}),
                     ("finite differences + jac_sparsity", {"jac_sparsity": pattern})]:
        spent.update(jac=0.0, rhs=0.0)
        start = time.perf_counter()
        sol = solve_ivp(timed("rhs", rhs), (0, t_end), y0, method="BDF", rtol=1e-6, atol=1e-9, **kw)
        runs[name] = (time.perf_counter() - start, sol, dict(spent))
    ref = runs["finite differences + jac_sparsity"][1].y[:, -1]
    rows = []
    for name, (seconds, sol, where) in runs.items():
        # rhs time includes the finite-difference Jacobian's rhs calls; the rest is mostly LU and solves
        rest = seconds - where["jac"] - where["rhs"]
        rows.append([name, common.fmt_time(seconds), sol.njev, sol.nlu, sol.nfev, common.fmt_time(where["jac"]),
                     common.fmt_time(where["rhs"]), common.fmt_time(rest), f"{np.abs(sol.y[:, -1] - ref).max():.1e}"])
    note = (f"{2 * n * n} unknowns, pattern nnz {pattern.nnz}, {compiled.colours.max() + 1} colours "
            f"({compiled.mode}), symdiff compile {common.fmt_time(compile_time)}")
    return rows, note


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e4, 1e5, 1e6])
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--t-end", type=float, default=1.0)
    parser.add_argument("--only", choices=["rosenbrock", "brusselator"], help="run one part")
    args = parser.parse_args()
    if args.only != "rosenbrock":
        rows, note = brusselator_rows(args.grid, args.t_end)
        print(f"\n2-D Brusselator {args.grid}x{args.grid}, periodic, solve_ivp BDF to t = {args.t_end}: {note}\n")
        print(common.markdown_table(["Jacobian", "wall time", "njev", "nlu", "nfev", "in jac", "in rhs",
                                     "rest (LU, solves)", "max |y - y_fd| at the end"], rows), flush=True)
    if args.only == "brusselator":
        return
    print("Rosenbrock: sparse Hessian vs gradient (compile with an empty cache)\n")
    print(common.markdown_table(["n", "nnz", "colours", "pattern+colouring", "compile (cold, incl. 1st call)",
                                 "sparse Hessian", "gradient", "ratio", "CasADi Hessian"],
                                rosenbrock_rows([int(s) for s in args.sizes])))
    print("\nDense path at n = 3,000\n")
    print(common.markdown_table(["n", "dense hessian", "dense size", "sparse hessian", "dense/sparse", "max |diff|"],
                                [dense_row()]))


if __name__ == "__main__":
    main()
