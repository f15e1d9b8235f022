"""np.linalg (issue 12): values against numpy, first and second derivatives against JAX (x64) and
central finite differences, forward and reverse mode, stacks of matrices and signature= batches."""

from __future__ import annotations

import numpy as np
import pytest

import symdiff

RNG = np.random.default_rng(12)
N = 3
A = RNG.normal(size=(N, N)) + 3 * np.eye(N)
B = RNG.normal(size=(N, 2))
V = RNG.normal(size=N)
X = RNG.normal(size=(N, N))
S = X @ X.T + N * np.eye(N)  # symmetric positive definite, distinct eigenvalues
W = np.array([1.0, -2.0, 0.5])
STACK = RNG.normal(size=(4, N, N)) + 3 * np.eye(N)
TALL = RNG.normal(size=(4, N))
C = RNG.normal(size=(4, N))
SPD_STACK = np.einsum("bij,bkj->bik", STACK, STACK) + N * np.eye(N)


@pytest.fixture(scope="module")
def jnp():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jnp


def _jax():
    import jax

    return jax


# Scalar losses: (name, symdiff/numpy function, jax function of the jax.numpy module, argument)
LOSSES = [
    ("solve", lambda a: np.sum(np.linalg.solve(a, V) ** 2), lambda j, a: j.sum(j.linalg.solve(a, V) ** 2), A),
    ("solve_matrix", lambda a: np.sum(np.linalg.solve(a, B) ** 2), lambda j, a: j.sum(j.linalg.solve(a, B) ** 2), A),
    ("slogdet", lambda a: np.linalg.slogdet(a)[1], lambda j, a: j.linalg.slogdet(a)[1], A),
    ("inv", lambda a: np.sum(np.linalg.inv(a) @ B), lambda j, a: j.sum(j.linalg.inv(a) @ B), A),
    ("det", lambda a: np.linalg.det(a), lambda j, a: j.linalg.det(a), A),
    ("cholesky", lambda s: np.sum(np.linalg.cholesky(s)), lambda j, s: j.sum(j.linalg.cholesky(s)), S),
    ("eigh", lambda s: np.sum(np.linalg.eigh(s)[0] * W), lambda j, s: j.sum(j.linalg.eigh(s)[0] * W), S),
    ("eigh_vectors", lambda s: np.sum(np.linalg.eigh(s)[1] ** 2 * W), lambda j, s: j.sum(j.linalg.eigh(s)[1] ** 2 * W), S),
    ("det_stack", lambda a: np.sum(np.linalg.det(a) ** 2), lambda j, a: j.sum(j.linalg.det(a) ** 2), STACK),
    ("matrix_power", lambda a: np.sum(np.linalg.matrix_power(a, 3) * X), lambda j, a: j.sum(j.linalg.matrix_power(a, 3) * X), A),
    ("matrix_power_negative", lambda a: np.sum(np.linalg.matrix_power(a, -2)), lambda j, a: j.sum(j.linalg.matrix_power(a, -2)), A),
    ("nuclear_norm", lambda a: np.linalg.norm(a, "nuc"), lambda j, a: j.linalg.norm(a, "nuc"), TALL),
    ("spectral_norm", lambda a: np.linalg.norm(a, 2), lambda j, a: j.linalg.norm(a, 2), TALL.T),
    ("svd_values", lambda a: np.sum(np.linalg.svd(a, compute_uv=False) ** 3), lambda j, a: j.sum(j.linalg.svd(a, compute_uv=False) ** 3), TALL),
    ("svd_u", lambda a: np.sum(np.linalg.svd(a, full_matrices=False)[0] ** 2 * C), lambda j, a: j.sum(j.linalg.svd(a, full_matrices=False)[0] ** 2 * C), TALL),
    ("svd_vh_wide", lambda a: np.sum(np.linalg.svd(a, full_matrices=False)[2] ** 2 * C.T), lambda j, a: j.sum(j.linalg.svd(a, full_matrices=False)[2] ** 2 * C.T), TALL.T),
    ("cholesky_stack", lambda s: np.sum(np.linalg.cholesky(s) ** 2), lambda j, s: j.sum(j.linalg.cholesky(s) ** 2), SPD_STACK),
]
IDS = [c[0] for c in LOSSES]


@pytest.mark.parametrize("name, f, fj, x", LOSSES, ids=IDS)
def test_values_match_numpy(name, f, fj, x):
    value, _ = symdiff.value_and_grad(f)(x)
    np.testing.assert_allclose(value, f(x), rtol=1e-12)


@pytest.mark.parametrize("name, f, fj, x", LOSSES, ids=IDS)
def test_grad_and_hessian_match_jax(jnp, name, f, fj, x):
    jax = _jax()
    np.testing.assert_allclose(symdiff.grad(f)(x), jax.grad(lambda a: fj(jnp, a))(x), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(symdiff.hessian(f)(x), jax.hessian(lambda a: fj(jnp, a))(x), rtol=1e-8, atol=1e-10)


def _central(f, x, h=1e-6):
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[idx] = h
        out[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return out


def _through_symmetric(f):
    """The decompositions read a symmetric input: differentiate through S = Y Y^T + n I."""
    return lambda y: f(y @ y.T + N * np.eye(N))


FD_LOSSES = [(n, f if x is not S else _through_symmetric(f), X if x is S else x)
             for n, f, _, x in LOSSES if x is A or x is S]


@pytest.mark.parametrize("name, f, x", FD_LOSSES, ids=[c[0] for c in FD_LOSSES])
def test_grad_and_hessian_match_finite_differences(name, f, x):
    np.testing.assert_allclose(symdiff.grad(f)(x), _central(f, x), rtol=1e-6, atol=1e-7)
    grad = symdiff.grad(f)
    hess = symdiff.hessian(f)(x).reshape(x.size, x.size)
    fd = np.stack([_central(lambda y, i=idx: grad(y)[i], x).ravel() for idx in np.ndindex(x.shape)])
    np.testing.assert_allclose(hess, fd, rtol=1e-5, atol=1e-6)


# Array-valued functions: forward-mode jacobians (and the reverse ones of their sums) against JAX
MAPS = [
    ("solve", lambda a: np.linalg.solve(a, B), lambda j, a: j.linalg.solve(a, B), A),
    ("inv", lambda a: np.linalg.inv(a), lambda j, a: j.linalg.inv(a), A),
    ("inv_stack", lambda a: np.linalg.inv(a), lambda j, a: j.linalg.inv(a), STACK),
    ("det_stack", lambda a: np.linalg.det(a), lambda j, a: j.linalg.det(a), STACK),
    ("slogdet_stack", lambda a: np.linalg.slogdet(a)[1], lambda j, a: j.linalg.slogdet(a)[1], STACK),
    ("cholesky", lambda s: np.linalg.cholesky(s), lambda j, s: j.linalg.cholesky(s), S),
    ("eigvals", lambda s: np.linalg.eigh(s)[0], lambda j, s: j.linalg.eigh(s)[0], SPD_STACK),
]


@pytest.mark.parametrize("name, f, fj, x", MAPS, ids=[c[0] for c in MAPS])
def test_jacobian_matches_jax(jnp, name, f, fj, x):
    jax = _jax()
    np.testing.assert_allclose(symdiff.jacobian(f)(x), jax.jacfwd(lambda a: fj(jnp, a))(x), rtol=1e-9, atol=1e-11)


def test_solve_derivatives_in_both_arguments(jnp):
    jax = _jax()
    f = lambda a, b: np.sum(np.sin(np.linalg.solve(a, b)))
    fj = lambda a, b: jnp.sum(jnp.sin(jnp.linalg.solve(a, b)))
    ours = symdiff.grad(f, argnums=(0, 1))(A, B)
    theirs = jax.grad(fj, argnums=(0, 1))(A, B)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o, t, rtol=1e-10)
    np.testing.assert_allclose(symdiff.hessian(lambda b: f(A, b))(B), jax.hessian(lambda b: fj(A, b))(B), atol=1e-12)
    stack_b = RNG.normal(size=(4, N, 2))  # a stack of right-hand sides against one matrix
    np.testing.assert_allclose(symdiff.grad(f)(A, stack_b), jax.grad(fj)(A, stack_b), rtol=1e-10)


def test_slogdet_unpacks_like_numpy():
    def f(a):
        sign, logabsdet = np.linalg.slogdet(a)
        return sign * np.exp(logabsdet)

    result = np.linalg.slogdet(-A)
    value, grad = symdiff.value_and_grad(f)(-A)
    np.testing.assert_allclose(value, result.sign * np.exp(result.logabsdet))
    np.testing.assert_allclose(grad, np.linalg.det(-A) * np.linalg.inv(-A).T, rtol=1e-10)
    named = symdiff.grad(lambda a: np.linalg.slogdet(a).logabsdet + np.linalg.eigh(a @ a.T).eigenvalues[0])
    assert named(A).shape == A.shape


@pytest.mark.parametrize("transform", [symdiff.grad, symdiff.hessian])
def test_signature_batches(jnp, transform):
    jax = _jax()
    jt = {symdiff.grad: jax.grad, symdiff.hessian: jax.hessian}[transform]
    cases = [
        (lambda a: np.linalg.det(a), lambda a: jnp.linalg.det(a), STACK),
        (lambda a: np.linalg.slogdet(a)[1], lambda a: jnp.linalg.slogdet(a)[1], STACK),
        (lambda a: np.sum(np.linalg.solve(a, V) ** 2), lambda a: jnp.sum(jnp.linalg.solve(a, V) ** 2), STACK),
        (lambda s: np.sum(np.linalg.cholesky(s)), lambda s: jnp.sum(jnp.linalg.cholesky(s)), SPD_STACK),
        (lambda s: np.sum(np.linalg.eigh(s)[0] * W), lambda s: jnp.sum(jnp.linalg.eigh(s)[0] * W), SPD_STACK),
    ]
    for f, fj, x in cases:
        ours = transform(f, signature="(n,n)->()")(x)
        theirs = np.stack([jt(fj)(m) for m in x])
        np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-10)


def test_generated_code_calls_numpy_linalg():
    source = symdiff.hessian(lambda a: np.linalg.det(a)).source(A)
    assert "np.linalg.det(" in source and "np.linalg.inv(" in source
    assert "np.linalg.cholesky(" in symdiff.grad(lambda s: np.sum(np.linalg.cholesky(s))).source(S)
    assert "np.linalg.solve(" in symdiff.grad(lambda a: np.sum(np.linalg.solve(a, B))).source(A)
    # a small core is not expanded into a formula (no per-point scalarization of a determinant)
    small = symdiff.hessian(lambda a: np.linalg.det(a), signature="(n,n)->()").source(STACK[:, :2, :2])
    assert "np.linalg.det(" in small


def test_shape_errors():
    with pytest.raises(symdiff.errors.ShapeError):
        symdiff.grad(lambda a: np.linalg.det(a))(np.ones((2, 3)))
    with pytest.raises(symdiff.errors.ShapeError):
        symdiff.grad(lambda a: np.sum(np.linalg.solve(a, np.ones(4))))(A)
