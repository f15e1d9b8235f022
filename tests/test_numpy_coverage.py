"""Issue 12, numpy coverage: every function added is checked for its value (numpy's), its gradient
and Jacobian (central differences), its Hessian (central differences of the gradient) and, where JAX
is installed, its gradient and Hessian against JAX with x64."""

from __future__ import annotations

import numpy as np
import pytest

import symdiff

from .conftest import central_difference

# nan_to_num(log(x)) at negative x: numpy warns where the generated code computes log (and inf in
# the branch a select drops), as it does for the function itself; sinc's derivatives at 0 compute the
# quotient branch the select drops there
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered", "ignore:overflow encountered", "ignore:divide by zero encountered"
)

rng = np.random.default_rng(12)
X = rng.normal(size=(4, 5))
ORDER = np.argsort(X, axis=1)

# name: f(xp, x) for x of shape (4, 5), written once against numpy or jax.numpy (``xp``);
# the random point keeps sort, select and nan_to_num away from ties and thresholds.
ARRAY_FUNCTIONS = {
    "append": lambda xp, x: xp.append(x, x[0] ** 2),
    "append_axis": lambda xp, x: xp.append(x, x[:1] ** 2, axis=0),
    "atleast_2d": lambda xp, x: xp.atleast_2d(x[0]) * x,
    "atleast_3d": lambda xp, x: xp.atleast_3d(x[0]) * xp.atleast_3d(x),
    "hstack": lambda xp, x: xp.hstack([x, x[:, :2] ** 2]),
    "hstack_1d": lambda xp, x: xp.hstack([x[0], x[1] ** 2]),
    "vstack": lambda xp, x: xp.vstack([x, x[0] ** 2]),
    "dstack": lambda xp, x: xp.dstack([x, x**2]),
    "column_stack": lambda xp, x: xp.column_stack([x[0], x[1:3].T ** 2]),
    "array_split": lambda xp, x: xp.array_split(x, 3, axis=1)[2] ** 2 + xp.array_split(x, 3, axis=1)[0],
    "hsplit": lambda xp, x: xp.hsplit(x, [2])[1] * xp.hsplit(x, [3])[0].sum(),
    "vsplit": lambda xp, x: xp.vsplit(x, 2)[1] ** 2,
    "dsplit": lambda xp, x: xp.dsplit(x.reshape(2, 2, 5), [1, 3])[1],
    "tile": lambda xp, x: xp.tile(x[0], (2, 3)),
    "tile_short_reps": lambda xp, x: xp.tile(x, 2),
    "repeat": lambda xp, x: xp.repeat(x, 2, axis=1),
    "repeat_counts": lambda xp, x: xp.repeat(x, xp.array([1, 0, 2, 3]), axis=0, **({"total_repeat_length": 6} if xp is not np else {})),
    "repeat_flat": lambda xp, x: xp.repeat(x[:2], 2),
    "pad_constant": lambda xp, x: xp.pad(x, ((1, 2), (0, 1)), constant_values=1.5),
    "pad_edge": lambda xp, x: xp.pad(x, 2, mode="edge"),
    "pad_reflect": lambda xp, x: xp.pad(x, (1, 3), mode="reflect"),
    "pad_symmetric": lambda xp, x: xp.pad(x, 2, mode="symmetric"),
    "pad_wrap": lambda xp, x: xp.pad(x, ((1, 0), (2, 3)), mode="wrap"),
    "roll": lambda xp, x: xp.roll(x, 2, axis=1),
    "roll_flat": lambda xp, x: xp.roll(x, -3),
    "roll_axes": lambda xp, x: xp.roll(x, (1, 7), axis=(0, 1)),
    "rollaxis": lambda xp, x: xp.rollaxis(x.reshape(2, 2, 5), 2),
    "flip": lambda xp, x: xp.flip(x) * x,
    "flip_axis": lambda xp, x: xp.flip(x, 1) * x,
    "fliplr": lambda xp, x: xp.fliplr(x) ** 2,
    "flipud": lambda xp, x: xp.flipud(x) * x,
    "rot90": lambda xp, x: xp.rot90(x),
    "rot90_2": lambda xp, x: xp.rot90(x, 2),
    "rot90_3_axes": lambda xp, x: xp.rot90(x.reshape(2, 2, 5), 3, axes=(2, 0)),
    "tril": lambda xp, x: xp.tril(x, -1),
    "triu": lambda xp, x: xp.triu(x.reshape(2, 2, 5), 1),
    "diagflat": lambda xp, x: xp.diagflat(x[:2, :2], 1),
    "kron": lambda xp, x: xp.kron(x[:2, :2], x[2:, 3:]),
    "kron_ranks": lambda xp, x: xp.kron(x[0], x[1:3, :2]),
    "inner": lambda xp, x: xp.inner(x, x[:2]),
    "inner_1d": lambda xp, x: xp.inner(x[0], x[1]) * x,
    "cross": lambda xp, x: xp.cross(x[:, :3], x[:, 2:]),
    "cross_axes": lambda xp, x: xp.cross(x[:3, :2], x[1:4, 3:], axisa=0, axisb=0),
    "diff": lambda xp, x: xp.diff(x, 2, axis=1),
    "diff_prepend": lambda xp, x: xp.diff(x, prepend=0.5, axis=0),
    "cumprod": lambda xp, x: xp.cumprod(x, axis=1),
    "cumprod_flat": lambda xp, x: xp.cumprod(x[:2]),
    "sort": lambda xp, x: xp.sort(x, axis=0) * xp.arange(4.0)[:, None],
    "sort_last": lambda xp, x: xp.sort(x**3) * xp.arange(5.0),
    "argmax_rows": lambda xp, x: x[xp.arange(4), xp.argmax(x, axis=1)] ** 2 + x[xp.argmin(x[:, 0]), 1:] * 3,
    "argmax_all": lambda xp, x: x.ravel()[xp.argmax(x ** 2)] * x + x.ravel()[x.argmin()] ** 3
    + xp.argmax(x, axis=0, keepdims=True) * x,
    "select": lambda xp, x: xp.select([x > 0.5, x < -0.5], [x**2, xp.sin(x)], 0.1),
    "nan_to_num": lambda xp, x: xp.nan_to_num(xp.log(x)) * x,
    "take": lambda xp, x: xp.take(x, xp.array([0, 3, 3, 1]), axis=1),
    "take_flat": lambda xp, x: xp.take(x, xp.array([[0, 19], [7, 7]])),
    "take_along_axis": lambda xp, x: xp.take_along_axis(x, xp.asarray(ORDER), axis=1),
    "take_along_argsort": lambda xp, x: xp.take_along_axis(x**2, xp.argsort(xp.cos(x), axis=0), axis=0),
    "index_by_argsort": lambda xp, x: x[1][xp.argsort(x[0])] * xp.arange(5.0),
    "linspace": lambda xp, x: xp.linspace(x[0], x[1], 7),
    "linspace_axis": lambda xp, x: xp.linspace(x[0, 0], x[1], 4, axis=1, endpoint=False),
    "sinc": lambda xp, x: xp.sinc(x),
}

UFUNCS = {
    "remainder": lambda xp, x: xp.remainder(x * 3, x[0] + 2.5),
    "mod": lambda xp, x: xp.mod(x * 3, -(x[1] ** 2) - 0.5),
    "fmod": lambda xp, x: xp.fmod(x * 3, x[0] + 2.5),
    "logaddexp2": lambda xp, x: xp.logaddexp2(x, x[0] * 2),
    "deg2rad": lambda xp, x: xp.deg2rad(x * 90),
    "radians": lambda xp, x: xp.radians(x * 90) ** 2,
    "rad2deg": lambda xp, x: xp.sin(xp.rad2deg(x) / 90),
    "degrees": lambda xp, x: xp.degrees(x) ** 2 / 1000,
    "heaviside": lambda xp, x: xp.heaviside(x, x[0]) * x,
    "fmax": lambda xp, x: xp.fmax(x, x[0]),
    "fmin": lambda xp, x: xp.fmin(x, 0.1),
    "copysign": lambda xp, x: xp.copysign(x**2 + x, x[1]),
    "float_power": lambda xp, x: xp.float_power(x**2 + 1, x[0]),
    "cbrt": lambda xp, x: xp.cbrt(x),
}
FUNCTIONS = {**ARRAY_FUNCTIONS, **UFUNCS}
NAMES = sorted(FUNCTIONS)


def scalar(name, xp=np):
    return lambda x: xp.sum(xp.sin(FUNCTIONS[name](xp, x)))


@pytest.mark.parametrize("name", NAMES)
def test_value_is_numpys(name):
    out = FUNCTIONS[name](np, X)
    weights = rng.normal(size=np.shape(out))
    value, _ = symdiff.value_and_grad(lambda x: np.sum(FUNCTIONS[name](np, x) * weights))(X)
    np.testing.assert_allclose(value, np.sum(out * weights), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
    f = scalar(name)
    np.testing.assert_allclose(symdiff.grad(f)(X), central_difference(f, X), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_matches_central_differences(name):
    f = lambda x: FUNCTIONS[name](np, x)
    np.testing.assert_allclose(symdiff.jacobian(f)(X), central_difference(f, X), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_hessian_matches_central_differences_of_the_gradient(name):
    f = scalar(name)
    grad = symdiff.grad(f)
    np.testing.assert_allclose(symdiff.hessian(f)(X), central_difference(grad, X), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def jax_np():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


@pytest.mark.slow  # about 2.5 minutes: jax.hessian of every entry
@pytest.mark.parametrize("name", NAMES)
def test_gradient_and_hessian_agree_with_jax(jax_np, name):
    jax, jnp = jax_np
    f = scalar(name, jnp)
    np.testing.assert_allclose(symdiff.grad(scalar(name))(X), jax.grad(f)(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(symdiff.hessian(scalar(name))(X), jax.hessian(f)(X), rtol=1e-9, atol=1e-11)


# -- conventions where the derivative is not defined everywhere -----------------------------------


def test_sort_gradient_follows_the_permutation_computed_at_run_time():
    g = symdiff.grad(lambda x: np.sort(x) @ np.arange(4.0))
    np.testing.assert_array_equal(g(np.array([3.0, 1.0, 2.0, 0.0])), [3.0, 1.0, 2.0, 0.0])
    np.testing.assert_array_equal(g(np.array([0.0, 1.0, 2.0, 3.0])), [0.0, 1.0, 2.0, 3.0])  # same code, new order
    np.testing.assert_array_equal(g(np.array([1.0, 1.0, 0.0, 5.0])), [1.0, 2.0, 0.0, 3.0])  # ties: stable order


def test_sort_in_batched_per_point_derivatives():
    f = lambda v: np.sum(np.sort(v) ** 3 * np.arange(4.0))
    points = np.array([[0.3, -1.2, 2.0, 0.7], [-0.3, 1.2, -2.0, -0.7], [0.7, 2.0, -1.2, 0.3]])
    np.testing.assert_array_equal(symdiff.hessian(f, signature="(n)->()")(points),
                                  np.stack([symdiff.hessian(f)(p) for p in points]))
    np.testing.assert_allclose(np.diag(symdiff.hessian(f)(points[0])), [1.8, 0.0, 36.0, 8.4], rtol=1e-14)


def test_roll_flip_and_tile_derivatives_are_permutations_and_sums():
    x = np.arange(6.0)
    np.testing.assert_array_equal(symdiff.jacobian(lambda v: np.roll(v, 2))(x), np.roll(np.eye(6), 2, axis=0))
    np.testing.assert_array_equal(symdiff.grad(lambda v: np.sum(np.tile(v, 3) * np.arange(18.0)))(x),
                                  np.arange(18.0).reshape(3, 6).sum(0))


def test_remainder_and_heaviside_conventions():
    a, b = np.array([5.5, -5.5, 6.0]), np.array([2.0, 2.0, 2.0])
    ga, gb = symdiff.grad(lambda a, b: np.sum(np.remainder(a, b)), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, 1.0)
    np.testing.assert_array_equal(gb, -np.floor(a / b))  # also at the jump a = 6
    x, h0 = np.array([-1.0, 0.0, 2.0]), np.array([0.3, 0.3, 0.3])
    gx, gh = symdiff.grad(lambda x, h: np.sum(np.heaviside(x, h)), argnums=(0, 1))(x, h0)
    np.testing.assert_array_equal(gx, 0.0)
    np.testing.assert_array_equal(gh, [0.0, 1.0, 0.0])


def test_sinc_derivatives_at_zero_are_finite_and_right():
    d = [symdiff.derivative(np.sinc, k)(0.0) for k in (1, 2, 4)]
    np.testing.assert_allclose(d, [0.0, -(np.pi**2) / 3, np.pi**4 / 5], rtol=1e-9)


def test_cumprod_derivatives_are_exact_at_zeros():
    x = np.array([2.0, 0.0, 3.0, 0.0, 5.0])
    expected = np.array([[np.prod(x[: j + 1][np.arange(j + 1) != i]) if i <= j else 0.0 for i in range(5)]
                         for j in range(5)])  # d cumprod_j / d x_i: the product of the others up to j
    np.testing.assert_array_equal(symdiff.jacobian(np.cumprod)(x), expected)
    h = symdiff.hessian(lambda v: np.sum(np.cumprod(v)))(x)
    assert np.all(np.isfinite(h)) and h[0, 1] == 1.0 + 3.0 and h[1, 3] == 2 * 3.0 + 2 * 3.0 * 5.0
    assert expected[2, 1] == 6.0 and expected[1, 1] == 2.0


def test_nan_to_num_values_and_slope():
    x = np.array([np.nan, np.inf, -np.inf, 1.5])
    value, g = symdiff.value_and_grad(lambda v: np.sum(np.nan_to_num(v, posinf=7.0) * v))(x[3:])
    assert value == 2.25 and g[0] == 3.0
    out = symdiff.jacobian(lambda v: np.nan_to_num(v * 1.0, nan=-1.0, posinf=7.0))(x)
    np.testing.assert_array_equal(np.diag(out), [0.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    "f",
    [
        lambda v: np.sum(np.take(v, [0, 0, 5]) ** 3),
        lambda v: np.sum(v[[0, 0, 5]] ** 3),
        lambda v: np.sum(np.sin(np.pad(v, 2, mode="reflect")) * np.arange(10.0)),
        lambda v: np.sum(np.cumprod(v)) + np.sum(np.cross(v[:3], v[3:]) ** 2) + np.inner(v, np.roll(v, 2) ** 2),
    ],
    ids=["take", "integer_array_index", "pad_reflect", "cumprod_cross_roll"],
)
def test_batched_per_point_hessians_equal_hessians_point_by_point(f):
    points = rng.normal(size=(3, 6))
    np.testing.assert_allclose(symdiff.hessian(f, signature="(n)->()")(points),
                               np.stack([symdiff.hessian(f)(p) for p in points]), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    "f, words",
    [
        (lambda x: np.pad(x, 1, mode="linear_ramp"), "mode='linear_ramp'"),
        (lambda x: np.pad(x, 1, mode="reflect", reflect_type="odd"), "reflect_type"),
        (lambda x: np.cross(x[:2], x[1:3]), "length 2"),
        (lambda x: np.sort(x, order="a"), "order"),
    ],
)
def test_what_is_not_traced_is_refused_naming_the_users_line(f, words):
    with pytest.raises(symdiff.TraceError, match=words) as info:
        symdiff.grad(lambda x: np.sum(f(x)))(np.arange(1.0, 5.0))
    assert "test_numpy_coverage.py" in str(info.value)


def test_new_ufuncs_on_the_numba_backend():
    pytest.importorskip("numba")
    f = lambda v: (np.remainder(v[0] * 3, 1.3) + np.fmod(v[0], 0.7) * v[1] + np.copysign(v[0] ** 2, v[1])
                   + np.heaviside(v[0], 0.3) * v[1] + np.sinc(v[1]) + np.logaddexp2(v[0], v[1])
                   + np.deg2rad(v[0]) * np.rad2deg(v[1]))
    points = rng.normal(size=(5, 2))
    expected = np.stack([symdiff.hessian(f)(p) for p in points])
    np.testing.assert_allclose(symdiff.hessian(f, signature="(n)->()", backend="numba")(points), expected, rtol=1e-12)


@pytest.mark.parametrize("make", [lambda f: f(np.array([1.0 + 2.0j])), lambda f: f(np.ones(1))], ids=["argument", "constant"])
def test_complex_numbers_are_refused_as_not_supported_yet(make):
    f = symdiff.grad(lambda x: np.sum(x * np.array([1.0 + 1.0j])).real)
    with pytest.raises(symdiff.DtypeError, match="complex numbers are not supported yet"):
        make(f)
