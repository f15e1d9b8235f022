"""Issue 12, arguments and results: static arguments (declared with static_argnums/static_argnames,
or Python ints, bools, strings, None and tuples of them passed positionally) reach the function as
Python values, key the compiled code in one process and across processes, and cannot be
differentiated. Expected values are closed forms, finite differences or JAX."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import symdiff
from symdiff import trace
from symdiff.errors import DtypeError, SymdiffError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def power_sum(x, n):
    """x + x**2 + ... + x**n: the loop bound must be a Python int."""
    s = 0.0
    for i in range(n):
        s = s + x ** (i + 1)
    return s


def d_power_sum(x, n):
    return sum((i + 1) * x**i for i in range(n))


def choose(x, flag):
    return np.sin(x) if flag else np.cos(x)


def by_mode(x, mode):
    return {"sum": np.sum, "max": np.max}[mode](x**2)


# ---------------------------------------------------------------------------------------------
# Positional Python ints, bools and strings are static without being declared
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5])
def test_int_positional_is_a_loop_bound(n):
    assert symdiff.grad(power_sum)(1.5, n) == pytest.approx(d_power_sum(1.5, n), rel=1e-13)
    value, g = symdiff.value_and_grad(power_sum)(1.5, n)
    assert value == pytest.approx(power_sum(1.5, n), rel=1e-13) and g == pytest.approx(d_power_sum(1.5, n))
    hess = sum((i + 1) * i * 1.5 ** (i - 1) for i in range(1, n))
    assert float(symdiff.hessian(power_sum)(np.array(1.5), n)) == pytest.approx(hess, rel=1e-12)
    x = np.array([0.5, 1.5, -2.0])
    np.testing.assert_allclose(symdiff.derivative(power_sum)(x, n), d_power_sum(x, n), rtol=1e-13)


def test_bool_and_str_positional_choose_the_program():
    assert symdiff.grad(choose)(0.7, True) == pytest.approx(np.cos(0.7), rel=1e-14)
    assert symdiff.grad(choose)(0.7, False) == pytest.approx(-np.sin(0.7), rel=1e-14)
    x = np.array([1.0, -3.0, 2.0])
    np.testing.assert_allclose(symdiff.grad(by_mode)(x, "sum"), 2 * x)
    np.testing.assert_allclose(symdiff.grad(by_mode)(x, "max"), [0.0, -6.0, 0.0])


def test_tuple_of_ints_and_none_are_static():
    def f(x, shape, axis):
        return np.sum(np.reshape(x, shape) ** 3, axis=axis)[0]

    x = np.arange(6.0)
    g = symdiff.grad(f)(x, (2, 3), 0)
    np.testing.assert_allclose(g, [3 * v**2 if i % 3 == 0 else 0.0 for i, v in enumerate(x)])
    np.testing.assert_allclose(symdiff.grad(f)(x, (3, 2), 1), [3 * x[0] ** 2, 3 * x[1] ** 2, 0, 0, 0, 0])
    h = symdiff.grad(lambda x, k: np.sum(x**2) if k is None else x[k] ** 2)
    np.testing.assert_allclose(h(x, None), 2 * x)
    np.testing.assert_allclose(h(x, 4), [0, 0, 0, 0, 8.0, 0])


def test_jacobian_with_a_static_slice_bound():
    x = np.arange(1.0, 5.0)
    for n in (2, 3):
        want = np.zeros((n, 4))
        want[np.arange(n), np.arange(n)] = 2 * x[:n]
        np.testing.assert_allclose(symdiff.jacobian(lambda x, n: x[:n] ** 2)(x, n), want)


def test_python_floats_stay_differentiable():
    f = lambda x, y: x**2 * y
    assert symdiff.grad(f)(2.0, 3.0) == 12.0
    assert symdiff.grad(f, argnums=(0, 1))(2.0, 3.0) == (12.0, 4.0)
    assert symdiff.grad(lambda x: x**3)(2.0) == 12.0


def test_an_int_where_argnums_points_is_still_a_dtype_error():
    with pytest.raises(DtypeError, match="only floating arrays can be differentiated"):
        symdiff.grad(power_sum)(2, 3)
    with pytest.raises(DtypeError):
        symdiff.grad(power_sum, argnums=1)(2.0, 3)


# ---------------------------------------------------------------------------------------------
# Declared static arguments
# ---------------------------------------------------------------------------------------------


def test_static_argnums_bakes_in_a_float():
    f = lambda x, a: np.exp(a * x)
    g = symdiff.grad(f, static_argnums=1)
    for a in (0.5, 2.0, 0.5, -1.0, 2.0):
        assert g(0.3, a) == pytest.approx(a * np.exp(a * 0.3), rel=1e-14)
    assert "a = 2.0 (static)" in g.source(0.3, 2.0)


def test_static_argnames_positional_and_keyword():
    g = symdiff.grad(lambda x, scale: np.sum(np.sin(scale * x)), static_argnames="scale")
    x = np.array([0.1, 0.2])
    for scale in (1.0, 3.0):
        want = scale * np.cos(scale * x)
        np.testing.assert_allclose(g(x, scale), want, rtol=1e-14)
        np.testing.assert_allclose(g(x, scale=scale), want, rtol=1e-14)


def test_negative_static_argnums_and_every_transform():
    f = lambda x, p: np.sum(x**p)
    x = np.array([1.0, 2.0, 3.0])
    for p in (2.0, 3.0):
        np.testing.assert_allclose(symdiff.grad(f, static_argnums=-1)(x, p), p * x ** (p - 1))
        np.testing.assert_allclose(symdiff.hessian(f, static_argnums=1)(x, p), np.diag(p * (p - 1) * x ** (p - 2)))
        v, g = symdiff.value_and_grad(f, static_argnums=1)(x, p)
        assert v == pytest.approx(np.sum(x**p)) and np.allclose(g, p * x ** (p - 1))
        np.testing.assert_allclose(
            symdiff.jacobian(lambda x, p: x**p, static_argnums=1)(x, p), np.diag(p * x ** (p - 1))
        )
        np.testing.assert_allclose(symdiff.derivative(lambda x, p: x**p, static_argnums=1)(x, p), p * x ** (p - 1))


def test_differentiating_a_static_argument_is_an_error():
    with pytest.raises(SymdiffError, match="is static .* cannot be differentiated"):
        symdiff.grad(power_sum, argnums=1, static_argnums=1)
    with pytest.raises(SymdiffError, match="is static"):
        symdiff.grad(power_sum, wrt="n", static_argnames="n")
    with pytest.raises(SymdiffError, match="'x' is static"):
        symdiff.grad(power_sum, argnums=-2, static_argnums=0)(2.0, 3)
    with pytest.raises(SymdiffError, match="static_argnums must be"):
        symdiff.grad(power_sum, static_argnums="n")


def test_unhashable_static_argument_is_refused():
    g = symdiff.grad(lambda x, a: np.sum(x * a), static_argnums=1)
    with pytest.raises(SymdiffError, match="must be hashable"):
        g(np.ones(2), np.ones(2))


def test_a_traced_value_cannot_be_static_in_a_nested_transform():
    inner = symdiff.grad(lambda x, a: x * a, static_argnums=1)
    with pytest.raises(SymdiffError, match="received a traced value"):
        symdiff.grad(lambda y: inner(2.0, y))(1.0)


# ---------------------------------------------------------------------------------------------
# Keys: two static values never share compiled code
# ---------------------------------------------------------------------------------------------


def test_alternating_static_values_on_the_fast_path(monkeypatch):
    g = symdiff.grad(power_sum)
    for n in (2, 3):
        g(1.5, n)
    traces = []
    real = trace.run
    monkeypatch.setattr(trace, "run", lambda *a, **k: traces.append(1) or real(*a, **k))
    for n in (2, 3, 2, 3, 2):
        assert g(1.5, n) == pytest.approx(d_power_sum(1.5, n), rel=1e-13)
        assert symdiff.grad(power_sum)(1.5, n) == pytest.approx(d_power_sum(1.5, n), rel=1e-13)
    assert traces == []  # each value found its own compiled code without a trace
    assert g(1.5, 4) == pytest.approx(d_power_sum(1.5, 4))
    assert traces  # a new value is traced


def test_static_values_that_compare_equal_stay_apart():
    f = lambda x, k: x * {float: 1.0, int: 10.0, bool: 100.0}[type(k)]
    g = symdiff.grad(f, static_argnums=1)
    for _ in range(2):
        assert (g(1.0, 1), g(1.0, 1.0), g(1.0, True)) == (10.0, 1.0, 100.0)
    h = symdiff.grad(lambda x, z: x / z, static_argnums=1)
    assert h(1.0, 0.5) == 2.0 and h(1.0, 0.25) == 4.0


def test_static_keyword_values_and_static_argnames_key_the_code():
    g = symdiff.grad(power_sum, static_argnames="n")
    assert [g(2.0, n=n) for n in (1, 2, 3, 2)] == [1.0, 5.0, 17.0, 5.0]


def test_generated_docstring_states_static_values():
    src = symdiff.grad(power_sum).source(2.0, 3)
    assert "n = 3 (static)" in src and "def grad_power_sum(x)" in src
    src = symdiff.grad(lambda x, mode: np.sum(x**2)).source(np.ones(2), 'we"ird')
    assert "mode = <str> (static)" in src  # a value that could end the docstring is not written


STATIC_PROCESS = r"""
import sys, json
import numpy as np
import symdiff
def power_sum(x, n):
    s = 0.0
    for i in range(n):
        s = s + x ** (i + 1)
    return s
def scaled(x, a):
    return np.exp(a * x)
out = {}
for n in map(int, sys.argv[1].split(",")):
    out[f"n{n}"] = [symdiff.grad(power_sum)(2.0, n), "sympy" in sys.modules]
for a in map(float, sys.argv[2].split(",")):
    out[f"a{a}"] = [symdiff.grad(scaled, static_argnums=1)(0.5, a), "sympy" in sys.modules]
print(json.dumps(out))
"""


def test_static_values_key_the_disk_cache_across_processes(tmp_path):
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": ROOT}

    def run(ns, scales):
        r = subprocess.run([sys.executable, "-c", STATIC_PROCESS, ns, scales], env=env, capture_output=True, check=False,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    first = run("3", "1.5")
    assert first["n3"] == [17.0, True] and first["a1.5"][0] == pytest.approx(1.5 * np.exp(0.75), rel=1e-14)
    second = run("3,4", "1.5,2.5")  # the warm values first: found on disk without SymPy
    assert second["n3"] == [17.0, False]
    assert second["a1.5"][0] == pytest.approx(1.5 * np.exp(0.75), rel=1e-14)
    assert second["n4"][0] == d_power_sum(2.0, 4) == 49.0
    assert second["a2.5"][0] == pytest.approx(2.5 * np.exp(1.25), rel=1e-14)


# ---------------------------------------------------------------------------------------------
# Nesting and an independent oracle
# ---------------------------------------------------------------------------------------------


def test_static_arguments_through_nested_transforms():
    assert symdiff.grad(symdiff.grad(power_sum))(2.0, 3) == 14.0  # 2 + 6x
    assert symdiff.grad(lambda x, y: symdiff.grad(power_sum)(x, 3) * y)(2.0, 1.5) == pytest.approx(21.0)
    inner = symdiff.grad(lambda x, a: np.sin(a * x), static_argnums=1)
    assert symdiff.grad(lambda x: inner(x, 2.0))(0.3) == pytest.approx(-4 * np.sin(0.6), rel=1e-14)


def test_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def f(x, n, mode):
        s = 0.0
        for i in range(n):
            s = s + (jnp if isinstance(x, jax.Array) else np).sin((i + 1) * x)
        return s.sum() if mode == "sum" else (s**2).sum()

    x = np.array([0.2, -0.4, 1.1])
    for n, mode in ((2, "sum"), (3, "sq"), (4, "sum")):
        want = np.asarray(jax.grad(f, argnums=0)(jnp.asarray(x), n, mode))
        np.testing.assert_allclose(symdiff.grad(f)(x, n, mode), want, rtol=1e-12)
        want_h = np.asarray(jax.hessian(f)(jnp.asarray(x), n, mode))
        np.testing.assert_allclose(symdiff.hessian(f, static_argnums=(1, 2))(x, n, mode), want_h, rtol=1e-12,
                                   atol=1e-14)


# ---------------------------------------------------------------------------------------------
# grad, value_and_grad and hessian of a one-element output (shape (1,), (1, 1)), as autograd
# ---------------------------------------------------------------------------------------------


def quad_11(x):
    return x[None, :] @ np.diag([1.0, 2.0, 3.0]) @ x[:, None]  # shape (1, 1)


def test_one_element_outputs_against_finite_differences(fd):
    x = np.array([0.3, -1.2, 2.0])
    want = fd(lambda v: quad_11(v)[0, 0], x)
    np.testing.assert_allclose(symdiff.grad(quad_11)(x), want, rtol=1e-8)
    value, g = symdiff.value_and_grad(quad_11)(x)
    assert value.shape == (1, 1) and value[0, 0] == pytest.approx(x @ np.diag([1.0, 2.0, 3.0]) @ x)
    np.testing.assert_allclose(g, want, rtol=1e-8)
    np.testing.assert_allclose(symdiff.hessian(quad_11)(x), np.diag([2.0, 4.0, 6.0]), atol=1e-12)
    f1 = lambda x: np.sin(x[:1]) * x[1]  # shape (1,)
    np.testing.assert_allclose(symdiff.grad(f1)(x), [np.cos(0.3) * -1.2, np.sin(0.3), 0.0], rtol=1e-14)
    points = np.stack([x, x + 1])
    np.testing.assert_allclose(symdiff.grad(f1, signature="(n)->(1)")(points),
                               [symdiff.grad(f1)(p) for p in points], rtol=1e-14)


def test_one_element_output_against_torch():
    torch = pytest.importorskip("torch")
    x = np.array([0.5, 1.5])
    t = torch.tensor(x, requires_grad=True)
    (torch.exp(t[:1]) * t[1:] ** 2).sum().backward()
    np.testing.assert_allclose(symdiff.grad(lambda x: np.exp(x[:1]) * x[1:] ** 2)(x), t.grad.numpy(), rtol=1e-14)


def test_more_than_one_element_is_still_not_scalar():
    from symdiff.errors import NotScalarError

    with pytest.raises(NotScalarError, match="returns shape \\(2,\\); use symdiff.jacobian"):
        symdiff.grad(lambda x: x[:2] ** 2)(np.ones(3))
    with pytest.raises(NotScalarError, match="hessian needs a scalar output"):
        symdiff.hessian(lambda x: x[None, :2])(np.ones(3))


# ---------------------------------------------------------------------------------------------
# Pytrees: dict, list, tuple, namedtuple and dataclass arguments and results, as in JAX
# ---------------------------------------------------------------------------------------------

Params = collections.namedtuple("Params", "w b")


@dataclasses.dataclass
class Layer:
    w: np.ndarray
    b: np.ndarray


def mlp_loss(params, x):
    h = np.tanh(x @ params["w1"] + params["b1"])
    return np.mean((h @ params["w2"]) ** 2)


RNG = np.random.default_rng(12)
PARAMS = {"w1": RNG.normal(size=(3, 4)), "b1": RNG.normal(size=4), "w2": RNG.normal(size=4)}
X = RNG.normal(size=(5, 3))


def test_grad_of_a_dict_of_parameters_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def jax_loss(params, x):
        h = jnp.tanh(x @ params["w1"] + params["b1"])
        return jnp.mean((h @ params["w2"]) ** 2)

    want = jax.grad(jax_loss)(PARAMS, X)
    for _ in range(2):  # the second call takes the fast path
        got = symdiff.grad(mlp_loss)(PARAMS, X)
        assert list(got) == ["w1", "b1", "w2"]
        for k, v in PARAMS.items():
            assert got[k].shape == v.shape
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12)
    value, got = symdiff.value_and_grad(mlp_loss, argnums=(0, 1))(PARAMS, X)
    want_v, (_, want_x) = jax.value_and_grad(jax_loss, argnums=(0, 1))(PARAMS, X)
    assert value == pytest.approx(float(want_v), rel=1e-13)
    np.testing.assert_allclose(got[1], want_x, rtol=1e-12)
    small = {"a": np.array([0.3, -0.2]), "b": np.array(0.7)}
    f = lambda p: np.sum(np.sin(p["a"] * p["b"]))
    hess = symdiff.hessian(f)(small)
    want_h = jax.hessian(lambda p: jnp.sum(jnp.sin(p["a"] * p["b"])))(small)
    for r in small:
        for c in small:
            np.testing.assert_allclose(hess[r][c], want_h[r][c], rtol=1e-12)


def test_fast_path_with_a_dict_argument(monkeypatch):
    g = symdiff.grad(mlp_loss)
    g(PARAMS, X)
    traces = []
    real = trace.run
    monkeypatch.setattr(trace, "run", lambda *a, **k: traces.append(1) or real(*a, **k))
    other = {k: v + 1 for k, v in PARAMS.items()}
    np.testing.assert_allclose(g(other, X)["w2"], symdiff.grad(lambda w2: mlp_loss({**other, "w2": w2}, X))(other["w2"]))
    assert len(traces) == 1  # only the closure-built check above traced


def test_namedtuple_and_dataclass_arguments_and_results(fd):
    x = np.array([0.5, -1.0])
    f = lambda p, x: np.sum(np.exp(p.w * x) + p.b**2)
    b = np.array(1.5)
    want_w = fd(lambda w: f(Params(w, b), x), np.array([0.2, 0.3]))
    for params in (Params(np.array([0.2, 0.3]), b), Layer(np.array([0.2, 0.3]), b)):
        g = symdiff.grad(f)(params, x)
        assert type(g) is type(params)
        np.testing.assert_allclose(g.w, want_w, rtol=1e-7)
        assert float(g.b) == pytest.approx(2 * 2 * 1.5)
    _, aux = symdiff.grad(lambda x: (np.sum(x**2), Params(2 * x, np.sum(x))), has_aux=True)(x)
    assert isinstance(aux, Params) and np.allclose(aux.w, 2 * x) and float(aux.b) == pytest.approx(-0.5)
    _, aux = symdiff.grad(lambda x: (np.sum(x**2), Layer(x, np.sum(x))), has_aux=True)(x)
    assert isinstance(aux, Layer) and np.allclose(aux.w, x)


def test_same_leaves_in_another_structure_get_their_own_structure():
    f = lambda p: p[0] * p[1] if isinstance(p, tuple) else p["w"] * p["b"]
    w, b = np.array(2.0), np.array(3.0)
    assert type(symdiff.grad(f)(Params(w, b))) is Params
    assert isinstance(symdiff.grad(f)({"w": w, "b": b}), dict)
    assert isinstance(symdiff.grad(lambda p: np.sum(p[0] * p[1]))((np.ones(2), np.array(3.0))), tuple)


def test_list_of_arrays_of_different_shapes_and_a_list_of_numbers():
    g = symdiff.grad(lambda ws: sum(np.sum(w**2) for w in ws))([np.ones(2), np.full(3, 2.0)])
    assert isinstance(g, list) and np.allclose(g[0], 2.0) and np.allclose(g[1], 4.0)
    np.testing.assert_allclose(symdiff.grad(lambda v: np.sum(v**2))([1.0, 2.0]), [2.0, 4.0])  # still one array


def test_pytree_argument_of_a_nested_transform(fd):
    inner = symdiff.grad(mlp_loss)
    outer = lambda s: np.sum(inner({**PARAMS, "w2": s * PARAMS["w2"]}, X)["b1"])
    got = symdiff.grad(outer)(1.3)
    assert got == pytest.approx(float(fd(lambda s: outer(float(s)), 1.3)), rel=1e-6)


PYTREE_PROCESS = r"""
import sys, json
import numpy as np
import symdiff
def loss(p, x):
    return np.sum((x @ p["w"] + p["b"]) ** 2)
p = {"w": np.array([1.0, 2.0]), "b": np.array(0.5)}
g = symdiff.grad(loss)(p, np.array([[1.0, 0.0], [0.5, 1.0]]))
def keyword_loss(w, batch):
    return np.sum((batch["x"] @ w - batch["y"]) ** 2)
k = symdiff.grad(keyword_loss)(np.array([1.0, -1.0]), batch={"x": np.eye(2), "y": np.array([0.5, 1.0])})
print(json.dumps({"sympy": "sympy" in sys.modules, "w": g["w"].tolist(), "b": float(g["b"]), "k": k.tolist()}))
"""


def test_pytree_arguments_across_processes(tmp_path):
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": ROOT}
    outs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", PYTREE_PROCESS], env=env, capture_output=True, check=False,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout))
    assert outs[0]["sympy"] and not outs[1]["sympy"]
    assert outs[0]["w"] == outs[1]["w"] == [6.0, 6.0] and outs[1]["b"] == 9.0
    assert outs[0]["k"] == outs[1]["k"] == [1.0, -4.0]


def test_jacobian_of_pytree_results_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def f(p, xnp):
        return {"sq": p["a"] ** 2 * p["b"], "parts": Params(xnp.sin(p["a"]), xnp.sum(p["a"]) * p["b"])}

    p = {"a": np.array([0.5, 2.0, -1.0]), "b": np.array(1.5)}
    got = symdiff.jacobian(lambda p: f(p, np))(p)
    want = jax.jacrev(lambda p: f(p, jnp))(p)
    assert isinstance(got["parts"], Params)
    for path in (("sq", "a"), ("sq", "b"), ("parts", 0, "a"), ("parts", 1, "b"), ("parts", 1, "a")):
        g, w = got, want
        for k in path:
            g, w = g[k], w[k]
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)
    x = np.array([0.5, 2.0])
    got = symdiff.jacobian(lambda x, y: (x * y, np.sum(x)), argnums=(0, 1))(x, 3.0)
    want = jax.jacrev(lambda x, y: (x * y, jnp.sum(x)), argnums=(0, 1))(x, 3.0)
    for i in range(2):
        for k in range(2):
            np.testing.assert_allclose(got[i][k], want[i][k], rtol=1e-14)


def test_pytree_keyword_arguments_are_data(monkeypatch):
    def loss(w, batch, scale=1.0):
        return scale * np.sum((batch["x"] @ w - batch["y"]) ** 2)

    w = np.array([1.0, -1.0])
    g = symdiff.grad(loss)
    batches = [{"x": np.array([[1.0, 2.0], [3.0, 0.5]]) * (k + 1), "y": np.array([0.5, 1.0])} for k in range(3)]
    g(w, batch=batches[0]), g(w, batch=batches[0], scale=2.0)
    traces = []
    real = trace.run
    monkeypatch.setattr(trace, "run", lambda *a, **kw: traces.append(1) or real(*a, **kw))
    for batch in batches:
        want = 2 * batch["x"].T @ (batch["x"] @ w - batch["y"])
        np.testing.assert_allclose(g(w, batch=batch), want, rtol=1e-14)
        np.testing.assert_allclose(g(w, batch=batch, scale=2.0), 2 * want, rtol=1e-14)
    assert traces == []  # new batch values of the same structure reuse the compiled code untraced
    assert "(w, *, batch_x, batch_y)" in g.source(w, batch=batch)
    pair = Params(np.ones(2), np.array(2.0))
    got = symdiff.grad(lambda w, p: np.sum(w * p.w) * p.b)(w, p=pair)
    np.testing.assert_allclose(got, 2 * np.ones(2))
