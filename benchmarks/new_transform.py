"""Issue 10 item 10: a new transform object per call versus a reused one.

A training loop written as ``symdiff.grad(loss)(w)`` makes a new transform object each step; the
loss closes over the data ``X, y``. This script times, side by side in one process:

* ``reused``: one ``g = symdiff.grad(loss)`` called again and again;
* ``new object``: ``symdiff.grad(loss)(w)`` each call (finds the compiled runner of ``loss``);
* ``new object, cold runner table``: as a new process would see it with a warm disk cache
  (the in-memory cache is cleared before each call, so the index on disk is used: the closed-over
  arrays are hashed, each once);

and reports each as a ratio to ``reused``, plus how many times an array was hashed per call.

    python3 benchmarks/new_transform.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("SYMDIFF_CACHE_DIR", tempfile.mkdtemp(prefix="symdiff-bench-"))

import symdiff  # noqa: E402
from symdiff import environment, load  # noqa: E402

from common import measure  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    opts = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(opts.rows, 64))
    y = (rng.random(opts.rows) > 0.5).astype(float)

    def loss(w):
        z = X @ w
        return np.mean(np.logaddexp(0, z) - z * y)

    w = rng.normal(size=64) * 0.1
    reused = symdiff.grad(loss)
    expected = X.T @ (1 / (1 + np.exp(-(X @ w))) - y) / opts.rows
    np.testing.assert_allclose(reused(w), expected, rtol=1e-10)

    hashed = []
    real = environment.array_digest

    def counting(a):
        hashed.append(a.nbytes)
        return real(a)

    environment.array_digest = counting

    def new_object():
        return symdiff.grad(loss)(w)

    def cold_runner_table():
        load.runners.clear()  # what a new process lacks; the entry itself stays in memory and on disk
        return symdiff.grad(loss)(w)

    rows = []
    base = measure(reused, (w,))[0]
    for name, fn in (("reused", lambda: reused(w)), ("new object", new_object),
                     ("new object, cold runner table", cold_runner_table)):
        np.testing.assert_allclose(fn(), expected, rtol=1e-10)
        hashed.clear()
        fn()
        per_call, mb = len(hashed), sum(hashed) / 1e6
        t = measure(fn)[0]
        rows.append((name, t, t / base, per_call, mb))
    environment.array_digest = real
    print(f"X {X.shape} float64 ({X.nbytes / 1e6:.0f} MB), gradient of a logistic loss closing over X, y")
    print("| call | median | x reused | arrays hashed per call | MB hashed |")
    print("|---|---|---|---|---|")
    for name, t, ratio, n, mb in rows:
        print(f"| {name} | {t * 1e3:.1f} ms | {ratio:.2f} | {n} | {mb:.0f} |")


if __name__ == "__main__":
    main()
