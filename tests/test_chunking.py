"""Long elementwise bodies over large arrays run over cache-sized slices: the same numbers as the
body over the whole array, for any shape, layout and broadcast of the arguments."""

import numpy as np
import pytest

import symdiff
from symdiff import chunking


def w3(x):
    return np.sin(np.exp(x) * x) / (1 + x**2)


def two(x, y):
    return np.sin(x * y) * np.exp(-x) / (1 + y**2) + np.cos(x) * y**3


N = chunking.MIN_SIZE + chunking.CHUNK // 3  # above the threshold, not a multiple of the slice


def _pieces(fun, *args):
    """``fun`` over the arguments in small pieces (each below the threshold: the plain body)."""
    size = chunking.MIN_SIZE // 2
    flat = [np.ravel(a) for a in args]
    return np.concatenate([fun(*(f[i : i + size] for f in flat)) for i in range(0, flat[0].size, size)])


def test_a_long_derivative_is_chunked_and_gives_the_same_numbers():
    d = symdiff.derivative(w3, 4)
    x = np.linspace(-1.0, 1.0, N)
    assert f"np.size(x) >= {chunking.MIN_SIZE}" in d.source(x)
    np.testing.assert_allclose(d(x), _pieces(d, x), rtol=1e-13, atol=0)


def test_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def g(t):
        return jnp.sin(jnp.exp(t) * t) / (1 + t**2)

    for _ in range(3):
        g = jax.grad(g)
    x = np.linspace(0.0, 1.0, N)
    np.testing.assert_allclose(symdiff.derivative(w3, 3)(x), np.asarray(jax.vmap(g)(x)), rtol=1e-10, atol=1e-12)


def test_shapes_layouts_and_broadcasts():
    d = symdiff.derivative(two, 2)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (3, N)), rng.uniform(-1, 1, (3, N))
    got = d(x, y)
    assert got.shape == (3, N)
    np.testing.assert_allclose(got.ravel(), _pieces(d, x, y), rtol=1e-13, atol=1e-300)
    xt = np.asfortranarray(x)  # not C-contiguous: raveled by copy
    np.testing.assert_allclose(d(xt, y), got, rtol=1e-13)
    col = d(x[:, :1], y)  # a broadcast: the plain body
    np.testing.assert_allclose(col, d(np.broadcast_to(x[:, :1], y.shape).copy(), y), rtol=1e-13)


def test_float32_stays_float32():
    d = symdiff.derivative(w3, 4)
    x = np.linspace(0, 1, N, dtype=np.float32)
    got = d(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _pieces(d, x), rtol=1e-6)


def test_short_bodies_and_small_arrays_are_not_chunked():
    short = symdiff.derivative(lambda x: 3 * x**2).source(np.ones(N))
    assert f"np.size(x) >= {chunking.MIN_SIZE}" not in short
    d = symdiff.derivative(w3, 4)
    small = np.linspace(0, 1, 100)
    np.testing.assert_allclose(d(small), _pieces(d, small), rtol=0)
