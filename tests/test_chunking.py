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


def _jax_w3(k, x):
    """The k-th derivative of w3 by JAX in float64, vmapped over the points."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def g(t):
        return jnp.sin(jnp.exp(t) * t) / (1 + t**2)

    for _ in range(k):
        g = jax.grad(g)
    return np.asarray(jax.jit(jax.vmap(g))(x))


@pytest.mark.parametrize("k", [3, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow),
                               pytest.param(4, marks=pytest.mark.slow), pytest.param(5, marks=pytest.mark.slow),
                               pytest.param(6, marks=pytest.mark.slow)])  # JAX's nested grads take seconds each
def test_against_jax(k):
    x = np.linspace(-1.0, 1.0, N)
    want = _jax_w3(k, x)
    np.testing.assert_allclose(symdiff.derivative(w3, k)(x), want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


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


# -- the loop's body writing into buffers made once (symdiff.chunk_buffers) ------------------------


@pytest.mark.parametrize("k", range(1, 7))
def test_buffers_give_bit_identical_numbers(k):
    d = symdiff.derivative(w3, k)
    x = np.random.default_rng(k).uniform(-2.0, 2.0, N)
    source = d.source(x)
    assert "out=buf0" in source and "buffers[:, : stop - start]" in source
    np.testing.assert_array_equal(d(x), _pieces(d, x))  # the plain body: the same operations in the same order


def test_buffers_with_two_arguments_and_layouts():
    d = symdiff.derivative(two, 2)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, (3, N)), rng.uniform(-1, 1, (3, N))
    assert "out=buf0" in d.source(x, y)
    got = d(x, y)
    np.testing.assert_array_equal(got.ravel(), _pieces(d, x, y))
    np.testing.assert_array_equal(d(np.asfortranarray(x), y), got)


def test_float32_keeps_the_allocating_loop():
    source = symdiff.derivative(w3, 4).source(np.ones(N, dtype=np.float32))
    assert f"np.size(x) >= {chunking.MIN_SIZE}" in source and "out=buf" not in source


def test_a_body_with_other_calls_keeps_the_allocating_loop():
    from symdiff import chunk_buffers

    plain = [{"op": "assign", "target": "t0", "expr": "np.exp(x)"},
             {"op": "assign", "target": "t1", "expr": "t0*x + 1"}]
    returned = [{"name": "t1", "dtype": None, "broadcast": None}]
    model = chunk_buffers.model(plain, returned, ["out[a:b]"], {"x"}, lambda k: f"buf{k}")
    assert [c["fn"] for c in model["calls"]] == ["np.exp", "np.multiply", "np.add"]
    assert model["calls"][-1]["out"] == "out[a:b]" and model["buffers"] == ["buf0"]
    other = [{"op": "assign", "target": "t0", "expr": "np.where(x > 0, x, 0)"}, plain[1]]
    assert chunk_buffers.model(other, returned, ["out[a:b]"], {"x"}, lambda k: f"buf{k}") is None
    cast = [{"name": "t1", "dtype": "float64", "broadcast": None}]  # cast on return: copied into the output
    model = chunk_buffers.model(plain, cast, ["out[a:b]"], {"x"}, lambda k: f"buf{k}")
    assert model["calls"][-1]["out"] == "buf0" and model["copies"] == [{"out": "out[a:b]", "value": "t1"}]
