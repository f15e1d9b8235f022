"""Shared pieces of the per-stage test modules: hypothesis strategies for points inside a
function's domain, the table of structural operations, Jacobian wrappers that force forward or
reverse mode, and a runner for isolated Python subprocesses."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from unittest import mock

import numpy as np
import sympy
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from symdiff import evaluate as evaluate_module
from symdiff import ir, load
from symdiff.ops.elementwise import Elementwise
from symdiff.ops.ufuncs import BOOLEAN_RESULT

# ---------------------------------------------------------------------------------------------
# Points inside a domain
# ---------------------------------------------------------------------------------------------


def points(shape, lo=-2.0, hi=2.0, ok=None):
    """float64 arrays of ``shape`` with elements in [lo, hi]; ``ok(a) -> bool`` filters (kinks)."""
    strategy = arrays(
        np.float64,
        shape,
        elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    )
    return strategy.filter(ok) if ok is not None else strategy


def away_from(*kinks, margin=0.05):
    """A filter accepting arrays whose elements are at least ``margin`` from every kink."""
    return lambda a: all(np.min(np.abs(np.asarray(a) - k)) > margin for k in kinks) if np.size(a) else True


def away_from_integers(margin=0.02):
    return lambda a: np.min(np.abs(a - np.round(a))) > margin if np.size(a) else True


def assert_close(got, want, rtol=1e-6, atol=1e-7):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# Structural operations of issue 2 (functions, methods and indexing), each with an input shape
# and a domain that keeps away from kinks. Constants are fixed so cache keys stay stable.
# ---------------------------------------------------------------------------------------------

_rng = np.random.default_rng(20240611)
M34 = _rng.normal(size=(3, 4))
V4 = _rng.normal(size=4)
S243 = _rng.normal(size=(2, 4, 3))

# id: (function, input shape, low, high, filter)
STRUCTURAL = {
    "sum_axis0": (lambda x: np.sum(x**2, axis=0), (3, 4), -2, 2, None),
    "sum_keepdims": (lambda x: np.sum(x**2, axis=1, keepdims=True), (3, 4), -2, 2, None),
    "sum_method_tuple": (lambda x: (x**3).sum(axis=(0, 2)), (2, 3, 2), -2, 2, None),
    "sum_all": (lambda x: np.sum(np.sin(x)), (2, 3), -2, 2, None),
    "mean_axis": (lambda x: np.mean(np.sin(x), axis=-1), (3, 4), -2, 2, None),
    "mean_all_method": (lambda x: (x * x).mean(), (2, 3), -2, 2, None),
    "prod_axis": (lambda x: np.prod(x, axis=0), (3, 4), 0.3, 2, None),
    "prod_all": (lambda x: np.prod(x), (2, 3), -2, 2, away_from(0.0, margin=0.3)),
    "prod_keepdims_method": (lambda x: x.prod(axis=1, keepdims=True), (3, 4), 0.3, 2, None),
    "dot_1d": (lambda x: np.dot(x, V4), (4,), -2, 2, None),
    "dot_2d_1d": (lambda x: np.dot(x, V4), (3, 4), -2, 2, None),
    "dot_1d_2d": (lambda x: np.dot(x, M34), (3,), -2, 2, None),
    "dot_2d": (lambda x: np.dot(x, M34), (2, 3), -2, 2, None),
    "dot_nd": (lambda x: np.dot(x, M34), (2, 2, 3), -2, 2, None),
    "dot_method_self": (lambda x: x.dot(x), (3,), -2, 2, None),
    "matmul_1d": (lambda x: x @ x, (3,), -2, 2, None),
    "matmul_2d": (lambda x: x @ M34, (2, 3), -2, 2, None),
    "matmul_2d_left": (lambda x: M34 @ x, (4, 2), -2, 2, None),
    "matmul_gram": (lambda x: x @ x.T, (2, 3), -2, 2, None),
    "matmul_stacked": (lambda x: x @ M34, (2, 2, 3), -2, 2, None),
    "matmul_stacked_const": (lambda x: S243 @ x, (3, 2), -2, 2, None),
    "matmul_stacked_both": (lambda x: np.matmul(x, np.swapaxes(x, -1, -2)), (2, 2, 3), -2, 2, None),
    "matmul_stacked_vector": (lambda x: x @ V4, (2, 3, 4), -2, 2, None),
    "matmul_vector_stacked": (lambda x: V4 @ x, (2, 4, 3), -2, 2, None),
    "transpose_fn": (lambda x: np.transpose(x) * M34, (4, 3), -2, 2, None),
    "transpose_T": (lambda x: x.T @ M34, (3, 2), -2, 2, None),
    "transpose_axes": (lambda x: np.transpose(x, (1, 2, 0)) ** 2, (2, 3, 2), -2, 2, None),
    "transpose_method": (lambda x: x.transpose(2, 0, 1) * x.transpose(2, 0, 1)[0], (2, 3, 2), -2, 2, None),
    "reshape_minus1": (lambda x: np.reshape(x, -1) ** 2, (2, 3), -2, 2, None),
    "reshape_method": (lambda x: x.reshape(3, -1) @ M34.T, (2, 6), -2, 2, None),
    "reshape_up": (lambda x: np.sin(x.reshape((2, 2, 3))), (12,), -2, 2, None),
    "where": (lambda x: np.where(x > 0, x**2, np.sin(x)), (5,), -2, 2, away_from(0.0)),
    "where_scalar_branch": (lambda x: np.where(x > 0.5, x, 0.0) * x, (5,), -2, 2, away_from(0.5)),
    "where_const_condition": (lambda x: np.where(M34 > 0, x, 2 * x**2), (3, 4), -2, 2, None),
    "stack": (lambda x: np.stack([x, x**2, np.sin(x)]), (3,), -2, 2, None),
    "stack_last_axis": (lambda x: np.stack([x, x**2], axis=-1), (2, 3), -2, 2, None),
    "stack_const": (lambda x: np.stack([x, M34 * x], axis=1), (3, 4), -2, 2, None),
    "concatenate": (lambda x: np.concatenate([x, x**2]), (3,), -2, 2, None),
    "concatenate_axis1": (lambda x: np.concatenate([x, M34[:, :2], x**3], axis=1), (3, 4), -2, 2, None),
    "concatenate_none": (lambda x: np.concatenate([x, x.T**2], axis=None), (2, 3), -2, 2, None),
    "clip": (lambda x: np.clip(x, -0.5, 0.5), (5,), -2, 2, away_from(-0.5, 0.5)),
    "clip_method_low_only": (lambda x: x.clip(-0.5) * x, (5,), -2, 2, away_from(-0.5)),
    "clip_none_low": (lambda x: np.clip(x, None, 0.5) ** 2, (5,), -2, 2, away_from(0.5)),
    "index_int": (lambda x: x[0] * x[1], (3, 4), -2, 2, None),
    "index_slice": (lambda x: x[1:3] ** 2, (5,), -2, 2, None),
    "index_ellipsis": (lambda x: x[..., 0] * x[..., 2], (2, 3, 4), -2, 2, None),
    "index_reverse": (lambda x: x[::-1] * x, (5,), -2, 2, None),
    "index_reverse_2d_step": (lambda x: x[::-1, ::-2], (3, 5), -2, 2, None),
    "index_none": (lambda x: x[None] * x[:, None], (4,), -2, 2, None),
    "index_step": (lambda x: np.sin(x[1::2]), (7,), -2, 2, None),
    "index_negative": (lambda x: x[-1] * x[-3:-1], (5,), -2, 2, None),
    "index_mixed": (lambda x: x[1, ::-1, None] * x[2, None], (3, 4), -2, 2, None),
    "index_reverse_bounded": (lambda x: x[3:0:-1] ** 3, (5,), -2, 2, None),
    "index_reverse_to_start": (lambda x: x[3::-1] ** 2, (5,), -2, 2, None),
    "swapaxes": (lambda x: np.swapaxes(x, 0, 1) @ M34, (3, 2), -2, 2, None),
    "ravel": (lambda x: np.ravel(np.cos(x)), (2, 3), -2, 2, None),
    "iterate_rows": (lambda x: np.stack(list(x)[::-1]) * x**2, (3, 2), -2, 2, None),
}


def structural_point(case: str, seed: int) -> np.ndarray:
    """A random point in the domain of STRUCTURAL[case] (away from its kinks)."""
    _, shape, lo, hi, ok = STRUCTURAL[case]
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, shape)
    while ok is not None and not ok(x):
        x = rng.uniform(lo, hi, shape)
    return x


# ---------------------------------------------------------------------------------------------
# Jacobian regimes: symdiff.jacobian uses forward mode when in.size <= out.size, reverse mode
# otherwise. These wrappers put any function on either side of that line.
# ---------------------------------------------------------------------------------------------


def forward_regime(fun):
    """out = [ravel(fun(x)), ravel(x)]: out.size > in.size, so jacobian runs forward mode."""
    return lambda x: np.concatenate([np.ravel(fun(x)), np.ravel(x)])


def reverse_regime(fun, n_out):
    """out = P @ ravel(fun(x)) with 2 rows: out.size < in.size (for in.size > 2), reverse mode."""
    proj = np.random.default_rng(n_out).normal(size=(2, n_out))
    return lambda x: proj @ np.ravel(fun(x))


def eye_sizes(graph_text: str) -> set:
    """The sizes of the basis (``eye``) nodes in an IR listing: the Jacobian's regime."""
    return {int(n) for n in re.findall(r"= eye\[(\d+)\]", graph_text)}


# ---------------------------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------------------------


def run_python(code: str, cwd, env=None, isolated=False, timeout=120) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter (``-I``: no user site, no cwd or PYTHONPATH on sys.path)."""
    args = [sys.executable] + (["-I"] if isolated else []) + ["-c", code]
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# Derivative paths. Small per-point cores (a handful of elements) are scalarized element by
# element; larger arrays take the vectorized path (VJP/JVP on the IR with a basis axis). Tests
# pin the path so each is exercised on the same functions; the caches are cleared around them.
# ---------------------------------------------------------------------------------------------


def use_path(monkeypatch, path: str):
    """Pin symdiff to its ``"vectorized"`` or ``"scalarized"`` derivative path, memory cache only."""
    from symdiff.differentiate import scalarize

    monkeypatch.setenv("SYMDIFF_CACHE_DIR", "")
    monkeypatch.setattr(scalarize, "MAX_ELEMENTS", 0 if path == "vectorized" else 64, raising=False)
    load.clear_memory()


# ---------------------------------------------------------------------------------------------
# Running IR directly: symdiff.evaluate with its elementwise step done by a plain SymPy lambdify
# (independent of the emitter's printer)
# ---------------------------------------------------------------------------------------------

_FUNCTIONS = {
    "Where": np.where,
    "LogAddExp": np.logaddexp,
    "Cbrt": np.cbrt,
    "FloorDivide": np.floor_divide,
    "Remainder": np.remainder,
    "Fmod": np.fmod,
    "TruncDivide": lambda a, b: np.trunc(a / b),
    "Copysign": np.copysign,
    "NumpyHeaviside": np.heaviside,
    "Sinc": np.sinc,
    "Sigmoid": lambda z: 0.5 + 0.5 * np.tanh(0.5 * z),
    **{name.title().replace("_", ""): getattr(np, name) for name in BOOLEAN_RESULT},
}
original_elementwise = Elementwise.evaluate


def lambdify_elementwise(self, node, xs, symbolic):
    if symbolic:
        return original_elementwise(self, node, xs, symbolic)
    if not xs:
        return np.full(node.shape, float(node.body), dtype=node.dtype)
    syms = [ir.placeholder(i) for i in range(len(xs))]
    fn = sympy.lambdify(syms, node.body, modules=[_FUNCTIONS, "numpy"])
    with np.errstate(all="ignore"):
        value = np.asarray(fn(*xs), dtype=node.dtype)
    return np.broadcast_to(value, node.shape)


def run_ir(outputs, *args) -> list:
    """Values of IR ``outputs`` for input arrays ``args`` (by position)."""
    with mock.patch.object(Elementwise, "evaluate", lambdify_elementwise):
        return evaluate_module.evaluate(list(outputs), dict(enumerate(args)))


@contextlib.contextmanager
def registry_restored():
    """Ops, numpy functions and array methods a test registers (an extension) are gone afterwards,
    so later tests (and the persistent cache keys they compute) see symdiff's own registry."""
    from symdiff import extensions, trace
    from symdiff.ops import REGISTRY
    from symdiff.ops.surface import FUNCTIONS, METHODS

    saved = dict(REGISTRY), dict(FUNCTIONS), dict(METHODS), extensions.EXTENSIONS
    try:
        yield
    finally:
        for name in set(METHODS) - set(saved[2]):
            delattr(trace.Tracer, name)
        for table, before in zip((REGISTRY, FUNCTIONS, METHODS), saved):
            table.clear()
            table.update(before)
        extensions.EXTENSIONS = saved[3]
        trace.attach_methods()
