"""symdiff side by side with its alternatives, one process run.

    python benchmarks/run.py [--quick] [--only W1,W3] [--json PATH] [--threads N]

Workloads (issue 6): W1 gradient of the batch logistic loss, W2 batched Rosenbrock gradient and
Hessian, W3 k-th derivative of sin(exp(x)*x)/(1+x**2), W4 per-call latency on Python floats, W5 time
from defining a function to its first derivative (cold, warm in-process, warm disk in a new process).

Implementations: hand-written numpy (the reference every ratio divides by), symdiff, sympy.diff +
lambdify with and without cse=True, and PyTorch (eager autograd / torch.func) and JAX (jit) on CPU
when importable. Every result is checked against the reference before it is timed; a wrong result
is reported as a MISMATCH row and not timed. Times are medians of 5 repeats after a warm-up call
(the first call). "setup" is (construction + first call) - fastest call: the compile/trace/lambdify
overhead, measured with an empty SYMDIFF_CACHE_DIR, an empty in-memory cache and an empty SymPy
cache for symdiff and SymPy, after each library has compiled one tiny function (so one-time imports
are not charged to the first workload; W5 measures those). Peak memory is what one call allocates
above what was live before it: growth of the resident set size for everyone (rss) and tracemalloc
for numpy-based code (tm; exact for numpy buffers).

Writes JSON to benchmarks/results/latest.json unless --json says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from threads import threads_from_argv  # noqa: E402  (sets the BLAS/OpenMP variables before numpy loads)

THREADS = threads_from_argv(sys.argv[1:])
if THREADS == "1":  # XLA has no "N threads" switch; one thread is expressible
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import extra_rows as extra
import numpy as np
import sympy as sp
from common import (
    REPO,
    BenchTimeout,
    Stopwatch,
    clear_sympy_cache,
    fmt_time,
    fresh_symdiff_cache,
    markdown_table,
    max_rel_error,
    measure,
    peak_memory,
    time_limit,
    w3,
    w3_exact_derivatives,
)

import symdiff

REF = "numpy (hand-written)"

# -- configuration ------------------------------------------------------------------------------

SIZES = {
    "quick": {"w1_n": 50_000, "w2_b": 20_000, "w3_n": 100_000, "w3_orders": (1, 4, 6), "symbolic_limit": 30.0,
                  "w5_repeats": 5, "w5_alt_processes": False,
                  "torch_w3_max_points": {4: 10_000, 6: 2_000}},
    "full": {"w1_n": 200_000, "w2_b": 100_000, "w3_n": 1_000_000, "w3_orders": (1, 2, 4, 6, 10, 20), "symbolic_limit": 60.0,
                 "w5_repeats": 5, "w5_alt_processes": True,
                 "torch_w3_max_points": {4: 100_000, 6: 10_000}},
}
# nested first-order AD does work exponential in k: torch keeps every graph (memory), so it runs at
# fewer points above k=2 (torch_w3_max_points; ratio taken against numpy at the same size), and
# neither torch nor JAX runs above k=6
NESTED_AD_MAX_ORDER = 6


@dataclass
class Impl:
    """One implementation of one case: ``build()`` returns the callable that is timed on ``args``."""

    name: str
    build: Callable | None = None
    args: tuple = ()
    mem: str | None = "tm"  # "tm": numpy-based (tracemalloc and RSS), "rss": RSS only, None: not measured
    limit: float | None = None  # seconds allowed for build + first call
    cold: bool = False  # build inside an empty symdiff/SymPy cache
    skip: str | None = None
    note: str = ""
    ref: tuple | None = None  # (output, median) of the reference at this implementation's own size


# -- optional backends --------------------------------------------------------------------------


class Backends:
    """PyTorch and JAX, imported on first use; a missing one yields skip notes instead of rows."""

    def __init__(self):
        self._mods, self.notes, self.import_s = {}, {}, {}

    def _load(self, name):
        if name not in self._mods:
            with Stopwatch() as sw:
                try:
                    if name == "torch":
                        import torch

                        torch.set_num_threads(int(THREADS) if THREADS else os.cpu_count() or 1)
                        self._mods[name] = torch
                    else:
                        import jax

                        jax.config.update("jax_enable_x64", True)
                        self._mods[name] = jax
                except Exception as e:  # noqa: BLE001 - not installed or broken: report, never crash
                    self._mods[name] = None
                    self.notes[name] = f"{name} not importable ({type(e).__name__}: {e}); skipped"
            self.import_s[name] = sw.seconds
        return self._mods[name]

    @property
    def torch(self):
        return self._load("torch")

    @property
    def jax(self):
        return self._load("jax")

    def skip(self, name):
        return None if self._load(name) is not None else self.notes[name]


BACKENDS = Backends()


# -- the shared bench step ------------------------------------------------------------------------


def bench(cfg, workload, case, impl, ref=None, tol=1e-10):
    """Build, check against ``ref`` = (output, median), then time and measure one implementation.

    Returns ``(row, output)``; ``ref=None`` marks the reference itself."""
    row = {"workload": workload, "case": case, "impl": impl.name, "note": impl.note, "median_s": None, "ratio": None,
               "setup_s": None, "peak_rss_mb": None, "peak_tm_mb": None, "check": None, "max_rel_err": None, "times": None, "number": None}
    if impl.skip:
        row.update(check="skipped", note=impl.skip)
        return row, None
    ref = impl.ref or ref
    cache = fresh_symdiff_cache() if impl.cold else contextlib.nullcontext()
    try:
        with cache, time_limit(impl.limit), Stopwatch() as sw:
            fn = impl.build()
            out = fn(*impl.args)
    except BenchTimeout:
        row.update(check="timeout", setup_s=None, note=_join(f"setup > {impl.limit:g} s (stopped)", impl.note))
        return row, None
    except Exception as e:  # noqa: BLE001 - any failure of the implementation is a table row
        row.update(check="error", note=_join(f"{type(e).__name__}: {str(e)[:160]}", impl.note))
        return row, None
    first = sw.seconds + getattr(fn, "extra_setup_s", 0.0)
    if ref is not None:
        err, problem = max_rel_error(out, ref[0])
        row["max_rel_err"] = err
        if problem or not err <= tol:
            row.update(check=f"MISMATCH ({problem or f'rel err {err:.1e} > {tol:g}'})", setup_s=first)
            return row, out
        row["check"] = f"ok ({err:.0e})"
    else:
        row["check"] = "reference"
    try:
        median, times, number = measure(fn, impl.args, cfg.repeats)
        row.update(median_s=median, times=times, number=number, first_call_s=first)
        # setup: what the first call cost beyond a call (min, not median: noise must not hide it)
        row["setup_s"] = None if ref is None else max(first - min(times), 0.0)
        row["ratio"] = 1.0 if ref is None else median / ref[1]
        if impl.mem:
            peaks = peak_memory(fn, impl.args, numpy_based=impl.mem == "tm")
            row.update(peak_rss_mb=peaks["rss"], peak_tm_mb=peaks["tm"])
    except Exception as e:  # noqa: BLE001 - as above
        row.update(check="error while timing", note=_join(f"{type(e).__name__}: {str(e)[:160]}", impl.note))
    return row, out


def run_case(cfg, workload, case, reference, impls, tol=1e-10):
    """The reference first, then every implementation checked against it."""
    ref_row, ref_out = bench(cfg, workload, case, reference)
    rows = [ref_row]
    for impl in impls:
        rows.append(bench(cfg, workload, case, impl, (ref_out, ref_row["median_s"]), tol)[0])
    return rows


def warm_up_libraries():
    """One tiny derivative per library before any workload, so that the "setup" columns measure
    compiling the workload rather than one-time imports and initialization (W5 reports those).
    Returns the seconds each library took."""
    seconds = {}
    with Stopwatch() as sw, fresh_symdiff_cache():
        symdiff.derivative(lambda x: x * x, 1)(1.0)
        symdiff.grad(lambda v: np.sum(v * v))(np.ones(3))
        symdiff.hessian(lambda v: np.sum(v[1:] * v[:-1]), signature="(n)->()")(np.ones((2, 3)))
    seconds["symdiff"] = sw.seconds
    with Stopwatch() as sw:
        extra.warm_up()
    seconds["numba and symengine"] = sw.seconds
    with Stopwatch() as sw:
        x = sp.Symbol("x", real=True)
        for cse in (False, True):
            sp.lambdify(x, sp.diff(sp.sin(x) * x, x), "numpy", cse=cse)(np.ones(3))
    seconds["sympy"] = sw.seconds
    if BACKENDS.torch is not None:
        torch = BACKENDS.torch
        with Stopwatch() as sw:
            t = torch.ones(3, dtype=torch.float64, requires_grad=True)
            torch.autograd.grad((t * t).sum(), t)
            torch.func.vmap(torch.func.hessian(lambda v: (v * v).sum()))(torch.ones(2, 3, dtype=torch.float64))
        seconds["torch"] = sw.seconds
    if BACKENDS.jax is not None:
        jax = BACKENDS.jax
        with Stopwatch() as sw:
            jax.jit(jax.vmap(jax.grad(lambda v: v * v)))(np.ones(3)).block_until_ready()
        seconds["jax"] = sw.seconds
    return seconds


def _join(*parts):
    return "; ".join(p for p in parts if p)


def _const(value):
    """A builder for an already-built callable."""
    return lambda: value


# =============================================================================================
# W1: gradient of the batch logistic loss (mean BCE with logits)
# =============================================================================================


def loss(W, b, X, Y):
    z = X @ W + b
    return np.mean(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))


def w1_data(n, d=64, k=8):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    W = 0.1 * rng.standard_normal((d, k))
    b = 0.1 * rng.standard_normal(k)
    Y = (rng.random((n, k)) < 0.5).astype(np.float64)
    return W, b, X, Y


def w1_numpy(W, b, X, Y):
    """Best hand-written gradient: d loss / dz = (sigmoid(z) - y) / z.size, in place on z."""
    z = X @ W
    z += b
    z *= 0.5
    np.tanh(z, out=z)  # sigmoid(z) = (1 + tanh(z / 2)) / 2: no overflow for any z
    z *= 0.5
    z += 0.5
    z -= Y
    z /= z.size
    return X.T @ z, z.sum(axis=0)


def w1_symdiff(data):
    return functools.partial(symdiff.grad(loss, argnums=(0, 1)), *data)


def w1_sympy(data, cse):
    """sympy on the hand-scalarized loss l(z, y); the chain rule through z = XW + b by hand."""
    z, y = sp.symbols("z y", real=True)
    dl = sp.lambdify((z, y), sp.diff(sp.Max(z, 0) - z * y + sp.log(1 + sp.exp(-sp.Abs(z))), z), "numpy", cse=cse)

    def grad(W, b, X, Y):
        dz = dl(X @ W + b, Y) / (X.shape[0] * W.shape[1])
        return X.T @ dz, dz.sum(axis=0)

    return functools.partial(grad, *data)


def w1_torch(data):
    torch = BACKENDS.torch
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    W, b, X, Y = (torch.from_numpy(a) for a in data)  # zero-copy views

    def grad():
        Wt, bt = W.detach().requires_grad_(), b.detach().requires_grad_()
        gW, gb = torch.autograd.grad(bce(X @ Wt + bt, Y), (Wt, bt))
        return gW.numpy(), gb.numpy()

    return grad


def w1_jax(data):
    jax = BACKENDS.jax
    jnp = jax.numpy

    def loss_j(W, b, X, Y):
        z = X @ W + b
        return jnp.mean(jnp.maximum(z, 0) - z * Y + jnp.log1p(jnp.exp(-jnp.abs(z))))

    g = jax.jit(jax.grad(loss_j, argnums=(0, 1)))
    args = [jax.device_put(a) for a in data]

    def grad():
        gW, gb = g(*args)
        return np.asarray(gW), np.asarray(gb)

    return grad


def workload_w1(cfg):
    data = w1_data(cfg.w1_n)
    z_mb = cfg.w1_n * 8 * 8 / 2**20
    impls = [
        Impl("symdiff", lambda: w1_symdiff(data), cold=True, limit=cfg.symbolic_limit),
        Impl("symdiff numba", lambda: extra.w1_numba(loss, data), cold=True, limit=cfg.symbolic_limit,
             skip=extra.NUMBA_SKIP, note='backend="numba" (a sum over rows: one compiled loop over row blocks)'),
        Impl("SymEngine diff + Lambdify", lambda: extra.w1_symengine(data), cold=True, skip=extra.symengine()[1],
             note="hand-scalarized l(z, y); LLVM where available"),
        Impl("sympy.diff + lambdify", lambda: w1_sympy(data, False), cold=True, note="hand-scalarized l(z, y)"),
        Impl("sympy.diff + lambdify(cse=True)", lambda: w1_sympy(data, True), cold=True, note="hand-scalarized l(z, y)"),
        Impl("PyTorch eager autograd", lambda: w1_torch(data), mem="rss", skip=BACKENDS.skip("torch"),
             note="F.binary_cross_entropy_with_logits"),
        Impl("JAX jit(grad)", lambda: w1_jax(data), mem="rss", skip=BACKENDS.skip("jax"),
             note="inputs device_put once in setup"),
    ]
    rows = run_case(cfg, "W1", "grad W, b", Impl(REF, _const(functools.partial(w1_numpy, *data))), impls)
    title = (f"W1: gradient of mean BCE-with-logits loss, X {cfg.w1_n}x64, W 64x8, b 8, Y {cfg.w1_n}x8 float64 "
             f"(Z = {z_mb:.1f} MB; X = {cfg.w1_n * 64 * 8 / 2**20:.0f} MB)")
    return title, rows


# =============================================================================================
# W2: batched gradient and Hessian of the 8-variable Rosenbrock function
# =============================================================================================


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_grad_numpy(P):
    """Analytic gradient, in place on one temporary of shape (B, n - 1)."""
    x0, x1 = P[:, :-1], P[:, 1:]
    g = np.empty_like(P)
    g[:, 0] = 0.0
    t = x0 * x0
    np.subtract(x1, t, out=t)  # t = x_{i+1} - x_i^2
    np.multiply(t, 200.0, out=g[:, 1:])  # d/dx_{i+1}: 200 t
    t *= x0
    t *= -400.0
    t += 2.0 * x0
    t -= 2.0
    g[:, :-1] += t  # d/dx_i: -400 x_i t - 2 (1 - x_i)
    return g


def rosen_hessian_numpy(P):
    """Tridiagonal: only the diagonal and the two off-diagonals are written (strided views, no fancy indexing)."""
    B, n = P.shape
    x0, x1 = P[:, :-1], P[:, 1:]
    H = np.zeros((B, n, n))
    flat = H.reshape(B, n * n)
    diag = flat[:, :: n + 1]  # (i, i)
    diag[:, :-1] = 1200.0 * x0**2 - 400.0 * x1 + 2.0
    diag[:, 1:] += 200.0
    flat[:, 1 :: n + 1] = flat[:, n :: n + 1] = -400.0 * x0  # (i, i + 1) and (i + 1, i)
    return H


def w2_symdiff(P, kind):
    transform = symdiff.grad if kind == "grad" else symdiff.hessian
    return functools.partial(transform(rosen, signature="(n)->()"), P)


def w2_sympy(P, kind, cse):
    n = P.shape[1]
    xs = sp.symbols(f"x0:{n}", real=True)
    f = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1))
    entries = [sp.diff(f, v) for v in xs]
    if kind == "hessian":
        entries = [sp.diff(g, v) for g in entries for v in xs]
    fn = sp.lambdify(xs, entries, "numpy", cse=cse)
    shape = P.shape if kind == "grad" else P.shape + (n,)

    def call():
        out = np.empty(shape)
        flat = out.reshape(P.shape[0], -1)
        for j, v in enumerate(fn(*P.T)):
            flat[:, j] = v  # constant entries (0, 200) broadcast
        return out

    return call


def w2_torch(P, kind):
    torch = BACKENDS.torch
    from torch.func import grad, hessian, vmap

    def rosen_t(x):
        return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    fn = vmap(grad(rosen_t) if kind == "grad" else hessian(rosen_t))
    Pt = torch.from_numpy(P)
    return lambda: fn(Pt).numpy()


def w2_jax(P, kind):
    jax = BACKENDS.jax
    jnp = jax.numpy

    def rosen_j(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    fn = jax.jit(jax.vmap(jax.grad(rosen_j) if kind == "grad" else jax.hessian(rosen_j)))
    Pj = jax.device_put(P)
    return lambda: np.asarray(fn(Pj))


def workload_w2(cfg):
    P = np.random.default_rng(1).uniform(-2, 2, size=(cfg.w2_b, 8))
    rows = []
    for kind, ref in (("grad", rosen_grad_numpy), ("hessian", rosen_hessian_numpy)):
        api = "grad" if kind == "grad" else "hessian"
        impls = [
            Impl("symdiff", functools.partial(w2_symdiff, P, kind), cold=True, limit=cfg.symbolic_limit,
                 note=f'symdiff.{api}(rosen, signature="(n)->()")'),
            Impl("symdiff numba", functools.partial(extra.w2_numba, rosen, P, kind), cold=True,
                 limit=cfg.symbolic_limit, skip=extra.NUMBA_SKIP, note='backend="numba"'),
            Impl("symdiff numba parallel", functools.partial(extra.w2_numba, rosen, P, kind, True), cold=True,
                 limit=cfg.symbolic_limit, skip=extra.parallel_skip(THREADS), note=extra.threads_note()),
            Impl("SymEngine diff + Lambdify", functools.partial(extra.w2_symengine, P, kind), cold=True,
                 skip=extra.symengine()[1], note="LLVM where available"),
            Impl("sympy.diff + lambdify", functools.partial(w2_sympy, P, kind, False), cold=True),
            Impl("sympy.diff + lambdify(cse=True)", functools.partial(w2_sympy, P, kind, True), cold=True),
            Impl("PyTorch torch.func", functools.partial(w2_torch, P, kind), mem="rss", skip=BACKENDS.skip("torch"),
                 note=f"vmap({'grad' if kind == 'grad' else 'hessian'})"),
            Impl("JAX jit", functools.partial(w2_jax, P, kind), mem="rss", skip=BACKENDS.skip("jax"),
                 note=f"jit(vmap({'grad' if kind == 'grad' else 'hessian'}))"),
        ]
        rows += run_case(cfg, "W2", kind, Impl(REF, _const(functools.partial(ref, P))), impls)
    rows += _w2_combined(rows)
    title = f"W2: gradient and Hessian of the 8-variable Rosenbrock function at {cfg.w2_b} points (B x 8 float64)"
    return title, rows


def _w2_combined(rows):
    """grad + hessian: sums of the two medians and setups (what issues 3 and 6 quote as one ratio)."""
    by = {}
    for r in rows:
        by.setdefault(r["impl"], {})[r["case"]] = r
    ref_total = by[REF]["grad"]["median_s"] + by[REF]["hessian"]["median_s"]
    out = []
    for name, cases in by.items():
        g, h = cases.get("grad"), cases.get("hessian")
        if not (g and h and g["median_s"] is not None and h["median_s"] is not None):
            continue
        total = g["median_s"] + h["median_s"]
        peaks = {m: max((r[m] for r in (g, h) if r[m] is not None), default=None) for m in ("peak_rss_mb", "peak_tm_mb")}
        setup = None if name == REF else (g["setup_s"] or 0) + (h["setup_s"] or 0)
        out.append(dict(workload="W2", case="grad + hessian", impl=name, median_s=total, ratio=total / ref_total,
                        setup_s=setup, **peaks, check="(sum of the rows above)", note="", max_rel_err=None,
                        times=None, number=None))
    return out


# =============================================================================================
# W3: k-th derivative of sin(exp(x)*x)/(1+x**2) at many points
# =============================================================================================


def w3_taylor(x, k):
    """Taylor coefficients q_j = f^(j)(x) / j!, j = 0..k, of f(x + t), by univariate Taylor arithmetic.

    Every step is a standard recurrence (exp, product, sin/cos pair, division by a polynomial), so the
    cost is O(k^2) array operations: the hand-written way to get a high derivative in numpy."""
    j = np.arange(k + 1).reshape((k + 1,) + (1,) * x.ndim)
    e = np.exp(x) / np.array([math.factorial(i) for i in range(k + 1)], dtype=float).reshape(j.shape)
    w = e * x  # w = exp(x + t) * (x + t): w_j = x e_j + e_{j-1}
    w[1:] += e[:-1]
    jw = j * w
    s, c = np.empty_like(w), np.empty_like(w)
    s[0], c[0] = np.sin(w[0]), np.cos(w[0])
    for m in range(1, k + 1):  # s' = c w', c' = -s w'
        s[m] = np.einsum("i...,i...->...", jw[1 : m + 1], c[m - 1 :: -1]) / m
        c[m] = -np.einsum("i...,i...->...", jw[1 : m + 1], s[m - 1 :: -1]) / m
    d0, d1 = 1 + x**2, 2 * x  # denominator 1 + (x + t)^2 = d0 + d1 t + t^2
    q = np.empty_like(w)
    for m in range(k + 1):
        acc = s[m].copy()
        if m >= 1:
            acc -= d1 * q[m - 1]
        if m >= 2:
            acc -= q[m - 2]
        q[m] = acc / d0
    return q


def w3_numpy(x, k):
    """Hand-written k-th derivative: closed forms for k = 1, 2, the Taylor recurrence above otherwise."""
    if k in (1, 2):  # f = s / d with s = sin(w), w = x e^x, d = 1 + x^2
        ex = np.exp(x)
        w = ex * x
        s, c = np.sin(w), np.cos(w)
        r = 1 / (1 + x**2)
        w1 = ex + w  # w'
        if k == 1:
            return r * (c * w1 - 2 * x * r * s)
        w2 = w1 + ex  # w''
        cw1 = c * w1
        return r * (c * w2 - s * w1 * w1 - r * (4 * x * cw1 + 2 * s) + 8 * (x * r) ** 2 * s)
    return math.factorial(k) * w3_taylor(x, k)[k]


def check_w3_reference(k, points=(0.0, 0.13, 0.5, 0.77, 1.0)):
    """The reference against mpmath's high-precision numerical derivative at a few points."""
    exact = w3_exact_derivatives(points, k)
    got = w3_numpy(np.array(points), k)
    return float(np.max(np.abs(got - exact) / np.maximum(np.abs(exact), 1e-300)))


def w3_symdiff(x, k):
    return functools.partial(symdiff.derivative(w3, k), x)


def w3_sympy(x, k, cse, memo):
    """lambdify of sympy.diff(f, (x, k)); the derivative is shared by the two lambdify rows of one k."""
    if k not in memo:
        memo[k] = None  # a timeout leaves None: the next row reports it without retrying
        clear_sympy_cache()
        t = sp.Symbol("t", real=True)
        with Stopwatch() as sw:
            expr = sp.diff(sp.sin(sp.exp(t) * t) / (1 + t**2), (t, k))
        memo[k] = (t, expr, sw.seconds)
        shared = 0.0
    elif memo[k] is None:
        raise BenchTimeout("sympy.diff timed out in the row above")
    else:
        shared = memo[k][2]
    t, expr, _ = memo[k]
    fn = functools.partial(sp.lambdify(t, expr, "numpy", cse=cse), x)
    fn.extra_setup_s = shared  # this row reuses the derivative: charge its time here too
    return fn


def w3_torch(x, k):
    torch = BACKENDS.torch
    xt = torch.from_numpy(x)

    def dk():
        t = xt.detach().requires_grad_()
        y = torch.sin(torch.exp(t) * t) / (1 + t**2)
        for i in range(k):
            (y,) = torch.autograd.grad(y.sum(), t, create_graph=i < k - 1)
        return y.detach().numpy()

    return dk


def w3_jax(x, k):
    jax = BACKENDS.jax
    jnp = jax.numpy

    def g(t):
        return jnp.sin(jnp.exp(t) * t) / (1 + t**2)

    for _ in range(k):
        g = jax.grad(g)
    fn = jax.jit(jax.vmap(g))
    xj = jax.device_put(x)
    return lambda: np.asarray(fn(xj))


def workload_w3(cfg):
    n = cfg.w3_n
    x = np.linspace(0.0, 1.0, n)
    refs = {}

    def ref_at(points, k):
        """(output, median) of the reference at another number of points, for rows run smaller."""
        if (points, k) not in refs:
            xs = np.linspace(0.0, 1.0, points)
            fn = functools.partial(w3_numpy, xs, k)
            refs[points, k] = (fn(), measure(fn, (), cfg.repeats)[0])  # fn() was the warm-up
        return refs[points, k]

    rows, sympy_memo, notes = [], {}, []
    for k in cfg.w3_orders:
        err = check_w3_reference(k)
        ref_note = ("closed form" if k <= 2 else "Taylor recurrence, O(k^2) array ops") + f"; vs mpmath {err:.0e}"
        if err > 1e-9:
            notes.append(f"k={k}: the numpy reference differs from mpmath by {err:.1e}")
        nested_skip = (f"nested first-order AD is exponential in k: not run above k={NESTED_AD_MAX_ORDER}"
                       if k > NESTED_AD_MAX_ORDER else None)
        t_points = min(n, cfg.torch_w3_max_points.get(k, n))
        numba_skip = (f"not run above k={NESTED_AD_MAX_ORDER}: LLVM compile time of the fused loop grows with the body"
                      if k > NESTED_AD_MAX_ORDER else None)
        impls = [
            Impl("symdiff", functools.partial(w3_symdiff, x, k), cold=True, limit=cfg.symbolic_limit,
                 note=f"symdiff.derivative(f, {k})"),
            Impl("symdiff numba", functools.partial(extra.w3_numba, w3, x, k), cold=True, limit=cfg.symbolic_limit,
                 skip=extra.NUMBA_SKIP or numba_skip, note='backend="numba"'),
            Impl("symdiff numba parallel", functools.partial(extra.w3_numba, w3, x, k, True), cold=True,
                 limit=cfg.symbolic_limit, skip=extra.parallel_skip(THREADS) or numba_skip, note=extra.threads_note()),
            Impl("SymEngine diff + Lambdify", functools.partial(extra.w3_symengine, x, k), cold=True,
                 limit=cfg.symbolic_limit, skip=extra.symengine()[1], note="LLVM where available"),
            Impl("sympy.diff + lambdify(cse=True)", functools.partial(w3_sympy, x, k, True, sympy_memo), cold=True,
                 limit=cfg.symbolic_limit),
            Impl("sympy.diff + lambdify", functools.partial(w3_sympy, x, k, False, sympy_memo), cold=True,
                 limit=cfg.symbolic_limit, note="sympy.diff time shared with the row above"),
            Impl("PyTorch nested autograd.grad", functools.partial(w3_torch, x[:0] if nested_skip else
                 np.linspace(0.0, 1.0, t_points), k), mem="rss",
                 skip=BACKENDS.skip("torch") or nested_skip, limit=cfg.symbolic_limit,
                 ref=None if nested_skip or t_points == n else ref_at(t_points, k),
                 note="" if t_points == n else f"at {t_points} points (its graphs grow exponentially), "
                 "ratio vs numpy at that size"),
            Impl("JAX jit(vmap(grad^k))", functools.partial(w3_jax, x, k), mem="rss",
                 skip=BACKENDS.skip("jax") or nested_skip, limit=cfg.symbolic_limit),
        ]
        rows += run_case(cfg, "W3", f"k={k}", Impl(REF, _const(functools.partial(w3_numpy, x, k)), note=ref_note),
                         impls, tol=1e-8)
    title = f"W3: k-th derivative of sin(exp(x)*x)/(1+x**2) at {n} points in [0, 1] (float64)"
    return title, rows, notes


# =============================================================================================
# W4: per-call latency of compiled derivatives of a scalar polynomial on a Python float
# =============================================================================================


def poly(x):
    return 9 * x**4 + 2 * x**3 + 3 * x**2 + 6 * x + 1


def poly_d1(x):
    return 36 * x**3 + 6 * x**2 + 6 * x + 6


def poly_d2(x):
    return 108 * x**2 + 12 * x + 6


def w4_symdiff_derivative(order):
    return symdiff.derivative(poly, order)


def w4_symdiff_grad(order):
    g = symdiff.grad(poly)
    return g if order == 1 else symdiff.grad(g)


def w4_sympy(order, cse):
    x = sp.Symbol("x", real=True)
    return sp.lambdify(x, sp.diff(poly(x), (x, order)), "numpy", cse=cse)


def w4_torch(order):
    torch = BACKENDS.torch

    def d(xf):
        x = torch.tensor(xf, dtype=torch.float64, requires_grad=True)
        y = poly(x)
        for i in range(order):
            (y,) = torch.autograd.grad(y, x, create_graph=i < order - 1)
        return y.item()

    return d


def w4_jax(order):
    jax = BACKENDS.jax
    g = poly
    for _ in range(order):
        g = jax.grad(g)
    g = jax.jit(g)
    return lambda xf: float(g(xf))


def workload_w4(cfg):
    rows = []
    for order, ref, expected in ((1, poly_d1, 330.0), (2, poly_d2, 462.0)):
        assert ref(2.0) == expected  # the documents' numbers (a sanity check of the reference, not timed)
        impls = [
            Impl("symdiff derivative", functools.partial(w4_symdiff_derivative, order), args=(2.0,), mem=None,
                 cold=True, note=f"symdiff.derivative(poly, {order})"),
            Impl("symdiff grad", functools.partial(w4_symdiff_grad, order), args=(2.0,), mem=None, cold=True,
                 note="grad(poly)" if order == 1 else "grad(grad(poly))"),
            Impl("symdiff numba derivative", functools.partial(extra.w4_numba, poly, order), args=(2.0,), mem=None,
                 cold=True, skip=extra.NUMBA_SKIP, note='backend="numba"'),
            Impl("SymEngine diff + Lambdify", functools.partial(extra.w4_symengine, poly, order), args=(2.0,),
                 mem=None, cold=True, skip=extra.symengine()[1], note="float() of the result"),
            Impl("sympy.diff + lambdify", functools.partial(w4_sympy, order, False), args=(2.0,), mem=None, cold=True),
            Impl("sympy.diff + lambdify(cse=True)", functools.partial(w4_sympy, order, True), args=(2.0,), mem=None,
                 cold=True),
            Impl("PyTorch eager autograd", functools.partial(w4_torch, order), args=(2.0,), mem=None,
                 skip=BACKENDS.skip("torch"), note="tensor from the float, .item() back"),
            Impl("JAX jit(grad)", functools.partial(w4_jax, order), args=(2.0,), mem=None, skip=BACKENDS.skip("jax"),
                 note="float() of the result"),
        ]
        case_rows = run_case(cfg, "W4", f"d^{order}/dx^{order} at 2.0 (= {expected:g})",
                             Impl("hand-written Python", _const(ref), args=(2.0,), mem=None), impls, tol=1e-12)
        for r in case_rows:  # Python float in, Python float out is part of the contract
            if r["impl"] in ("symdiff derivative", "symdiff grad") and r["median_s"] is not None:
                out = (w4_symdiff_derivative if "derivative" in r["impl"] else w4_symdiff_grad)(order)(2.0)
                r["note"] = _join(r["note"], f"returns {type(out).__name__}")
        rows += case_rows
    return "W4: per-call latency of compiled derivatives of 9x^4 + 2x^3 + 3x^2 + 6x + 1 at x = 2.0 (Python float)", rows


# =============================================================================================
# W5: from defining a function to its first derivative result
# =============================================================================================

W5_CASES = {
    # name: (source defining the function and its data, expression giving the first result)
    "poly, derivative(order=1) at 2.0": (
        "def poly(x):\n    return 9 * x**4 + 2 * x**3 + 3 * x**2 + 6 * x + 1\n",
        "symdiff.derivative(poly, 1)(2.0)",
    ),
    "W1 loss, grad(argnums=(0, 1)), N=1000": (
        (
            "def loss(W, b, X, Y):\n"
            "    z = X @ W + b\n"
            "    return np.mean(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))\n"
            "rng = np.random.default_rng(0)\n"
            "X, W, b = rng.standard_normal((1000, 64)), rng.standard_normal((64, 8)), rng.standard_normal(8)\n"
            "Y = (rng.random((1000, 8)) < 0.5).astype(np.float64)\n"
        ),
        "symdiff.grad(loss, argnums=(0, 1))(W, b, X, Y)",
    ),
}

# the alternatives, for the polynomial: (imports, definitions, first-result expression)
W5_ALTERNATIVES = {
    "sympy.diff + lambdify(cse=True)": (
        "import sympy as sp", "x = sp.Symbol('x', real=True)",
        "sp.lambdify(x, sp.diff(9 * x**4 + 2 * x**3 + 3 * x**2 + 6 * x + 1, x), 'numpy', cse=True)(2.0)",
    ),
    "JAX jit(grad)": (
        "import jax\njax.config.update('jax_enable_x64', True)",
        "def poly(x):\n    return 9 * x**4 + 2 * x**3 + 3 * x**2 + 6 * x + 1\n",
        "float(jax.jit(jax.grad(poly))(2.0))",
    ),
    "PyTorch eager autograd": (
        "import torch",
        "def poly(x):\n    return 9 * x**4 + 2 * x**3 + 3 * x**2 + 6 * x + 1\n",
        "torch.autograd.grad(poly(t := torch.tensor(2.0, dtype=torch.float64, requires_grad=True)), t)[0].item()",
    ),
}

CHILD = """\
import json, sys, time
_clock0 = time.perf_counter()
import numpy as np
_clock1 = time.perf_counter()
{imports}
_clock2 = time.perf_counter()
{define}
_clock3 = time.perf_counter()
result = {call}
_clock4 = time.perf_counter()
leaves = result if isinstance(result, tuple) else (result,)
print(json.dumps(dict(import_numpy=_clock1 - _clock0, import_lib=_clock2 - _clock1, first_result=_clock4 - _clock3,
                      checksum=float(sum(np.sum(np.asarray(r)) for r in leaves)),
                      sympy_loaded_by_import=SYMPY_AT_IMPORT, sympy_loaded_at_end="sympy" in sys.modules)))
"""


def _child_source(imports, define, call):
    imports = imports + "\nSYMPY_AT_IMPORT = 'sympy' in sys.modules"
    return CHILD.format(imports=imports, define=define, call=call)


def _run_child(source, cache_dir=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    if cache_dir is not None:
        env["SYMDIFF_CACHE_DIR"] = cache_dir
    with Stopwatch() as sw:
        proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = sw.seconds
    return out


def _checksum(result):
    leaves = result if isinstance(result, tuple) else (result,)
    return float(sum(np.sum(np.asarray(r)) for r in leaves))


def _w5_row(case, impl, seconds, note="", check="ok"):
    median = float(np.median(seconds)) if seconds else None
    return {"workload": "W5", "case": case, "impl": impl, "median_s": median, "ratio": None, "setup_s": None, "peak_rss_mb": None,
                "peak_tm_mb": None, "check": check, "note": note, "max_rel_err": None, "times": list(seconds) if seconds else None,
                "number": 1}


def _first_result_in_process(define, call, namespace_extra=None):
    """Seconds from a fresh definition of the function to the first result, and the result."""
    ns = {"np": np, "symdiff": symdiff, "sp": sp, **(namespace_extra or {})}
    exec(define, ns)  # noqa: S102 - the benchmark's own source text, shared with the child processes
    with Stopwatch() as sw:
        result = eval(call, ns)
    return sw.seconds, result


def _cache_files(cache_dir):
    """Compiled entries and index (alias) files in a cache directory."""
    entries = [f for f in os.listdir(cache_dir) if f.endswith(".py")]
    index = os.path.join(cache_dir, "index")
    return len(entries), len(os.listdir(index)) if os.path.isdir(index) else 0


def w5_symdiff(cfg, case, define, call):
    """In-process cold and warm; then the same script run as new processes: once on an empty cache
    directory (it fills the cache, as a user's first run would), then repeatedly on the warm one.

    The new processes must all run the same script: symdiff's persistent alias digests the function's
    code object, line numbers included, so a process that defines the function differently (like
    this one, through exec) finds the entry only by tracing."""
    rows, cold, warm, expected = [], [], [], None
    for _ in range(cfg.repeats):
        with fresh_symdiff_cache():
            seconds, result = _first_result_in_process(define, call)
            cold.append(seconds)
            expected = _checksum(result)
            warm.append(_first_result_in_process(define, call)[0])  # new function object, memory cache hit
    rows.append(_w5_row(case + ": in-process, cold (empty cache dir, new Transform)", "symdiff", cold))
    rows.append(_w5_row(case + ": in-process, warm (new Transform, memory cache)", "symdiff", warm))
    child_src = _child_source("import symdiff", define, call)
    with fresh_symdiff_cache() as cache_dir:
        first = _run_child(child_src, cache_dir)
        children = []
        for _ in range(cfg.w5_repeats):
            before = _cache_files(cache_dir)
            children.append(_run_child(child_src, cache_dir))
            after = _cache_files(cache_dir)
            children[-1].update(disk_hit=after[0] == before[0], alias_hit=after[1] == before[1])
    results = [first] + children
    bad = [c["checksum"] for c in results if not np.isclose(c["checksum"], expected, rtol=1e-12)]
    check = "ok" if not bad else f"MISMATCH (checksum {bad[0]} vs {expected})"
    rows.append(_w5_row(case + ": new process, empty cache dir (after import)", "symdiff", [first["first_result"]],
                        check=check, note=f"n=1 (fills the cache); whole process {fmt_time(first['wall'])} wall"))
    n = len(children)
    hit = (f"disk hit in {sum(c['disk_hit'] for c in children)}/{n}, "
           f"alias hit (no trace) in {sum(c['alias_hit'] for c in children)}/{n}")
    sympy_used = sum(c["sympy_loaded_at_end"] for c in children)
    rows.append(_w5_row(
        case + ": new process, warm disk cache (after import)", "symdiff", [c["first_result"] for c in children],
        check=check,
        note=_join(f"whole process {fmt_time(float(np.median([c['wall'] for c in children])))} wall", hit,
                   f"sympy imported in {sympy_used}/{n}")))
    return rows, results


def w5_alternative(cfg, name, imports, define, call, in_processes):
    """Cold and warm in-process first results (the library already imported), and a new process."""
    rows = []
    ns = {}
    exec(imports, ns)  # noqa: S102 - our own text; already imported by W1-W4: in-process rows exclude imports
    samples = []
    for _ in range(cfg.repeats):
        clear_sympy_cache()
        samples.append(_first_result_in_process(define, call, ns)[0])
    rows.append(_w5_row("poly, derivative(order=1) at 2.0: first call in-process (new function)", name, samples,
                        note=f"first of {len(samples)}: {fmt_time(samples[0])}"))
    if in_processes:
        src = _child_source(imports, define, call)
        children = [_run_child(src) for _ in range(cfg.w5_repeats)]
        rows.append(_w5_row("poly, derivative(order=1) at 2.0: new process (after import)", name,
                            [c["first_result"] for c in children], note="no disk cache"))
        rows.append(_w5_row("import in a new process (numpy already imported)", name,
                            [c["import_lib"] for c in children]))
    else:
        rows.append(_w5_row("poly, derivative(order=1) at 2.0: new process (after import)", name, [],
                            check="skipped", note="full run only (--quick skips alternative subprocesses)"))
    return rows


def workload_w5(cfg):
    rows, children = [], []
    for case, (define, call) in W5_CASES.items():
        case_rows, case_children = w5_symdiff(cfg, case, define, call)
        rows += case_rows
        children += case_children
    sympy_at_import = any(c["sympy_loaded_by_import"] for c in children)
    rows.append(_w5_row("import in a new process (numpy already imported)", "symdiff",
                        [c["import_lib"] for c in children],
                        note=_join(f"import numpy before it: {fmt_time(float(np.median([c['import_numpy'] for c in children])))}",
                                   f"sympy imported by `import symdiff`: {'yes' if sympy_at_import else 'no'}",
                                   f"n={len(children)}")))
    for name, (imports, define, call) in W5_ALTERNATIVES.items():
        backend = {"JAX": "jax", "PyTorch": "torch"}.get(name.split()[0])
        if backend and BACKENDS.skip(backend):
            rows.append(_w5_row("poly, derivative(order=1) at 2.0", name, [], check="skipped",
                                note=BACKENDS.skip(backend)))
            continue
        try:
            rows += w5_alternative(cfg, name, imports, define, call, cfg.w5_alt_processes)
        except Exception as e:  # noqa: BLE001 - a failing alternative is a table row
            rows.append(_w5_row("poly, derivative(order=1) at 2.0", name, [], check="error",
                                note=f"{type(e).__name__}: {str(e)[:160]}"))
    return "W5: from defining a function to its first derivative result", rows


# =============================================================================================
# report
# =============================================================================================

WORKLOADS = {"W1": workload_w1, "W2": workload_w2, "W3": workload_w3, "W4": workload_w4, "W5": workload_w5}


def _peak(row):
    rss, tm = row.get("peak_rss_mb"), row.get("peak_tm_mb")
    if rss is None and tm is None:
        return "—"
    return " / ".join("—" if v is None else f"{v:.1f}" for v in (rss, tm))


def render_table(rows, workload):
    if workload == "W5":
        header = ["case", "implementation", "median", "check", "note"]
        body = [[r["case"], r["impl"], fmt_time(r["median_s"]), r["check"], r["note"]] for r in rows]
        return markdown_table(header, body)
    header = ["case", "implementation", "median", "× numpy", "setup", "peak MB rss / tm", "check", "note"]
    body = []
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "—"
        setup = fmt_time(r["setup_s"]) if r.get("setup_s") is not None else "—"
        body.append([r["case"], r["impl"], fmt_time(r["median_s"]), ratio, setup, _peak(r), r["check"], r["note"]])
    return markdown_table(header, body)


def machine_info():
    info = {
        "platform": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "numpy": np.__version__, "sympy": sp.__version__, "symdiff": symdiff.__version__,
    }
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), None)
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                            text=True, check=False).stdout.strip() or None
    except OSError:
        pass
    for name in ("torch", "jax"):
        mod = BACKENDS._mods.get(name)
        info[name] = getattr(mod, "__version__", None) if mod is not None else BACKENDS.notes.get(name, "not loaded")
    if BACKENDS._mods.get("torch") is not None:
        info["torch_threads"] = BACKENDS.torch.get_num_threads()
    se, _ = extra.symengine()
    info["symengine"] = getattr(se, "__version__", None)
    info["numba_threads"] = extra.numba_threads()
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer orders (under 2 minutes)")
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W3")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"), help="where to write JSON")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for BLAS, PyTorch and XLA (default: libraries' defaults, all cores; "
                        "XLA can only be limited to 1)")
    args = parser.parse_args(argv)
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()] or list(WORKLOADS)
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    mode = "quick" if args.quick else "full"
    cfg = SimpleNamespace(mode=mode, repeats=5, **SIZES[mode])

    run_cache = tempfile.mkdtemp(prefix="symdiff-bench-run-")  # never the user's cache
    os.environ["SYMDIFF_CACHE_DIR"] = run_cache
    started = time.perf_counter()
    load_start = os.getloadavg()
    print(f"# symdiff benchmarks ({mode} run)\n")
    print(f"Machine: {platform.platform()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
          f"numpy {np.__version__}, sympy {sp.__version__}; threads: {args.threads or 'library defaults'}; "
          f"load average at start {load_start[0]:.2f}.", flush=True)
    if load_start[0] > 0.5 * (os.cpu_count() or 1):
        print("Other processes are using the CPUs: expect noisy times.", flush=True)
    print()

    warm_up = warm_up_libraries()
    print("One-time library initialization (a tiny derivative each, excluded from the setup columns): "
          + ", ".join(f"{k} {fmt_time(v)}" for k, v in warm_up.items()) + ".\n", flush=True)
    results, all_rows = [], []
    for w in only:
        with Stopwatch() as sw:
            title, rows, *rest = WORKLOADS[w](cfg)
        notes = rest[0] if rest else []
        all_rows += rows
        results.append({"workload": w, "title": title, "seconds": sw.seconds, "notes": notes})
        print(f"## {title}\n\n{render_table(rows, w)}\n")
        for n in notes:
            print(f"- {n}")
        print(f"({w} took {sw.seconds:.1f} s)\n", flush=True)

    total = time.perf_counter() - started
    info = machine_info()
    info.update(load_average_start=load_start, load_average_end=os.getloadavg(), threads=args.threads)
    skipped = [BACKENDS.notes[k] for k in BACKENDS.notes]
    print(f"Versions: torch {info['torch']}, jax {info['jax']}; torch threads {info.get('torch_threads', '—')}. "
          f"Backend import times: " + ", ".join(f"{k} {v:.1f} s" for k, v in BACKENDS.import_s.items()) + ".")
    for s in skipped:
        print(f"- {s}")
    print(f"Total {total:.1f} s.")

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    payload = {
        "meta": {"mode": mode, "only": only, "date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "total_seconds": total, "repeats": cfg.repeats, "sizes": SIZES[mode],
                  "machine": info, "backend_import_seconds": BACKENDS.import_s, "warm_up_seconds": warm_up},
        "workloads": results, "rows": all_rows,
    }
    with open(args.json, "w") as fh:
        json.dump(payload, fh, indent=1, default=str)
    print(f"JSON: {os.path.relpath(args.json)}")


if __name__ == "__main__":
    main()
