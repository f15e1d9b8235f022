"""numpy's advanced indexing on traced arrays: index arrays separated by slices (their axes first),
boolean masks built from constants, and integer-array arguments as run-time indices (a gather whose
positions are data). Values against numpy, first and second derivatives against JAX in x64 and
central differences."""

import numpy as np
import pytest

import symdiff
from symdiff.errors import DtypeError, ShapeError, TraceError

from .conftest import central_difference

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(7)
X = RNG.normal(size=(3, 4, 5))
M4 = np.array([True, False, True, True])
M5 = np.array([True, False, True, False, True])
V0 = RNG.normal(size=5)

# key builders: the same key for numpy (symdiff traces it) and jax.numpy
SEPARATED = {
    "int_slice_array": lambda xp: (1, slice(1, None), xp.array([1, 3])),
    "arrays_around_slice": lambda xp: (xp.array([0, 1]), slice(None), xp.array([2, 3])),
    "broadcast_arrays": lambda xp: (xp.array([[0], [2]]), slice(None), xp.array([1, 3, 4])),
    "separated_by_newaxis": lambda xp: (slice(None), xp.array([0, 2]), None, xp.array([1, 4])),
    "separated_by_ellipsis": lambda xp: (xp.array([0, 1]), Ellipsis, xp.array([1, 2])),
    "negative_positions": lambda xp: (-1, slice(None, None, -2), xp.array([-1, 0, -5])),
}
MASKS = {
    "vector_mask": lambda xp: (1, M4),
    "mask_then_slice": lambda xp: (slice(None), M4, slice(None)),
    "mask_last_axis": lambda xp: (Ellipsis, M5),
    "two_dimensional_mask": lambda xp: (0, np.array([[True, False, True, False, True]] * 4)),
    "mask_with_integer_array": lambda xp: (0, M4, xp.array([0, 1, 4])),
    "mask_separated_from_array": lambda xp: (M4[:3], slice(None), xp.array([0, 1])),
    "mask_from_constant_comparison": lambda xp: (2, 0, V0 > 0),
}
CONSTANT_KEYS = {**SEPARATED, **MASKS}


def _loss(y, xp=np):
    return xp.sum(xp.sin(y) ** 3)


def _selected(index, x, *args):
    """numpy's own answer for ``loss(index(x))``: the index as a 0/1 matrix S (numpy indexing the
    positions of ``x``), so y = S x, the gradient is S^T h'(y) and the hessian S^T diag(h''(y)) S."""
    positions = index(np.arange(x.size).reshape(x.shape), *args)
    S = np.zeros((positions.size, x.size))
    S[np.arange(positions.size), positions.ravel()] = 1.0
    y = S @ x.ravel()
    d1 = 3 * np.sin(y) ** 2 * np.cos(y)
    d2 = 6 * np.sin(y) * np.cos(y) ** 2 - 3 * np.sin(y) ** 3
    return positions.shape, S.reshape(positions.shape + x.shape), (S.T @ d1).reshape(x.shape), (
        (S.T * d2) @ S).reshape(x.shape + x.shape)


def _jax_derivatives(loss, x, *args):
    """JAX's gradient and hessian of ``loss`` (compiled once: eager JAX is slow to start)."""
    both = jax.jit(lambda x, *a: (jax.grad(loss)(x, *a), jax.hessian(loss)(x, *a)))
    return both(jnp.asarray(x), *args)


def _check_against_numpy(index, x, *args):
    shape, jacobian, grad, hessian = _selected(index, x, *args)

    def loss(x, *a):
        return _loss(index(x, *a))

    np.testing.assert_array_equal(symdiff.jacobian(lambda x, *a: index(x, *a))(x, *args), jacobian)
    value, g = symdiff.value_and_grad(loss)(x, *args)
    assert index(x, *args).shape == shape
    np.testing.assert_allclose(value, loss(x, *args), rtol=1e-13)
    np.testing.assert_allclose(g, grad, atol=1e-12)
    np.testing.assert_allclose(symdiff.hessian(loss)(x, *args), hessian, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CONSTANT_KEYS))
def test_constant_keys_match_numpy(name):
    key = CONSTANT_KEYS[name](np)
    _check_against_numpy(lambda x: x[key], X)


@pytest.mark.parametrize("name", ["int_slice_array", "separated_by_newaxis", "mask_separated_from_array",
                                  "mask_from_constant_comparison"])
def test_constant_keys_match_jax(name):
    key = CONSTANT_KEYS[name]
    grad, hessian = _jax_derivatives(lambda x: _loss(x[key(jnp)], jnp), X)
    np.testing.assert_allclose(symdiff.grad(lambda x: _loss(x[key(np)]))(X), grad, atol=1e-12)
    np.testing.assert_allclose(symdiff.hessian(lambda x: _loss(x[key(np)]))(X), hessian, atol=1e-12)


def test_separated_arrays_in_forward_mode_match_central_differences():
    def wide(x):  # output larger than the input: jacobian runs forward mode
        return np.concatenate([np.ravel(np.exp(x[[0, 1, 1, 0], :, [4, 4, 0, 1]])), np.ravel(x), np.ravel(x)])

    x = X[:2, :2]
    np.testing.assert_allclose(symdiff.jacobian(wide)(x), central_difference(wide, x), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Item assignment with the same keys
# ---------------------------------------------------------------------------------------------


def set_separated(x):
    y = x * 1.0
    y[1, 1:, [1, 3]] = np.sin(x[0, :2, :3])
    return np.sum(y**3)


def set_separated_jax(x):
    return jnp.sum(x.at[1, 1:, jnp.array([1, 3])].set(jnp.sin(x[0, :2, :3])) ** 3)


def add_separated(x):
    y = x * 1.0
    y[1, 1:, [1, 3]] += x[2, :2, :3] ** 2
    return np.sum(y**3)


def add_separated_jax(x):
    return jnp.sum(x.at[1, 1:, jnp.array([1, 3])].add(x[2, :2, :3] ** 2) ** 3)


def set_mask_constant(x):
    v = x[0, 0] * 2.0
    v[M5] = 0.0
    return np.sum(np.sin(v) * x[1, 1])


def set_mask_constant_jax(x):
    return jnp.sum(jnp.sin(jnp.where(M5, 0.0, x[0, 0] * 2.0)) * x[1, 1])


def set_mask_traced_value(x):
    v = x[0, 0] * 1.0
    v[V0 > 0] = x[1, 1][V0 > 0] ** 2
    return np.sum(v**3)


def set_mask_traced_value_jax(x):
    return jnp.sum(jnp.where(V0 > 0, x[1, 1] ** 2, x[0, 0]) ** 3)


@pytest.mark.parametrize("f, reference", [(set_separated, set_separated_jax), (add_separated, add_separated_jax),
                                          (set_mask_constant, set_mask_constant_jax),
                                          (set_mask_traced_value, set_mask_traced_value_jax)])
def test_item_assignment_with_separated_arrays_and_masks(f, reference):
    value, grad = symdiff.value_and_grad(f)(X)
    np.testing.assert_allclose(value, f(X.copy()))
    np.testing.assert_allclose(value, reference(jnp.asarray(X)))
    grad_jax, hessian_jax = _jax_derivatives(reference, X)
    np.testing.assert_allclose(grad, grad_jax, atol=1e-12)
    np.testing.assert_allclose(symdiff.hessian(f)(X), hessian_jax, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Integer-array arguments: positions known when the generated code runs
# ---------------------------------------------------------------------------------------------

N, C = 6, 4
LOGITS = RNG.normal(size=(N, C))
LABELS = np.array([0, 3, 1, 1, 2, 3])


def cross_entropy(logits, labels, xp=np):
    z = logits - xp.max(logits, axis=1, keepdims=True)
    log_softmax = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
    return -xp.mean(log_softmax[xp.arange(N), labels])


def test_cross_entropy_with_integer_labels_matches_jax():
    def reference(logits, labels):
        return cross_entropy(logits, labels, jnp)

    value, grad = symdiff.value_and_grad(cross_entropy)(LOGITS, LABELS)
    np.testing.assert_allclose(value, cross_entropy(LOGITS, LABELS))
    grad_jax, hessian_jax = _jax_derivatives(reference, LOGITS, LABELS)
    np.testing.assert_allclose(grad, grad_jax, atol=1e-12)
    np.testing.assert_allclose(symdiff.hessian(cross_entropy)(LOGITS, LABELS), hessian_jax, atol=1e-12)
    # the labels are data: other labels, same compiled code, other answers
    other = np.array([1, 1, 1, 0, 0, 2])
    np.testing.assert_allclose(symdiff.grad(cross_entropy)(LOGITS, other), _jax_derivatives(reference, LOGITS, other)[0],
                               atol=1e-12)
    source = symdiff.grad(cross_entropy).source(LOGITS, LABELS)
    assert "np.add.at" in source and "labels" in source


POSITIONS = np.array([3, -1, 0, 3])  # a repeat and a negative position
RUNTIME = {
    "vector": (lambda xp, x, i: x[0, 1][i]),
    "integer_arithmetic": (lambda xp, x, i: x[0, 1][i * 2 - 3]),  # [3, -5, -3, 3]: stays an integer index
    "columns": (lambda xp, x, i: x[:, i]),
    "rows_then_slice": (lambda xp, x, i: x[1][i, 1:]),
    "separated_from_constant_array": (lambda xp, x, i: x[np.array([[0], [2]]), :, i]),
    "beside_constant_array": (lambda xp, x, i: x[[0, 1, 2, 0], i, :]),
    "take_axis_1": (lambda xp, x, i: xp.take(x, i, axis=1)),
    "take_flat": (lambda xp, x, i: xp.take(x, i)),
    "take_along_axis": (lambda xp, x, i: xp.take_along_axis(x[0], xp.stack([i, i[::-1], i], axis=1), axis=1)),
}


@pytest.mark.parametrize("name", sorted(RUNTIME))
def test_integer_argument_indices_match_numpy(name):
    index = RUNTIME[name]
    _check_against_numpy(lambda x, i: index(np, x, i), X, POSITIONS)


@pytest.mark.parametrize("name", ["separated_from_constant_array", "take_along_axis"])
def test_integer_argument_indices_match_jax(name):
    index = RUNTIME[name]
    grad, hessian = _jax_derivatives(lambda x, i: _loss(index(jnp, x, i), jnp), X, POSITIONS)
    np.testing.assert_allclose(symdiff.grad(lambda x, i: _loss(index(np, x, i)))(X, POSITIONS), grad, atol=1e-12)
    np.testing.assert_allclose(symdiff.hessian(lambda x, i: _loss(index(np, x, i)))(X, POSITIONS), hessian, atol=1e-12)


@pytest.mark.parametrize("f", [lambda x: np.take(x, np.argsort(x)), lambda x: x[np.argsort(x) + 0],
                               lambda x: x[1:][np.argsort(x[1:]) - 1]])
def test_run_time_positions_computed_in_the_function(f):
    x = np.array([0.3, -1.2, 2.0, 0.7, -0.1])
    np.testing.assert_allclose(symdiff.value_and_grad(lambda x: np.sum(f(x) ** 3))(x)[0], np.sum(f(x) ** 3))
    np.testing.assert_allclose(symdiff.grad(lambda x: np.sum(f(x) ** 3))(x),
                               central_difference(lambda x: np.sum(f(x) ** 3), x), rtol=1e-7)
    np.testing.assert_allclose(symdiff.hessian(lambda x: np.sum(f(x) ** 3))(x),
                               central_difference(symdiff.grad(lambda x: np.sum(f(x) ** 3)), x), rtol=1e-6, atol=1e-8)


def test_integer_argument_in_forward_mode_matches_central_differences():
    positions = np.array([0, 1, 1, 2, 3, 3, 0, 0])

    def wide(x, i):  # more outputs than inputs: forward mode
        return np.exp(x[:, i])

    x = X[0, :2]
    np.testing.assert_allclose(symdiff.jacobian(wide)(x, positions), central_difference(lambda x: wide(x, positions), x),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("transform", [symdiff.grad, symdiff.value_and_grad, symdiff.jacobian])
@pytest.mark.parametrize("bad", [np.array([0, 5]), np.array([-6, 0])])
def test_integer_argument_out_of_range_raises_index_error_like_numpy(transform, bad):
    def f(v, i):
        return np.sum(np.sin(v[i]))

    with pytest.raises(IndexError):
        V0[bad]
    with pytest.raises(IndexError):
        transform(f)(V0, bad)


def test_gradient_with_respect_to_integer_argument_is_an_error():
    def f(v, i):
        return np.sum(v[i] ** 2)

    with pytest.raises(DtypeError, match="only floating arrays can be differentiated"):
        symdiff.grad(f, argnums=1)(V0, np.array([0, 1]))
    with pytest.raises(DtypeError, match="only floating arrays can be differentiated"):
        symdiff.grad(f, argnums=(0, 1))(V0, np.array([0, 1]))


# ---------------------------------------------------------------------------------------------
# What stays an error
# ---------------------------------------------------------------------------------------------


def test_traced_mask_is_a_clear_error():
    def f(v):
        return np.sum(v[v > 0])

    with pytest.raises(TraceError, match=r"traced mask .*test_indexing_more.py:\d+.*np.where"):
        symdiff.grad(f)(V0)


def test_traced_float_index_and_traced_assignment_index_are_errors():
    def by_floats(v, i):
        return np.sum(v[i])

    def assigned(v, i):
        y = v * 1.0
        y[i] = 0.0
        return np.sum(y)

    with pytest.raises(TraceError, match="traced float64 array"):
        symdiff.grad(by_floats)(V0, np.array([0.0, 1.0]))
    with pytest.raises(TraceError, match="assignment at a traced index"):
        symdiff.grad(assigned)(V0, np.array([0, 1]))


def test_mask_of_the_wrong_length_and_boolean_scalars_are_errors():
    with pytest.raises(ShapeError, match="boolean index did not match"):
        symdiff.grad(lambda v: np.sum(v[np.array([True, False])]))(V0)
    with pytest.raises(TraceError, match="boolean scalar"):
        symdiff.grad(lambda v: np.sum(v[True]))(V0)


def test_integer_index_argument_with_batch_axes_is_refused_and_without_them_works():
    def f(x, i):
        return np.sum(np.sin(x[i]) ** 2)

    points, positions = RNG.normal(size=(3, 4)), np.array([0, 2, 2])
    batched = symdiff.grad(f, signature="(n),(k)->()")
    np.testing.assert_allclose(batched(points, positions), [symdiff.grad(f)(p, positions) for p in points])
    with pytest.raises(ShapeError, match="batch axes"):
        batched(points, np.stack([positions] * 3))
