"""Compiles that once ran for minutes (found by the fuzz tests), now quick, with the same results.

* SymPy's Max/Min compares every pair of its arguments symbolically each time an expression is
  rebuilt: the max of 12 element symbols (a batched core, scalarized) and its derivatives took
  minutes. ``primitives.Max``/``Min`` only flatten, drop repeats and fold numbers.
* Fusing elementwise bodies that use their operand in both branches of a select, level after level,
  made a body of 84 distinct subexpressions a tree of 7e7 nodes, which SymPy walks node by node
  (torchlike: maximum, softmax, tanh and a second derivative). Fused bodies stay small as trees.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symdiff
from symdiff import ir, optimize
from symdiff.evaluate import evaluate
from symdiff.primitives import Max, Min, Where

from .conftest import central_difference

X = np.array([[0.3, -1.2, 0.8, 0.1], [-0.4, 1.1, 0.2, -0.9], [0.5, 1.4, -1.3, 0.6]])


def _max_program(x):
    """The fuzz reproducer: the max of all 12 elements, through abs and exp."""
    m = np.max(x)
    return np.abs(m) * 1.14 - 0.54 * np.exp(np.abs(m)) - 0.52 * np.sum(np.abs(x))


def _closed_form(x):
    """Gradient and Hessian of _max_program at a point with a unique maximum m > 0."""
    m = x.max()
    g = np.zeros_like(x)
    g[np.unravel_index(x.argmax(), x.shape)] = 1.14 - 0.54 * np.exp(m)
    g -= 0.52 * np.sign(x)
    h = np.zeros(x.shape * 2)
    i = np.unravel_index(x.argmax(), x.shape)
    h[i + i] = -0.54 * np.exp(m)
    return g, h


def test_the_max_of_twelve_elements_of_a_batched_core():
    batch = np.stack([X, X * 0.5 + 0.1])
    value, grad = symdiff.value_and_grad(_max_program, signature="(n0,n1)->()")(batch)
    hess = symdiff.hessian(_max_program, signature="(n0,n1)->()")(batch)
    for k in range(2):
        g, h = _closed_form(batch[k])
        np.testing.assert_allclose(value[k], _max_program(batch[k]), rtol=1e-14)
        np.testing.assert_allclose(grad[k], g, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(hess[k], h, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(grad[k], central_difference(_max_program, batch[k]), rtol=1e-6, atol=1e-8)


def test_ties_of_the_scalarized_max_keep_their_convention():
    """Two elements tied for the max share its derivative: 1/2 each (as JAX)."""
    x = X.copy()
    x[0, 0] = x[1, 1] = 2.0
    g = symdiff.grad(lambda v: np.max(v) * 3.0, signature="(n0,n1)->()")(x[None])[0]
    expected = np.zeros_like(x)
    expected[0, 0] = expected[1, 1] = 1.5
    np.testing.assert_array_equal(g, expected)


def test_max_and_min_simplify_only_cheaply():
    a, b, c = sympy.symbols("a b c", real=True)
    assert Max(a, Max(b, c)) == Max(a, b, c) and Max(a, a) == a
    assert Max(a, 2, 3) == Max(a, 3) and Min(1.5, 0.5) == 0.5 and Max(2, 3) == 3
    assert Max(a, b).xreplace({a: 1, b: 2}) == 2 and Min(a, b, c).xreplace({c: a}) == Min(a, b)
    assert isinstance(Max(a, b), sympy.Max) and str(Max(a, b, c)) == str(sympy.Max(a, b, c))
    # derivatives as SymPy's: Heaviside of the difference to the other arguments, 1/2 at a tie
    assert Max(a, b).diff(a) == sympy.Max(a, b).diff(a)
    assert Min(a, b, c).diff(a) == sympy.Heaviside(Min(b, c) - a)
    assert Max(a, b, c).diff(c).subs({a: 1, b: 1, c: 1}) == sympy.S.Half


def test_fused_bodies_stay_small_as_trees():
    """Each level selects its operand in two branches: fused into one body, 2**24 leaves."""
    x = ir.input_node(0, (5,), "float64")
    masks = [ir.input_node(k, (5,), "bool") for k in (1, 2)]
    a0, a1, a2 = (ir.placeholder(i) for i in range(3))
    v = x
    for _ in range(24):
        v = ir.elementwise(Where(a1, a0, Where(a2, 0.5 * a0, 0)) + Where(a2, a0, 0), [v, *masks])
    (fused,) = optimize.optimize([v])
    sizes = [optimize._extent(n.body)[1] for n in ir.toposort([fused]) if n.op == "elementwise"]
    assert max(sizes) <= optimize.MAX_FUSED_TREE
    rng = np.random.default_rng(0)
    leaves = {0: rng.uniform(-1, 1, 5), 1: rng.random(5) > 0.3, 2: rng.random(5) > 0.5}
    (expected,) = evaluate([v], leaves)
    (got,) = evaluate([fused], leaves)
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_torchlike_maximum_softmax_tanh_with_a_second_derivative():
    """test_torchlike_cache_fuzz.py's program 304, step 0: against PyTorch."""
    torch = pytest.importorskip("torch")
    import symdiff.torchlike as tl

    def run(L):
        r = np.random.default_rng(0)
        w = L.tensor(r.standard_normal((4, 4)) * 0.5, dtype=L.float64, requires_grad=True)
        b = L.tensor(r.standard_normal(4) * 0.5, dtype=L.float64, requires_grad=True)
        u = L.tensor(r.standard_normal((3, 4)) * 0.1, dtype=L.float64, requires_grad=True)
        h = L.tensor(X, dtype=L.float64) @ w + b + u * 2.0
        h = L.maximum(h, h.detach() * 0.6)
        h = 0.0 - (L.softmax(h, dim=0).tanh() + 0.0)
        loss = h.norm() + h.sum(dim=0).pow(2).sum()
        (g,) = L.autograd.grad(loss, w, create_graph=True)
        (loss + (g * g).sum()).backward()
        return [t.grad.detach().numpy() for t in (w, b, u)]

    for ours, theirs in zip(run(tl), run(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
