"""Chunked evaluation of long elementwise numpy functions (issue 16 item 3), side by side in one run.

    python benchmarks/chunking.py                  # W3 k = 1, 2, 4, 6 at 1e6 points
    python benchmarks/chunking.py --n 2e5 --orders 4

For each order k of the W3 derivative, four ways to compute it on the same points:

* ``hand``: the hand-written numpy of benchmarks/run.py (closed forms for k <= 2, the Taylor
  recurrence above): every ratio divides by it;
* ``plain``: symdiff's body over the whole array (the module generated with chunking off);
* ``slices``: the chunk loop calling the function on slices of 8192 points (each operation on a
  slice allocates its result);
* ``buffers``: the chunk loop evaluating the body with ``out=`` into buffers made once (the default);
* ``exp+sin+cos``: just the three transcendental calls every one of them makes on the whole array
  (without AVX-512 numpy's float64 sin/cos are not vectorized): a floor for any numpy evaluation.

``calls``: ufunc calls per slice in the ``buffers`` loop (each costs ~1 us of dispatch on top of its
8192 points).

Time is CPU time of the process (``time.process_time``, best of ``--repeats``): the machine these
run on is shared, and wall time there measures the other jobs. Memory is tracemalloc's peak during
one call above what was live before it, in units of the input's size (the returned array counts 1).
Each generated variant is checked to give bit-identical numbers to ``plain``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import tracemalloc
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numpy as np  # noqa: E402
from common import fresh_symdiff_cache, markdown_table, w3  # noqa: E402

import symdiff  # noqa: E402
from symdiff import chunk_buffers, chunking  # noqa: E402

VARIANTS = {  # name -> what is switched off while its module is generated
    "plain": lambda: mock.patch.object(chunking, "MIN_OPS", 10**9),
    "slices": lambda: mock.patch.object(chunk_buffers, "model", lambda *a, **k: None),
    "buffers": contextlib.nullcontext,
}


def generated(k, x, variant):
    """The k-th derivative's generated function, from source generated with ``variant``."""
    with VARIANTS[variant](), fresh_symdiff_cache():
        source = symdiff.derivative(lambda t: w3(t), k).source(x)
    namespace: dict = {}
    exec(compile(source, f"<w3 k={k} {variant}>", "exec"), namespace)
    fn = next(v for n, v in namespace.items() if n.startswith("derivative_"))
    fn.calls = source.count(", out=")  # ufunc calls per slice of the buffers loop
    return fn


def transcendentals(x, _out={}):
    """exp, sin and cos over the whole array, as every evaluation of W3 makes them (into arrays
    made on the first call: the time of the three functions, not of fresh pages)."""
    w, s = _out.setdefault(x.size, (np.empty_like(x), np.empty_like(x)))
    np.exp(x, out=w)
    np.sin(w, out=s)
    return np.cos(w, out=s)


def cpu_time(fn, x, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn(x)
        best = min(best, time.process_time() - t)
    return best


def peak(fn, x):
    """tracemalloc's peak during one call, above what was live before it, in input sizes."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = fn(x)
    top = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del out
    return top / x.nbytes


def main():
    from run import w3_numpy  # the hand-written reference (imported late: run.py reads sys.argv)

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=float, default=1e6)
    parser.add_argument("--orders", default="1,2,4,6")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    x = np.random.default_rng(0).uniform(-1.0, 1.0, int(args.n))
    rows = []
    for k in map(int, args.orders.split(",")):
        fns = {"hand": lambda v, k=k: w3_numpy(v, k)}
        fns.update({v: generated(k, x, v) for v in VARIANTS})
        fns["exp+sin+cos"] = transcendentals
        plain = fns["plain"](x)
        for v in ("slices", "buffers"):
            if not np.array_equal(fns[v](x), plain):
                raise SystemExit(f"k={k}: {v} does not give the same numbers as the plain body")
        np.testing.assert_allclose(fns["hand"](x), plain, rtol=1e-9, atol=1e-9 * np.abs(plain).max())
        seconds = {}
        for _ in range(3):  # interleaved rounds: a burst of load hits every variant alike
            for name, fn in fns.items():
                seconds[name] = min(seconds.get(name, float("inf")), cpu_time(fn, x, args.repeats))
        memory = {name: peak(fns[name], x) for name in ["hand", *VARIANTS]}
        rows.append([f"k={k}", f"{seconds['hand'] * 1e3:.1f} ms"]
                    + [f"{seconds[v] / seconds['hand']:.2f}" for v in list(VARIANTS) + ["exp+sin+cos"]]
                    + [str(fns["buffers"].calls)] + [f"{memory[v]:.2f}" for v in ["hand", *VARIANTS]])
        print(rows[-1], flush=True)
    print(f"\nW3 at {int(args.n)} points, CPU time ratios to hand numpy (lower is faster), best of "
          f"{3 * args.repeats}; peak memory in input sizes (tracemalloc). Load average {os.getloadavg()[0]:.1f}.\n")
    print(markdown_table(["order", "hand numpy", "plain", "slices", "buffers", "exp+sin+cos", "calls",
                          "mem hand", "mem plain", "mem slices", "mem buffers"], rows))


if __name__ == "__main__":
    main()
