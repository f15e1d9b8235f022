import os
import tempfile

import numpy as np
import pytest

# every test session gets its own empty disk cache unless the caller chose one
os.environ.setdefault("SYMDIFF_CACHE_DIR", tempfile.mkdtemp(prefix="symdiff-test-cache-"))


def central_difference(f, x, eps=1e-6):
    """d f / d x by central differences, shape f(x).shape + x.shape."""
    x = np.asarray(x, dtype=np.float64)
    f0 = np.asarray(f(x))
    out = np.zeros(f0.shape + x.shape)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = eps * max(1.0, abs(x[idx]))
        out[(Ellipsis,) + idx] = (np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * step[idx])
    return out


@pytest.fixture
def fd():
    return central_difference
