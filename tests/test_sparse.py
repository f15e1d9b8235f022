"""Sparse Jacobians and Hessians: patterns read from the IR against dense derivatives, compressed
evaluation against dense results, colour counts, and scipy's solvers as users."""

import sys
import time

import numpy as np
import pytest

import symdiff

sp = pytest.importorskip("scipy.sparse")
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "examples"))
from sparse_solvers import brusselator

rng = np.random.default_rng(7)
A = np.zeros((6, 6))
A[[0, 1, 2, 4, 5], [1, 1, 3, 0, 5]] = [2.0, -1.0, 3.0, 1.5, 0.5]


def rosen(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def local3(x):
    return np.sum(np.sin(x[:-2] * x[1:-1]) * x[2:]) + np.sum(x**4)


def stencil(u):
    return np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1) + np.roll(u, -1, 1) - 4 * u + u**3


def interior(u):
    return u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1] ** 2


PROGRAMS = {  # name: (function, argument); no cancellation at a random point
    "elementwise": (lambda x: np.exp(x) * x + np.sin(x) ** 2, rng.normal(size=(3, 4))),
    "roll stencil": (stencil, rng.normal(size=(5, 5))),
    "slicing differences": (lambda x: (x[1:] - x[:-1]) ** 2 + x[::2].sum() * x[1:], rng.normal(size=7)),
    "sums": (lambda x: np.sum(x**2, axis=0) * np.mean(x, axis=1)[:3], rng.normal(size=(4, 3))),
    "matmul constant": (lambda x: A @ np.tanh(x) + (x @ A.T)[::-1], rng.normal(size=6)),
    "matmul traced": (lambda x: x[:2] @ np.sin(x[2:]), rng.normal(size=(5, 3))),
    "where": (lambda x: np.where(x[:-1] > 0, x[1:] ** 2, np.cos(x[:-1])), rng.normal(size=8)),
    "reductions": (lambda x: np.concatenate([np.sum(x**2, axis=1), np.prod(x, axis=0), np.mean(x[:, :2], axis=1)]),
                   rng.normal(size=(3, 4))),
    "broadcasting": (lambda x: x[:, None] * x[None, 1:3] + x[:, None], rng.normal(size=4)),
    "cumsum": (lambda x: np.cumsum(x**2, axis=0)[::-1] + np.cumsum(np.sin(x), axis=1), rng.normal(size=(3, 4))),
    "stack transpose": (lambda x: np.stack([x.T[1], np.log1p(x[0, ::2] ** 2)]).reshape(-1), rng.normal(size=(2, 3))),
}


def dense_jacobian(f, x):
    return np.asarray(symdiff.jacobian(f)(x)).reshape(np.size(f(x)), x.size)


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_jacobian_pattern_is_the_nonzeros(name):
    f, x = PROGRAMS[name]
    pattern = symdiff.jacobian_sparsity(f)(x)
    assert isinstance(pattern, sp.csr_array) and pattern.dtype == bool
    nonzero = dense_jacobian(f, x) != 0
    assert pattern.shape == nonzero.shape
    assert not (nonzero & ~pattern.toarray()).any()  # every nonzero is in the pattern
    if name == "where":  # structurally both branches: the union over points taking either
        nonzero |= dense_jacobian(f, -x) != 0
    np.testing.assert_array_equal(pattern.toarray(), nonzero)


def _random_program(seed):
    """A composition of 4 steps drawn from elementwise, shifts, slices, sums, a sparse constant matmul,
    concatenation and broadcasting, on a vector whose length changes along the way."""
    r = np.random.default_rng(seed)
    steps = []
    for _ in range(4):
        kind = int(r.integers(7))
        k = int(r.integers(1, 3))
        if kind == 0:
            steps.append(lambda v: np.sin(v) * v + np.exp(v) ** 2)
        elif kind == 1:
            steps.append(lambda v, k=k: np.roll(v, k) * v)
        elif kind == 2:
            steps.append(lambda v, k=k: v[k:] - v[:-k] ** 2)
        elif kind == 3:
            steps.append(lambda v: v * np.sum(v[:3] ** 2))
        elif kind == 4:
            mask = r.random((40, 40)) < 0.1
            steps.append(lambda v, m=mask: (m[: v.size, : v.size] * np.arange(1.0, v.size + 1)) @ np.tanh(v) + v)
        elif kind == 5:
            steps.append(lambda v: np.concatenate([v, v[::2] ** 3]))
        else:
            steps.append(lambda v: (v[:, None] * v[None, :3]).reshape(-1)[: 2 * v.size])

    def program(x):
        v = x
        for step in steps:
            v = step(v)
        return v

    return program


@pytest.mark.parametrize("seed", range(12))
def test_random_program_patterns(seed):
    f = _random_program(seed)
    points = [np.random.default_rng(100 + s).normal(size=9) * 0.5 for s in range(5)]
    x = points[0]
    pattern = symdiff.jacobian_sparsity(f)(x).toarray()
    nonzero = np.zeros_like(pattern)
    for point in points:
        here = dense_jacobian(f, point) != 0
        assert not (here & ~pattern).any()
        nonzero |= here  # over a few points: tanh of exp(v)**2 can saturate to an exact 0 at one
    np.testing.assert_array_equal(pattern, nonzero)
    np.testing.assert_allclose(symdiff.jacobian(f, sparse=True)(x).toarray(), dense_jacobian(f, x), rtol=1e-12, atol=1e-12)


def test_max_and_min_depend_on_every_entry_they_reduce():
    x = rng.normal(size=(3, 4))
    pattern = symdiff.jacobian_sparsity(lambda x: np.concatenate([np.max(x, axis=1), np.min(x[:, :2], axis=1)]))(x)
    expected = np.zeros((6, 12), dtype=bool)
    for i in range(3):
        expected[i, 4 * i : 4 * i + 4] = True  # any entry may be the maximum
        expected[3 + i, 4 * i : 4 * i + 2] = True
    np.testing.assert_array_equal(pattern.toarray(), expected)


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_sparse_jacobian_equals_dense(name):
    f, x = PROGRAMS[name]
    jac = symdiff.jacobian(f, sparse=True)(x)
    assert isinstance(jac, sp.csr_array)
    np.testing.assert_allclose(jac.toarray(), dense_jacobian(f, x), rtol=1e-12, atol=1e-12)


def test_sparse_jacobian_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def jstencil(u):
        return jnp.roll(u, 1, 0) + jnp.roll(u, -1, 0) + jnp.roll(u, 1, 1) + jnp.roll(u, -1, 1) - 4 * u + u**3

    u = rng.normal(size=(5, 5))
    reference = np.asarray(jax.jacfwd(jstencil)(u)).reshape(25, 25)
    np.testing.assert_allclose(symdiff.jacobian(stencil, sparse=True)(u).toarray(), reference, rtol=1e-12, atol=1e-12)
    x = rng.normal(size=9)
    ref_h = np.asarray(jax.hessian(lambda x: jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))(x))
    np.testing.assert_allclose(symdiff.hessian(rosen, sparse=True)(x).toarray(), ref_h, rtol=1e-12, atol=1e-9)


HESSIANS = {
    "rosenbrock": (rosen, rng.normal(size=9)),
    "local terms": (local3, rng.normal(size=8)),
    "where": (lambda x: np.sum(np.where(x > 0, x**3, x[::-1] * x)), rng.normal(size=6)),
    "matmul": (lambda x: np.sum(np.sin(A @ x) ** 2), rng.normal(size=6)),
}


@pytest.mark.parametrize("name", list(HESSIANS))
def test_hessian_pattern_and_values(name):
    f, x = HESSIANS[name]
    dense = np.asarray(symdiff.hessian(f)(x))
    pattern = symdiff.hessian_sparsity(f)(x)
    assert not ((dense != 0) & ~pattern.toarray()).any()
    if name == "where":
        dense_other = np.asarray(symdiff.hessian(f)(-x))
        np.testing.assert_array_equal(pattern.toarray(), (dense != 0) | (dense_other != 0))
    else:
        np.testing.assert_array_equal(pattern.toarray(), dense != 0)
    h = symdiff.hessian(f, sparse=True)(x)
    assert (h != h.T).nnz == 0  # exactly symmetric
    np.testing.assert_allclose(h.toarray(), dense, rtol=1e-12, atol=1e-12)


def test_rosenbrock_hessian_is_tridiagonal_with_three_colours():
    x = rng.normal(size=50)
    pattern = symdiff.hessian_sparsity(rosen)(x)
    i, j = np.nonzero(pattern.toarray())
    assert np.abs(i - j).max() == 1 and pattern.nnz == 3 * 50 - 2
    assert symdiff.hessian(rosen, sparse=True).compiled(x).colours.max() + 1 == 3
    local = symdiff.hessian(local3, sparse=True).compiled(rng.normal(size=40))
    assert local.pattern.nnz == 5 * 40 - 6 and local.colours.max() + 1 == 5  # pentadiagonal


def test_arrowhead_hessian_needs_two_colours_not_n():
    def arrow(x):  # x[0] couples with everything: a dense row and column, diagonal elsewhere
        return x[0] * np.sum(x**2) + np.sum(np.sin(x))

    x = rng.normal(size=30)
    s = symdiff.hessian(arrow, sparse=True)
    h = s(x)
    assert s.compiled(x).colours.max() + 1 == 2  # plain CPR colouring would need 30
    assert (h != h.T).nnz == 0
    np.testing.assert_allclose(h.toarray(), symdiff.hessian(arrow)(x), rtol=1e-12, atol=1e-12)


def test_five_point_stencil_colours():
    for n in (10, 16, 20):  # interior stencil, output (n-2)^2 x input n^2
        compiled = symdiff.jacobian(interior, sparse=True).compiled(np.ones((n, n)))
        assert compiled.colours.max() + 1 <= 5
    periodic = symdiff.jacobian(stencil, sparse=True).compiled(np.ones((10, 10)))
    assert periodic.pattern.nnz == 5 * 100 and periodic.colours.max() + 1 == 5
    # a torus whose sides are not multiples of 5 has no 5-colouring of this kind: 6 is optimal at 12x12
    # (the greedy orders alone find 7); 16x16: 7
    assert symdiff.jacobian(stencil, sparse=True).compiled(np.ones((12, 12))).colours.max() + 1 == 6
    assert symdiff.jacobian(stencil, sparse=True).compiled(np.ones((16, 16))).colours.max() + 1 <= 7


def test_summary_and_source_state_nnz_and_colours():
    s = symdiff.hessian(rosen, sparse=True)
    text = s.source(np.ones(10))
    assert "28 structural nonzeros, 3 colours" in text and "def " in text


def test_without_scipy_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(symdiff.SymdiffError, match=r"symdiff\[sparse\]"):
        symdiff.jacobian(stencil, sparse=True)


def test_an_op_without_a_pattern_rule_refuses_a_dense_pattern_at_scale(monkeypatch):
    from symdiff.ops import patterns

    monkeypatch.setattr(patterns, "DENSE_LIMIT", 100)
    with pytest.raises(symdiff.SymdiffError, match="would be dense"):
        symdiff.jacobian_sparsity(lambda x: np.linalg.inv(x.reshape(4, 4)).reshape(-1) * x)(rng.normal(size=16) + 4 * np.eye(4).ravel())
    pattern = symdiff.jacobian_sparsity(lambda x: np.linalg.inv(x.reshape(2, 2)).reshape(-1))(np.array([2.0, 1, 1, 3]))
    assert pattern.nnz == 16  # the conservative rule: every entry on every entry


def test_static_arguments_key_the_pattern():
    def band(x, k):  # k is static: the coupling distance
        return x[k:] * x[:-k]

    jac = symdiff.jacobian(band, sparse=True)
    x = rng.normal(size=8)
    for k in (1, 3):
        np.testing.assert_allclose(jac(x, k).toarray(), symdiff.jacobian(band)(x, k), rtol=1e-12)


def test_sparse_refuses_what_it_does_not_do():
    x = rng.normal(size=5)
    (h,) = symdiff.hessian(rosen, argnums=(0,), sparse=True)(x)  # a tuple of argnums: nested tuples, as dense
    assert isinstance(h[0], sp.csr_array)
    with pytest.raises(symdiff.SymdiffError, match="return one array, got a tuple"):
        symdiff.jacobian(lambda x: (x**2, np.sin(x)), sparse=True)(x)
    with pytest.raises(symdiff.SymdiffError, match="signature"):
        symdiff.hessian(rosen, signature="(n)->()", sparse=True)


def test_dense_default_unchanged():
    x = rng.normal(size=5)
    assert isinstance(symdiff.hessian(rosen)(x), np.ndarray)
    assert symdiff.jacobian(np.sin)(x).shape == (5, 5)


# -- scipy's solvers as users ---------------------------------------------------------------------


def test_least_squares_with_pattern_and_sparse_jacobian():
    optimize = pytest.importorskip("scipy.optimize")

    def residual(x):  # a chain of local residuals: tridiagonal-ish structure
        return np.concatenate([10 * (x[1:] - x[:-1] ** 2), 1 - x[:-1]])

    x0 = np.full(30, -0.5)
    pattern = symdiff.jacobian_sparsity(residual)(x0)
    jac = symdiff.jacobian(residual, sparse=True)
    fd = optimize.least_squares(residual, x0, jac_sparsity=pattern, method="trf", xtol=1e-12, ftol=1e-12)
    exact = optimize.least_squares(residual, x0, jac=jac, method="trf", xtol=1e-12, ftol=1e-12)
    assert fd.success and exact.success
    np.testing.assert_allclose(exact.x, np.ones(30), atol=1e-6)
    np.testing.assert_allclose(exact.x, fd.x, atol=1e-6)


def test_solve_ivp_bdf_brusselator_with_sparse_jacobian():
    integrate = pytest.importorskip("scipy.integrate")
    n = 16
    rhs, y0 = brusselator(n)
    jac = symdiff.jacobian(rhs, sparse=True)
    pattern = symdiff.jacobian_sparsity(rhs)(y0)
    assert pattern.nnz == 2 * n * n * 5 + 2 * n * n  # each field's stencil, and the other field at the point
    ours = integrate.solve_ivp(lambda t, y: rhs(y), (0, 1.0), y0, method="BDF", jac=lambda t, y: jac(y),
                               rtol=1e-8, atol=1e-10)
    fd = integrate.solve_ivp(lambda t, y: rhs(y), (0, 1.0), y0, method="BDF", jac_sparsity=pattern,
                             rtol=1e-8, atol=1e-10)
    assert ours.success and fd.success
    np.testing.assert_allclose(ours.y[:, -1], fd.y[:, -1], rtol=1e-5, atol=1e-6)


def test_minimize_trust_constr_and_newton_cg_with_sparse_hessian():
    optimize = pytest.importorskip("scipy.optimize")
    x0 = np.full(40, -0.5)
    hess = symdiff.hessian(rosen, sparse=True)
    for method in ("trust-constr", "Newton-CG"):
        result = optimize.minimize(rosen, x0, method=method, jac=symdiff.grad(rosen), hess=hess,
                                   options={"gtol": 1e-10} if method == "trust-constr" else {"xtol": 1e-12})
        np.testing.assert_allclose(result.x, np.ones(40), atol=1e-6)


@pytest.mark.slow
def test_rosenbrock_million_sparse_hessian():
    x = rng.normal(size=10**6)
    start = time.perf_counter()
    s = symdiff.hessian(rosen, sparse=True)
    compiled = s.compiled(x)
    compile_time = time.perf_counter() - start
    start = time.perf_counter()
    h = s(x)
    eval_time = time.perf_counter() - start
    print(f"n=1e6: {compiled.summary} compile {compile_time:.2f} s, evaluation {eval_time:.3f} s")
    assert h.nnz == 3 * 10**6 - 2
    head = symdiff.hessian(rosen)(x[:6])  # the leading block does not see the rest of x
    np.testing.assert_allclose(h[:5, :5].toarray(), head[:5, :5], rtol=1e-12)


def test_the_pattern_follows_a_closed_over_matrix_rebound_or_changed_in_place():
    """Reproducer: the pattern was cached by argument shapes only, so rebinding the matrix the
    function reads gave a CSR result missing the new nonzeros (max error 2.9)."""
    A = np.eye(4)

    def f(x):
        return A @ np.sin(x)

    jac = symdiff.jacobian(f, sparse=True)
    x = np.linspace(0.1, 0.4, 4)
    np.testing.assert_allclose(jac(x).toarray(), A * np.cos(x), rtol=1e-14)
    A[0, 3] = 2.0
    np.testing.assert_allclose(jac(x).toarray(), A * np.cos(x), rtol=1e-14)
    A = np.ones((4, 4))
    np.testing.assert_allclose(jac(x).toarray(), A * np.cos(x), rtol=1e-14)
    assert jac(x).nnz == 16


# -- star colouring of Hessians -------------------------------------------------------------------


def _random_couplings(seed, n=24):
    """A scalar function of n entries coupling random pairs (a few hubs among them: star colouring's
    case) through constant index arrays; its Hessian pattern is those pairs and the diagonal."""
    r = np.random.default_rng(seed)
    hubs = r.choice(n, size=int(r.integers(1, 4)), replace=False)
    i = np.concatenate([r.integers(0, n, size=int(r.integers(n // 2, 2 * n))), np.repeat(hubs, n // 3)])
    j = np.concatenate([r.integers(0, n, size=len(i) - len(hubs) * (n // 3)), r.integers(0, n, size=len(hubs) * (n // 3))])
    keep = i != j
    i, j = i[keep], j[keep]

    def f(x):
        return np.sum(np.sin(x[i] * x[j])) + np.sum(x**4)

    return f, r.normal(size=n), i, j


@pytest.mark.parametrize("seed", range(12))
def test_star_colouring_recovers_random_symmetric_patterns_exactly(seed):
    from symdiff import colouring

    f, x, i, j = _random_couplings(seed)
    pattern = symdiff.hessian_sparsity(f)(x)
    expected = np.eye(len(x), dtype=bool)
    expected[i, j] = expected[j, i] = True
    np.testing.assert_array_equal(pattern.toarray(), expected)
    for order in (None, np.random.default_rng(seed).permutation(len(x)).tolist()):  # a star colouring in any order
        assert colouring.symmetric_take(pattern, colouring.star_colouring(pattern, order)) is not None
    s = symdiff.hessian(f, sparse=True)
    h = s(x)
    assert (h != h.T).nnz == 0
    np.testing.assert_allclose(h.toarray(), symdiff.hessian(f)(x), rtol=1e-12, atol=1e-12)
    assert colouring.colour_count(s.compiled(x).colours) <= colouring.colour_count(colouring.column_colouring(pattern))


def test_star_colouring_beats_distance_two_where_it_should():
    from symdiff import colouring

    wins = 0
    for seed in range(12):
        f, x, _, _ = _random_couplings(seed)
        pattern = symdiff.hessian_sparsity(f)(x)
        used = colouring.colour_count(symdiff.hessian(f, sparse=True).compiled(x).colours)
        wins += used < colouring.colour_count(colouring.column_colouring(pattern))
    assert wins >= 3

    def energy(u):  # 5-point Laplacian energy on a periodic grid: a 13-point Hessian stencil
        lap = np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1) + np.roll(u, -1, 1) - 4 * u
        return np.sum(lap**2) + np.sum(u**4)

    u = rng.normal(size=(16, 16))
    s = symdiff.hessian(energy, sparse=True)
    np.testing.assert_allclose(s(u).toarray(), symdiff.hessian(energy)(u).reshape(256, 256), rtol=1e-12, atol=1e-10)
    pattern = s.compiled(u).pattern
    assert pattern.nnz == 13 * 256
    # here the tabu-improved distance-2 colouring (18) ties with star: whichever is fewer is used
    assert colouring.colour_count(s.compiled(u).colours) <= colouring.colour_count(colouring.column_colouring(pattern))


# -- several arguments, wrt= and pytrees: blocks in the dense transform's structure ---------------


def _as_2d(block, rows):
    return np.asarray(block).reshape(rows, -1)


def _same_blocks(sparse, dense, rows):
    """Walk two results of the same structure: each sparse block equals the dense one made 2-D."""
    if isinstance(dense, dict):
        assert isinstance(sparse, dict) and sparse.keys() == dense.keys()
        for k in dense:
            _same_blocks(sparse[k], dense[k], rows)
    elif isinstance(dense, (tuple, list)):
        assert type(sparse) is type(dense) and len(sparse) == len(dense)
        for a, b in zip(sparse, dense):
            _same_blocks(a, b, rows)
    else:
        assert isinstance(sparse, sp.csr_array)
        np.testing.assert_allclose(sparse.toarray(), _as_2d(dense, rows), rtol=1e-12, atol=1e-12)


def two(x, y):
    return np.sin(x[1:] * y[:-1]) + x[:-1] ** 2 * np.cos(y[1:])


def scalar_two(x, y):
    return np.sum(np.sin(x[1:] * y[:-1]) + x[:-1] ** 2 * np.cos(y[1:])) + x[0] * np.sum(y**2)


def params_loss(p, scale):
    return scale * np.sum((p["w"][1:] - p["w"][:-1] ** 2) ** 2) + np.sum(p["b"] ** 2 * p["w"][:3])


def few_outputs(x, y):  # two outputs of many inputs: reverse mode, rows coloured
    return np.stack([np.sum(x**2 * y), np.sum(np.sin(x) + y**3)])


@pytest.mark.parametrize("case", ["jacobian argnums", "jacobian wrt", "jacobian reverse", "jacobian pytree",
                                  "hessian argnums", "hessian wrt", "hessian pytree"])
def test_several_arguments_give_blocks_like_the_dense_transform(case):
    x, y = rng.normal(size=7), rng.normal(size=7)
    params = {"w": rng.normal(size=6), "b": rng.normal(size=3)}
    kind, f, args, kw = {
        "jacobian argnums": (symdiff.jacobian, two, (x, y), {"argnums": (0, 1)}),
        "jacobian wrt": (symdiff.jacobian, two, (x, y), {"wrt": ("y", "x")}),
        "jacobian reverse": (symdiff.jacobian, few_outputs, (x, y), {"argnums": (1, 0)}),
        "jacobian pytree": (symdiff.jacobian, lambda p, s: s * p["w"][1:4] * p["b"], (params, 2.0), {}),
        "hessian argnums": (symdiff.hessian, scalar_two, (x, y), {"argnums": (0, 1)}),
        "hessian wrt": (symdiff.hessian, scalar_two, (x, y), {"wrt": "y"}),
        "hessian pytree": (symdiff.hessian, params_loss, (params, 3.0), {}),
    }[case]
    dense = kind(f, **kw)(*args)
    sparse = kind(f, sparse=True, **kw)(*args)
    rows = 1 if kind is symdiff.hessian else np.size(f(*args))
    if kind is symdiff.hessian:  # each row block has the rows of its argument
        def check(s, d):
            if isinstance(d, dict):
                assert isinstance(s, dict) and s.keys() == d.keys()
                for k in d:
                    check(s[k], d[k])
            elif isinstance(d, tuple):
                assert isinstance(s, tuple) and len(s) == len(d)
                for a, b in zip(s, d):
                    check(a, b)
            else:
                np.testing.assert_allclose(s.toarray(), np.asarray(d).reshape(s.shape), rtol=1e-12, atol=1e-12)
        assert type(sparse) is type(dense) or isinstance(sparse, sp.csr_array)
        check(sparse, dense)
    else:
        _same_blocks(sparse, dense, rows)
    if case == "jacobian reverse":
        assert symdiff.jacobian(f, sparse=True, **kw).compiled(*args).mode == "reverse"


def test_pytree_argument_layout_keys_the_pattern():
    def f(p):
        return np.sum(p["a"] ** 2) * np.sum(p["b"] ** 3)

    h = symdiff.hessian(f, sparse=True)
    for n in (2, 4):
        p = {"a": rng.normal(size=n), "b": rng.normal(size=3)}
        out = h(p)
        assert out["a"]["a"].shape == (n, n) and out["a"]["b"].shape == (n, 3)
        np.testing.assert_allclose(out["b"]["a"].toarray(), symdiff.hessian(f)(p)["b"]["a"], rtol=1e-12)


# -- np.linalg on stacks of matrices: dense within a matrix, nothing across the stack --------------

SPD = np.eye(3) * 4


def _stack(x):
    return x.reshape(4, 3, 3) + SPD


LINALG = {
    "inv": lambda x: np.linalg.inv(_stack(x)).reshape(-1),
    "det": lambda x: np.linalg.det(_stack(x)),
    "slogdet": lambda x: np.linalg.slogdet(_stack(x))[1] * x[::9],
    "solve matrix": lambda x: np.linalg.solve(_stack(x), np.ones((4, 3, 2)) + x[:24].reshape(4, 3, 2)).reshape(-1),
    "solve shared rhs": lambda x: np.linalg.solve(_stack(x), np.arange(6.0).reshape(3, 2) + x[:6].reshape(3, 2)).reshape(-1),
    "eigvalsh": lambda x: np.linalg.eigh(_stack(x) + np.swapaxes(_stack(x), -1, -2))[0].reshape(-1),
    "cholesky": lambda x: np.linalg.cholesky(_stack(x) + np.swapaxes(_stack(x), -1, -2)).reshape(-1),
    "broadcast batch": lambda x: np.linalg.inv(x[:9].reshape(1, 3, 3) + np.zeros((4, 1, 1)) + SPD + x[9:13, None, None]).reshape(-1),
}


@pytest.mark.parametrize("name", list(LINALG))
def test_linalg_on_stacks_is_block_structured(name):
    f = LINALG[name]
    x = rng.normal(size=36) * 0.3
    pattern = symdiff.jacobian_sparsity(f)(x).toarray()
    nonzero = dense_jacobian(f, x) != 0
    assert not (nonzero & ~pattern).any()  # every nonzero is in the pattern
    if name in ("inv", "det"):  # dense within a matrix: the pattern is exactly the nonzeros (solve: a superset)
        np.testing.assert_array_equal(pattern, nonzero)
    assert pattern.sum() < pattern.size / 2  # not dense across the stack
    np.testing.assert_allclose(symdiff.jacobian(f, sparse=True)(x).toarray(), dense_jacobian(f, x), rtol=1e-10, atol=1e-12)
