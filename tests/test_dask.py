"""Transforms called on Dask arrays return lazy Dask arrays equal to the numpy backend's results.

Per-point transforms (signature=, derivative) map the compiled kernel over chunks; whole-array
transforms (a loss over the rows of X) run the generated code on the Dask arrays, so the gradient
becomes Dask reductions and X is never put together. One test runs on a two-process
``distributed.LocalCluster``: the kernel must reach worker processes that never compiled it.
"""

import subprocess
import sys

import numpy as np
import pytest

import symdiff
from symdiff.errors import ShapeError, SymdiffError

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
from dask.callbacks import Callback  # noqa: E402


def rosen(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosen_hessian(x):
    """Closed form of the Rosenbrock Hessian for a batch of points (..., n)."""
    n = x.shape[-1]
    H = np.zeros(x.shape + (n,))
    i = np.arange(n - 1)
    H[..., i, i] += 1200 * x[..., :-1] ** 2 - 400 * x[..., 1:] + 2
    H[..., i + 1, i + 1] += 200
    H[..., i, i + 1] = H[..., i + 1, i] = -400 * x[..., :-1]
    return H


def loss(W, b, X, Y):
    z = X @ W + b
    return np.mean(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))


def loss_gradient(W, b, X, Y):
    """Closed form: d loss / dz = (sigmoid(z) - y) / z.size."""
    dz = (1 / (1 + np.exp(-(X @ W + b))) - Y) / (X.shape[0] * W.shape[1])
    return X.T @ dz, dz.sum(axis=0)


def w1_data(n, d=16, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((d, k)), 0.1 * rng.standard_normal(k), rng.standard_normal((n, d)),
            (rng.random((n, k)) < 0.5).astype(np.float64))


def _backend(name):
    """Skip where ``name`` is not available: numba not installed, or the array API backend not built in."""
    from symdiff import transforms

    if name == "numba":
        pytest.importorskip("numba")
    if name == "array_api":
        pytest.importorskip("array_api_compat")
        if "array_api" not in transforms.BACKENDS:
            pytest.skip("this symdiff has no backend='array_api'")
    return name


def _owned_bytes(a):
    """Bytes an array really holds: a broadcast (zero-stride) axis costs nothing."""
    if not isinstance(a, np.ndarray):
        return 0
    return a.itemsize * int(np.prod([n for n, st in zip(a.shape, a.strides) if st != 0]))


class Watch(Callback):
    """Counts computes started by the local schedulers and the largest array any task produced."""

    def __init__(self):
        super().__init__()
        self.computes, self.largest = 0, 0

    def _start(self, dsk):
        self.computes += 1

    def _posttask(self, key, result, dsk, state, id):
        self.largest = max(self.largest, _owned_bytes(result))


@pytest.mark.parametrize("backend", ["numpy", "numba", "array_api"])
def test_batched_rosenbrock_hessians_over_chunked_batch(backend, monkeypatch):
    _backend(backend)
    from symdiff.dask_kernel import Kernel

    pts = np.random.default_rng(0).normal(size=(1000, 8))
    h = symdiff.hessian(rosen, signature="(n)->(n,n)", backend=backend)
    lazy = da.from_array(pts, chunks=(128, 3))  # the core axis is split: it must be put in one chunk
    runs = []
    kernel_call = Kernel.__call__
    monkeypatch.setattr(Kernel, "__call__", lambda k, *c: runs.append([x.shape for x in c]) or kernel_call(k, *c))
    with Watch() as watch:
        H = h(lazy)
    assert watch.computes == 0
    assert runs == [[(1, 8)]]  # one point to learn the output's shape; Dask was told, it did not call it
    assert isinstance(H, da.Array) and H.shape == (1000, 8, 8) and H.dtype == np.float64
    assert H.chunks[0] == lazy.chunks[0] and H.chunks[1:] == ((8,), (8,))
    out = H.compute(scheduler="sync")
    np.testing.assert_allclose(out, symdiff.hessian(rosen, signature="(n)->(n,n)")(pts), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, rosen_hessian(pts), rtol=1e-12, atol=1e-9)


def test_value_and_grad_over_batch_keeps_its_structure():
    pts = np.random.default_rng(1).normal(size=(300, 5))
    vg = symdiff.value_and_grad(rosen, signature="(n)->()")
    v, g = vg(da.from_array(pts, chunks=(64, 5)))
    assert isinstance(v, da.Array) and v.shape == (300,) and g.shape == (300, 5)
    v0, g0 = vg(pts)
    np.testing.assert_allclose(v.compute(scheduler="threads"), v0, rtol=1e-12)
    np.testing.assert_allclose(g.compute(scheduler="threads"), g0, rtol=1e-12)


def test_keyword_arrays_reach_every_chunk_whole():
    def weighted(x, *, w):
        return np.sum(w * x**2)

    g = symdiff.grad(weighted, signature="(n)->()")
    pts, w = np.random.default_rng(2).normal(size=(50, 3)), np.array([1.0, 2.0, 3.0])
    out = g(da.from_array(pts, chunks=(10, 3)), w=w).compute(scheduler="sync")
    np.testing.assert_allclose(out, 2 * w * pts, rtol=1e-12)
    with pytest.raises(SymdiffError, match="pass keyword arrays as numpy arrays"):
        g(da.from_array(pts, chunks=(10, 3)), w=da.from_array(w))


def test_derivative_of_scalar_function_over_chunked_vector():
    x = np.linspace(-2, 2, 2001)
    d3 = symdiff.derivative(lambda t: np.sin(t) * np.exp(t), order=3)
    with Watch() as watch:
        out = d3(da.from_array(x, chunks=250))
    assert watch.computes == 0 and isinstance(out, da.Array) and out.chunks == ((250,) * 8 + (1,),)
    closed = 2 * np.exp(x) * (np.cos(x) - np.sin(x))  # (e^t sin t)''' = 2 e^t (cos t - sin t)
    np.testing.assert_allclose(out.compute(scheduler="sync"), closed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_logistic_loss_gradient_over_row_chunked_x_is_lazy_and_never_joins_x(backend):
    W, b, X, Y = w1_data(20000)
    g = symdiff.grad(loss, argnums=(0, 1), backend=_backend(backend))
    Xd, Yd = da.from_array(X, chunks=(2000, 16)), da.from_array(Y, chunks=(2000, 4))
    with Watch() as watch:
        gW, gb = g(W, b, Xd, Yd)
    assert watch.computes == 0
    assert isinstance(gW, da.Array) and isinstance(gb, da.Array) and gW.shape == (16, 4)
    with Watch() as watch:
        gW, gb = dask.compute(gW, gb, scheduler="sync")
    assert watch.largest <= 2000 * 16 * 8  # no task held more than one chunk of X
    rW, rb = loss_gradient(W, b, X, Y)
    np.testing.assert_allclose(gW, rW, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gb, rb, rtol=1e-12, atol=1e-15)
    nW, nb = symdiff.grad(loss, argnums=(0, 1))(W, b, X, Y)
    np.testing.assert_allclose(gW, nW, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gb, nb, rtol=1e-12, atol=1e-15)


def test_generated_line_that_would_compute_is_reported():
    g = symdiff.grad(rosen)  # no signature: the numpy gradient assembles its output in place
    x = da.from_array(np.linspace(0, 1, 40), chunks=10)
    with Watch() as watch, pytest.raises(SymdiffError, match=r"would compute a Dask array at line \d+.*\.compute\(\).*signature="):
        g(x)
    assert watch.computes == 0


def test_array_api_code_builds_in_place_on_dask_arrays():
    g = symdiff.grad(rosen, backend=_backend("array_api"))  # what the numpy backend's code cannot do lazily
    x = np.linspace(0, 1, 40)
    with Watch() as watch:
        out = g(da.from_array(x, chunks=10))
    assert watch.computes == 0 and isinstance(out, da.Array)
    np.testing.assert_allclose(out.compute(scheduler="sync"), symdiff.grad(rosen)(x), rtol=1e-12)


def test_unknown_sizes_are_refused_before_anything_runs():
    x = da.from_array(np.linspace(-1, 1, 40), chunks=10)
    positive = x[x > 0]  # Dask does not know how many: shape (nan,)
    with pytest.raises(ShapeError, match=r"compute_chunk_sizes\(\)"):
        symdiff.grad(lambda v: np.sum(v**2))(positive)
    pts = da.from_array(np.ones((6, 4)), chunks=(3, 4))
    with pytest.raises(ShapeError, match="core axes"):
        symdiff.hessian(rosen, signature="(n)->(n,n)")(pts[:, pts[0] > 0])


def test_closed_over_array_changed_in_place_is_read_again():
    A = np.array([1.0, 2.0, 3.0])

    def f(x):
        return np.sum(A * x**2)

    g = symdiff.grad(f)
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(g(da.from_array(x, chunks=2)).compute(scheduler="sync"), 2 * A * x)
    A[1] = -7.0  # the compiled entry remembered for Dask calls must not keep the old A
    np.testing.assert_allclose(g(da.from_array(x, chunks=2)).compute(scheduler="sync"), 2 * A * x)


def test_kernel_pickles_to_a_process_that_never_compiled_it(monkeypatch):
    import pickle

    from symdiff import dask_kernel, load

    H = symdiff.hessian(rosen, signature="(n)->(n,n)")(da.from_array(np.ones((4, 5)), chunks=(2, 5)))
    restored = pickle.loads(pickle.dumps(H))
    monkeypatch.setattr(dask_kernel, "_loaded", {})
    monkeypatch.setattr(load, "_memory", {})  # as in a worker: only the shipped source can be run
    np.testing.assert_allclose(restored.compute(scheduler="sync"), rosen_hessian(np.ones((4, 5))), atol=1e-12)
    assert list(dask_kernel._loaded) and not load._memory


def test_numpy_calls_do_not_import_dask():
    code = ("import sys, numpy as np, symdiff; symdiff.grad(lambda x: np.sum(x ** 2))(np.ones(3)); "
            "symdiff.derivative(np.sin)(0.5); assert 'dask' not in sys.modules, 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_on_a_two_process_local_cluster():
    distributed = pytest.importorskip("distributed")
    W, b, _, _ = w1_data(1)
    g = symdiff.grad(loss, argnums=(0, 1))
    h = symdiff.hessian(rosen, signature="(n)->(n,n)")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        rs = da.random.RandomState(0)
        X = rs.standard_normal((16000, 16), chunks=(2000, 16))
        Y = (rs.random_sample((16000, 4), chunks=(2000, 4)) < 0.5).astype(np.float64)
        pts = rs.standard_normal((4000, 8), chunks=(500, 8))
        gW, gb = g(W, b, X, Y)
        H = h(pts)
        gW, gb, H, X, Y, pts = dask.compute(gW, gb, H, X, Y, pts)
        generated = client.run(lambda: sorted(m for m in sys.modules if m.startswith("symdiff_generated_")))
    assert len(generated) == 2 and any(generated.values())  # compiled from the shipped source in a worker
    rW, rb = g(W, b, X, Y)
    np.testing.assert_allclose(gW, rW, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gb, rb, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(H, h(pts), rtol=1e-12, atol=1e-12)
