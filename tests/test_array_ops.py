"""Issue 3 op coverage: every array op differentiated in reverse mode (grad) and forward mode
(jacobian with in.size <= out.size) against central finite differences."""

import ast

import mpmath
import numpy as np
import pytest

import symdiff

from .conftest import central_difference

rng = np.random.default_rng(42)
X = rng.normal(size=(4, 5))

# Each entry maps a (4, 5) array to an array; ties and kinks are avoided by the random point.
OPS = {
    "matmul_2d": lambda x: x @ x.T,
    "matmul_1d": lambda x: x[0] @ x.T,
    "matmul_stacked": lambda x: np.matmul(x.reshape(2, 2, 5), x.reshape(2, 5, 2)),
    "matmul_stacked_vec": lambda x: x.reshape(2, 2, 5) @ x[0],
    "dot": lambda x: np.dot(x, x[1]),
    "tensordot": lambda x: np.tensordot(x, x, axes=([1], [1])),
    "einsum": lambda x: np.einsum("ij,ik->jk", x, x**2),
    "einsum_trace": lambda x: np.einsum("ii->", x[:, :4] ** 2),
    "outer": lambda x: np.outer(x[0], x[1]),
    "sum_axis": lambda x: np.sum(x**2, axis=1),
    "sum_tuple_keepdims": lambda x: np.sum(x.reshape(2, 2, 5) ** 2, axis=(0, 2), keepdims=True),
    "mean": lambda x: np.mean(np.sin(x), axis=0),
    "prod": lambda x: np.prod(x, axis=1),
    "max": lambda x: np.max(x, axis=0),
    "min_keepdims": lambda x: np.min(x, axis=1, keepdims=True),
    "var": lambda x: np.var(x, axis=1),
    "std": lambda x: np.std(x, axis=0, ddof=1),
    "cumsum": lambda x: np.cumsum(x**2, axis=1),
    "transpose_axes": lambda x: np.transpose(x.reshape(2, 2, 5), (2, 0, 1)) * 2,
    "swapaxes": lambda x: np.swapaxes(x.reshape(2, 2, 5), 0, 2) ** 2,
    "moveaxis": lambda x: np.moveaxis(x.reshape(2, 2, 5), 0, -1) ** 3,
    "reshape_minus1": lambda x: np.sin(x).reshape(-1, 2),
    "squeeze": lambda x: np.squeeze(x[:, :1] ** 2),
    "expand_dims": lambda x: np.expand_dims(x, 1) * x[:, None, :],
    "broadcast_to": lambda x: np.broadcast_to(x[0], (3, 5)) ** 2,
    "concatenate": lambda x: np.concatenate([x, x**2], axis=1),
    "stack": lambda x: np.stack([x[0], x[1] ** 2, np.cos(x[2])], axis=1),
    "split": lambda x: np.split(x, [2], axis=1)[1] * np.split(x, 2, axis=0)[0][:, 2:].sum(0),
    "slice_step": lambda x: x[::2, 1::2] ** 2,
    "slice_negative_step": lambda x: x[::-1, ::-2] * x[0, 0],
    "ellipsis_none": lambda x: x[..., 0][None] * x[None, 1:, 0:1].T[0],
    "int_array_index": lambda x: x[[0, 2, 2, 3], 1:4] ** 2,
    "paired_int_arrays": lambda x: x[[0, 1, 3], [4, 0, 2]] ** 3,
    "where": lambda x: np.where(x > 0, x**2, np.sin(x)),
    "clip": lambda x: np.clip(x, -0.5, 0.5) * x,
    "maximum_minimum": lambda x: np.maximum(x, 0.1) + np.minimum(x**2, x),
    "abs": lambda x: np.abs(x) * x,
    "norm_vector": lambda x: np.linalg.norm(x, axis=1),
    "norm_frobenius": lambda x: np.linalg.norm(x) * x[0],
    "trace": lambda x: np.trace(x[:, :4] @ x[:, 1:].T) * x[0],
    "diag_of_vector": lambda x: np.diag(x[0]) ** 2,
    "diagonal_of_matrix": lambda x: np.diag(x[:, :4] ** 3),
    "logaddexp": lambda x: np.logaddexp(x, x[0]),
    "logsumexp": lambda x: symdiff.logsumexp(x * 3, axis=1),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_reverse_mode_matches_finite_differences(name):
    op = OPS[name]

    def scalar(x):
        return np.sum(np.sin(op(x)))

    np.testing.assert_allclose(symdiff.grad(scalar)(X), central_difference(scalar, X), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(OPS))
def test_forward_mode_matches_finite_differences(name):
    op = OPS[name]

    def wide(x):  # output larger than the input, so jacobian runs forward mode
        return np.concatenate([np.ravel(op(x)), np.ravel(x), np.ravel(x)])

    J = symdiff.jacobian(wide)(X)
    np.testing.assert_allclose(J, central_difference(wide, X), rtol=1e-5, atol=1e-7)


def test_max_ties_share_the_gradient_like_jax():
    g = symdiff.grad(lambda x: np.max(x))(np.array([1.0, 3.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    g = symdiff.grad(lambda x: np.sum(np.maximum(x, 1.0)))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [0.5, 1.0])
    g = symdiff.grad(lambda x: np.sum(np.abs(x)))(np.array([-2.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_shape_generic_code_does_not_grow_with_size(monkeypatch):
    def loss(W, b, X, Y):
        z = X @ W + b
        return np.mean(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))

    def source(n, d, k):
        r = np.random.default_rng(0)
        return symdiff.grad(loss, argnums=(0, 1)).source(
            r.normal(size=(d, k)), r.normal(size=k), r.normal(size=(n, d)), r.random((n, k))
        )

    def statements(source):
        (fn,) = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "grad_loss"]
        return len(list(ast.walk(fn)))

    # one pass over row blocks (symdiff.sample_sum): one loop, whatever the number of rows
    one_pass = source(200000, 64, 8)
    assert len(ast.parse(one_pass).body) == len(ast.parse(source(100000, 64, 8)).body)
    assert sum(isinstance(n, ast.For) for n in ast.walk(ast.parse(one_pass))) == 1
    # without it, small arrays are computed expression by expression, large ones in place: each form
    # is the same program whatever the size within it (sizes only appear as numbers)
    monkeypatch.setenv("SYMDIFF_SAMPLE_SUM", "off")
    small, large = source(5, 3, 2), source(200000, 64, 8)
    assert statements(small) == statements(source(7, 4, 3))
    assert statements(large) == statements(source(100000, 64, 8)) < 2 * statements(small)
    assert not any(isinstance(n, (ast.For, ast.While, ast.comprehension)) for n in ast.walk(ast.parse(large)))


def test_logistic_model_at_scale_through_the_decorator():
    r = np.random.default_rng(3)
    n = 200000
    X_, W, b = r.normal(size=(n, 64)), r.normal(size=(64, 8)) * 0.1, r.normal(size=8)
    Y = (r.random((n, 8)) > 0.5).astype(float)

    @symdiff.value_and_grad(argnums=(0, 1))
    def loss(W, b, X, Y):
        z = X @ W + b
        return np.mean(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))

    value, (gW, gb) = loss(W, b, X_, Y)
    z = X_ @ W + b
    dz = (1 / (1 + np.exp(-z)) - Y) / z.size
    np.testing.assert_allclose(gb, dz.sum(0), rtol=1e-10)
    np.testing.assert_allclose(gW, X_.T @ dz, rtol=1e-9)
    assert np.isclose(value, np.mean(np.logaddexp(0, z) - z * Y))


@pytest.mark.parametrize("z", [1000.0, -1000.0, 30.0, -30.0, 0.0])
def test_stable_forms_at_large_logits(z):
    """softplus, sigmoid, log-sigmoid and BCE with logits: no overflow, no NaN, at every order."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        zs = np.array([z, -z, 0.5])
        ys = np.array([1.0, 0.0, 1.0])

        def bce(z, y):
            return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))

        g = symdiff.grad(bce)(zs, ys)
        s = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(v)))) for v in zs])  # exact sigmoid
        np.testing.assert_allclose(g, (s - ys) / 3, rtol=1e-12, atol=1e-16)  # s - y cancels near 1
        H = symdiff.hessian(bce)(zs, ys)
        np.testing.assert_allclose(np.diag(H), s * (1 - s) / 3, rtol=1e-9, atol=1e-300)
        for k in (1, 2, 3):
            assert np.all(np.isfinite(symdiff.derivative(lambda x: np.log(1 + np.exp(x)), k)(zs)))
            assert np.all(np.isfinite(symdiff.derivative(lambda x: 1 / (1 + np.exp(-x)), k)(zs)))
            assert np.all(np.isfinite(symdiff.derivative(lambda x: -np.log(1 + np.exp(-x)), k)(zs)))


def test_bce_matches_pytorch_at_magnitude_1000():
    torch = pytest.importorskip("torch")
    z = np.array([1000.0, -1000.0, 3.0, -999.0, 0.0])
    y = np.array([0.0, 1.0, 0.5, 0.0, 1.0])

    def bce(z, y):
        return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))

    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy_with_logits(zt, torch.tensor(y))
    lt.backward()
    value, grad = symdiff.value_and_grad(bce)(z, y)
    np.testing.assert_allclose(value, lt.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_float32_stays_float32_and_integers_are_rejected():
    x32 = X.astype(np.float32)
    assert symdiff.grad(lambda x: np.sum(np.tanh(x) @ x.T))(x32).dtype == np.float32
    assert symdiff.hessian(lambda x: np.sum(x**3))(x32[0]).dtype == np.float32
    assert symdiff.jacobian(lambda x: np.sin(x))(x32[0]).dtype == np.float32
    assert symdiff.grad(lambda x: np.sum(x**3))(X).dtype == np.float64
    with pytest.raises(symdiff.DtypeError):
        symdiff.jacobian(lambda x: x * 2)(np.arange(4))


def test_rosenbrock_hessian_is_tridiagonal_and_batched():
    def rosen(x):
        return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    pts = np.random.default_rng(0).normal(size=(50, 8))
    H = symdiff.hessian(rosen, signature="(n)->()")(pts)
    assert H.shape == (50, 8, 8)
    off = np.abs(np.subtract.outer(np.arange(8), np.arange(8))) > 1
    assert np.all(H[:, off] == 0)
    np.testing.assert_allclose(H, np.transpose(H, (0, 2, 1)))
    np.testing.assert_allclose(H[7], central_difference(symdiff.grad(rosen), pts[7]), rtol=1e-6, atol=1e-5)


def test_large_elementwise_work_runs_in_place_without_copies(monkeypatch):
    import tracemalloc

    monkeypatch.setenv("SYMDIFF_SAMPLE_SUM", "off")  # the whole-array form (row blocks: tests/test_sample_sum.py)

    r = np.random.default_rng(5)
    n, k = 20000, 8  # Z has 160000 elements: above the in-place threshold
    X_, W, b = r.normal(size=(n, 16)), r.normal(size=(16, k)), r.normal(size=k)
    Y = (r.random((n, k)) > 0.5).astype(float)

    def loss(W, b, X, Y):
        z = X @ W + b
        return np.mean(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))))

    g = symdiff.grad(loss, argnums=(0, 1))
    gW, gb = g(W, b, X_, Y)
    z = X_ @ W + b
    dz = (1 / (1 + np.exp(-z)) - Y) / z.size
    np.testing.assert_allclose(gW, X_.T @ dz, rtol=1e-10)
    np.testing.assert_allclose(gb, dz.sum(0), rtol=1e-10)
    assert "out=" in g.source(W, b, X_, Y)
    tracemalloc.start()
    g(W, b, X_, Y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * z.nbytes  # no copy of X, and at most one Z-sized array at a time beyond Z
