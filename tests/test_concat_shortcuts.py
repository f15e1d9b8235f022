"""``np.r_[...]`` / ``np.c_[...]`` with traced items (symdiff/concatenators.py, reached through the
control-flow rewrite): values against numpy itself, gradients against central differences of the
plain numpy function, hessians against JAX in x64 (jnp.r_/jnp.c_ follow numpy's rules)."""

import numpy
import numpy as np
import pytest
from numpy import c_, r_

import symdiff
from symdiff import TraceError

from .conftest import central_difference


def cat_tail(xp, v):
    return xp.r_[v, v[:2]]


def cat_scalars(xp, v):
    return xp.r_[v[0], 0.5, v[1:], 2]


def cat_slice(xp, v):
    return xp.r_[0:3, v, 1:2:3j]


def columns(xp, v):
    return xp.c_[v, 2 * v]


def directive_rows(xp, v):
    return xp.r_["0,2", v, 2 * v - 1]


def directive_axis(xp, v):
    a = v[:, None] * xp.array([1.0, 2.0])
    return xp.r_["1", a, a[:, :1]]


def directive_trans1d(xp, v):
    return xp.r_["0,2,0", v, v[:1]]


def columns_of_matrix(xp, v):
    a = v[:, None] * xp.array([1.0, -1.0])
    return xp.c_[a, v]


CASES = [
    cat_tail,
    cat_scalars,
    cat_slice,
    columns,
    directive_rows,
    directive_axis,
    directive_trans1d,
    columns_of_matrix,
]
V = np.array([0.7, -1.3, 2.1])


def _scalar(case, xp):
    """sum(w * case(v)**3) with fixed weights: a scalar whose derivatives see where each entry went."""
    w = np.linspace(0.5, 1.5, case(np, V).size).reshape(case(np, V).shape)
    return lambda v: xp.sum(w * case(xp, v) ** 3)


@pytest.mark.parametrize("case", CASES)
def test_values_and_gradients(case):
    f = _scalar(case, np)
    value, g = symdiff.value_and_grad(f)(V)
    assert value == pytest.approx(f(V), rel=1e-12)
    assert g == pytest.approx(central_difference(f, V), rel=1e-6, abs=1e-8)
    jac = symdiff.jacobian(lambda v: case(np, v))(V)
    expected = case(np, V)
    assert jac.shape == expected.shape + V.shape
    assert jac == pytest.approx(central_difference(lambda v: case(np, v), V), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("case", CASES)
def test_hessians_closed_form(case):
    """Concatenation is affine, out = P v + c: the hessian of sum(w * out**3) is P^T diag(6 w out) P,
    with P read off numpy's own r_/c_ by central differences (exact for an affine map)."""
    out = case(np, V).ravel()
    w = np.linspace(0.5, 1.5, out.size)
    P = central_difference(lambda v: case(np, v).ravel(), V)
    assert symdiff.hessian(_scalar(case, np))(V) == pytest.approx(P.T @ np.diag(6 * w * out) @ P, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("case", [cat_scalars, directive_axis, directive_trans1d])
def test_hessians_against_jax(case):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    expected = np.asarray(jax.hessian(_scalar(case, jnp))(jnp.asarray(V)))
    assert symdiff.hessian(_scalar(case, np))(V) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_imported_names_and_the_numpy_module_name():
    def f(v):
        return np.sum(r_[v, 1.0] * r_[2.0, v]) + np.sum(numpy.c_[v, v][:, 1] ** 2)

    v0, v1, v2 = V
    assert symdiff.grad(f)(V) == pytest.approx(np.array([2 + v1, v0 + v2, v1 + 1]) + 2 * V)
    assert symdiff.grad(lambda v: np.sum(c_[v, v] ** 2))(V) == pytest.approx(4 * V)


def test_plain_items_and_control_flow_around():
    def f(v):
        idx = np.r_[0:2, 2]  # no traced item: numpy's own result (an index array)
        out = np.r_[v[idx], v[0]]
        if out[0] > 0:
            out = np.r_[out, out[0]]
        else:
            out = np.r_[out, -out[0]]
        return np.sum(out**2)

    assert symdiff.grad(f)(V) == pytest.approx(np.array([6 * 0.7, 2 * -1.3, 2 * 2.1]))
    assert symdiff.grad(f)(-V) == pytest.approx(np.array([6 * -0.7, 2 * 1.3, 2 * -2.1]))


def test_refused_forms_name_the_line():
    def traced_bound(v):
        return np.sum(np.r_[0 : v[0], v])

    def matrix(v):
        return np.sum(np.r_["r", v, v])

    for f, what in ((traced_bound, "traced bound"), (matrix, "np.matrix")):
        with pytest.raises(TraceError, match=rf"{what}.*test_concat_shortcuts.py:\d+.*np.concatenate"):
            symdiff.grad(f)(V)


def test_functions_without_source_get_a_clear_error():
    scope = {"np": np}
    exec(compile("def f(v):\n    return np.sum(np.r_[v, v] ** 2)\n", "<typed>", "exec"), scope)
    with pytest.raises(TraceError, match=r"np\.r_.*cannot read at <typed>:2; write np\.concatenate"):
        symdiff.grad(scope["f"])(V)
