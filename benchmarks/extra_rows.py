"""Rows that run.py adds to its workloads: symdiff's numba backend (one thread and ``parallel=True``)
and SymEngine (``symengine.diff`` + ``Lambdify``, LLVM where its build has it). SymEngine is an
optional benchmark dependency: its rows say "skipped" when it does not import."""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

import symdiff

NUMBA = importlib.util.find_spec("numba") is not None
NUMBA_SKIP = None if NUMBA else "numba not installed (pip install 'symdiff[numba]'); skipped"


def symengine():
    try:
        import symengine as se
    except Exception as e:  # noqa: BLE001 - optional: report, never crash
        return None, f"symengine not importable ({type(e).__name__}); skipped"
    return se, None


def lambdify(se, args, exprs):
    """``Lambdify`` with the LLVM backend when this build has it, else SymEngine's own interpreter."""
    try:
        return se.Lambdify(args, exprs, backend="llvm", cse=True), "llvm"
    except (RuntimeError, ValueError, TypeError):
        return se.Lambdify(args, exprs, backend="lambda", cse=True), "lambda"


def parallel_skip(threads):
    """Why the parallel=True row is not run (one thread asked for), or None."""
    if NUMBA_SKIP:
        return NUMBA_SKIP
    if threads == "1":
        return "--threads 1: the parallel row needs more threads (run with --threads 2)"
    return None


def numba_threads():
    if not NUMBA:
        return None
    import numba

    return numba.config.NUMBA_NUM_THREADS


def warm_up():
    """numba's import and first compile, SymEngine's import: not charged to the first workload."""
    if NUMBA:
        symdiff.derivative(lambda x: x * x, 1, backend="numba")(np.ones(3))
    symengine()


# -- W1 -----------------------------------------------------------------------------------------


def w1_numba(loss, data):
    return functools.partial(symdiff.grad(loss, argnums=(0, 1), backend="numba"), *data)


def w1_symengine(data):
    """symengine on the hand-scalarized loss l(z, y), like the sympy rows; the chain rule by hand."""
    se, _ = symengine()
    z, y = se.symbols("z y")
    # max(z, 0) - z y + log(1 + exp(-|z|)) has d/dz = sigmoid(z) - y; SymEngine differentiates the
    # smooth form log(1 + exp(z)) - z y (equal for every z) since it has no derivative of Max/Abs
    f, _ = lambdify(se, [z, y], [se.diff(se.log(1 + se.exp(z)) - z * y, z)])

    def grad(W, b, X, Y):
        Z = X @ W + b
        dz = np.asarray(f(np.stack((Z.ravel(), Y.ravel()), axis=-1))).reshape(Z.shape) / Z.size
        return X.T @ dz, dz.sum(axis=0)

    return functools.partial(grad, *data)


# -- W2 -----------------------------------------------------------------------------------------


def w2_numba(rosen, P, kind, parallel=False):
    transform = symdiff.grad if kind == "grad" else symdiff.hessian
    return functools.partial(transform(rosen, signature="(n)->()", backend="numba", parallel=parallel), P)


def w2_symengine(P, kind):
    se, _ = symengine()
    n = P.shape[1]
    xs = se.symbols(" ".join(f"x{i}" for i in range(n)))
    f = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1))
    entries = [se.diff(f, v) for v in xs]
    if kind == "hessian":
        entries = [se.diff(g, v) for g in entries for v in xs]
    fn, _ = lambdify(se, list(xs), entries)
    shape = P.shape if kind == "grad" else P.shape + (n,)
    return lambda: np.asarray(fn(P)).reshape(shape)


# -- W3 -----------------------------------------------------------------------------------------


def w3_numba(w3, x, k, parallel=False):
    return functools.partial(symdiff.derivative(w3, k, backend="numba", parallel=parallel), x)


def w3_symengine(x, k):
    se, _ = symengine()
    t = se.Symbol("t")
    fn, _ = lambdify(se, [t], [se.diff(se.sin(se.exp(t) * t) / (1 + t**2), t, k)])
    return lambda: np.asarray(fn(x)).reshape(x.shape)


# -- W4 -----------------------------------------------------------------------------------------


def w4_numba(poly, order):
    return symdiff.derivative(poly, order, backend="numba")


def w4_symengine(poly, order):
    se, _ = symengine()
    x = se.Symbol("x")
    fn, _ = lambdify(se, [x], [se.diff(poly(x), x, order)])
    return lambda xf: float(fn(xf)[0])


def threads_note():
    return f"numba threads {numba_threads()}" + (f", NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}"
                                                 if "NUMBA_NUM_THREADS" in os.environ else "")
