"""backend="array_api" against backend="numpy" on random programs (test_fuzz.py's generator).

Each program's value_and_grad and hessian are built with both backends; the array API module runs
on ``array_api_strict`` float64 arrays (which reject anything outside the standard) and on numpy
arrays, and must equal the numpy backend to 1e-12. Programs of one array argument also run batched
(``signature=``, two points stacked on a leading axis). The only accepted failure is a CompileError
"no array API equivalent" naming an operation the standard really lacks (the adjoint of integer-array
indexing, ``np.add.at``; integer arrays on several axes), and then the numpy backend must work.

Default: ``FAST_EXAMPLES`` derandomized programs (~30 s); ``-m slow``: ``LONG_EXAMPLES`` random ones
(``SYMDIFF_FUZZ_EXAMPLES=<n>`` to change; 80 took 94 s on a loaded 2-core machine).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings

import symdiff
from symdiff.errors import CompileError

from .test_fuzz import flat_hessian, make_function, numpy_run, programs

xps = pytest.importorskip("array_api_strict")
pytest.importorskip("array_api_compat")

FAST_EXAMPLES = 30
LONG_EXAMPLES = int(os.environ.get("SYMDIFF_FUZZ_EXAMPLES") or 100)  # 300 took over 25 min under load
RTOL = 1e-12
# operations the standard has no counterpart for (docs/array_api.md, "What does not map")
NO_EQUIVALENT = ("np.add.at", "integer arrays on several axes", "np.trace", "np.diagonal")


def _close(actual, expected, what):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * (1 + np.max(np.abs(expected), initial=0)),
                               err_msg=what)


def _leaves(tree):
    return [x for t in tree for x in _leaves(t)] if isinstance(tree, (tuple, list)) else [tree]


def _point(prog):
    rng = np.random.default_rng(prog.seed + 1)
    for _ in range(4):
        args = [rng.uniform(-1.5, 1.5, size=s) for s in prog.arg_shapes]
        value, rec = numpy_run(prog, args)
        if np.isfinite(value) and rec.largest < 1e4:
            return args
    return None


def _compare(make, args, what):
    """make(backend) -> transform; the array API result on strict and on numpy arrays equals numpy's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = make("numpy")(*args)
        transform = make("array_api")
        try:
            on_strict = transform(*(xps.asarray(a, dtype=xps.float64) for a in args))
        except CompileError as e:
            assert "no array API equivalent" in str(e) and any(n in str(e) for n in NO_EQUIVALENT), str(e)
            return False
        on_numpy = transform(*args)
    for got, exp in zip(_leaves(on_strict), _leaves(expected)):
        assert isinstance(got, type(xps.asarray(0.0))), f"{what}: {type(got)} from strict arrays"
        _close(got, exp, f"{what} on array_api_strict")
    for got, exp in zip(_leaves(on_numpy), _leaves(expected)):
        assert isinstance(got, np.ndarray), f"{what}: {type(got)} from numpy arrays"
        _close(got, exp, f"{what} on numpy arrays")
    return True


def check(prog):
    note(prog.describe())
    args = _point(prog)
    assume(args is not None)
    args = [np.asarray(a, dtype=np.float64) for a in args]
    f = make_function(prog)
    argnums = 0 if len(args) == 1 else tuple(range(len(args)))
    _compare(lambda b: symdiff.value_and_grad(f, argnums=argnums, backend=b), args, "value_and_grad")
    if _compare(lambda b: symdiff.hessian(f, argnums=argnums, backend=b), args, "hessian"):
        H = flat_hessian(symdiff.hessian(f, argnums=argnums, backend="array_api")(*args), prog.arg_shapes)
        assert H.shape[0] == H.shape[1]
    if len(args) == 1 and args[0].ndim:
        core = ",".join(f"n{k}" for k in range(args[0].ndim))
        signature = f"({core})->()"
        batch = np.stack([args[0], args[0][...] * 0.5 + 0.1])
        ok = _compare(lambda b: symdiff.value_and_grad(f, signature=signature, backend=b), [batch], "batched grad")
        if ok:  # the batched numpy backend itself against one call per point
            value, g = symdiff.value_and_grad(f, signature=signature)(batch)
            for k in range(2):
                v1, g1 = symdiff.value_and_grad(f)(batch[k])
                _close(value[k], v1, "batched value vs per point")
                _close(g[k], g1, "batched grad vs per point")
        _compare(lambda b: symdiff.hessian(f, signature=signature, backend=b), [batch], "batched hessian")


_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)


@settings(max_examples=FAST_EXAMPLES, derandomize=True, **_SETTINGS)
@given(programs())
def test_array_api_equals_numpy_backend(prog):
    check(prog)


@pytest.mark.slow
@settings(max_examples=LONG_EXAMPLES, **_SETTINGS)
@given(programs())
def test_array_api_equals_numpy_backend_long(prog):
    check(prog)


@pytest.mark.parametrize("name, f", [
    ("exp2", lambda x: np.sum(np.exp2(x))),  # d/dx 2**x = log(2)*2**x: was xp.log(2), a TypeError
    ("std", lambda x: np.std(x) + np.var(x, ddof=1)),  # sqrt(6)
    ("log10", lambda x: np.sum(np.log10(1 + x**2) + np.log2(2 + x**2))),
    ("logaddexp", lambda x: np.sum(np.logaddexp(x, -x) + np.logaddexp2(x, 0.0))),
    ("copysign", lambda x: np.sum(np.copysign(x, -1.0) * x)),  # copysign(1, -1): two Python ints
])
def test_functions_of_numbers_alone_run_on_strict_arrays(name, f):
    """SymPy leaves functions of constants (log(2), sqrt(6)) in derivatives; the standard's functions
    take arrays only, so the module must carry their values."""
    x = np.array([-1.5, -0.5, 0.0, 0.5, 1.0, 2.0])
    _compare(lambda b: symdiff.grad(f, backend=b), [x], f"grad of {name}")
    _compare(lambda b: symdiff.hessian(f, backend=b), [x], f"hessian of {name}")


M3 = np.array([[3.0, 0.5, -0.2], [0.1, 2.5, 0.3], [-0.4, 0.2, 3.5]])
STEPS = [  # vector (6,) -> vector (6,): the operations test_fuzz.py's programs do not draw
    lambda v: np.exp2(v) * np.log10(1 + v**2) + np.log2(2 + v**2),
    lambda v: np.cbrt(v) * v + np.sinc(v) + np.heaviside(v, 1.0) * v**2,
    lambda v: np.logaddexp(v, -v) + np.logaddexp2(v, 0.5) + np.hypot(v, 1.0) + np.arctan2(v, 2 + v**2),
    lambda v: (v - np.mean(v)) / np.std(v) + np.var(v, ddof=1),
    lambda v: np.cumsum(v[::-1]) * np.sort(v) + np.clip(v, -0.5, 1.0),
    lambda v: np.concatenate([np.linalg.solve(M3 + np.eye(3) * v[:3] ** 2, v[3:]), np.linalg.inv(M3 * (1 + v[0] ** 2))[0]]),
    lambda v: np.concatenate([np.linalg.det(M3 + v[:3, None]) * v[:3], np.linalg.norm(v) * v[3:]]),
    lambda v: np.einsum("ij,jk->ik", v.reshape(2, 3), M3).reshape(-1) + np.outer(v[:2], v[2:5]).reshape(-1)[:6],
    lambda v: np.copysign(v, -1.0) * v + np.expm1(v) * np.log1p(v**2) + np.arcsinh(v) * np.tanh(v),
    lambda v: np.maximum(v, 0.5 * v) + np.minimum(v, v[::-1]) + np.where(v > 0, v, np.sin(v)),
    lambda v: np.stack([v[:3], v[3:] ** 2]).T.reshape(-1) + np.roll(np.tile(v[:3], 2), 1),
    lambda v: np.float_power(1 + v**2, 1.5) + (2 + v**2) ** -0.5 + np.reciprocal(3 + np.cos(v)),
]


@pytest.mark.slow  # ~50 s each on a loaded 2-core machine: the Hessians of three composed steps
@pytest.mark.parametrize("seed", range(6))  # 12 seeds passed once (617 s); 6 keep the slow run bounded
def test_compositions_of_more_operations(seed):
    r = np.random.default_rng(seed)
    chosen = [STEPS[k] for k in r.choice(len(STEPS), size=3, replace=False)]

    def f(x):
        v = x
        for step in chosen:
            v = 0.5 * np.tanh(step(v))  # bounded: the next step stays in its domain
        return np.sum(v * np.arange(1.0, 7.0))

    x = r.uniform(-1.0, 1.0, size=6)
    _compare(lambda b: symdiff.value_and_grad(f, backend=b), [x], "value_and_grad")
    _compare(lambda b: symdiff.hessian(f, backend=b), [x], "hessian")
    _compare(lambda b: symdiff.hessian(f, signature="(n)->()", backend=b), [np.stack([x, -0.5 * x])], "batched hessian")
