"""Stage 1, trace: tracer objects record numpy code into IR.

Each supported ufunc, operator and function is traced and the IR is run by the reference
interpreter (``symdiff.evaluate``), which must reproduce numpy's own result. The IR listing must be
readable and stable (within a process and across processes), closed-over arrays must become const
nodes and scalars must be inlined into elementwise bodies."""

import os
import re
import tempfile

import numpy as np
import pytest
import sympy

import symdiff
from symdiff import ir, trace
from symdiff.evaluate import evaluate
from symdiff.ops.ufuncs import BINARY, BOOLEAN_RESULT, UNARY

from . import stage_helpers
from .stage_helpers import REPO, STRUCTURAL, run_python

F64 = "float64"
rng = np.random.default_rng(7)


def traced(fun, *shapes, dtype=F64):
    """(input nodes, output node) of ``fun`` traced on inputs of ``shapes``."""
    ins = [ir.input_node(i, s, dtype) for i, s in enumerate(shapes)]
    return ins, trace.run(fun, ins)


def run_ir(out, *args):
    (value,) = stage_helpers.run_ir([out], *args)
    return value


def ops_of(out):
    return [n.op for n in ir.toposort([out])]


# ---------------------------------------------------------------------------------------------
# Ufuncs and operators
# ---------------------------------------------------------------------------------------------

POSITIVE_DOMAIN = {"log", "log2", "log10", "sqrt", "reciprocal"}
UNIT_DOMAIN = {"arcsin", "arccos", "arctanh"}


def _unary_point(name):
    if name in POSITIVE_DOMAIN:
        return rng.uniform(0.2, 3, 5)
    if name in UNIT_DOMAIN:
        return rng.uniform(-0.9, 0.9, 5)
    if name == "arccosh":
        return rng.uniform(1.1, 3, 5)
    if name == "log1p":
        return rng.uniform(-0.9, 2, 5)
    return rng.uniform(-2, 2, 5)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ufunc_is_one_elementwise_node_with_numpys_values(name):
    fn = getattr(np, name)
    x = _unary_point(name)
    _, out = traced(fn, (5,))
    assert ops_of(out) == ["input", "elementwise"] or (name == "positive" and ops_of(out)[0] == "input")
    assert out.shape == (5,) and out.dtype == F64
    np.testing.assert_allclose(run_ir(out, x), fn(x), rtol=1e-13)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ufunc_is_one_elementwise_node_with_numpys_values(name):
    fn = getattr(np, name)
    x, y = rng.uniform(0.2, 2, (2, 3)), rng.uniform(0.2, 2, 3)
    _, out = traced(fn, (2, 3), (3,))
    assert ops_of(out) == ["input", "input", "elementwise"]
    assert out.shape == (2, 3)
    assert out.dtype == ("bool" if name in BOOLEAN_RESULT else F64)
    np.testing.assert_allclose(run_ir(out, x, y), fn(x, y), rtol=1e-13)


@pytest.mark.parametrize("name", sorted(set(BINARY) - BOOLEAN_RESULT))
def test_python_scalars_are_inlined_into_the_body(name):
    fn = getattr(np, name)
    x = rng.uniform(0.2, 2, 4)
    for fun in (lambda x: fn(x, 1.75), lambda x: fn(1.75, x)):
        _, out = traced(fun, (4,))
        assert ops_of(out) == ["input", "elementwise"]
        np.testing.assert_allclose(run_ir(out, x), fun(x), rtol=1e-13)


OPERATORS = {
    "add": (lambda x, y: x + y, lambda x, y: 2.5 + x),
    "subtract": (lambda x, y: x - y, lambda x, y: 2.5 - x),
    "multiply": (lambda x, y: x * y, lambda x, y: 2.5 * x),
    "true_divide": (lambda x, y: x / y, lambda x, y: 2.5 / x),
    "floor_divide": (lambda x, y: x // y, lambda x, y: 2.5 // x),
    "power": (lambda x, y: x**y, lambda x, y: 2.5**x),
    "negative": (lambda x, y: -x, lambda x, y: -(y * 2)),
    "absolute": (lambda x, y: abs(x - 1), lambda x, y: abs(-y)),
    "matmul": (lambda x, y: x @ y, lambda x, y: np.ones(4) @ x),
    "greater": (lambda x, y: x > y, lambda x, y: 1.0 > x),
    "less_equal": (lambda x, y: x <= y, lambda x, y: 1.0 <= x),
    "equal": (lambda x, y: x == y, lambda x, y: x == np.float64(1.25)),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_python_operators_trace_like_numpy(name):
    x, y = rng.uniform(0.2, 2, 4), rng.uniform(0.2, 2, 4)
    for fun in OPERATORS[name]:
        _, out = traced(fun, (4,), (4,))
        want = fun(x, y)
        assert out.shape == np.shape(want)
        np.testing.assert_allclose(run_ir(out, x, y), want, rtol=1e-13)


def test_floor_division_by_a_float_constant_matches_numpy():
    x = np.array([0.3, 0.7, 1.0, 3.5])
    _, out = traced(lambda x: x // 0.1, (4,))
    np.testing.assert_array_equal(run_ir(out, x), x // 0.1)


def test_operator_bodies_are_the_sympy_formulas():
    a0, a1 = ir.placeholder(0), ir.placeholder(1)
    for fun, body in [
        (lambda x, y: x - y, a0 - a1),
        (lambda x, y: x / y, a0 / a1),
        (lambda x, y: x**y, a0**a1),
        (lambda x, y: -x, -a0),
        (lambda x, y: 3 * x, 3 * a0),
        (lambda x, y: x**2, a0**2),
        (lambda x, y: np.exp(x), sympy.exp(a0)),
    ]:
        _, out = traced(fun, (2,), (2,))
        assert out.op == "elementwise" and sympy.simplify(out.body - body) == 0, (out.body, body)


def test_same_tracer_twice_is_one_input_of_the_body():
    _, out = traced(lambda x: x * x, (3,))
    assert len(out.inputs) == 1 and out.body == ir.placeholder(0) ** 2


# ---------------------------------------------------------------------------------------------
# Functions, methods and indexing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(STRUCTURAL))
def test_structural_operation_reproduces_numpy(case):
    fun, shape, lo, hi, _ = STRUCTURAL[case]
    x = rng.uniform(lo, hi, shape)
    if case == "prod_all":
        x = np.where(np.abs(x) < 0.3, 0.5, x)
    _, out = traced(fun, shape)
    want = fun(x)
    assert out.shape == np.shape(want) and out.dtype == F64
    np.testing.assert_allclose(run_ir(out, x), want, rtol=1e-12, atol=1e-14)


def test_reference_interpreter_runs_numeric_bodies():
    _, out = traced(np.sin, (3,))
    x = np.array([0.1, 0.2, 0.3])
    (value,) = evaluate([out], {0: x})
    np.testing.assert_allclose(value, np.sin(x))


def test_transpose_of_a_vector_is_the_same_node():
    (x,), out = traced(lambda x: x.T, (4,))
    assert out is x


def test_reshape_minus_one_infers_the_size():
    _, out = traced(lambda x: x.reshape(-1, 3), (2, 6))
    assert out.shape == (4, 3)
    _, out = traced(lambda x: np.reshape(x, (2, -1, 2)), (12,))
    assert out.shape == (2, 3, 2)


def test_tracer_attributes_are_static():
    seen = {}

    def f(x):
        seen.update(shape=x.shape, ndim=x.ndim, size=x.size, dtype=x.dtype, len=len(x), rows=len(list(x)))
        return np.sum(x)

    traced(f, (3, 4), dtype="float32")
    assert seen == {"shape": (3, 4), "ndim": 2, "size": 12, "dtype": np.dtype("float32"), "len": 3, "rows": 3}


def test_float32_is_kept_and_float64_constants_promote_like_numpy():
    _, out = traced(lambda x: np.sin(x) * 2.0, (3,), dtype="float32")
    assert out.dtype == "float32"
    _, out = traced(lambda x: x * np.ones(3), (3,), dtype="float32")
    assert out.dtype == str((np.ones(3, np.float32) * np.ones(3)).dtype)


# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------


def test_closed_over_arrays_are_const_nodes_holding_the_values():
    c = rng.normal(size=(2, 3))
    _, out = traced(lambda x: x * c, (2, 3))
    (const,) = [n for n in ir.toposort([out]) if n.op == "const"]
    np.testing.assert_array_equal(const.params[0].value, c)
    assert const.shape == (2, 3)
    assert not const.params[0].value.flags.writeable  # later mutation of c cannot change the IR
    c_copy = c.copy()
    c[0, 0] += 1
    np.testing.assert_array_equal(const.params[0].value, c_copy)


@pytest.mark.parametrize(
    "scalar", [2.5, 3, np.float64(2.5), np.float32(0.5), np.int64(3), np.array(2.5)], ids=repr
)
def test_closed_over_scalars_are_inlined(scalar):
    x = rng.uniform(0.5, 1, 3)
    _, out = traced(lambda x: x * scalar + scalar, (3,))
    assert set(ops_of(out)) == {"input", "elementwise"}
    numbers = {float(a) for n in ir.toposort([out]) if n.op == "elementwise" for a in n.body.atoms(sympy.Number)}
    assert float(scalar) in numbers
    np.testing.assert_allclose(run_ir(out, x), x * scalar + scalar, rtol=1e-15)


def test_integer_and_boolean_closed_over_arrays():
    ints = np.array([1, 2, 3])
    mask = np.array([True, False, True])
    _, out = traced(lambda x: np.where(mask, x * ints, -x), (3,))
    consts = {n.dtype for n in ir.toposort([out]) if n.op == "const"}
    assert consts == {"float64", "bool"}
    x = rng.normal(size=3)
    np.testing.assert_allclose(run_ir(out, x), np.where(mask, x * ints, -x))


def test_a_function_returning_a_constant_gives_a_const_node():
    _, out = traced(lambda x: np.arange(3.0), (3,))
    assert out.op == "const"


# ---------------------------------------------------------------------------------------------
# The IR listing
# ---------------------------------------------------------------------------------------------


def _listing_fun(x, y):
    return np.sum(np.sin(x) * y, axis=0)


LISTING = """\
%0 = input[arg0]() : float64[2, 3]
%1 = elementwise[sin(a0)](%0) : float64[2, 3]
%2 = input[arg1]() : float64[3]
%3 = elementwise[a0*a1](%1, %2) : float64[2, 3]
%4 = sum[(-2,)](%3) : float64[3]
return %4"""

LINE = re.compile(r"^%\d+ = [a-z_]+\[.*\]\((%\d+(, %\d+)*)?\) : (float32|float64|bool)\[[\d, ]*\]$")


def test_format_graph_listing_is_exact_and_readable():
    _, out = traced(_listing_fun, (2, 3), (3,))
    assert ir.format_graph([out]) == LISTING


def test_format_graph_every_line_has_the_same_shape():
    fun = STRUCTURAL["matmul_stacked_both"][0]
    text = symdiff.hessian(lambda x: np.sum(fun(x))).graph(np.ones((2, 2, 3)))
    *lines, last = text.splitlines()
    assert lines and all(LINE.match(line) for line in lines), text
    assert re.match(r"^return %\d+(, %\d+)*$", last)
    # operands are defined before they are used
    defined = set()
    for line in lines:
        target, rest = line.split(" = ", 1)
        assert set(re.findall(r"%\d+", rest)) <= defined, line
        defined.add(target)


STABLE_SOURCE = """
import numpy as np
from symdiff import ir, trace


def f(x, w):
    return np.mean(np.tanh(x @ w) ** 2 + np.where(x[:, :1] > 0, x[:, :1], 0.0) + np.cos(x).sum(1)[:, None])


LISTING = ir.format_graph([trace.run(f, [ir.input_node(0, (3, 2), "float64"), ir.input_node(1, (2, 4), "float64")])])
"""


def _stable_listing():
    namespace: dict = {}
    exec(STABLE_SOURCE, namespace)  # noqa: S102 - the same text runs in a subprocess below
    return namespace["LISTING"]


def test_format_graph_is_stable_across_traces_and_processes():
    first = _stable_listing()
    assert _stable_listing() == first
    assert first.count("\n") >= 10
    with tempfile.TemporaryDirectory() as tmp:
        code = STABLE_SOURCE + "\nprint(LISTING)\n"
        out = run_python(code, tmp, env={"PYTHONHASHSEED": "12345", "PYTHONPATH": REPO, "SYMDIFF_CACHE_DIR": ""})
        assert out.stdout.rstrip("\n") == first


def test_constants_are_listed_by_digest_not_by_value():
    big = np.linspace(0, 1, 1000)
    _, out = traced(lambda x: x * big, (1000,))
    text = ir.format_graph([out])
    assert "const#" in text and len(text) < 400


def test_structure_key_sees_constant_values():
    def make(c):
        return lambda x: x * c

    keys = {ir.structure_key([traced(make(c), (3,))[1]]) for c in (np.ones(3), np.full(3, 2.0), 2.0, 3.0)}
    assert len(keys) == 4
    assert ir.structure_key([traced(make(2.0), (3,))[1]]) == ir.structure_key([traced(make(2.0), (3,))[1]])


# ---------------------------------------------------------------------------------------------
# What cannot be traced
# ---------------------------------------------------------------------------------------------

THIS_FILE = os.path.basename(__file__)


@pytest.mark.parametrize(
    "fun, error, words",
    [
        (lambda x: x if x > 0 else -x, symdiff.TraceError, "np.where"),  # a 3-element condition
        (lambda x: float(x[0]) * x, symdiff.TraceError, "conversion"),
        (lambda x: np.unique(x), symdiff.TraceError, "np.unique is not supported"),
        (lambda x: np.add.reduce(x), symdiff.TraceError, "add.reduce"),
        (lambda x: np.sin(x, where=x > 0), symdiff.TraceError, "where"),
        (lambda x: x.astype(int), symdiff.TraceError, "astype"),
        (lambda x: np.where(x), symdiff.TraceError, "np.where"),
        (lambda x: x + np.ones(4), symdiff.ShapeError, "broadcast"),
        (lambda x: x.reshape(4, -1), symdiff.ShapeError, "reshape"),
        (lambda x: x[5], symdiff.ShapeError, "out of bounds"),
        (lambda x: np.sum(x, axis=3), symdiff.ShapeError, "axis 3"),
    ],
)
def test_untraceable_code_raises_and_names_the_line(fun, error, words):
    with pytest.raises(error) as info:
        traced(fun, (3,))
    assert words in str(info.value)
    assert re.search(re.escape(THIS_FILE) + r":\d+", str(info.value)), str(info.value)


def test_copies_of_a_traced_value_keep_its_derivative():
    """copy.deepcopy made a new node: dataclasses.asdict(params) inside a traced function silently gave
    zero gradients (found while adding pytrees)."""
    import copy
    import dataclasses

    @dataclasses.dataclass
    class Params:
        w: object

    def f(x):
        p = dataclasses.asdict(Params(w=x))
        return np.sum(p["w"] ** 2) + np.sum(copy.copy(x) * copy.deepcopy(x))

    x = np.array([1.0, -2.0])
    np.testing.assert_allclose(symdiff.grad(f)(x), 4 * x)
