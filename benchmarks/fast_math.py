"""W3 through backend="numba": the vectorizable exp/sin/cos of templates/numba_math.j2 against the
same loop on libm, hand-written numpy and JAX jit, as CPU time of one thread in one run.

    python benchmarks/fast_math.py [--points N] [--orders 1,2,4,6] [--repeats 7]

The libm row calls the module's own libm twin (``_points_<name>_libm``, the loop that reruns points
the helpers are not exact at) on every point, so both numba rows run the same statements. Each
ratio divides a median CPU time by hand numpy's (benchmarks/run.py's ``w3_numpy``); rows of one
order are timed in turn, repeat by repeat, so that load on the machine hits them alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import symdiff  # noqa: E402
from benchmarks.common import w3  # noqa: E402


def numba_rows(k, x, folder):
    """(fast loop, the same loop on libm) from the generated module, loaded from a file (numba caches)."""
    d = symdiff.derivative(w3, k, backend="numba")
    path = os.path.join(folder, f"w3_k{k}.py")
    with open(path, "w") as f:
        f.write(d.source(0.5))
    spec = importlib.util.spec_from_file_location(f"w3_k{k}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    name = "derivative_w3"
    every = np.arange(x.size)

    def libm():
        out = np.zeros(x.size)
        getattr(module, f"_points_{name}_libm")(x, out, every)
        return out

    return (lambda: getattr(module, name)(x)), libm


def cpu(fn):
    start = time.process_time()
    fn()
    return time.process_time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--orders", default="1,2,4,6")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from benchmarks.run import w3_jax, w3_numpy

    x = np.linspace(0.0, 1.0, args.points)
    print(f"W3 k-th derivative at {args.points} points in [0, 1], CPU time of one thread, median of "
          f"{args.repeats}; load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| k | hand numpy | numba fast exp/sin/cos | numba libm | JAX jit | max abs(fast - libm) / max abs(libm) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for k in (int(o) for o in args.orders.split(",")):
            fast, libm = numba_rows(k, x, folder)
            rows = {"numpy": lambda: w3_numpy(x, k), "fast": fast, "libm": libm}
            try:
                rows["jax"] = w3_jax(x, k)
            except ImportError:
                pass
            values = {r: fn() for r, fn in rows.items()}  # warm-up (compiles)
            times = {r: [] for r in rows}
            for _ in range(args.repeats):
                for r, fn in rows.items():
                    times[r].append(cpu(fn))
            med = {r: statistics.median(t) for r, t in times.items()}
            ref = values["numpy"]
            # relative to the derivative's size: pointwise, a 1-ulp change of exp/sin is amplified where
            # the formula's terms cancel (zeros of the derivative), as tests/test_numba_fast_math.py says
            diff = np.max(np.abs(values["fast"] - values["libm"])) / np.max(np.abs(values["libm"]))
            assert np.allclose(values["fast"], ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
            jax = f"{med['jax'] / med['numpy']:.2f}x" if "jax" in med else "—"
            print(f"| {k} | {med['numpy'] * 1e3:.1f} ms | {med['fast'] / med['numpy']:.2f}x | "
                  f"{med['libm'] / med['numpy']:.2f}x | {jax} | {diff:.1e} |")


if __name__ == "__main__":
    main()
