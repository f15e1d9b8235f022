"""backend="array_api" on numpy arrays vs the numpy backend on W1-W3 (benchmarks/run.py), one process run.

    python benchmarks/array_api.py [--quick] [--repeats N]

The abstraction must not cost: the target is array_api / numpy <= 1.1 on every row. Both transforms
are compiled first (warm-up call, results checked equal to 1e-12), then timed in alternating rounds
(numpy, array_api, numpy, ...) so that load on the machine hits both alike; each row is the median of
the per-round medians. Prints a markdown table of times and ratios.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numpy as np
from common import fmt_time, markdown_table, measure, w3
from run import loss, rosen, w1_data

import symdiff

SIZES = {"quick": {"w1_n": 50_000, "w2_b": 20_000, "w3_n": 100_000},
         "full": {"w1_n": 200_000, "w2_b": 100_000, "w3_n": 1_000_000}}


def cases(size):
    """(workload, case, transform builder taking the backend, arguments)."""
    data = w1_data(size["w1_n"])
    points = np.random.default_rng(1).uniform(-2, 2, size=(size["w2_b"], 8))
    x = np.linspace(0.0, 1.0, size["w3_n"])
    yield "W1", "grad W, b", lambda b: symdiff.grad(loss, argnums=(0, 1), backend=b), data
    yield "W2", "grad", lambda b: symdiff.grad(rosen, signature="(n)->()", backend=b), (points,)
    yield "W2", "hessian", lambda b: symdiff.hessian(rosen, signature="(n)->()", backend=b), (points,)
    for k in (1, 4, 6):
        yield "W3", f"k={k}", functools.partial(lambda k, b: symdiff.derivative(w3, k, backend=b), k), (x,)


def leaves(tree):
    return [v for t in tree for v in leaves(t)] if isinstance(tree, tuple) else [tree]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args(argv)
    size = SIZES["quick" if opts.quick else "full"]
    rows = []
    for workload, case, make, args in cases(size):
        fns = {b: functools.partial(make(b), *args) for b in ("numpy", "array_api")}
        outs = {b: fn() for b, fn in fns.items()}  # the warm-up call compiles
        for ours, ref in zip(leaves(outs["array_api"]), leaves(outs["numpy"])):
            assert type(ours) is type(ref), (type(ours), type(ref))
            np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
        rounds = {b: [] for b in fns}
        for _ in range(opts.rounds):
            for b, fn in fns.items():
                rounds[b].append(measure(fn, (), repeats=3)[0])
        t = {b: statistics.median(v) for b, v in rounds.items()}
        rows.append([workload, case, fmt_time(t["numpy"]), fmt_time(t["array_api"]),
                     f"{t['array_api'] / t['numpy']:.2f}x"])
        print(" | ".join(rows[-1]), flush=True)
    print()
    print(markdown_table(["workload", "case", "numpy backend", "array_api on numpy", "ratio"], rows))


if __name__ == "__main__":
    main()
