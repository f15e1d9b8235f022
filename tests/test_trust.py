"""Issue 10, trust: no silent wrong derivative when a program changes, nested transforms, keyword
arguments, names that belong to the function asked about, generated modules that check what they
are called with, and constants that make emitted modules standalone.

Each test here is a reproducer that returned a wrong number (or crashed) before the fix."""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest

import symdiff
from symdiff import environment, load
from symdiff.errors import CacheWarning, DtypeError, SymdiffError, TraceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONES = np.ones(3)


# ---------------------------------------------------------------------------------------------
# 1. What the function reads: an edit must never return the old derivative
# ---------------------------------------------------------------------------------------------


def _define(source: str, namespace=None) -> dict:
    namespace = {"np": np, "__name__": "notebook_cell"} if namespace is None else namespace
    exec(textwrap.dedent(source), namespace)
    return namespace


def test_keyword_only_default_edited_in_a_notebook_cell():
    cell = "def f(x, *, scale={}):\n    return np.sum(scale*x**2)\n"
    first = _define(cell.format(2.0))["f"]
    np.testing.assert_array_equal(symdiff.grad(first)(ONES), [4, 4, 4])
    second = _define(cell.format(3.0))["f"]
    np.testing.assert_array_equal(symdiff.grad(second)(ONES), [6, 6, 6])


def test_keyword_only_default_changed_in_place():
    g = _define("def f(x, *, scale=2.0):\n    return np.sum(scale*x**2)\n")
    t = symdiff.grad(g["f"])
    np.testing.assert_array_equal(t(ONES), [4, 4, 4])
    g["f"].__kwdefaults__["scale"] = 3.0
    np.testing.assert_array_equal(t(ONES), [6, 6, 6])


def test_class_attribute_edited():
    g = _define("class Config:\n    scale = 2.0\n\ndef f(x):\n    return np.sum(Config.scale*x**2)\n")
    t = symdiff.grad(g["f"])
    np.testing.assert_array_equal(t(ONES), [4, 4, 4])
    g["Config"].scale = 3.0
    np.testing.assert_array_equal(t(ONES), [6, 6, 6])  # the same transform object
    np.testing.assert_array_equal(symdiff.grad(g["f"])(ONES), [6, 6, 6])  # a new one


def test_helper_default_changed():
    g = _define("def helper(x, k=2.0):\n    return k*x\n\ndef f(x):\n    return np.sum(helper(x)**2)\n")
    t = symdiff.grad(g["f"])
    np.testing.assert_array_equal(t(ONES), [8, 8, 8])
    _define("def helper(x, k=3.0):\n    return k*x\n", g)
    np.testing.assert_array_equal(t(ONES), [18, 18, 18])
    g["helper"].__defaults__ = (4.0,)
    np.testing.assert_array_equal(t(ONES), [32, 32, 32])


def test_partial_bound_value():
    def base(x, scale):
        return np.sum(scale * x**2)

    np.testing.assert_array_equal(symdiff.grad(functools.partial(base, scale=2.0))(ONES), [4, 4, 4])
    np.testing.assert_array_equal(symdiff.grad(functools.partial(base, scale=3.0))(ONES), [6, 6, 6])


def test_bound_method_reading_self():
    class Model:
        def __init__(self, k):
            self.k = k

        def loss(self, x):
            return np.sum(self.k * x**2)

    m = Model(2.0)
    t = symdiff.grad(m.loss)
    np.testing.assert_array_equal(t(ONES), [4, 4, 4])
    m.k = 3.0
    np.testing.assert_array_equal(t(ONES), [6, 6, 6])
    np.testing.assert_array_equal(symdiff.grad(m.loss)(ONES), [6, 6, 6])


def test_constant_of_an_imported_module():
    module = types.ModuleType("symdiff_test_config")
    module.scale = 2.0
    g = _define("def f(x):\n    return np.sum(cfg.scale*x**2)\n", {"np": np, "cfg": module, "__name__": "cell"})
    t = symdiff.grad(g["f"])
    np.testing.assert_array_equal(t(ONES), [4, 4, 4])
    module.scale = 3.0
    np.testing.assert_array_equal(t(ONES), [6, 6, 6])
    np.testing.assert_array_equal(symdiff.grad(g["f"])(ONES), [6, 6, 6])


def test_closed_over_list_and_dict_items_are_compared():
    params = {"scale": 2.0}
    coeffs = [2.0]

    def f(x):
        return np.sum(params["scale"] * coeffs[0] * x**2)

    t = symdiff.grad(f)
    np.testing.assert_array_equal(t(ONES), [8, 8, 8])
    params["scale"] = 3.0
    np.testing.assert_array_equal(t(ONES), [12, 12, 12])
    coeffs[0] = 1.0
    np.testing.assert_array_equal(t(ONES), [6, 6, 6])


def test_shadowing_a_builtin_later_is_seen():
    g = _define("def f(x):\n    return np.sum(x**2) * abs(-2.0)\n")
    t = symdiff.grad(g["f"])
    np.testing.assert_array_equal(t(ONES), [4, 4, 4])
    g["abs"] = lambda v: 3.0
    np.testing.assert_array_equal(t(ONES), [6, 6, 6])


def test_what_cannot_be_proven_unchanged_is_traced_every_call():
    class Config:
        scale = 2.0

    def f(x):
        return np.sum(Config.scale * x)

    assert environment.read_set(f) is None  # a class: its attributes can change
    assert environment.read_set(lambda x: np.sum(np.sin(x))) is not None
    mod = types.ModuleType("m")
    mod.Config = Config
    assert environment.read_set(_define("def f(x):\n    return x\n", {"m": mod})["f"]) is not None  # never reads m


def test_a_class_pretending_to_live_in_numpy_is_not_trusted():
    g = _define("class Config:\n    scale = 2.0\n", {"__name__": "numpy"})
    cls = g["Config"]
    assert cls.__module__ == "numpy"
    assert environment._stable_name(cls) is None


# Across processes: the same cell edited between two runs sharing one cache directory.

CASES = {
    "kwdefault": "def f(x, *, scale={v}):\n    return np.sum(scale*x**2)\n",
    "class": "class Config:\n    scale = {v}\n\ndef f(x):\n    return np.sum(Config.scale*x**2)\n",
    "helper": "def helper(x, k={v}):\n    return k*x\n\ndef f(x):\n    return np.sum(helper(x)**2) / {v}\n",
    "partial": ("import functools\ndef base(x, scale):\n    return np.sum(scale*x**2)\n"
                "f = functools.partial(base, scale={v})\n"),
    "method": "class M:\n    k = {v}\n    def loss(self, x):\n        return np.sum(self.k*x**2)\nf = M().loss\n",
    "module": "import cfgmod\ndef f(x):\n    return np.sum(cfgmod.scale*x**2)\n",
    "array": "W = np.full(3, {v})\ndef f(x):\n    return np.sum(W*x**2)\n",
}

PROCESS = r"""
import json, sys
import numpy as np
import symdiff
v, cases = sys.argv[1], json.loads(sys.argv[2])
out = {}
for case, source in cases.items():
    namespace = {"np": np, "__name__": "__main__"}
    exec(source.replace("{v}", v), namespace)
    out[case] = symdiff.grad(namespace["f"])(np.ones(3)).tolist()
print(json.dumps(out))
"""


def test_an_edit_between_two_processes_sharing_a_cache_gives_the_new_derivative(tmp_path):
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    results = []
    for v in ("2.0", "3.0", "3.0"):  # the last run finds the edited version in the warm cache
        (tmp_path / "cfgmod.py").write_text(f"scale = {v}\n")
        run = subprocess.run([sys.executable, "-c", PROCESS, v, json.dumps(CASES)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        results.append(json.loads(run.stdout))
    for case in CASES:
        for out, v in zip(results, (2.0, 3.0, 3.0)):
            expected = 2 * v if case == "helper" else 2 * v  # helper: sum((v x)^2) / v
            np.testing.assert_array_equal(out[case], [expected] * 3, err_msg=case)


# ---------------------------------------------------------------------------------------------
# 2. Transforms nest
# ---------------------------------------------------------------------------------------------


def test_grad_inside_value_and_grad():
    def fun(x):
        inner = lambda y: x * y  # noqa: E731
        return x * symdiff.grad(inner)(2.0)  # = x**2

    assert symdiff.value_and_grad(fun)(3.0) == (9.0, 6.0)


def test_jacobian_hessian_and_derivative_inside_grad():
    y0 = np.array([1.0, 2.0])

    def via_jacobian(x):  # sum of diag(2 x y) at y0
        return np.sum(symdiff.jacobian(lambda y: x * y**2)(y0))

    def via_hessian(x):  # sum of diag(6 x y) at y0
        return np.sum(symdiff.hessian(lambda y: np.sum(x * y**3))(y0))

    def via_derivative(x):  # d2/dy2 of x sin(y) at 0.5
        return symdiff.derivative(lambda y: x * np.sin(y), order=2)(0.5)

    x = np.array([1.5, -0.5])
    np.testing.assert_allclose(symdiff.grad(via_jacobian)(x), 2 * y0, rtol=1e-14)
    np.testing.assert_allclose(symdiff.grad(via_hessian)(x), 6 * y0, rtol=1e-14)
    np.testing.assert_allclose(symdiff.grad(via_derivative)(1.3), -np.sin(0.5), rtol=1e-14)
    np.testing.assert_allclose(symdiff.derivative(via_derivative, order=2)(1.3), 0.0, atol=1e-14)


def test_nesting_to_depth_three_and_argument_reuse():
    def fun(x):  # x * (d/dy of x * (d/dz of x*y*z)) = x * x * x
        return x * symdiff.grad(lambda y: x * symdiff.grad(lambda z: x * y * z)(1.0))(2.0)

    assert symdiff.grad(fun)(3.0) == pytest.approx(27.0, rel=1e-14)
    assert symdiff.hessian(fun)(3.0) == pytest.approx(18.0, rel=1e-14)

    def same_value(x):  # the inner argument equals a constant the inner function reads: still distinct
        return symdiff.grad(lambda y: y * 2.0 + x * y * y)(2.0)

    assert symdiff.grad(same_value)(1.5) == pytest.approx(4.0, rel=1e-14)


def test_nested_transform_on_traced_arguments_and_keywords():
    def inner(y, *, k):
        return np.sum(k * y**3)

    def outer(x):
        return np.sum(symdiff.grad(inner)(x, k=2.0) * x)  # sum(6 x^2 * x)

    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(symdiff.grad(outer)(x), 18 * x**2, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# 5. Names belong to the function asked about
# ---------------------------------------------------------------------------------------------


def test_source_names_the_function_asked_about():
    def alpha(x):
        return np.sum(np.sin(x))

    def beta(x):
        return np.sum(np.sin(x))

    symdiff.grad(alpha)(ONES)
    source = symdiff.grad(beta).source(ONES)
    names = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    assert "grad_beta" in names and "grad_alpha" not in names
    assert "Gradient of beta" in source


ALPHA_BETA = r"""
import json, sys, warnings
import numpy as np
import symdiff
def alpha(x):
    return np.sum(np.sin(x))
def beta(x):
    return np.sum(np.cos(x))
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as record:
    out = {"alpha": symdiff.grad(alpha)(np.ones(3)).tolist(), "beta": symdiff.grad(beta)(np.ones(3)).tolist()}
out["warnings"] = [str(w.message) for w in record]
print(json.dumps(out))
"""


def test_an_index_entry_pointing_at_another_functions_entry_is_detected(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(cache), "PYTHONPATH": ROOT}

    def run():
        r = subprocess.run([sys.executable, "-c", ALPHA_BETA], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    run()
    index = {}
    for path in (cache / "index").iterdir():
        key = path.read_text().strip()
        meta = json.loads((cache / f"{key}.py").read_text().splitlines()[1][len("# meta: "):])
        index[meta["name"]] = path
    assert set(index) == {"grad_alpha", "grad_beta"}
    index["grad_beta"].write_text(index["grad_alpha"].read_text())  # beta's index now names alpha's entry
    out = run()
    np.testing.assert_allclose(out["beta"], -np.sin(np.ones(3)), rtol=1e-15)
    np.testing.assert_allclose(out["alpha"], np.cos(np.ones(3)), rtol=1e-15)
    assert len(out["warnings"]) == 1 and "another function" in out["warnings"][0]


# ---------------------------------------------------------------------------------------------
# 7. Keyword arguments
# ---------------------------------------------------------------------------------------------


def huber(w, X, y, delta=1.0):
    r = X @ w - y
    return np.sum(np.where(np.abs(r) < delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)))


def huber_grad(w, X, y, delta):
    r = X @ w - y
    return X.T @ np.where(np.abs(r) < delta, r, delta * np.sign(r))


def test_keyword_arguments_static_numbers_and_arrays():
    rng = np.random.default_rng(0)
    X, y, w = rng.normal(size=(7, 3)), rng.normal(size=7), rng.normal(size=3)
    g = symdiff.grad(huber)
    for delta in (0.5, 2.0, 0.5):
        np.testing.assert_allclose(g(w, X, y, delta=delta), huber_grad(w, X, y, delta), rtol=1e-13)
    np.testing.assert_allclose(g(w, X, y=y, delta=0.5), huber_grad(w, X, y, 0.5), rtol=1e-13)  # an array by keyword
    y2 = y + 1.0
    np.testing.assert_allclose(g(w, X, y=y2, delta=0.5), huber_grad(w, X, y2, 0.5), rtol=1e-13)  # data, not a constant
    v, gw = symdiff.value_and_grad(huber)(w, X, y, delta=0.5)
    assert v == pytest.approx(huber(w, X, y, 0.5), rel=1e-14)
    source = symdiff.grad(huber).source(w, X, y=y, delta=0.5)
    fn = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "grad_huber")
    assert [a.arg for a in fn.args.kwonlyargs] == ["y"]


def test_keyword_arguments_in_derivative_and_hessian():
    d = symdiff.derivative(lambda x, *, a, p=2: a * x**p, order=2)
    np.testing.assert_allclose(d(np.array([1.0, 2.0]), a=3.0), [6.0, 6.0])
    np.testing.assert_allclose(d(np.array([1.0, 2.0]), a=np.array([1.0, 2.0]), p=3), [6.0, 24.0])
    h = symdiff.hessian(lambda x, *, c: np.sum(c * x**3))
    np.testing.assert_allclose(h(np.array([1.0, 2.0]), c=np.array([1.0, 3.0])), np.diag([6.0, 36.0]))


def test_differentiating_a_keyword_argument_says_to_pass_it_positionally():
    with pytest.raises(SymdiffError, match="positionally"):
        symdiff.grad(huber, wrt="w")(X=np.ones((2, 3)), y=np.ones(2), w=np.ones(3))
    with pytest.raises(SymdiffError, match="keyword argument 'opts'"):
        symdiff.grad(lambda x, opts: np.sum(x))(np.ones(2), opts=object())


# ---------------------------------------------------------------------------------------------
# 4. Emitted modules check what they are called with
# ---------------------------------------------------------------------------------------------


def _module(source):
    namespace: dict = {}
    exec(compile(source, "<emitted>", "exec"), namespace)
    return namespace


def test_emitted_module_refuses_other_shapes_instead_of_a_wrong_mean(tmp_path):
    """The README's logistic loss emitted for 6 rows and called with 20: ValueError, not 1/6 * sum."""
    out = tmp_path / "grad_loss.py"
    r = subprocess.run([sys.executable, "-m", "symdiff", "emit", "examples/cli_functions.py:loss",
                        "--grad", "--shape", "w=3", "--shape", "x=6,3", "--shape", "y=6", "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ns = _module(out.read_text())
    fn = ns["grad_loss"]
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=3), 0.1
    x, y = rng.normal(size=(6, 3)), rng.uniform(size=6)
    np.testing.assert_allclose(fn(w, b, x, y), symdiff.grad(_loss)(w, b, x, y), rtol=1e-14)
    with pytest.raises(ValueError, match=r"generated for x with shape \(6, 3\).*got shape \(20, 3\).*--shape"):
        fn(w, b, rng.normal(size=(20, 3)), rng.uniform(size=20))


def _loss(w, b, x, y):
    z = x @ w + b
    return np.mean(np.logaddexp(0, z) - z * y)


def test_generated_functions_check_shape_and_dtype_but_let_batches_through():
    src = symdiff.grad(lambda x: np.sum(x**2)).source(np.ones(3))
    fn = _module(src)["grad__lambda"] if "grad__lambda" in src else None
    ns = _module(src)
    fn = next(v for k, v in ns.items() if k.startswith("grad_"))
    np.testing.assert_array_equal(fn(np.ones(3)), [2, 2, 2])
    with pytest.raises(ValueError, match=r"shape \(3,\).*got shape \(4,\)"):
        fn(np.ones(4))
    with pytest.raises(ValueError, match="dtype float64.*float32"):
        fn(np.ones(3, dtype=np.float32))
    rosen = symdiff.hessian(lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2, signature="(n)->()")
    ns = _module(rosen.source(np.ones((4, 2))))
    fn = next(v for k, v in ns.items() if k.startswith("hessian_"))
    assert fn(np.ones((7, 5, 2))).shape == (7, 5, 2, 2)  # any batch
    with pytest.raises(ValueError, match=r"trailing axes \(2,\)"):
        fn(np.ones((7, 3)))
    scalar = _module(symdiff.derivative(np.sin).source(1.0))
    fn = next(v for k, v in scalar.items() if k.startswith("derivative_"))
    assert fn(0.0) == 1.0 and fn(np.zeros((2, 3))).shape == (2, 3)  # elementwise: any shape


# ---------------------------------------------------------------------------------------------
# 8. Emitted modules are standalone: constants as code, closed-over arrays by the user's name
# ---------------------------------------------------------------------------------------------

WEIGHTS = np.arange(6.0).reshape(2, 3) / 10


def with_constants(x):
    n = x.shape[0]
    rows, cols = np.triu_indices(n)
    outer = np.outer(x, x)[rows, cols]
    return np.sum(np.tanh(WEIGHTS @ x) * np.array([1.0, 2.0])) + np.sum(np.eye(n) @ x) + np.sum(outer**2)


def test_constants_built_inside_are_code_and_closed_over_arrays_are_named(tmp_path):
    x = np.array([0.3, -0.2, 0.5])
    source = symdiff.grad(with_constants).source(x)
    fn = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name.startswith("grad_"))
    assert [a.arg for a in fn.args.kwonlyargs] == ["WEIGHTS"]
    doc = ast.get_docstring(fn)
    assert "WEIGHTS: float64 array of shape (2, 3)" in doc
    assert "np.array([1.0, 2.0], dtype=np.float64)" in source
    (tmp_path / "m.py").write_text(source)
    code = ("import sys; sys.path.insert(0, '.'); sys.modules['symdiff'] = None\nimport numpy as np, m\n"
            "weights = np.arange(6.0).reshape(2, 3) / 10\n"
            "print(m.grad_with_constants(np.array([0.3, -0.2, 0.5]), WEIGHTS=weights).tolist())")
    r = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(json.loads(r.stdout), symdiff.grad(with_constants)(x), rtol=1e-15)
    eps = 1e-6
    fd = [(with_constants(x + eps * e) - with_constants(x - eps * e)) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(json.loads(r.stdout), fd, rtol=1e-7)


# Names that exist only in numpy >= 2 (or were removed before 1.22): generated code must not use them.
NUMPY2_ONLY = (".mT", "np.concat(", "np.permute_dims", "np.matrix_transpose", "np.vecdot", "np.pow(", "np.acos(",
               "np.asin(", "np.atan(", "np.atan2(", "np.acosh(", "np.asinh(", "np.atanh(", "np.bitwise_invert",
               "np.astype(", "np.unique_values", "np.cumulative_sum", "np.isdtype", "copy=")


def test_generated_modules_need_only_numpy_1_22():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 3, 4))
    sources = [
        symdiff.jacobian(lambda a: np.swapaxes(a, -1, -2) @ a)(X) is not None and
        symdiff.jacobian(lambda a: np.swapaxes(a, -1, -2) @ a).source(X),
        symdiff.hessian(lambda a: np.sum(np.arccos(np.tanh(a)) * np.arctan2(a, 2.0))).source(np.ones((2, 2))),
        symdiff.grad(lambda a: np.sum(np.einsum("bij,bkj->bik", a, a) ** 2)).source(X),
        symdiff.hessian(lambda p: np.sum(np.arcsinh(p) ** 2), signature="(n)->()").source(np.ones((3, 2))),
        symdiff.grad(with_constants).source(np.ones(3)),
    ]
    for source in sources:
        for name in NUMPY2_ONLY:
            assert name not in source, (name, source)


# ---------------------------------------------------------------------------------------------
# 10. A new transform per call: each array hashed once, no SymPy in a new process
# ---------------------------------------------------------------------------------------------


def test_a_new_transform_per_call_hashes_each_array_at_most_once(monkeypatch):
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(50, 4)), rng.uniform(size=50)

    def loss(w):
        return np.mean(np.logaddexp(0, X @ w) - y * (X @ w))

    w = np.zeros(4)
    symdiff.grad(loss)(w)
    calls = []
    real = environment.array_digest
    monkeypatch.setattr(environment, "array_digest", lambda a: calls.append(a.shape) or real(a))
    load.clear_memory()  # as a new process would be, with the entry on disk
    for _ in range(3):
        calls.clear()
        np.testing.assert_allclose(symdiff.grad(loss)(w), X.T @ (0.5 - y) / 50, rtol=1e-13)
        assert len(calls) <= 2, calls  # X and y at most once each (0 once the runner is shared)


NEW_PROCESS = r"""
import sys, json
import numpy as np
import symdiff
rng = np.random.default_rng(2)
X, y = rng.normal(size=(50, 4)), rng.uniform(size=50)
def loss(w):
    return np.mean(np.logaddexp(0, X @ w) - y * (X @ w))
g = symdiff.grad(loss)(np.zeros(4))
print(json.dumps({"sympy": "sympy" in sys.modules, "g": g.tolist()}))
"""


def test_a_new_process_with_a_warm_cache_and_closed_over_arrays_does_not_import_sympy(tmp_path):
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(tmp_path), "PYTHONPATH": ROOT}
    outs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", NEW_PROCESS], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout))
    assert outs[0]["sympy"] and not outs[1]["sympy"]
    assert outs[0]["g"] == outs[1]["g"]


# ---------------------------------------------------------------------------------------------
# 11. Masked arrays are refused, not silently unmasked
# ---------------------------------------------------------------------------------------------


def test_masked_arrays_are_refused():
    x = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(DtypeError, match="masked array"):
        symdiff.grad(lambda a: np.sum(a**2))(x)
    with pytest.raises(TraceError, match="masked array"):
        symdiff.grad(lambda a: np.sum(a * x))(np.ones(3))


def test_where_on_a_condition_that_folds_to_a_number_takes_numpys_branch():
    """A condition SymPy can decide (y*0.0 > 0 is 0 > 0) must pick the branch numpy picks."""
    y = np.arange(1.0, 5.0)
    for cond, value, grad in ((lambda v: v * 0.0 > 0, 10.0, 1.0), (lambda v: v * 0.0 >= 0, 4.0, 0.0),
                              (lambda v: v * 0.0 < 0, 10.0, 1.0)):
        v, g = symdiff.value_and_grad(lambda a, c=cond: np.sum(np.where(c(a), 1.0, a)))(y)
        assert v == value and np.sum(np.where(cond(y), 1.0, y)) == value
        np.testing.assert_array_equal(g, [grad] * 4)


def test_warnings_are_cache_warnings_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        symdiff.grad(lambda a: np.sum(a**3))(ONES)


def test_a_closed_over_array_changed_in_place_is_a_new_value():
    """Reproducer: the trace copies the arrays a function reads; the per-call guard compared only
    identities, so after ``A[0, 3] = 2.0`` a compiled transform (in a fresh cache) kept the old A."""
    A = np.eye(4)

    def f(x):
        return A @ np.sin(x)

    x = np.linspace(0.1, 0.4, 4)
    t = symdiff.jacobian(f)
    np.testing.assert_allclose(t(x), A * np.cos(x), rtol=1e-14)
    A[0, 3] = 2.0
    np.testing.assert_allclose(t(x), A * np.cos(x), rtol=1e-14)
    np.testing.assert_allclose(symdiff.jacobian(f)(x), A * np.cos(x), rtol=1e-14)  # a new transform object
    A[:] = np.nan
    assert np.isnan(t(x)).all()
    g = symdiff.grad(lambda v: np.sum(A[0] * v**2))
    A[:] = 1.0
    np.testing.assert_allclose(g(x), 2 * x, rtol=1e-14)
    np.testing.assert_allclose(g(x), 2 * x, rtol=1e-14)  # unchanged: the compiled code is reused
    A[0, 1] = 5.0
    np.testing.assert_allclose(g(x), 2 * x * A[0], rtol=1e-14)
