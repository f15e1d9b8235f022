"""Transforms on Dask arrays over a local ``distributed`` cluster (issue 14), side by side with numpy.

    python benchmarks/dask_scaling.py                            # 2e7 points, 5e5 x 64 rows
    python benchmarks/dask_scaling.py --points 1e8 --rows 4e6    # the issue's full sizes

(i) Out of core: the mean squared norm of per-point Rosenbrock-8 gradients
(``grad(rosen, signature="(n)->()")``) over N points drawn lazily with ``da.random`` in chunks of 1e6,
on ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``: wall time, points/s, and the
peak resident memory of each worker (sampled every 20 ms in the workers during the run), against
the numpy backend in this process on 1e7 points drawn and differentiated chunk by chunk (the same
work per point: drawing plus the gradient plus the reduction).

(ii) W1: the gradient of the logistic loss with X of rows x 64 chunked by rows (X and Y persisted
on the workers first, so the time is the gradient's), on 1 and then 2 workers, against the numpy
backend on the same X in one process. Results are checked against the one-process numpy result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import common  # noqa: E402

# this folder's sparse.py would shadow pydata's sparse here and in the workers, which inherit sys.path
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import symdiff  # noqa: E402

CHUNK = 1_000_000


def rosen(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def loss(W, b, X, Y):
    z = X @ W + b
    return np.mean(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))


# -- peak memory of each worker: a sampling thread inside the worker process -------------------


def _start_sampler():
    import threading

    import psutil

    state = {"peak": 0, "run": True, "base": psutil.Process().memory_info().rss}

    def sample():
        proc = psutil.Process()
        while state["run"]:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    sys.modules["__symdiff_bench_sampler__"] = state  # found again by _stop_sampler
    return state["base"]


def _stop_sampler():
    state = sys.modules.pop("__symdiff_bench_sampler__")
    state["run"] = False
    return state["peak"]


def cluster(n_workers):
    from distributed import Client, LocalCluster

    c = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                     memory_limit="6GiB")
    return c, Client(c)


def out_of_core(points, client):
    import dask
    import dask.array as da

    g = symdiff.grad(rosen, signature="(n)->()")
    start = time.perf_counter()  # warm-up: each worker imports symdiff and compiles the shipped kernel
    warm = da.random.default_rng(1).standard_normal((4000, 8), chunks=(1000, 8))
    dask.compute((g(warm) ** 2).sum())
    warm_seconds = time.perf_counter() - start
    x = da.random.default_rng(0).standard_normal((points, 8), chunks=(CHUNK, 8))
    value = (g(x) ** 2).sum(axis=1).mean()  # lazy: nothing has run yet
    base = client.run(_start_sampler)
    start = time.perf_counter()
    result = float(dask.compute(value)[0])
    seconds = time.perf_counter() - start
    peak = client.run(_stop_sampler)
    return result, seconds, base, peak, warm_seconds


def out_of_core_numpy(points):
    g = symdiff.grad(rosen, signature="(n)->()")
    rng = np.random.default_rng(0)
    g(rng.standard_normal((10, 8)))  # compiled before timing
    start = time.perf_counter()
    total = 0.0
    for _ in range(points // CHUNK):
        total += float(np.sum(g(rng.standard_normal((CHUNK, 8))) ** 2))
    return total / (points // CHUNK * CHUNK), time.perf_counter() - start


def w1_cluster(rows, n_workers, W, b, repeats):
    import dask
    import dask.array as da

    c, client = cluster(n_workers)
    try:
        rs = da.random.default_rng(1)
        chunk = max(rows // 16, 1)
        X = rs.standard_normal((rows, 64), chunks=(chunk, 64)).persist()
        Y = (rs.random((rows, 8), chunks=(chunk, 8)) < 0.5).astype(np.float64).persist()
        dask.compute(X.sum(), Y.sum())  # both in worker memory before timing
        g = symdiff.grad(loss, argnums=(0, 1))
        out = dask.compute(*g(W, b, X, Y))  # warm-up: compiles, ships nothing but numpy ops
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            dask.compute(*g(W, b, X, Y))
            times.append(time.perf_counter() - start)
        data = (X.compute(), Y.compute()) if n_workers == 1 else None
        return out, statistics.median(times), data
    finally:
        client.close()
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=float, default=2e7, help="points of the out-of-core run (multiple of 1e6)")
    ap.add_argument("--numpy-points", type=float, default=1e7, help="points of the one-process numpy run")
    ap.add_argument("--rows", type=float, default=5e5, help="rows of X for W1")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    points, rows = int(args.points) // CHUNK * CHUNK, int(args.rows)
    print(f"# symdiff on Dask: {os.cpu_count()} cores, numpy {np.__version__}; ratios from one run\n")

    c, client = cluster(2)
    try:
        result, seconds, base, peak, warm = out_of_core(points, client)
    finally:
        client.close()
        c.close()
    np_result, np_seconds = out_of_core_numpy(int(args.numpy_points))
    mib = 2**20
    print("## (i) mean squared norm of Rosenbrock-8 gradients, chunks of 1e6 points (64 MB)\n")
    rows_i = [["Dask, 2 workers x 1 thread", f"{points:.0e}", common.fmt_time(seconds), f"{points / seconds:.3g}",
               "; ".join(f"{peak[w] / mib:.0f} MiB (idle {base[w] / mib:.0f})" for w in sorted(peak)), f"{result:.6g}"],
              ["numpy backend, 1 process", f"{int(args.numpy_points):.0e}", common.fmt_time(np_seconds),
               f"{int(args.numpy_points) / np_seconds:.3g}", "—", f"{np_result:.6g}"]]
    print(common.markdown_table(["run", "points", "time", "points/s", "peak RSS per worker", "value"], rows_i))
    print(f"\nwarm-up before timing (workers import symdiff, compile the shipped kernel): {common.fmt_time(warm)}")
    print(f"throughput ratio Dask / numpy: {(points / seconds) / (int(args.numpy_points) / np_seconds):.2f}"
          f"  (values differ: other random draws; relative gap {abs(result - np_result) / np_result:.1e})\n")

    rng = np.random.default_rng(0)
    W, b = 0.1 * rng.standard_normal((64, 8)), 0.1 * rng.standard_normal(8)
    (gW1, gb1), t1, (X, Y) = w1_cluster(rows, 1, W, b, args.repeats)
    (gW2, gb2), t2, _ = w1_cluster(rows, 2, W, b, args.repeats)
    g = symdiff.grad(loss, argnums=(0, 1))
    rW, rb = g(W, b, X, Y)
    t_np = common.measure(g, (W, b, X, Y), repeats=args.repeats)[0]
    err = max(common.max_rel_error((gW1, gb1), (rW, rb))[0], common.max_rel_error((gW2, gb2), (rW, rb))[0])
    print(f"## (ii) W1 gradient, X {rows:.0e} x 64 ({X.nbytes / 2**30:.2f} GiB) in 16 row chunks\n")
    print(common.markdown_table(
        ["run", "time", "vs numpy", "speed-up over 1 worker"],
        [["numpy backend, 1 process", common.fmt_time(t_np), "1.00", "—"],
         ["Dask, 1 worker", common.fmt_time(t1), f"{t1 / t_np:.2f}", "1.00"],
         ["Dask, 2 workers", common.fmt_time(t2), f"{t2 / t_np:.2f}", f"{t1 / t2:.2f}"]]))
    print(f"\nlargest relative difference from the numpy backend: {err:.1e}")


if __name__ == "__main__":
    main()
