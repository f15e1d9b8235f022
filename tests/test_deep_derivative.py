"""derivative() of long elementwise chains: written out as one formula they grow exponentially
(``a = np.sin(a) + 0.1 * a`` doubles the tree per line), so past a size the derivative is taken on
the graph. Reproducer: 100 such lines compiled for over 10 minutes."""

import time

import numpy as np
import pytest

import symdiff
from symdiff import symbolic


def chain(depth):
    def f(a, b):
        for _ in range(depth):
            a = np.sin(a) + 0.1 * a * b
        return a

    return f


@pytest.mark.parametrize("order", [1, 2, 4])
def test_graph_route_equals_the_formula_route(monkeypatch, order):
    """The same short chain both ways: SymPy's diff of one formula, and the graph route forced by a
    tiny size budget. Two independent computations of the same numbers."""
    f = chain(4)
    x, y = np.linspace(-1.0, 1.0, 5), np.array([[0.5], [0.7]])
    by_formula = symdiff.derivative(f, order)(x, y)
    monkeypatch.setattr(symbolic, "MAX_FORMULA_TERMS", 1)
    by_graph = symdiff.derivative(chain(4), order)(x, y)
    assert by_graph.shape == by_formula.shape == (2, 5)
    np.testing.assert_allclose(by_graph, by_formula, rtol=1e-12, atol=1e-12)


def test_a_hundred_line_chain_compiles_quickly_and_is_right():
    f = chain(100)
    x = np.array([0.3, -0.4, 1.2])
    start = time.perf_counter()
    d1 = symdiff.derivative(f)(x, 0.5)
    d2 = symdiff.derivative(f, 2)(x, 0.5)
    assert time.perf_counter() - start < 120  # was > 600 s; a hang is the failure, not the speed
    h = 1e-5
    fd1 = (f(x + h, 0.5) - f(x - h, 0.5)) / (2 * h)
    fd2 = (d1_at := symdiff.derivative(f))(x + h, 0.5) - d1_at(x - h, 0.5)
    np.testing.assert_allclose(d1, fd1, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d2, fd2 / (2 * h), rtol=1e-5, atol=1e-8)


def test_a_long_chain_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def g(a):
        for _ in range(60):
            a = jnp.sin(a) + 0.1 * a * 0.5
        return a

    d = jax.grad
    x = np.array([0.3, -0.4, 1.2])
    for order in (1, 2, 3):
        expected = g
        for _ in range(order):
            expected = d(expected)
        ours = symdiff.derivative(chain(60), order)(x, 0.5)
        np.testing.assert_allclose(ours, [float(expected(v)) for v in x], rtol=1e-10, atol=1e-12)


def test_an_unused_argument_is_treated_alike_on_both_routes(monkeypatch):
    def f(a, b):
        return np.sin(a) * np.cos(a)

    args = (np.array([0.1, 0.2]), np.ones((3, 1)))
    by_formula = symdiff.derivative(f)(*args)
    monkeypatch.setattr(symbolic, "MAX_FORMULA_TERMS", 1)
    by_graph = symdiff.derivative(lambda a, b: np.sin(a) * np.cos(a))(*args)
    assert by_graph.shape == by_formula.shape
    np.testing.assert_allclose(by_graph, np.cos(2 * args[0]) + 0 * by_graph, rtol=1e-12)


def test_formula_of_a_long_chain_says_to_read_the_source():
    with pytest.raises(symdiff.SymdiffError, match=r"source\(\)"):
        symdiff.derivative(chain(100)).formula(0.3, 0.5)
    assert "cos" in str(symdiff.derivative(chain(2)).formula(0.3, 0.5))
