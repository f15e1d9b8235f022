"""Peak memory of generated gradients of elementwise losses, in units of the input's size.

    python benchmarks/memory.py                 # x of 2e7 float64 (160 MB), every loss
    python benchmarks/memory.py --n 2e6         # smaller and quicker
    python benchmarks/memory.py --process       # also whole-process peak RSS, one process per case

For each loss ``f`` of one vector ``x`` (issue 10 item 9) and each of ``grad`` and
``value_and_grad``, one warm call (compiled by the first) is measured. Columns, all divided by
``x.nbytes``:

* ``tm``: symdiff, tracemalloc: the most bytes numpy held at once during the call, beyond what was
  alive before it (the input is not counted, the returned arrays are). Exact for numpy buffers.
* ``rss``: growth of the resident set during the call (``common.peak_memory``), for symdiff and for
  ``jax.jit(jax.grad(f))`` / ``jax.jit(jax.value_and_grad(f))`` when JAX imports (x64, CPU, input
  placed on the device first). It misses memory an allocator keeps cached (XLA's), so it favours JAX.
* ``--process``: what ``/usr/bin/time -v`` reports: the peak resident set of a new process that
  imports the library, makes ``x``, calls the transform twice, minus its resident set just before
  making ``x``; so it includes the input, compile-time work and the allocator's slack. symdiff's
  module comes from a warm disk cache (the first process fills it), as it would in a second run.

Targets (issue 10 item 9): at most 4 input-sized arrays for ``grad`` and 5 for ``value_and_grad``
beyond the input (the ``tm`` column).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
from common import markdown_table, peak_memory


# name -> loss written against an array module ``xp`` (numpy for symdiff, jax.numpy for JAX)
def softplus_hinge(xp):
    return lambda x: xp.sum(xp.maximum(x, 0) - x * 0.3 + xp.log1p(xp.exp(-xp.abs(x))))


def sin_gauss(xp):
    return lambda x: xp.sum(xp.sin(x) * xp.exp(-(x**2)))


def log1p_exp_abs(xp):
    return lambda x: xp.sum(xp.log1p(xp.exp(-xp.abs(x))) * x)


def logistic_mean(xp):
    return lambda x: xp.mean(xp.log(1 + xp.exp(-x)) + 0.5 * x)


def tanh_cos(xp):
    return lambda x: xp.sum(xp.tanh(x) ** 2 + xp.cos(x) * x)


def polynomial_sqrt(xp):
    return lambda x: xp.sum(x**4 - 3 * x**3 + xp.sqrt(1 + x**2))


LOSSES = {f.__name__: f for f in (softplus_hinge, sin_gauss, log1p_exp_abs, logistic_mean, tanh_cos, polynomial_sqrt)}
TRANSFORMS = ("grad", "value_and_grad")
TARGET = {"grad": 4, "value_and_grad": 5}


def _jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def make(library, loss, transform):
    """The compiled transform of ``loss`` as a function of a numpy x (JAX: of a device array)."""
    if library == "symdiff":
        import symdiff

        return getattr(symdiff, transform)(LOSSES[loss](np))
    jax = _jax()
    fn = jax.jit(getattr(jax, transform)(LOSSES[loss](jax.numpy)))
    return lambda x: jax.block_until_ready(fn(x))


def in_process(n):
    x = np.random.default_rng(0).normal(size=n)
    jax = _jax()
    xj = jax.device_put(x) if jax else None
    rows = []
    for loss in LOSSES:
        for transform in TRANSFORMS:
            fn = make("symdiff", loss, transform)
            fn(x)
            mem = peak_memory(fn, (x,))
            row = {"loss": loss, "transform": transform, "symdiff tm": mem["tm"] * 2**20 / x.nbytes,
                   "symdiff rss": mem["rss"] * 2**20 / x.nbytes if mem["rss"] is not None else None}
            if jax:
                fj = make("jax", loss, transform)
                fj(xj)
                mem = peak_memory(fj, (xj,), numpy_based=False)
                row["jax rss"] = mem["rss"] * 2**20 / x.nbytes if mem["rss"] is not None else None
            rows.append(row)
    return rows


CHILD = r"""
import json, os, sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {here!r})
import numpy as np
from memory import make

def rss_kb(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

fn = make({library!r}, {loss!r}, {transform!r})
before = rss_kb("VmRSS")
x = np.random.default_rng(0).normal(size={n})
arg = x
if {library!r} == "jax":
    import jax
    arg = jax.device_put(x)
fn(arg)
fn(arg)
print(json.dumps({{"peak": (rss_kb("VmHWM") - before) * 1024 / x.nbytes}}))
"""


def whole_process(n, rows):
    """Adds ``<library> process``: peak RSS of a new process beyond its size before x existed."""
    libraries = ["symdiff"] + (["jax"] if _jax() else [])
    env = dict(os.environ)
    env.setdefault("SYMDIFF_CACHE_DIR", tempfile.mkdtemp(prefix="symdiff-memory-bench-"))
    for row in rows:
        for library in libraries:
            code = CHILD.format(repo=os.path.dirname(HERE), here=HERE, library=library, loss=row["loss"],
                                transform=row["transform"], n=n)
            for _ in range(2 if library == "symdiff" else 1):  # the first symdiff run fills the disk cache
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            row[f"{library} process"] = json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=float, default=2e7, help="elements of x (default 2e7)")
    parser.add_argument("--process", action="store_true", help="also measure whole processes (slow)")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    n = int(args.n)
    rows = in_process(n)
    if args.process:
        whole_process(n, rows)
    columns = [c for c in ("symdiff tm", "symdiff rss", "jax rss", "symdiff process", "jax process")
               if any(c in r for r in rows)]
    table = [[r["loss"], r["transform"]] + [f"{r[c]:.2f}" if r.get(c) is not None else "-" for c in columns]
             + [f"<= {TARGET[r['transform']]}"] for r in rows]
    print(f"Peak memory in units of x.nbytes ({n} float64 elements = {n * 8 / 1e6:.0f} MB)\n")
    print(markdown_table(["loss", "transform"] + columns + ["target (tm)"], table))
    missed = [r for r in rows if r["symdiff tm"] > TARGET[r["transform"]] + 0.05]
    print("\nall within target" if not missed else f"\nover target: {[(r['loss'], r['transform']) for r in missed]}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
