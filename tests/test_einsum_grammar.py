"""np.einsum's whole grammar on traced arrays: implicit output, '...', sublists, spaces, uppercase.

Values against numpy; gradients and Hessians against JAX (x64) and central differences. The operands
are packed into one vector so the Hessian also checks the cross terms between operands.
"""

import numpy as np
import pytest

import symdiff
from .conftest import central_difference

E = Ellipsis
CASES = [  # (subscripts or None for the sublist form, sublists, operand shapes)
    ("ii", None, [(3, 3)]),
    ("ii->i", None, [(3, 3)]),
    ("ij,jk", None, [(2, 3), (3, 2)]),
    ("...ij->...ji", None, [(2, 2, 3)]),
    ("...ij,...jk", None, [(2, 2, 3), (2, 3, 2)]),
    ("bij,bjk->bik", None, [(2, 2, 3), (2, 3, 2)]),
    ("i,i", None, [(3,), (3,)]),
    ("i,j", None, [(2,), (3,)]),
    ("...ij,...jk->...ik", None, [(2, 1, 2, 3), (3, 3, 2)]),  # ellipsis (2, 1) with (3,): broadcast
    ("i...j,j...", None, [(2, 3, 2), (2, 3)]),  # ellipsis in the middle, implicit output puts it first
    ("i,i", None, [(1,), (3,)]),  # a size-1 axis of a letter broadcasts, as in numpy
    (" ij , jk -> ki ", None, [(2, 3), (3, 2)]),
    ("Ab,bA", None, [(2, 3), (3, 2)]),
    ("ba,AB", None, [(2, 3), (2, 2)]),  # implicit output in ASCII order: uppercase first
    ("iji->j", None, [(2, 3, 2)]),
    ("...", None, [(2, 3)]),
    ("i,...->...i", None, [(2,), ()]),
    (None, [[0, 1], [1, 2], [0, 2]], [(2, 3), (3, 2)]),
    (None, [[0, 1], [1, 2]], [(2, 3), (3, 2)]),  # implicit sublist output
    (None, [[E, 0, 1], [E, 1, 2], [E, 0, 2]], [(2, 2, 3), (1, 3, 2)]),
    (None, [[E, 27], [E, 27], [E]], [(2, 3), (3,)]),
    (None, [[1, 1]], [(3, 3)]),
]


def _ids(cases):
    return [c[0] or str(c[1]) for c in cases]


def _split(x, shapes):
    parts, at = [], 0
    for s in shapes:
        n = int(np.prod(s, dtype=int))
        parts.append(x[at : at + n].reshape(s))
        at += n
    return parts


def _call(einsum, subscripts, sublists, operands):
    if subscripts is not None:
        return einsum(subscripts, *operands)
    args = [a for op, sub in zip(operands, sublists) for a in (op, sub)]
    return einsum(*args, *sublists[len(operands) :])


def _objective(xp, case):
    """A scalar that changes when the einsum's entries move (weights by position) and is not multilinear."""
    subscripts, sublists, shapes = case
    out = np.shape(_call(np.einsum, subscripts, sublists, [np.ones(s) for s in shapes]))
    w = np.arange(1.0, 1 + int(np.prod(out, dtype=int))).reshape(out)
    return lambda x: xp.sum(w * xp.sin(_call(xp.einsum, subscripts, sublists, _split(x, shapes))))


def _point(case, seed=0):
    n = sum(int(np.prod(s, dtype=int)) for s in case[2])
    return np.random.default_rng(seed).normal(size=n)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_value_gradient_and_hessian(case):
    x = _point(case)
    f = _objective(np, case)
    value, g = symdiff.value_and_grad(f)(x)
    np.testing.assert_allclose(value, f(x), rtol=1e-13)
    h = symdiff.hessian(f)(x)
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    np.testing.assert_allclose(g, central_difference(f, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(h, central_difference(symdiff.grad(f), x), rtol=1e-6, atol=1e-8)


# JAX compiles a Hessian in about a second: a sample of the table by default, all of it with `-m slow`
JAX_SAMPLE = [CASES[k] for k in (0, 4, 8, 9, 13, 19)]


def _check_against_jax(case):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    ref = _objective(jax.numpy, case)
    x = _point(case, seed=1)
    g_ref, h_ref = jax.jit(lambda v: (jax.grad(ref)(v), jax.hessian(ref)(v)))(x)
    f = _objective(np, case)
    np.testing.assert_allclose(symdiff.grad(f)(x), g_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(symdiff.hessian(f)(x), h_ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", JAX_SAMPLE, ids=_ids(JAX_SAMPLE))
def test_against_jax(case):
    _check_against_jax(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_whole_table_against_jax(case):
    _check_against_jax(case)


def test_optimize_is_accepted():
    A = np.arange(6.0).reshape(2, 3)
    g = symdiff.grad(lambda a: np.sum(np.einsum("ij,ij", a, a, optimize="greedy")))(A)
    np.testing.assert_allclose(g, 2 * A)


BAD = [  # (subscripts, operand shapes, what the message says); numpy raises ValueError on each
    ("ij,jk", [(2, 3)], "fewer operands"),
    ("ij", [(2, 3), (3,)], "more operands"),
    ("ij", [(2, 3, 4)], "has 3 axes"),
    ("ij->k", [(2, 3)], "'k' is in no input"),
    ("ij->ii", [(2, 3)], "more than once"),
    ("i.j", [(2, 3)], "not part of an ellipsis"),
    ("i->......", [(3,)], "not part of an ellipsis"),
    ("i1", [(2, 3)], "invalid subscript '1'"),
    ("i->j->", [(2,)], "invalid subscript '->'"),
    ("...i->i", [(2, 3)], "no '...'"),
    ("ii", [(2, 3)], "sizes 2 and 3"),
    ("ij,j", [(2, 3), (4,)], "do not broadcast"),
    ("...ij,...jk", [(5, 2, 2, 3), (4, 3, 2)], "do not broadcast"),
]


@pytest.mark.parametrize("subscripts,shapes,message", BAD, ids=[b[0] for b in BAD])
def test_malformed_specs_name_the_line(subscripts, shapes, message):
    ops = [np.ones(s) for s in shapes]
    with pytest.raises(ValueError):
        np.einsum(subscripts, *ops)

    def f(a):
        return np.sum(np.einsum(subscripts, a, *ops[1:]))

    with pytest.raises((symdiff.ShapeError, symdiff.TraceError)) as info:
        symdiff.grad(f)(ops[0])
    assert message in str(info.value)
    assert "test_einsum_grammar.py:" in str(info.value)


def test_bad_sublists():
    with pytest.raises(symdiff.TraceError, match=r"\[0, 52\)"):
        symdiff.grad(lambda a: np.sum(np.einsum(a, [0, 52])))(np.ones((2, 3)))
    with pytest.raises(symdiff.ShapeError, match="more than once"):
        symdiff.grad(lambda a: np.sum(np.einsum(a, [0, 1], [1, 1])))(np.ones((2, 3)))
