"""W1 (gradient of the mean BCE-with-logits loss, X 200k x 64) with and without symdiff's one-pass
sample sums (issue 16, item 1), side by side in one process, one thread.

    python benchmarks/sample_sum.py [--rows N] [--repeats R] [--block ROWS] [--breakdown]

Rows: hand-written numpy (the reference every ratio divides by), symdiff numpy backend without the
sample-sum path (SYMDIFF_SAMPLE_SUM=off, the code before issue 16) and with it, symdiff numba backend
without and with it, and JAX jit(grad) in x64. Every result is compared with the reference (max
relative error) before it is timed. After a warm-up call each, the rows are timed round robin, one call
per row per round (``--repeats`` rounds), so a change of the machine's load hits every row alike; the
table gives median and fastest-call ratios. Times are the process's CPU time (every thread: JAX computes
on its own), which a loaded machine distorts less than wall time.

``--breakdown``: where the numba kernel's time goes instead. Its generated text runs as written, without
exp (``math.exp(x)`` and ``_fast_exp(x)`` replaced by x), without the block products (those lines replaced
by ``pass``) and without both; the differences are what exp and the products cost (the edited variants
compute wrong values: timing only).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import types

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
os.environ["SYMDIFF_CACHE_DIR"] = ""  # generate the code in this process, for each setting

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numpy as np  # noqa: E402
from common import fmt_time, markdown_table, max_rel_error  # noqa: E402
from run import BACKENDS, loss, w1_data, w1_jax, w1_numpy  # noqa: E402

import symdiff  # noqa: E402

REF = "numpy (hand-written)"


def symdiff_grad(data, backend, setting):
    """symdiff.grad of W1's loss generated under SYMDIFF_SAMPLE_SUM=``setting`` (a fresh copy of the
    function each time: the setting is read when code is generated)."""
    os.environ["SYMDIFF_SAMPLE_SUM"] = setting
    fresh = types.FunctionType(loss.__code__, loss.__globals__, f"loss_{backend}_{setting}")
    g = symdiff.grad(fresh, argnums=(0, 1), backend=backend)
    g(*data)  # generates (and compiles) under this setting
    return lambda: g(*data)


def breakdown(data, repeats):
    """CPU time of the numba kernel's generated text and of variants without exp and the block products."""
    os.environ["SYMDIFF_SAMPLE_SUM"] = "auto"
    text = symdiff.grad(loss, argnums=(0, 1), backend="numba").source(*data)
    kernel = re.search(r"def (_rows_\w+)\(", text).group(1)
    no_exp = re.sub(r"(?<!def )\b(math\.exp|_fast_exp)\(", "(", text)  # calls of exp, libm's or the fast helper
    products = re.compile(r"^( +)_block_(times|add_outer)\(.*$", re.MULTILINE)
    variants = {"kernel as generated": text, "without exp": no_exp, "without block products":
                products.sub(r"\1pass", text), "without both": products.sub(r"\1pass", no_exp)}
    W, b, X, Y = data
    calls = {}
    for name, source in variants.items():
        space = {}
        exec(compile(source, f"<{name}>", "exec"), space)  # noqa: S102 - the generated module, edited
        calls[name] = lambda f=space[kernel]: f(X, W, b, Y, np.zeros(W.shape), np.zeros(b.shape))
        calls[name]()  # compiles
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.process_time()
            call()
            times[name].append(time.process_time() - start)
    ref = statistics.median(times["kernel as generated"])
    print(f"numba kernel of W1, X {X.shape[0]}x64; 1 thread; {repeats} rounds; CPU time; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print(markdown_table(["variant", "median", "share of the kernel"],
                         [[n, fmt_time(statistics.median(t)), f"{statistics.median(t) / ref:.2f}"]
                          for n, t in times.items()]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--block", default="auto", help="rows per block of the numpy path (default: auto)")
    parser.add_argument("--breakdown", action="store_true", help="time parts of the numba kernel instead")
    args = parser.parse_args()
    data = w1_data(args.rows)
    if args.breakdown:
        return breakdown(data, args.repeats)
    ref_fn = lambda: w1_numpy(*data)  # noqa: E731
    impls = [(REF, lambda: ref_fn)]
    for backend in ("numpy", "numba"):
        impls.append((f"symdiff {backend}, sample sums off", lambda b=backend: symdiff_grad(data, b, "off")))
        impls.append((f"symdiff {backend}, sample sums on", lambda b=backend: symdiff_grad(data, b, args.block)))
    impls.append(("JAX jit(grad), x64", lambda: w1_jax(data) if BACKENDS.jax is not None else None))
    built, outs, rows = {}, {}, []
    for name, build in impls:
        fn = build()
        if fn is None:
            rows.append([name, "skipped", "", "", ""])
            continue
        built[name], outs[name] = fn, fn()  # the first call is the warm-up
    times = {name: [] for name in built}
    for _ in range(args.repeats):  # round robin: a change of the machine's load hits every row alike
        for name, fn in built.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    ref_median, ref_min = statistics.median(times[REF]), min(times[REF])
    for name in built:
        err, problem = max_rel_error(outs[name], outs[REF])
        median = statistics.median(times[name])
        rows.append([name, fmt_time(median), f"{median / ref_median:.2f}", f"{min(times[name]) / ref_min:.2f}",
                     problem or f"{err:.1e}"])
    load = os.getloadavg()
    print(f"W1 gradient, X {args.rows}x64, W 64x8, b 8, Y {args.rows}x8 float64; 1 thread; "
          f"{args.repeats} rounds; CPU time; load average {load[0]:.1f} on {os.cpu_count()} cores\n")
    print(markdown_table(["implementation", "median", "ratio (medians)", "ratio (fastest calls)",
                          "max rel. error vs hand numpy"], rows))
    for backend in ("numpy", "numba"):
        on, off = outs[f"symdiff {backend}, sample sums on"], outs[f"symdiff {backend}, sample sums off"]
        worst = max(float(np.max(np.abs(a - b) / np.abs(b))) for a, b in zip(on, off))
        print(f"\nsymdiff {backend}, sample sums on vs off: max elementwise relative difference {worst:.1e}")


if __name__ == "__main__":
    main()
