"""Small shared helpers for the benchmark scripts: timing, time limits, memory, caches, tables, and
the high-order test function both scripts differentiate.

Imported by ``run.py`` and ``high_order.py`` (both put this folder and the repository root on
``sys.path`` so the working tree's ``symdiff`` is the one measured).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import timeit
import tracemalloc

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- timing -------------------------------------------------------------------------------------


def measure(fn, args=(), repeats=5, min_time=0.05):
    """Median seconds per call of ``fn(*args)`` over ``repeats`` repeats.

    The caller has already called ``fn`` once: that call is the warm-up. Fast calls are looped
    ``number`` times per repeat so that a repeat lasts about ``min_time`` (``timeit`` semantics: the
    garbage collector is off while timing). Returns ``(median, per-call time of each repeat, number)``."""
    names = [f"a{i}" for i in range(len(args))]
    timer = timeit.Timer(f"fn({', '.join(names)})", globals={"fn": fn, **dict(zip(names, args))})
    probe = timer.timeit(1)
    if probe >= min_time:  # slow enough to time one call at a time: the probe is the first repeat
        times = [probe] + [timer.timeit(1) for _ in range(repeats - 1)]
        return statistics.median(times), times, 1
    number = max(1, int(min_time / max(probe, 1e-9)))
    number = max(1, int(min_time * number / max(timer.timeit(number), 1e-9)))  # re-calibrate on a loop
    times = [timer.timeit(number) / number for _ in range(repeats)]
    return statistics.median(times), times, number


class BenchTimeout(BaseException):
    """Raised inside a ``time_limit`` block; a BaseException so library ``except Exception`` clauses
    do not turn it into their own error."""


@contextlib.contextmanager
def time_limit(seconds):
    """Interrupt the block after ``seconds`` (SIGALRM; pure-Python work such as SymPy stops promptly).

    ``None`` or 0 means no limit; off the main thread or without SIGALRM there is no limit either."""
    if not seconds or not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise BenchTimeout(f"exceeded {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- memory -------------------------------------------------------------------------------------


def _status_kb(field):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_rss_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # Linux: reset VmHWM to the current RSS
        return True
    except OSError:
        return False


def _malloc_trim():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _RssSampler(threading.Thread):
    """Polls the resident set size while a call runs: the kernel's high-water mark (VmHWM) is only
    brought up to date when memory is unmapped, so heap memory freed with madvise would be missed."""

    def __init__(self, interval=2e-4):
        super().__init__(daemon=True)
        self.interval, self.peak_pages, self._stop_event = interval, 0, threading.Event()
        self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        self.base_pages = self.peak_pages = self.read()

    def read(self):
        return int(os.pread(self._fd, 128, 0).split()[1])

    def run(self):
        while not self._stop_event.is_set():
            self.peak_pages = max(self.peak_pages, self.read())
            time.sleep(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        self.peak_pages = max(self.peak_pages, self.read())
        os.close(self._fd)


def peak_memory(fn, args=(), numpy_based=True):
    """Peak memory in MB that one call of ``fn(*args)`` allocates above what was live before it:
    ``{"rss": ..., "tm": ...}`` from the same call.

    ``rss``: growth of the resident set size, after ``malloc_trim`` so that memory freed earlier is
    not silently reused: the larger of the kernel's high-water mark and a polling thread's maximum.
    It sees every allocator that returns memory to the system, counts only touched pages, can miss a
    peak shorter than the polling interval (0.2 ms) and misses memory an allocator keeps cached
    (XLA's). ``tm``: tracemalloc, exact for numpy (numpy reports its buffers to tracemalloc) but blind
    to PyTorch's and XLA's allocators, so only measured when ``numpy_based``. None = unavailable."""
    gc.collect()
    _malloc_trim()
    have_proc = os.path.exists("/proc/self/statm")
    hwm_reset = have_proc and _reset_rss_peak()
    page_kb = os.sysconf("SC_PAGE_SIZE") / 1024
    sampler = _RssSampler() if have_proc else None
    if numpy_based:
        tracemalloc.start()
        tracemalloc.reset_peak()
        tm_base = tracemalloc.get_traced_memory()[0]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # let the sampler in while Python code holds the GIL
    if sampler:
        sampler.start()
    try:
        out = fn(*args)
    finally:
        if sampler:
            sampler.stop()
        sys.setswitchinterval(switch)
        if numpy_based:
            tm_peak = tracemalloc.get_traced_memory()[1] - tm_base
            tracemalloc.stop()
    del out
    result = {"rss": None, "tm": tm_peak / 2**20 if numpy_based else None}
    if sampler:
        peak_kb = sampler.peak_pages * page_kb
        if hwm_reset:
            peak_kb = max(peak_kb, _status_kb("VmHWM") or 0)
        result["rss"] = (peak_kb - sampler.base_pages * page_kb) / 1024
    return result


# -- checking -----------------------------------------------------------------------------------


def _leaves(x):
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in _leaves(item)]
    return [x]


def max_rel_error(out, ref):
    """max |out - ref| / max |ref| over every output (tuples compared leaf by leaf).

    Returns (error, problem) where problem is a short text for shape/count/NaN mismatches, else None."""
    a_leaves, r_leaves = _leaves(out), _leaves(ref)
    if len(a_leaves) != len(r_leaves):
        return float("inf"), f"{len(a_leaves)} outputs, expected {len(r_leaves)}"
    worst = 0.0
    for a, r in zip(a_leaves, r_leaves):
        a = np.asarray(a, dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if a.shape != r.shape:
            return float("inf"), f"shape {a.shape}, expected {r.shape}"
        if np.any(np.isnan(a) != np.isnan(r)):
            return float("inf"), "NaN where the reference has none"
        scale = np.nanmax(np.abs(r)) if r.size else 0.0
        diff = np.nanmax(np.abs(a - r)) if r.size else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst, None


# -- caches -------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_symdiff_cache():
    """An empty temporary SYMDIFF_CACHE_DIR, an empty in-memory cache and an empty SymPy cache."""
    import sympy.core.cache

    import symdiff.load

    old = os.environ.get("SYMDIFF_CACHE_DIR")
    path = tempfile.mkdtemp(prefix="symdiff-bench-cache-")
    os.environ["SYMDIFF_CACHE_DIR"] = path
    symdiff.load.clear_memory()
    sympy.core.cache.clear_cache()
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("SYMDIFF_CACHE_DIR", None)
        else:
            os.environ["SYMDIFF_CACHE_DIR"] = old
        shutil.rmtree(path, ignore_errors=True)


def clear_sympy_cache():
    import sympy.core.cache

    sympy.core.cache.clear_cache()


# -- the W3 / high-order test function ----------------------------------------------------------


def w3(x):
    return np.sin(np.exp(x) * x) / (1 + x**2)


def w3_exact_derivatives(points, k):
    """The k-th derivative of ``w3`` at ``points`` from mpmath's 60-digit numerical differentiation."""
    import mpmath

    with mpmath.workdps(60):
        return np.array([float(mpmath.diff(lambda t: mpmath.sin(mpmath.exp(t) * t) / (1 + t**2), mpmath.mpf(p), k))
                         for p in points])


# -- output -------------------------------------------------------------------------------------


def fmt_time(seconds):
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |")
    return "\n".join(lines)


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = None
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
