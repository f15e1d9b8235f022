"""Sample sums (issue 16, item 1), differential fuzz: random programs over a data matrix give the same
derivatives with the one-pass code (SYMDIFF_SAMPLE_SUM=256) as with the ordinary code (``off``).

A hypothesis strategy writes a loss over ``X`` (N x 3 data), ``y`` (N labels), an argument ``u`` no
output reads, and parameters ``w`` (3), ``V`` (3 x 2), ``c`` (scalar): random compositions of
elementwise ops (sin, exp, tanh, *, +, logaddexp, where), ``X @ w``, ``X @ V``, ``X * w``, column
indexing ``m[:, 0]``, reshapes that keep the rows, sums/means/max over columns, and sums or means over
rows; sometimes an op that couples rows (a column mean subtracted, a cumsum, a max over rows) which the
analysis must refuse. Each program runs as ``grad`` (one or several argnums), ``value_and_grad`` or
``hessian`` w.r.t. ``c``, with the numpy and numba backends; both settings must agree to rtol 1e-12
or raise the same error. ``STATS`` counts programs and how many ran the one-pass code.

Default: ``EXAMPLES`` fixed programs (~1 minute). ``python3 -m pytest -q -m slow
tests/test_sample_sum_fuzz.py``: ``LONG_EXAMPLES`` random ones.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import symdiff
from symdiff.errors import SymdiffError

N = 3000  # with blocks of 256 rows: eleven full blocks and a ragged one of 184
BLOCK = "256"
EXAMPLES, LONG_EXAMPLES = 40, 300
MARK = "symdiff.sample_sum"
STATS = {"programs": 0, "applied": 0, "numba_loop": 0, "errors": 0}
SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck), "database": None}

# expression kinds: "m" an N x 3 row value, "k" N x 2, "v" a per-row value of shape (N,)
UNARY = ["np.sin({})", "np.tanh({})", "np.exp(0.5 * np.tanh({}))", "({}) * c", "({}) + c", "-({})"]
BINARY = ["({}) + ({})", "({}) * ({})", "np.logaddexp({}, {})", "np.where(({}) > 0, {}, {})"]


# (leaves, structural forms); "loop": only what the numba loop compiles (elementwise ops, products, sums)
FORMS = {
    "any": ({"m": ["X", "X * w", "X * X"], "k": ["X @ V", "np.tanh(X @ V) * w[:2]"],
             "v": ["X @ w", "y", "X[:, 0]", "y * (X @ w)", "X[:, 2] * c"]},
            {"v": ["({})[:, 0]", "np.sum({}, axis=1)", "np.mean({}, axis=1)", "np.max({}, axis=1)",
                   "({}).reshape(N, -1)[:, -1]"],
             "k": ["({}) @ V", "({})[:, :2]", "({}).reshape(N, 3, 1)[:, 1:, 0]"],
             "m": ["({})[:, None] * X", "np.reshape({}, (N, 1)) + X * w",
                   "np.broadcast_to(({})[:, None], (N, 3)) * w"]}),
    "loop": ({"m": ["X", "X * w", "X * X"], "k": ["X @ V", "np.tanh(X @ V) * c"],
              "v": ["X @ w", "y", "y * (X @ w)"]},
             {"v": ["np.sum({}, axis=1)", "np.mean({}, axis=1)"], "k": ["({}) @ V"], "m": []}),
}


@st.composite
def _expr(draw, kind: str, depth: int, forms: str):
    """Source text of a row value of ``kind``."""
    leaves, structural = FORMS[forms]
    if depth <= 0:
        return draw(st.sampled_from(leaves[kind]))
    choice = draw(st.sampled_from(["leaf", "unary", "binary", "structural"]))
    if choice == "leaf" or (choice == "structural" and forms == "loop" and kind == "m"):
        return draw(st.sampled_from(leaves[kind]))
    if choice == "unary":
        return draw(st.sampled_from(UNARY)).format(draw(_expr(kind, depth - 1, forms)))
    if choice == "binary":
        form = draw(st.sampled_from(BINARY))
        return form.format(*[draw(_expr(kind, depth - 1, forms)) for _ in range(form.count("{}"))])
    inner = {"v": draw(st.sampled_from("mk")), "k": "m", "m": "v"}[kind]  # a column, sum, max, product...
    return draw(st.sampled_from(structural[kind])).format(draw(_expr(inner, depth - 1, forms)))


SUMS = ["np.sum({})", "np.mean({})", "np.sum(np.sum({}, axis=0) * SCALE)"]  # sums over rows
TAILS = ["np.sum({}) ** 2 / N", "np.tanh(np.mean({}))"]  # functions of sums: computed after the pass
COUPLED = ["np.max({})", "np.sum(np.cumsum({}))"]  # per-row values of shape (N,) that couple rows: refused
WRONG = ["np.sum(({}) @ np.ones(5))"]  # a ShapeError, the same with either setting


@st.composite
def programs(draw):
    """(source of ``f(w, V, c, X, y, u)``, the transform, argnums): mostly sums over rows."""
    terms, forms = [], draw(st.sampled_from(["any", "any", "loop"]))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from("mkv"))
        e = draw(_expr(kind, draw(st.integers(0, 3)), forms))
        form = draw(st.sampled_from(SUMS * 4 + TAILS + (COUPLED + WRONG) * (kind == "v")))
        terms.append(form.format(e).replace("SCALE", {"m": "w", "k": "w[:2]", "v": "1.0"}[kind]))
    if draw(st.integers(0, 19)) == 0:  # rows coupled through the data: refused
        terms[0] = terms[0].replace("X", "(X - np.mean(X, axis=0))", 1)
    body = " + ".join(terms)
    source = f"def f(w, V, c, X, y, u):\n    return {body}\n"
    used = [k for k, name in enumerate(["w", "V", "c"]) if re.search(rf"\b{name}\b", body)] or [0]
    how = draw(st.sampled_from(["grad", "grad", "value_and_grad", "hessian"]))
    if how == "hessian":  # w.r.t. a small parameter: c (a scalar) or w (3 entries)
        return source, how, 2 if 2 in used else 0
    picks = draw(st.lists(st.sampled_from(used), min_size=1, max_size=len(used), unique=True))
    return source, how, picks[0] if len(picks) == 1 else tuple(sorted(picks))


def _args():
    rng = np.random.default_rng(16)
    return (0.3 * rng.standard_normal(3), 0.3 * rng.standard_normal((3, 2)), 0.4,
            rng.standard_normal((N, 3)), rng.standard_normal(N), rng.standard_normal(N))


def _leaves(x):
    if isinstance(x, tuple):
        return [leaf for part in x for leaf in _leaves(part)]
    return [np.asarray(x)]


def _run(source, how, argnums, backend, setting, monkeypatch):
    """(leaves of the result, generated source) or (the error, None)."""
    monkeypatch.setenv("SYMDIFF_SAMPLE_SUM", setting)
    scope = {"np": np, "N": N}
    exec(compile(source, "<fuzz>", "exec"), scope)  # one file name: errors cite it
    transformed = getattr(symdiff, how)(scope["f"], argnums=argnums, backend=backend)
    args = _args()
    try:
        return _leaves(transformed(*args)), transformed.source(*args)
    except SymdiffError as e:
        return e, None


def check_program(source, how, argnums, monkeypatch, backends):
    note(f"{how} argnums={argnums}\n{source}")
    applied = False
    for backend in backends:
        ref, _ = _run(source, how, argnums, backend, "off", monkeypatch)
        got, generated = _run(source, how, argnums, backend, BLOCK, monkeypatch)
        if isinstance(ref, Exception):
            assert isinstance(got, Exception), f"{backend}: off raised {ref!r}, the one-pass setting did not"
            assert (type(got), str(got)) == (type(ref), str(ref)), backend
            STATS["errors"] += backend == "numpy"
            continue
        assert not isinstance(got, Exception), f"{backend}: only the one-pass setting raised {got!r}"
        assume(all(np.all(np.isfinite(r)) for r in ref))
        applied |= MARK in generated
        STATS["numba_loop"] += backend == "numba" and "Adds the terms of blocks" in generated
        for a, r in zip(got, ref, strict=True):
            assert a.shape == r.shape
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12 * max(1.0, float(np.max(np.abs(r)))),
                                       err_msg=backend)
    STATS["programs"] += 1
    STATS["applied"] += applied


def _backends():
    try:
        import numba  # noqa: F401
    except ImportError:
        return ("numpy",)
    return ("numpy", "numba")


def _fuzz(count, derandomize, monkeypatch):
    @settings(max_examples=count, derandomize=derandomize, **SETTINGS)
    @given(programs())
    def run(program):
        check_program(*program, monkeypatch, _backends())

    before = dict(STATS)
    run()
    programs_run, applied = STATS["programs"] - before["programs"], STATS["applied"] - before["applied"]
    print(f"sample-sum fuzz: {programs_run} programs, one-pass code in {applied} (the numba loop in "
          f"{STATS['numba_loop'] - before['numba_loop']}), same error both ways in {STATS['errors'] - before['errors']}")
    assert programs_run >= count // 2
    assert applied >= programs_run // 4, "the one-pass path should apply to a good share of programs"


def test_random_programs_agree_with_the_ordinary_code(monkeypatch):
    _fuzz(EXAMPLES, True, monkeypatch)


@pytest.mark.slow
def test_random_programs_long(monkeypatch):
    _fuzz(LONG_EXAMPLES, False, monkeypatch)
