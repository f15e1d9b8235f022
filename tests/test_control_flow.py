"""Python control flow and item assignment inside a traced function (symdiff/rewrite.py): values and
derivatives against closed forms and central finite differences of the plain function."""

import importlib.util

import numpy as np
import pytest

import symdiff
from symdiff import TraceError


def central(f, x, eps=1e-6):
    """Central finite differences of a scalar function of one array."""
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


# ---------------------------------------------------------------------------------------------
# if / elif / else
# ---------------------------------------------------------------------------------------------


def sqrt_abs(a):
    if a >= 0:
        return np.sqrt(a)
    else:
        return np.sqrt(-a)


def test_branch_not_taken_leaks_no_nan():
    with np.errstate(invalid="ignore"):
        assert symdiff.grad(sqrt_abs)(2.0) == pytest.approx(0.35355339, abs=1e-8)
        assert symdiff.grad(sqrt_abs)(-2.0) == pytest.approx(-0.35355339, abs=1e-8)
        assert symdiff.value_and_grad(sqrt_abs)(-2.0)[0] == pytest.approx(np.sqrt(2.0))


def piecewise(x):
    if x > 1:
        y = x**3
    elif x > 0:
        y = np.sin(x)
        y = y * 2
    else:
        y = np.exp(x)
    return y + x


@pytest.mark.parametrize(
    "x, grad, hess",
    [(2.0, 3 * 4 + 1, 6 * 2), (0.5, 2 * np.cos(0.5) + 1, -2 * np.sin(0.5)), (-1.0, np.exp(-1) + 1, np.exp(-1))],
)
def test_if_elif_else_values_gradients_and_hessians(x, grad, hess):
    assert symdiff.grad(piecewise)(x) == pytest.approx(grad)
    assert symdiff.hessian(piecewise)(x) == pytest.approx(hess)
    value, _ = symdiff.value_and_grad(piecewise)(x)
    assert value == pytest.approx(piecewise(x))


def nested(x, y):
    z = x * y
    if x > 0:
        if y > 0:
            z = z + x**2
        else:
            z = z - y**2
    return z


@pytest.mark.parametrize("x, y", [(1.0, 2.0), (1.0, -2.0), (-1.0, 2.0)])
def test_nested_ifs(x, y):
    gx, gy = symdiff.grad(nested, argnums=(0, 1))(x, y)
    assert gx == pytest.approx(central(lambda v: nested(v, y), x), rel=1e-6)
    assert gy == pytest.approx(central(lambda v: nested(x, v), y), rel=1e-6)


def test_conditional_expression_and_boolean_operators():
    def f(x, y):
        z = x**2 if x > y else y**3
        both = (x > 0) and (y > 0)
        either = (x > 2) or not (y < 0)
        return z * np.where(both, 2.0, 1.0) * np.where(either, 3.0, 1.0)

    for x, y in [(1.0, 2.0), (3.0, -2.0), (-1.0, -3.0), (3.0, 1.0)]:
        gx, gy = symdiff.grad(f, argnums=(0, 1))(x, y)
        assert gx == pytest.approx(central(lambda v, y=y: f(v, y), x), rel=1e-6, abs=1e-9)
        assert gy == pytest.approx(central(lambda v, x=x: f(x, v), y), rel=1e-6, abs=1e-9)


def test_if_inside_a_loop_on_an_array_element():
    def f(x):
        total = 0.0
        for i in range(3):
            if x[i] > 0:
                total = total + x[i] ** 2
            else:
                total = total - x[i]
        return total

    x = np.array([1.5, -2.0, 0.5])
    assert symdiff.grad(f)(x) == pytest.approx([3.0, -1.0, 1.0])


def test_a_python_condition_runs_only_the_taken_branch():
    def f(x, flag=True):
        if flag:
            return x * 2
        else:
            raise RuntimeError("the branch not taken ran")

    assert symdiff.grad(f)(1.0) == pytest.approx(2.0)

    def g(x):
        n = 3
        return x * 2 if n > 2 else undefined_name  # noqa: F821

    assert symdiff.grad(g)(1.0) == pytest.approx(2.0)


def test_ambiguous_truth_value_names_the_line():
    def f(x):
        if x > 0:
            return x.sum()
        return -x.sum()

    with pytest.raises(TraceError, match=r"ambiguous.*test_control_flow\.py:\d+.*np\.where") as info:
        symdiff.grad(f)(np.ones(3))
    line = f.__code__.co_firstlineno + 1
    assert f"test_control_flow.py:{line}" in str(info.value)


def test_a_name_assigned_in_one_branch_names_the_name_and_lines():
    def f(x):
        if x > 0:
            y = x
        return y

    with pytest.raises(TraceError, match=r"`y` is assigned in only one branch") as info:
        symdiff.grad(f)(1.0)
    first = f.__code__.co_firstlineno
    assert f"test_control_flow.py:{first + 1}" in str(info.value)
    assert f"test_control_flow.py:{first + 3}" in str(info.value)


def test_a_name_only_used_inside_its_branch_is_fine():
    def f(x):
        if x > 0:
            t = x * 3
            y = t + 1
        else:
            y = x
        return y

    assert symdiff.grad(f)(1.0) == pytest.approx(3.0)
    assert symdiff.grad(f)(-1.0) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# while, and break under a traced condition
# ---------------------------------------------------------------------------------------------


def test_while_on_a_traced_value_explains():
    def f(x):
        while x > 1:
            x = x / 2
        return x

    with pytest.raises(TraceError, match=r"`while` loop at .*test_control_flow\.py:\d+.*depends on the data.*break"):
        symdiff.grad(f)(3.0)


def test_while_on_a_python_value_still_loops():
    def f(x):
        k = 0
        while k < 3:
            x = x * 2
            k += 1
        return x

    assert symdiff.grad(f)(1.0) == pytest.approx(8.0)


def halve_until_small(x):
    for _ in range(6):
        if x < 1:
            break
        x = x / 2
    return x


@pytest.mark.parametrize("x, grad", [(0.5, 1.0), (3.0, 0.25), (100.0, 1 / 64)])
def test_break_under_a_traced_condition_masks_the_remaining_iterations(x, grad):
    value, g = symdiff.value_and_grad(halve_until_small)(x)
    assert value == pytest.approx(halve_until_small(x))
    assert g == pytest.approx(grad)


def test_continue_and_return_inside_a_loop():
    def f(x):
        s = 0.0
        for i in range(4):
            if x[i] < 0:
                continue
            if s > 2:
                return s * 10
            s = s + x[i]
        return s

    for x in (np.array([1.0, -1.0, 2.0, 5.0]), np.array([0.5, 0.5, -1.0, 0.5]), np.array([3.0, 1.0, 1.0, 1.0])):
        assert symdiff.value_and_grad(f)(x)[0] == pytest.approx(f(x))
        assert symdiff.grad(f)(x) == pytest.approx(central(f, x), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# Item assignment
# ---------------------------------------------------------------------------------------------


def test_item_assignment_on_traced_and_numpy_arrays():
    def f(x, a):
        x[1:3] += a
        x[0] = x[3] * a
        out = np.zeros(3)
        out[0] = a
        out[2] = 5.0
        return (x * x).sum() + (out * a).sum()

    x, a = np.arange(4.0), 0.5
    gx, ga = symdiff.grad(f, argnums=(0, 1))(x, a)
    assert gx == pytest.approx(central(lambda v: f(v.copy(), a), x), rel=1e-6, abs=1e-8)
    assert ga == pytest.approx(central(lambda v: f(x.copy(), v), a), rel=1e-6)
    assert np.array_equal(x, np.arange(4.0))  # the caller's array is not changed by tracing


def test_numpy_assignment_without_traced_values_stays_in_place():
    def f(x):
        buf = np.zeros(3)
        view = buf
        buf[1] = 2.0
        return x * view[1]

    assert symdiff.grad(f)(1.0) == pytest.approx(2.0)


def rnn(W, x):
    steps, n = x.shape
    h = np.zeros((steps + 1, n))
    for t in range(1, steps + 1):
        h[t] = np.tanh(W @ h[t - 1] + x[t - 1])
    return h[-1].sum()


def test_rnn_with_item_assignment_in_a_loop():
    rng = np.random.default_rng(0)
    W, x = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(4, 3))
    gW, gx = symdiff.grad(rnn, argnums=(0, 1))(W, x)
    assert gW == pytest.approx(central(lambda v: rnn(v, x), W), rel=1e-5, abs=1e-8)
    assert gx == pytest.approx(central(lambda v: rnn(W, v), x), rel=1e-5, abs=1e-8)


def test_assignment_under_a_traced_condition():
    def f(x):
        out = np.zeros(2)
        if x > 0:
            out[0] = x**2
        else:
            out[1] = x
        return out.sum() + out[0]

    assert symdiff.grad(f)(3.0) == pytest.approx(12.0)
    assert symdiff.grad(f)(-3.0) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# np.array of traced values
# ---------------------------------------------------------------------------------------------


def test_np_array_of_traced_values():
    def f(a, b):
        m = np.array([[a, b], [b * a, 1.0]])
        v = np.asarray((a, 2.0))
        return (m @ v).sum()

    ga, gb = symdiff.grad(f, argnums=(0, 1))(1.5, 2.0)
    assert (ga, gb) == (pytest.approx(2 * 1.5 + 2 * 1.5 * 2.0), pytest.approx(2 + 1.5**2))


def test_np_array_of_traced_vectors_and_plain_lists():
    def f(x):
        m = np.array([x, x**2, np.ones(2)])
        c = np.array([1.0, 2.0, 3.0])  # no traced values: numpy's own
        return (c @ m).sum()

    x = np.array([0.5, -1.0])
    assert symdiff.grad(f)(x) == pytest.approx(1 + 4 * x)


def test_functions_defined_inside_are_rewritten_too():
    def f(x):
        def relu(v):
            if v > 0:
                return v
            return 0.0 * v

        scale = lambda v: 2 * v if v > 1 else v
        return relu(x) + scale(x)

    assert symdiff.grad(f)(3.0) == pytest.approx(3.0)
    assert symdiff.grad(f)(0.5) == pytest.approx(2.0)
    assert symdiff.grad(f)(-1.0) == pytest.approx(1.0)


def test_closures_defaults_and_methods():
    k = 3.0

    def f(x, *, sign=1.0):
        if x * sign > 0:
            return k * x
        return x

    assert symdiff.grad(f)(2.0) == pytest.approx(3.0)
    assert symdiff.grad(f)(2.0, sign=-1.0) == pytest.approx(1.0)

    class Model:
        def __init__(self):
            self.w = 2.0

        def loss(self, x):
            if x > self.w:
                return x**2
            return self.w * x

    m = Model()
    assert symdiff.grad(m.loss)(3.0) == pytest.approx(6.0)
    assert symdiff.grad(m.loss)(1.0) == pytest.approx(2.0)


def soft_step(v):
    """A helper at module level with an `if`: rewritten when the traced function calls it."""
    if v > 0:
        return v**2
    return 0.5 * v


def test_helpers_the_function_calls_are_rewritten():
    def f(x):
        return soft_step(x) + soft_step(-x)

    assert symdiff.grad(f)(2.0) == pytest.approx(4.0 - 0.5)
    assert symdiff.grad(f)(-2.0) == pytest.approx(0.5 - 4.0)


class Piecewise:
    """Helpers reached as methods: bound, static, class and inherited, each with a traced `if`."""

    scale = 3.0

    def helper(self, x):
        if x > 0:
            return x
        return -x

    def f(self, x):
        return self.helper(x) ** 2 + self.kinked(x)

    @staticmethod
    def kinked(x):
        if x > 1:
            return 2 * x
        return x

    @classmethod
    def scaled(cls, x):
        return cls.kinked(x) * cls.scale

    def nested(self, x):
        return self.outer(x) * 2

    def outer(self, x):
        y = self.helper(x) + self.scaled(x)
        if y > 4:
            y = y - x**2
        return y

    def ambiguous(self, v):
        if v > 0:
            return v.sum()
        return -v.sum()

    def loops(self, x):
        while x > 1:
            x = x / 2
        return x


@pytest.mark.parametrize("x", [2.0, -2.0, 0.5])
def test_methods_called_during_tracing_are_rewritten(x):
    m = Piecewise()
    helper = lambda v: v if v > 0 else -v
    kinked = lambda v: 2 * v if v > 1 else v
    f = lambda v: helper(v) ** 2 + kinked(v)

    def nested(v):
        y = helper(v) + 3.0 * kinked(v)
        return 2 * (y - v**2 if y > 4 else y)

    for fun, plain in ((m.f, f), (lambda v: m.f(v), f), (Piecewise.scaled, lambda v: 3.0 * kinked(v))):
        value, g = symdiff.value_and_grad(fun)(x)
        assert value == pytest.approx(plain(x))
        assert g == pytest.approx(central(plain, np.array(x)), rel=1e-6)
    assert symdiff.grad(m.nested)(x) == pytest.approx(central(nested, np.array(x)), rel=1e-6)
    assert symdiff.grad(lambda v: Piecewise().nested(v))(x) == pytest.approx(central(nested, np.array(x)), rel=1e-6)
    assert symdiff.hessian(m.f)(x) == pytest.approx(2.0)  # helper(x)**2 is x**2 on both sides
    y = abs(x) + 3.0 * kinked(x)
    assert symdiff.hessian(m.nested)(x) == pytest.approx(-4.0 if y > 4 else 0.0)


def test_errors_inside_methods_name_the_methods_lines():
    m = Piecewise()
    line = Piecewise.ambiguous.__code__.co_firstlineno + 1
    with pytest.raises(TraceError, match=rf"ambiguous.*test_control_flow\.py:{line}\b"):
        symdiff.grad(lambda v: m.ambiguous(v))(np.ones(3))
    line = Piecewise.loops.__code__.co_firstlineno + 1
    with pytest.raises(TraceError, match=rf"`while` loop at .*test_control_flow\.py:{line}\b"):
        symdiff.grad(m.loops)(3.0)


def test_chained_comparison_on_a_traced_value():
    def f(x):
        if 0 < x < 1:
            return x**2
        return x

    assert symdiff.grad(f)(0.25) == pytest.approx(0.5)
    assert symdiff.grad(f)(2.0) == pytest.approx(1.0)
    assert symdiff.grad(f)(-1.0) == pytest.approx(1.0)


def test_second_order_through_returns_breaks_and_assignments():
    with np.errstate(invalid="ignore"):
        for a in (2.0, -2.0):
            assert symdiff.hessian(sqrt_abs)(a) == pytest.approx(-0.25 * abs(a) ** -1.5)
    assert symdiff.hessian(halve_until_small)(3.0) == pytest.approx(0.0)

    def g(x):
        out = np.zeros(2)
        out[0] = x[0] * x[1]
        out[1] += x[1] ** 3
        return out.sum()

    assert symdiff.hessian(g)(np.array([1.0, 2.0])) == pytest.approx(np.array([[0.0, 1.0], [1.0, 12.0]]))


def test_jacobian_of_an_array_built_by_item_assignment():
    def f(x):
        y = np.zeros(3)
        for i in range(3):
            if x[i] > 0:
                y[i] = x[i] ** 2
            else:
                y[i] = -x[i]
        return y

    x = np.array([1.0, -2.0, 3.0])
    assert symdiff.jacobian(f)(x) == pytest.approx(np.diag([2.0, -1.0, 6.0]))


def test_for_else_with_a_traced_break():
    def f(x):
        for i in range(3):
            if x > i:
                break
        else:
            x = x * 10
        return x * 2

    assert symdiff.grad(f)(0.5) == pytest.approx(2.0)
    assert symdiff.grad(f)(-1.0) == pytest.approx(20.0)


def test_branches_that_return_tuples():
    def f(x):
        if x > 0:
            return x**2, x * 3
        return -x, x * 4

    (value, g), aux = symdiff.value_and_grad(f, has_aux=True)(3.0)
    assert (value, aux, g) == (pytest.approx(9.0), pytest.approx(9.0), pytest.approx(6.0))
    (value, g), aux = symdiff.value_and_grad(f, has_aux=True)(-3.0)
    assert (value, aux, g) == (pytest.approx(3.0), pytest.approx(-12.0), pytest.approx(-1.0))


def test_future_annotations_of_functions_defined_inside_stay_lazy(tmp_path):
    path = tmp_path / "annotated.py"
    path.write_text(
        "from __future__ import annotations\n"
        "def f(x: Undefined1):\n"
        "    def inner(v: Undefined2):\n"
        "        return v * 2 if v > 0 else v\n"
        "    return inner(x)\n"
    )
    spec = importlib.util.spec_from_file_location("annotated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert symdiff.grad(module.f)(1.0) == pytest.approx(2.0)
    assert symdiff.grad(module.f)(-1.0) == pytest.approx(1.0)


def test_the_loop_variable_after_a_traced_break():
    def f(x):
        for i in range(5):
            if x < i:
                break
        return x * i

    for x, expected in ((1.5, 2.0), (3.5, 4.0), (10.0, 4.0), (-1.0, 0.0)):
        assert symdiff.grad(f)(x) == pytest.approx(expected)


def test_item_assignment_with_index_arrays_whole_arrays_and_broadcasting():
    def f(x, a):
        y = np.zeros((2, 3))
        y[:, [0, 2]] = x[:2] * a  # index array: a gather of the value's entries
        y[-1] += a  # broadcast over a row
        z = np.ones(3)
        z[...] = x  # the whole array
        return (y**2).sum() + (z * a).sum()

    x, a = np.array([1.0, 2.0, 3.0]), 1.5
    gx, ga = symdiff.grad(f, argnums=(0, 1))(x, a)
    assert gx == pytest.approx(central(lambda v: f(v, a), x), rel=1e-6)
    assert ga == pytest.approx(central(lambda v: f(x, v), a), rel=1e-6)
    assert symdiff.value_and_grad(f)(x, a)[0] == pytest.approx(f(x, a))


def _returns_on_one_path(a):
    if a > 0:
        return a * 2


def _returns_in_a_loop(a):
    for i in range(3):
        if a > i:
            return a * i


def _returns_then_falls_back(a):
    if a > 0:
        return a * 2
    return a * 3


def test_a_function_that_returns_none_on_some_inputs_is_an_error_not_the_other_value():
    """Python returns None where no `return` runs; the rewrite used the other path's value there
    (value_and_grad(_returns_on_one_path)(-1.0) was (-2.0, 2.0))."""
    for f in (_returns_on_one_path, _returns_in_a_loop):
        with pytest.raises(symdiff.TraceError, match="add a `return` at the end"):
            symdiff.value_and_grad(f)(-1.0)
    assert symdiff.value_and_grad(_returns_then_falls_back)(-1.0) == (-3.0, 3.0)
    assert symdiff.value_and_grad(_returns_then_falls_back)(2.0) == (4.0, 2.0)
