"""np.linalg.qr and np.linalg.pinv: values against numpy, first and second derivatives against JAX
(x64) and central finite differences, square, tall and (pinv) wide matrices, stacks of matrices, and
the refusals (wide QR, unsupported modes)."""

from __future__ import annotations

import numpy as np
import pytest

import symdiff

from .conftest import central_difference

RNG = np.random.default_rng(23)
SQUARE = RNG.normal(size=(3, 3)) + 2 * np.eye(3)
TALL = RNG.normal(size=(5, 3))
STACK = RNG.normal(size=(2, 4, 3))  # a leading batch axis of tall matrices
WQ = {x.shape: RNG.normal(size=x.shape) for x in (SQUARE, TALL, STACK)}  # weights for Q (shape of A)
WR = {x.shape: RNG.normal(size=x.shape[:-2] + (x.shape[-1],) * 2) for x in (SQUARE, TALL, STACK)}
WP = {x.shape: RNG.normal(size=x.shape[:-2] + x.shape[:-3:-1]) for x in (SQUARE, TALL, STACK, TALL.T)}


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def qr_both(xp, a):
    """A loss through Q and R both (Q's sign convention is LAPACK's in numpy and JAX alike)."""
    q, r = xp.linalg.qr(a)
    return xp.sum(xp.sin(q) * WQ[a.shape]) + xp.sum(r**2 * WR[a.shape])


def qr_r_only(xp, a):
    return xp.sum(xp.cos(xp.linalg.qr(a, mode="r")) * WR[a.shape])


def qr_q_product(xp, a):
    """Q R = A: the loss is a polynomial in A, whatever QR's derivative does inside."""
    q, r = xp.linalg.qr(a)
    return xp.sum((q @ r) ** 3)


def pinv_loss(xp, a):
    return xp.sum(xp.cos(xp.linalg.pinv(a)) * WP[a.shape])


LOSSES = [
    ("qr_square", qr_both, SQUARE),
    ("qr_tall", qr_both, TALL),
    ("qr_stack", qr_both, STACK),
    ("qr_r_only", qr_r_only, TALL),
    ("qr_r_only_stack", qr_r_only, STACK),
    ("pinv_square", pinv_loss, SQUARE),
    ("pinv_tall", pinv_loss, TALL),
    ("pinv_wide", pinv_loss, TALL.T),
    ("pinv_stack", pinv_loss, STACK),
]
IDS = [c[0] for c in LOSSES]


@pytest.mark.parametrize("name, loss, x", LOSSES, ids=IDS)
def test_values_match_numpy(name, loss, x):
    value, _ = symdiff.value_and_grad(lambda a: loss(np, a))(x)
    np.testing.assert_allclose(value, loss(np, x), rtol=1e-12)


@pytest.mark.parametrize("name, loss, x", LOSSES, ids=IDS)
def test_grad_and_hessian(jax, name, loss, x):
    """Gradients against JAX and central differences; hessians against central differences of the
    gradient (JAX's own hessians: the next test)."""
    f = lambda a: loss(np, a)
    grad = symdiff.grad(f)
    np.testing.assert_allclose(grad(x), jax.jit(jax.grad(lambda a: loss(jax.numpy, a)))(x), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(grad(x), central_difference(f, x), rtol=1e-6, atol=1e-7)
    hess = symdiff.hessian(f)(x).reshape(x.size, x.size)
    np.testing.assert_allclose(hess, central_difference(grad, x).reshape(x.size, x.size), rtol=1e-5, atol=1e-6)


# JAX's hessians take seconds each to compile: three cases by default (Q and R of a tall matrix and of
# a stack, pinv of a tall matrix), the others with -m slow
SLOW = {"qr_square", "qr_r_only", "qr_r_only_stack", "pinv_square", "pinv_wide", "pinv_stack"}


@pytest.mark.parametrize("name, loss, x", [pytest.param(*c, marks=pytest.mark.slow) if c[0] in SLOW else c
                                           for c in LOSSES], ids=IDS)
def test_hessian_matches_jax(jax, name, loss, x):
    theirs = jax.jit(jax.hessian(lambda a: loss(jax.numpy, a)))(x)
    np.testing.assert_allclose(symdiff.hessian(lambda a: loss(np, a))(x), theirs, rtol=1e-8, atol=1e-10)


def test_qr_product_is_a_polynomial():
    """Through Q R = A, closed forms: gradient 3 A^2 (elementwise), hessian diag(6 A)."""
    f = lambda a: qr_q_product(np, a)
    np.testing.assert_allclose(symdiff.grad(f)(TALL), 3 * TALL**2, rtol=1e-10)
    np.testing.assert_allclose(symdiff.hessian(f)(TALL).reshape(15, 15), np.diag(6 * TALL.ravel()), atol=1e-9)


# Array-valued: jacobians in forward mode (Q, pinv: as many outputs as inputs) and reverse mode with a
# leading basis axis (R: fewer outputs than inputs) against JAX
MAPS = [
    ("q", lambda xp, a: xp.linalg.qr(a)[0], TALL),
    ("r", lambda xp, a: xp.linalg.qr(a)[1], TALL),
    ("r_stack", lambda xp, a: xp.linalg.qr(a)[1], STACK),
    ("q_complete_square", lambda xp, a: xp.linalg.qr(a, mode="complete")[0], SQUARE),
    ("pinv", lambda xp, a: xp.linalg.pinv(a), TALL),
    ("pinv_row", lambda xp, a: xp.linalg.pinv(a)[..., 0, :], STACK),
]


@pytest.mark.parametrize("name, f, x", MAPS, ids=[c[0] for c in MAPS])
def test_jacobian_matches_jax(jax, name, f, x):
    ours = symdiff.jacobian(lambda a: f(np, a))(x)
    np.testing.assert_allclose(ours, jax.jacfwd(lambda a: f(jax.numpy, a))(x), rtol=1e-9, atol=1e-11)


def test_pinv_of_constant_rank_matches_jax(jax):
    """A rank-2 5 x 3 matrix: the rule holds while the rank stays 2 (JAX's assumption too)."""
    low_rank = RNG.normal(size=(5, 2)) @ RNG.normal(size=(2, 3))
    f = lambda a: np.sum(np.linalg.pinv(a) * WP[(5, 3)])
    fj = lambda a: jax.numpy.sum(jax.numpy.linalg.pinv(a) * WP[(5, 3)])
    np.testing.assert_allclose(symdiff.grad(f)(low_rank), jax.jit(jax.grad(fj))(low_rank), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(symdiff.hessian(f)(low_rank), jax.jit(jax.hessian(fj))(low_rank), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("keyword", ["rcond", "rtol"])
def test_pinv_cutoff_is_passed_to_numpy(keyword):
    low_rank = RNG.normal(size=(5, 2)) @ RNG.normal(size=(2, 3)) + 1e-9 * RNG.normal(size=(5, 3))
    f = lambda a: np.sum(np.linalg.pinv(a, **{keyword: 1e-6}) ** 2)
    value, _ = symdiff.value_and_grad(f)(low_rank)
    np.testing.assert_allclose(value, f(low_rank), rtol=1e-10)
    assert value < 0.01 * np.sum(np.linalg.pinv(low_rank) ** 2)  # the cutoff did drop the tiny value
    assert f"np.linalg.pinv(a, {keyword}=1e-06)" in symdiff.grad(f).source(low_rank)


def test_qr_unpacks_like_numpy():
    def f(a):
        result = np.linalg.qr(a)
        return np.sum(result.Q * WQ[a.shape]) + np.sum(result.R * WR[a.shape])

    np.testing.assert_allclose(symdiff.value_and_grad(f)(TALL)[0], f(TALL), rtol=1e-12)
    r = symdiff.jacobian(lambda a: np.linalg.qr(a, mode="r"))(TALL)
    assert r.shape == (3, 3, 5, 3)


def test_signature_batches(jax):
    ours = symdiff.hessian(lambda a: np.sum(np.linalg.qr(a)[1] ** 2 * WR[(3, 3)]), signature="(m,n)->()")(STACK[:, :3])
    hessian = jax.jit(jax.hessian(lambda a: jax.numpy.sum(jax.numpy.linalg.qr(a)[1] ** 2 * WR[(3, 3)])))
    theirs = np.stack([hessian(m) for m in STACK[:, :3]])
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-10)


def test_generated_code_calls_numpy_linalg():
    source = symdiff.hessian(lambda a: qr_both(np, a)).source(TALL)
    assert "np.linalg.qr(" in source and "np.linalg.solve(" in source
    assert "np.linalg.pinv(a)" in symdiff.grad(lambda a: pinv_loss(np, a)).source(TALL)


def test_wide_qr_is_refused_with_what_to_do():
    with pytest.raises(symdiff.TraceError, match=r"wide matrix \(3 x 5.*test_linalg_factor.py:\d+.*a\[\.\.\., :, :3\].*np.swapaxes"):
        symdiff.grad(lambda a: np.sum(np.linalg.qr(a)[1]))(TALL.T)


def test_what_the_wide_qr_error_suggests_works():
    """The suggested rewrite gives numpy's R of a wide matrix, with derivatives (square block invertible)."""
    wide = np.swapaxes(STACK, -1, -2)  # (2, 3, 4)

    def f(a):
        q, r1 = np.linalg.qr(a[..., :, :3])
        r2 = np.swapaxes(q, -1, -2) @ a[..., :, 3:]
        return np.sum(np.sin(np.concatenate([r1, r2], axis=-1)))

    value, grad = symdiff.value_and_grad(f)(wide)
    np.testing.assert_allclose(value, np.sum(np.sin(np.linalg.qr(wide)[1])), rtol=1e-12)
    np.testing.assert_allclose(grad, central_difference(f, wide), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["raw", "full"])
def test_other_modes_are_refused(mode):
    with pytest.raises(symdiff.TraceError, match="mode='reduced'"):
        symdiff.grad(lambda a: np.sum(np.linalg.qr(a, mode=mode)[0]))(TALL)


def test_complete_mode_of_a_tall_matrix_is_refused():
    with pytest.raises(symdiff.TraceError, match="non-square"):
        symdiff.grad(lambda a: np.sum(np.linalg.qr(a, mode="complete")[0]))(TALL)


def test_refusals_and_shape_errors():
    with pytest.raises(symdiff.TraceError, match="hermitian"):
        symdiff.grad(lambda a: np.sum(np.linalg.pinv(a, hermitian=True)))(SQUARE)
    with pytest.raises(symdiff.TraceError, match="rcond= a Python number"):
        symdiff.grad(lambda a: np.sum(np.linalg.pinv(a, rcond=np.array([1e-3, 1e-4]))))(STACK)
    with pytest.raises(symdiff.ShapeError):
        symdiff.grad(lambda a: np.sum(np.linalg.qr(a)[0]))(np.ones(3))
    with pytest.raises(symdiff.ShapeError):
        symdiff.grad(lambda a: np.sum(np.linalg.pinv(a)))(np.ones(3))
