"""Issue 7, generated code: hostile user input reaches generated source only as sanitized
identifiers, odd constants keep numpy's values, big closed-over arrays arrive as data, and every
emitted module passes ``compile()`` and (where installed) ``ruff check --select E,F``.

Every transform is exercised (grad, value_and_grad, jacobian, hessian, derivative, ``signature=``
batches, ``emit_module``), on both code paths: small arguments (per-element scalarized cores) and
larger ones (the vectorized path).
"""

from __future__ import annotations

import ast
import keyword
import math

import numpy as np
import pytest

import symdiff
from symdiff.api import emit_module

from .generated_code import (
    KNOWN_RUFF_CODES,
    RUFF,
    compile_source,
    generated_functions,
    is_argument_check,
    module_names,
    ruff_problems,
)

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:  # pragma: no cover - depends on the machine
    jax = jnp = None

onp = np  # the hostile functions below shadow `np` with a parameter
rng = np.random.default_rng(7)
W = rng.normal(size=(3, 3))  # a closed-over array: becomes a keyword constant named k<N>


def assert_clean(source, what="generated module"):
    """compile() passes, and ruff (if installed) reports nothing beyond the known issues."""
    compile_source(source)
    problems = [p for p in ruff_problems([source]) if p[1] not in KNOWN_RUFF_CODES]
    assert not problems, f"{what}: {problems}\n{source}"


_functions = generated_functions
_is_argument_check = is_argument_check
_module_names = module_names


def _params(fn):
    a = fn.args
    return [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]


# ---------------------------------------------------------------------------------------------
# Hostile parameter names
# ---------------------------------------------------------------------------------------------


def hostile(np, numpy, sys, __import__, _, t0, c0, k0, batch, λ, x̃):
    s = onp.sin(np * numpy)  # shared subexpression: the emitter makes c<N> temporaries
    return onp.sum(s * sys + s**2 * __import__ - _ * onp.exp(t0 * c0) + onp.sum(k0 @ W) * batch + λ**3 * x̃)


def plain(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10):
    """The same function with ordinary names."""
    return hostile(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10)


HOSTILE_NAMES = hostile.__code__.co_varnames[: hostile.__code__.co_argcount]
MODULE_NAMES = {"np", "numpy", "sys", "os", "builtins", "__import__", "batch"}


def _hostile_args(size):
    return [np.linspace(0.3, 0.9, size) + k / 7 for k in range(len(HOSTILE_NAMES))]


def _check_renaming(source, originals):
    for fn in _functions(source):
        params = _params(fn)
        user = params[: len(originals)]
        assert len(set(params)) == len(params)
        for p in params:
            assert p.isidentifier() and p.isascii() and not keyword.iskeyword(p), p
        assert not set(user) & MODULE_NAMES, user
        targets = {t.id for n in ast.walk(fn) if isinstance(n, ast.Assign) and not _is_argument_check(n)
                   for t in n.targets if isinstance(t, ast.Name)}
        assert not targets & set(params), "a generated temporary reuses a parameter's name"
        assert not targets & {"np"}, "a generated temporary shadows numpy"
        # readable: an ASCII name keeps its letters (np -> np_, t0 -> t0_, ...)
        for original, new in zip(originals, user):
            core = original.strip("_")
            if core and core.isascii():
                assert core in new, (original, new)


@pytest.mark.parametrize("size", [3, 6], ids=["scalarized", "vectorized"])
def test_hostile_parameter_names_in_every_transform(size):
    args = _hostile_args(size)
    args[7] = np.linspace(0.1, 0.5, 3)  # k0 @ W needs 3 elements
    everything = tuple(range(len(HOSTILE_NAMES)))
    cases = [
        (symdiff.grad(hostile, argnums=everything), symdiff.grad(plain, argnums=everything)),
        (symdiff.value_and_grad(hostile, wrt=("λ", "x̃", "batch")), symdiff.value_and_grad(plain, argnums=(9, 10, 8))),
        (symdiff.hessian(hostile, wrt="np"), symdiff.hessian(plain, argnums=0)),
        (symdiff.jacobian(symdiff.grad(hostile, wrt="sys")), symdiff.jacobian(symdiff.grad(plain, argnums=2))),
    ]
    for t, reference in cases:
        got, want = t(*args), reference(*args)
        for g, w in zip(_flat(got), _flat(want)):
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-14)
        source = t.source(*args)
        assert_clean(source)
        _check_renaming(source, HOSTILE_NAMES)
    g = symdiff.grad(hostile, argnums=everything)(*args)
    np.testing.assert_allclose(g[9], 3 * args[9] ** 2 * args[10], rtol=1e-13)  # d/dλ, by hand


def _flat(result):
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _flat(r)]
    return [np.asarray(result)]


def scalar_hostile(np, sys, _, t0, c0, k0, batch, λ):
    return onp.sin(np * sys) * onp.exp(_ * t0) + c0 * k0**2 / (1 + batch**2) + λ**3


def test_hostile_names_in_derivative_and_batched_modules():
    xs = [0.3 + k / 10 for k in range(8)]
    d3 = symdiff.derivative(scalar_hostile, wrt=("λ", "λ", "λ"))
    np.testing.assert_allclose(d3(*xs), 6.0, rtol=1e-13)
    mixed = symdiff.derivative(scalar_hostile, wrt=("np", "sys"))
    np_, sys_, u, t0 = xs[:4]
    want = (np.cos(np_ * sys_) - np_ * sys_ * np.sin(np_ * sys_)) * np.exp(u * t0)
    np.testing.assert_allclose(mixed(*xs), want, rtol=1e-13)
    taylor = symdiff.derivative(scalar_hostile, 4, argnums=0)  # Taylor mode from order 3
    np.testing.assert_allclose(taylor(*xs), sys_**4 * np.sin(np_ * sys_) * np.exp(u * t0), rtol=1e-12)
    for t in (d3, mixed, taylor):
        source = t.source(*xs)
        assert_clean(source)
        _check_renaming(source, scalar_hostile.__code__.co_varnames[:8])

    def batched(batch, np, x̃):  # `batch` is also the generated code's name for the batch shape
        return onp.sum(batch**2 * np) + onp.sum(onp.sin(x̃) * batch)

    h = symdiff.hessian(batched, argnums=0, signature="(n),(n),(n)->()")
    pts = [rng.normal(size=(4, 3)) for _ in range(3)]
    H = h(*pts)
    assert H.shape == (4, 3, 3)
    np.testing.assert_allclose(H, 2 * pts[1][:, :, None] * np.eye(3), rtol=1e-13)
    source = h.source(*pts)
    assert_clean(source)
    _check_renaming(source, ("batch", "np", "x̃"))
    module = emit_module([symdiff.grad(batched), symdiff.hessian(batched)], *[p[0] for p in pts])
    assert_clean(module, "emit_module")


# ---------------------------------------------------------------------------------------------
# Free text: docstrings, function names, string constants
# ---------------------------------------------------------------------------------------------


def documented(x):
    """Evil docstring: \"\"\" closes the generated one; then ; import os
    a second line\\ with backslashes \\\\ and \\n escapes and ''' quotes '''"""
    return np.sum(np.tanh(x) * x)


EVIL_NAME = 'f"""; import os; os.system("true") #\n\\'


@pytest.mark.parametrize("size", [2, 20])
def test_docstring_and_function_name_never_appear_in_source(size):
    def renamed(x):
        return documented(x)

    renamed.__name__ = renamed.__qualname__ = EVIL_NAME
    renamed.__doc__ = documented.__doc__
    x = np.linspace(-1, 1, size)
    transforms = [
        symdiff.grad(documented), symdiff.value_and_grad(renamed), symdiff.hessian(renamed),
        symdiff.jacobian(symdiff.grad(renamed)), symdiff.grad(renamed, signature="(n)->()"),
    ]
    sources = [t.source(x) for t in transforms]
    sources.append(symdiff.derivative(renamed, 3).source(x))
    sources.append(emit_module([symdiff.grad(renamed), symdiff.hessian(renamed)], x))
    for source in sources:
        assert_clean(source)
        for needle in ("import os", "os.system", "Evil", "closes the generated", "backslashes", "quotes"):
            assert needle not in source, needle
        tree = ast.parse(source)
        imports = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert set(imports) <= {"import numpy as np", "import math"}  # math: the scalar twin
    g = symdiff.grad(renamed)(x)
    np.testing.assert_allclose(g, np.tanh(x) + x * (1 - np.tanh(x) ** 2), rtol=1e-13)


def test_einsum_subscripts_cannot_inject_code(capsys):
    A = np.ones(1)

    def f(x, y):
        return np.einsum('",*print(7)%"->', A, x) + np.sum(y)  # valid Python once pasted into "...":

    with pytest.raises((symdiff.TraceError, symdiff.ShapeError)):  # ...rejected while tracing, like numpy does
        symdiff.value_and_grad(f, argnums=1)(np.ones((1,) * 11), np.ones(3))
    assert capsys.readouterr().out == "", "code from the subscripts ran"

    def g(x):
        return np.sum(np.einsum('i",j->i', np.ones((2, 3)), x))

    with pytest.raises((symdiff.TraceError, symdiff.ShapeError)):
        symdiff.grad(g)(np.ones(3))


def test_nested_code_objects_in_traced_function():
    """A lambda inside the traced function (a nested code object) is digested for the cache key."""
    def f(x):
        square = lambda t: t * t  # noqa: E731 - a nested code object in the traced function
        return np.sum(square(np.sin(x)))

    x = np.array([0.2, 0.4])
    np.testing.assert_allclose(symdiff.grad(f)(x), 2 * np.sin(x) * np.cos(x), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# Odd constants
# ---------------------------------------------------------------------------------------------

CONSTANTS = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "-0.0": -0.0,
    "subnormal": 5e-324,
    "min_normal": 2.2250738585072014e-308,
    "1e308": 1e308,
    "-1e308": -1e308,
    "float32(0.1)": np.float32(0.1),
    "float32(3.4e38)": np.float32(3.4e38),
    "float32(1e-45)": np.float32(1e-45),
}
# Each form keeps a derivative that depends on x, so a constant that collapses the body shows. The
# closed-form gradients multiply in the order JAX's reverse pass does (cotangent first), which
# decides where an overflow gives inf; they are numpy expressions because JAX on CPU flushes
# subnormal results to zero.
FORMS = {
    "scale": (lambda c, xp: lambda x: xp.sum(xp.sin(x) * c), lambda c, x: c * np.cos(x)),
    "array": (
        lambda c, xp: lambda x: xp.sum(xp.sin(x) * np.array([c, 1.0, c, 2.0], dtype=np.float64)[: x.shape[-1]]),
        lambda c, x: np.array([c, 1.0, c, 2.0])[: x.shape[-1]] * np.cos(x),
    ),
    "shift_square": (
        lambda c, xp: lambda x: xp.sum((xp.sin(x) + c) ** 2),
        lambda c, x: 2 * (np.sin(x) + c) * np.cos(x),
    ),
    "divide": (lambda c, xp: lambda x: xp.sum(xp.sin(x) / c), lambda c, x: (1.0 / c) * np.cos(x)),
    "product_overflow": (lambda c, xp: lambda x: xp.sum(xp.sin(x) * c * 10.0), lambda c, x: (10.0 * c) * np.cos(x)),
}
CONSTANT_BUGS: dict = {}  # (constant, form) -> open bug; the bare-`inf` printing is fixed
POINTS = (np.array([0.5, 1.25, 2.0]), np.linspace(0.1, 3.0, 24).reshape(6, 4))  # sin(x) > 0: no cancellation


def _constant_params():
    for c in CONSTANTS:
        for form in FORMS:
            bug = CONSTANT_BUGS.get((c, form))
            marks = [pytest.mark.xfail(strict=True, reason="bug: " + bug)] if bug else []
            yield pytest.param(c, form, marks=marks, id=f"{form}-{c}")


def _same(got, want, what):
    """Equal to rounding: same NaN positions, same signed infinities; reassociated products may
    differ in the subnormal range only."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("c, form", list(_constant_params()))
def test_odd_constants_keep_numpys_values_and_jaxs_derivatives(c, form):
    """Values equal numpy's (NaN and signed inf included); gradients follow the chain rule as JAX
    applies it (so a NaN constant gives NaN derivatives and inf*0 is NaN), never an exception."""
    make, gradient = FORMS[form]
    value = CONSTANTS[c]
    f = make(value, np)
    for x in POINTS:
        with np.errstate(all="ignore"):
            v, g = symdiff.value_and_grad(f)(x)
            _same(v, f(x), "value vs numpy")
            want = gradient(np.float64(value), x)
            _same(g, want, "gradient vs the chain rule")
            tiny = np.isfinite(want) & (want != 0) & (np.abs(want) < 1e-290)
            if jax is not None and not tiny.any():  # the closed form is JAX's convention
                jg = jax.grad(make(np.float64(value), jnp))(jnp.asarray(x))
                _same(jg, want, "jax.grad vs the closed form (test self-check)")
        assert_clean(symdiff.value_and_grad(f).source(x))


def test_float32_arguments_and_constants_stay_float32():
    x = np.linspace(0.1, 1.0, 5, dtype=np.float32)
    A = np.arange(5, dtype=np.float32) / np.float32(7)

    def f(x):
        return np.sum(np.sin(x * np.float32(0.1)) * A + x**2)

    v, g = symdiff.value_and_grad(f)(x)
    assert np.asarray(v).dtype == np.float32 and g.dtype == np.float32
    np.testing.assert_allclose(v, f(x), rtol=1e-6)
    np.testing.assert_allclose(g, np.float32(0.1) * np.cos(x * np.float32(0.1)) * A + 2 * x, rtol=1e-6)
    H = symdiff.hessian(f)(x)
    assert H.dtype == np.float32
    assert_clean(symdiff.hessian(f).source(x))


# ---------------------------------------------------------------------------------------------
# Large closed-over arrays are data, not literals
# ---------------------------------------------------------------------------------------------

BIG = np.random.default_rng(3).uniform(-1, 1, size=10**6)
MAX_SOURCE = 20_000


def _assert_small_and_literal_free(source):
    assert len(source.encode()) < MAX_SOURCE, f"generated source is {len(source.encode())} bytes"
    for k in (0, 1, 12345, 999_999):
        assert repr(float(BIG[k]))[:12] not in source, "an element of the closed-over array was pasted"
    assert_clean(source)


def test_large_closed_over_array_with_a_scalar_argument():
    def f(x):
        return np.sum(np.sin(BIG * x))

    x = 0.3
    g = symdiff.grad(f)
    np.testing.assert_allclose(g(x), np.sum(np.cos(BIG * x) * BIG), rtol=1e-10)
    _assert_small_and_literal_free(g.source(x))
    h = symdiff.hessian(f)
    np.testing.assert_allclose(h(x), -np.sum(np.sin(BIG * x) * BIG**2), rtol=1e-10)
    _assert_small_and_literal_free(h.source(x))


def test_large_closed_over_array_with_small_and_large_arguments():
    M = BIG.reshape(1000, 1000)

    def small(x):  # 3 elements: the Hessian takes the per-element path
        return np.sum(np.tanh(M[:, :3] @ x)) + np.sum(BIG) * x[0]

    x = np.array([0.1, -0.2, 0.3])
    h = symdiff.hessian(small)
    t = np.tanh(M[:, :3] @ x)
    want = np.einsum("ki,k,kj->ij", M[:, :3], -2 * t * (1 - t**2), M[:, :3])
    np.testing.assert_allclose(h(x), want, rtol=1e-9, atol=1e-9)
    _assert_small_and_literal_free(h.source(x))

    def large(y):  # 1000 elements: vectorized path
        return np.sum(np.tanh(M @ y) * BIG[:1000])

    y = np.linspace(-0.01, 0.01, 1000)
    vg = symdiff.value_and_grad(large)
    v, g = vg(y)
    u = np.tanh(M @ y)
    np.testing.assert_allclose(v, large(y), rtol=1e-10)
    np.testing.assert_allclose(g, M.T @ ((1 - u**2) * BIG[:1000]), rtol=1e-9, atol=1e-12)
    _assert_small_and_literal_free(vg.source(y))


# ---------------------------------------------------------------------------------------------
# ruff: a module that needs no numpy call does not import it (F401); lines fit (E501, known bug)
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
def test_generated_module_uses_its_numpy_import():
    source = symdiff.grad(lambda x: x * x).source(0.5)  # `return 2*x`
    assert [p for p in ruff_problems([source]) if p[1] == "F401"] == []


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
@pytest.mark.xfail(strict=True, reason="bug: E501, long elementwise expressions are emitted on one line")
def test_generated_lines_fit_the_line_length():
    def f(x):
        return np.sum(np.sin(x) * np.cos(x) * np.exp(x) * np.tanh(x) * np.sqrt(1 + x**2) / (2 + np.cos(x)))

    source = symdiff.hessian(f).source(np.ones(3))
    assert [p for p in ruff_problems([source]) if p[1] == "E501"] == []


def test_comparisons_in_float_results_are_numbers_not_bools():
    """A float node whose formula is a comparison was printed as a bool array: the gradient of
    sum(v * (v > 0)) came back as dtype bool, and through a repeated-index scatter-add (logical or)
    the gradient of sum(x[[0, 0, 2]] * (x[[0, 0, 2]] > 0)) was [True, False, True] instead of [2, 0, 1]
    (found with the coverage branch). A cast of an integer array (argsort) came back as integers."""
    x = np.array([1.0, -2.0, 3.0])
    for backend in ("numpy", "numba"):
        if backend == "numba":
            pytest.importorskip("numba")
        g = symdiff.grad(lambda v: np.sum(v * (v > 0)), backend=backend)(x)
        assert g.dtype == np.float64
        np.testing.assert_array_equal(g, [1.0, 0.0, 1.0])
    g = symdiff.grad(lambda v: np.sum(v[[0, 0, 2]] * (v[[0, 0, 2]] > 0)))(x)
    np.testing.assert_array_equal(g, [2.0, 0.0, 1.0])
    g = symdiff.grad(lambda v: np.einsum("i,i->", (v > 0).astype(float), (v > 0).astype(float) * v))(x)
    np.testing.assert_array_equal(g, [1.0, 0.0, 1.0])
    g = symdiff.grad(lambda v: np.sum(v * np.argsort(v)))(x)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, np.argsort(x).astype(float))
