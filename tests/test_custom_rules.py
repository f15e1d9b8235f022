"""Issue 11, the public extension point: ``symdiff.custom_jvp`` and ``symdiff.custom_vjp`` with JAX's
contract, composing with every transform to any order.

References: closed forms, and rules that are wrong on purpose (so a result that follows the rule
and not the function's formula proves the rule was used)."""

from __future__ import annotations

import ast

import numpy as np
import pytest

import symdiff
from symdiff.errors import ShapeError, TraceError

from .generated_code import without_comments


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@symdiff.custom_jvp
def log1pexp(x):
    return np.log(1 + np.exp(x))


@log1pexp.defjvp
def log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * (1 / (1 + np.exp(-x)))  # sigmoid, written in its stable form


def sigmoid_derivatives(x):
    """d^k/dx^k log(1 + e^x) for k = 1..4, in terms of s = sigmoid(x)."""
    s = sigmoid(x)
    return [s, s * (1 - s), s * (1 - s) * (1 - 2 * s), s * (1 - s) * (1 - 6 * s + 6 * s**2)]


@pytest.mark.parametrize("x", [-3.0, 0.5, 2.0])
def test_log1pexp_uses_its_rule_at_every_order(x):
    want = sigmoid_derivatives(x)
    assert symdiff.grad(log1pexp)(x) == pytest.approx(want[0], rel=1e-13)
    assert symdiff.hessian(log1pexp)(x) == pytest.approx(want[1], rel=1e-12)
    for k in (1, 2, 3, 4):
        assert symdiff.derivative(log1pexp, k)(x) == pytest.approx(want[k - 1], rel=1e-11, abs=1e-14)
    assert symdiff.grad(symdiff.grad(log1pexp))(x) == pytest.approx(want[1], rel=1e-12)


def test_log1pexp_is_finite_at_every_order_far_out():
    with np.errstate(over="ignore"):
        for x in (1000.0, -1000.0):
            values = [symdiff.grad(log1pexp)(x), symdiff.hessian(log1pexp)(x)]
            values += [symdiff.derivative(log1pexp, k)(x) for k in (1, 2, 3, 4)]
            assert np.all(np.isfinite(values)), (x, values)
            assert values[0] == pytest.approx(1.0 if x > 0 else 0.0, abs=1e-300)


def test_custom_function_inside_array_programs():
    v = np.array([0.5, -2.0, 40.0])
    g = symdiff.grad(lambda a: np.sum(log1pexp(a) * a))(v)
    np.testing.assert_allclose(g, np.log1p(np.exp(v)) + v * sigmoid(v), rtol=1e-13)
    H = symdiff.hessian(lambda a: np.sum(log1pexp(a) * a))(v)
    s = sigmoid(v)
    np.testing.assert_allclose(H, np.diag(2 * s + v * s * (1 - s)), rtol=1e-12, atol=1e-15)
    J = symdiff.jacobian(lambda a: log1pexp(a[::-1]))(v)
    np.testing.assert_allclose(J, np.fliplr(np.diag(sigmoid(v[::-1]))), rtol=1e-13)


def test_concrete_calls_run_plain_numpy():
    assert log1pexp(0.0) == pytest.approx(np.log(2.0))
    np.testing.assert_allclose(log1pexp(np.array([0.0, 1.0])), np.log1p(np.exp([0.0, 1.0])))
    assert log1pexp.__name__ == "log1pexp"


def test_the_rule_not_the_formula_decides():
    @symdiff.custom_jvp
    def f(x):
        return np.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):  # wrong on purpose: the derivative of 2x
        (x,), (t,) = primals, tangents
        return f(x), 2.0 * t

    assert symdiff.grad(f)(0.3) == 2.0
    assert symdiff.hessian(f)(0.3) == 0.0
    assert symdiff.derivative(f, 3)(0.3) == 0.0
    np.testing.assert_allclose(symdiff.grad(lambda a: np.sum(f(a) ** 2))(np.array([0.3, 0.4])),
                               2 * np.sin([0.3, 0.4]) * 2.0, rtol=1e-14)
    assert symdiff.value_and_grad(f)(0.3)[0] == pytest.approx(np.sin(0.3))  # the value is the function's


def test_rule_changed_after_a_call_is_seen():
    @symdiff.custom_jvp
    def f(x):
        return x * 1.0

    f.defjvp(lambda p, t: (f(p[0]), 3.0 * t[0]))
    g = symdiff.grad(f)
    assert g(1.0) == 3.0
    f.defjvp(lambda p, t: (f(p[0]), 5.0 * t[0]))
    assert g(1.0) == 5.0
    assert symdiff.grad(f)(1.0) == 5.0


# ---------------------------------------------------------------------------------------------
# custom_vjp
# ---------------------------------------------------------------------------------------------


@symdiff.custom_vjp
def scaled_sin(x, y):
    return np.sin(x) * y


def scaled_sin_fwd(x, y):
    return scaled_sin(x, y), (np.cos(x), np.sin(x), y)


def scaled_sin_bwd(residuals, g):
    cos_x, sin_x, y = residuals
    return cos_x * y * g, sin_x * g


scaled_sin.defvjp(scaled_sin_fwd, scaled_sin_bwd)


def test_custom_vjp_gradients_jacobians_and_hessians():
    x, y = np.array([0.3, 0.7, -1.1]), np.array([2.0, -1.0, 0.5])
    gx, gy = symdiff.grad(lambda a, b: np.sum(scaled_sin(a, b)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, np.cos(x) * y, rtol=1e-14)
    np.testing.assert_allclose(gy, np.sin(x), rtol=1e-14)
    # forward mode (jacobian with out >= in) by transposing bwd
    np.testing.assert_allclose(symdiff.jacobian(scaled_sin)(x, y), np.diag(np.cos(x) * y), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(symdiff.jacobian(scaled_sin, argnums=1)(x, y), np.diag(np.sin(x)), rtol=1e-14)
    H = symdiff.hessian(lambda a: np.sum(scaled_sin(a, y) ** 2))(x)
    np.testing.assert_allclose(H, np.diag(2 * y**2 * (np.cos(x) ** 2 - np.sin(x) ** 2)), rtol=1e-12, atol=1e-14)
    d2 = symdiff.derivative(lambda a: scaled_sin(a, 2.0), 2)(np.array([0.3, 0.9]))
    np.testing.assert_allclose(d2, -2 * np.sin([0.3, 0.9]), rtol=1e-13)


def test_custom_vjp_the_backward_rule_decides():
    @symdiff.custom_vjp
    def f(x):
        return np.exp(x)

    f.defvjp(lambda x: (f(x), None), lambda res, g: (7.0 * g,))  # wrong on purpose
    assert symdiff.grad(f)(0.2) == 7.0
    np.testing.assert_allclose(symdiff.jacobian(f)(np.array([0.1, 0.2])), 7.0 * np.eye(2))


# ---------------------------------------------------------------------------------------------
# Generated code and errors
# ---------------------------------------------------------------------------------------------


def test_generated_code_computes_the_function_and_the_rule():
    source = symdiff.value_and_grad(log1pexp).source(1.5)
    tree = ast.parse(source)
    # lowered to numpy code (the comments name this file, test_custom_rules.py: not code)
    assert "custom" not in without_comments(source).split('"""', 2)[2]
    namespace: dict = {}
    exec(compile(tree, "<generated>", "exec"), namespace)
    fn = next(v for k, v in namespace.items() if k.startswith("value_and_grad_"))
    value, grad = fn(np.float64(1.5))
    assert value == pytest.approx(np.log1p(np.exp(1.5))) and grad == pytest.approx(sigmoid(1.5))


def test_missing_or_wrong_rules_are_clear_errors():
    @symdiff.custom_jvp
    def no_rule(x):
        return x

    with pytest.raises(TraceError, match="defjvp"):
        symdiff.grad(no_rule)(1.0)

    @symdiff.custom_jvp
    def bad_shape(x):
        return x

    bad_shape.defjvp(lambda p, t: (p[0], np.ones(3)))
    with pytest.raises(ShapeError, match="tangent"):
        symdiff.grad(lambda a: np.sum(bad_shape(a)))(np.ones(2))

    @symdiff.custom_vjp
    def no_vjp(x):
        return x

    with pytest.raises(TraceError, match="defvjp"):
        symdiff.grad(no_vjp)(1.0)
