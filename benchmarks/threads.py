"""``--threads N`` for the benchmark scripts. Imports nothing heavy: it must run before numpy,
PyTorch or JAX start their thread pools (OpenBLAS reads its variable when numpy is imported)."""

from __future__ import annotations

import os


def threads_from_argv(argv):
    """The value of ``--threads N`` in ``argv`` (or None), exported to the BLAS/OpenMP variables."""
    threads = None
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = argv[i + 1]
        elif a.startswith("--threads="):
            threads = a.split("=", 1)[1]
    if threads and threads.isdigit():
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = threads
    return threads
