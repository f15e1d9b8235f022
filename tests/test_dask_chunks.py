"""Transforms on Dask arrays with uneven and mismatched chunkings equal the numpy backend to 1e-12.

Per-point transforms (``signature=``, ``derivative``) map the kernel over chunks: arguments chunked
differently along a batch axis (two Dask arrays, or a Dask and a numpy one) are aligned first; core
axes split into chunks are joined. Whole-array transforms (no ``signature=``) run the generated code
on the Dask arrays and are never mapped chunk by chunk, which would give each chunk its own mean.
"""

import numpy as np
import pytest

import symdiff
from symdiff.errors import SymdiffError

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

RNG = np.random.default_rng(11)


def leaves(tree):
    return [x for t in tree for x in leaves(t)] if isinstance(tree, (tuple, list)) else [tree]


def same(lazy, expected):
    got, exp = leaves(lazy), leaves(expected)
    assert len(got) == len(exp)
    assert all(isinstance(g, da.Array) for g in got), [type(g) for g in got]
    for g, e in zip(dask.compute(*got, scheduler="sync"), exp):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def pair(x, y):
    return np.sum(np.sin(x) * y**2) + np.sum(x) * np.sum(y)


def test_arguments_chunked_differently_along_the_batch():
    x, y = RNG.normal(size=(10, 6)), RNG.normal(size=(10, 6))
    g = symdiff.grad(pair, argnums=(0, 1), signature="(n),(n)->()")
    expected = g(x, y)
    same(g(da.from_array(x, chunks=((3, 5, 2), (2, 4))), da.from_array(y, chunks=((5, 5), 6))), expected)
    same(g(da.from_array(x, chunks=((3, 5, 2), 6)), y), expected)  # a numpy argument is one chunk
    x3, y3 = RNG.normal(size=(4, 1, 6)), RNG.normal(size=(1, 5, 6))  # broadcast batch axes
    same(g(da.from_array(x3, chunks=((1, 3), 1, 6)), da.from_array(y3, chunks=(1, (2, 3), 6))), g(x3, y3))


def test_derivative_with_a_second_array_chunked_otherwise():
    def f(t, w):
        return np.sin(t * w) * t

    x, w = RNG.normal(size=10), RNG.normal(size=10)
    for argnums in (0, 1):
        d = symdiff.derivative(f, argnums=argnums)
        same(d(da.from_array(x, chunks=(3, 5, 2)), w), d(x, w))
        same(d(da.from_array(x, chunks=(3, 5, 2)), da.from_array(w, chunks=5)), d(x, w))


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_uneven_chunks_two_batch_axes_and_a_split_core(backend):
    if backend == "array_api":
        pytest.importorskip("array_api_compat")
    z = RNG.normal(size=(5, 7, 4))
    lazy = da.from_array(z, chunks=((3, 2), (1, 4, 2), (3, 1)))
    h = symdiff.hessian(lambda v: np.sum(np.cos(v) * v[::-1]) + np.prod(v), signature="(n)->(n,n)", backend=backend)
    same(h(lazy), h(z))
    j = symdiff.jacobian(lambda v: np.cumsum(v) * v, signature="(n)->(n)", backend=backend)
    same(j(lazy), j(z))
    vg = symdiff.value_and_grad(lambda v: (np.sum(v**3), np.max(v)), signature="(n)->()", has_aux=True,
                                backend=backend)
    same(vg(lazy), vg(z))


def loss_with_aux(w, x):
    r = x @ w
    return np.mean((r - np.mean(r)) ** 2) + np.sum(np.tanh(w)), (np.max(r), r)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_whole_array_value_and_grad_with_aux_over_uneven_row_chunks(backend, monkeypatch):
    if backend == "array_api":
        pytest.importorskip("array_api_compat")
    from symdiff.dask_kernel import Kernel

    monkeypatch.setattr(Kernel, "__call__", lambda *a: pytest.fail("a whole-array transform was mapped per chunk"))
    w, x = RNG.normal(size=6), RNG.normal(size=(10, 6))
    xd = da.from_array(x, chunks=((3, 5, 2), (2, 4)))
    vg = symdiff.value_and_grad(loss_with_aux, has_aux=True, backend=backend)
    same(vg(w, xd), vg(w, x))
    vg2 = symdiff.value_and_grad(loss_with_aux, argnums=(0, 1), has_aux=True, backend=backend)
    same(vg2(da.from_array(w, chunks=(2, 4)), xd), vg2(w, x))
    h = symdiff.hessian(lambda w, x: np.sum(np.sin(x @ w - np.mean(x @ w)) ** 2), backend=backend)
    same(h(w, xd), h(w, x))


def test_a_function_dasks_array_api_namespace_lacks_is_a_symdiff_error():
    pytest.importorskip("array_api_compat")
    g = symdiff.grad(lambda x: np.sum(np.sort(x, axis=0)[0] ** 2), backend="array_api")
    x = RNG.normal(size=(10, 6))
    g(x)
    with pytest.raises(SymdiffError, match=r"does not run on Dask arrays at line \d+.*take_along_axis"):
        g(da.from_array(x, chunks=((3, 5, 2), 6)))
