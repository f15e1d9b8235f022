"""Generated functions read like SymForce's and tangent's: temporaries numbered top to bottom,
sections with an operation count, and a comment tying each block to the user's source line."""

import ast
import inspect
import os
import re

import numpy as np
import pytest

import symdiff
from symdiff import emit_layout, ir, origins

from .generated_code import compile_source, generated_functions

HERE = os.path.basename(__file__)
RNG = np.random.default_rng(3)
X, Y, W = RNG.normal(size=(8, 3)), (RNG.normal(size=8) > 0).astype(float), RNG.normal(size=3)


def readable_logistic(w, b, x, y):
    z = x @ w + b
    p = 1 / (1 + np.exp(-z))
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def line_of(fn, text):
    """(line number, stripped text) of the line of ``fn``'s source that contains ``text``."""
    lines, first = inspect.getsourcelines(fn)
    (k,) = [k for k, line in enumerate(lines) if text in line]
    return first + k, lines[k].strip()


def function_source(source, name):
    (fn,) = [f for f in generated_functions(source) if f.name == name]
    return "\n".join(source.splitlines()[fn.lineno - 1 : fn.end_lineno])


def load(source, name):
    scope: dict = {}
    exec(compile_source(source), scope)  # noqa: S102 - generated and test code
    return scope[name]


SOURCES = {
    "grad": lambda: symdiff.grad(readable_logistic, argnums=(0, 1)).source(W, 0.5, X, Y),
    "value_and_grad": lambda: symdiff.value_and_grad(readable_logistic).source(W, 0.5, X, Y),
    "hessian": lambda: symdiff.hessian(readable_logistic).source(W, 0.5, X, Y),
    "jacobian": lambda: symdiff.jacobian(lambda v: np.tanh(X @ v) * v[0]).source(W),
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_temporaries_are_numbered_in_the_order_they_appear(kind):
    source = SOURCES[kind]()
    for fn in generated_functions(source):
        defined = []
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                defined += [t.id for t in node.targets if isinstance(t, ast.Name) and t.id not in defined]
        temps = [n for n in defined if re.fullmatch(r"[tc]\d+(_\d+)?", n)]
        assert temps, source
        # ast.walk is breadth-first: order by line instead
        first_line = {n: min(a.lineno for a in ast.walk(fn) if isinstance(a, ast.Assign)
                             and any(getattr(t, "id", None) == n for t in a.targets)) for n in temps}
        in_order = sorted(temps, key=first_line.get)
        assert in_order == [f"t{k}" for k in range(len(in_order))], source


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_sections_and_total_ops(kind):
    source = SOURCES[kind]()
    fn = generated_functions(source)[0]
    text = function_source(source, fn.name)
    total = int(re.search(r"^    # Total ops: (\d+)$", text, re.MULTILINE).group(1))
    assert "\n    # Input arrays\n" in text and "\n    # Output terms\n" in text
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if re.match(r"    # (Intermediate|Output) terms", line))
    assert total == _count_ops("\n".join(lines[start:])), text
    head = re.search(r"^    # Intermediate terms \((\d+)\)$", text, re.MULTILINE)
    if head:
        output = lines.index("    # Output terms")
        section = lines[lines.index(head.group(0)) : output]
        targets = {line.split(" = ")[0].strip() for line in section if re.match(r"    [a-z]\w* = ", line)}
        assert int(head.group(1)) == len(targets), text


def _count_ops(body: str) -> int:
    """An independent count of what the body executes: operators on values (not literals), calls
    and reading subscripts, by compiling it and reading the bytecode-free AST of each line."""
    tree = ast.parse("def _():\n" + body)
    count = 0

    class Visitor(ast.NodeVisitor):
        def visit_BinOp(self, node):
            nonlocal count
            count += not (_is_number(node.left) and _is_number(node.right))
            self.generic_visit(node)

        def visit_UnaryOp(self, node):
            nonlocal count
            count += not _is_number(node.operand)
            self.generic_visit(node)

        def visit_Call(self, node):
            nonlocal count
            count += 1
            self.generic_visit(node)

        def visit_Compare(self, node):
            nonlocal count
            count += len(node.ops)
            self.generic_visit(node)

        def visit_Subscript(self, node):
            nonlocal count
            count += isinstance(node.ctx, ast.Load)
            self.generic_visit(node)

    Visitor().visit(tree)
    return count


def _is_number(node) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def test_total_ops_of_a_small_gradient_by_hand():
    def sine_sum(x):
        return np.sum(np.sin(x) * x)

    source = symdiff.grad(sine_sum).source(W)
    assert "t0 = x*np.cos(x) + np.sin(x)" in source  # *, np.cos, +, np.sin: four operations
    assert "    # Total ops: 4\n" in source


def test_a_traced_line_is_named_in_a_comment_with_its_file_and_line():
    number, text = line_of(readable_logistic, "z = x @ w + b")
    source = SOURCES["value_and_grad"]()
    assert f"    # from: {text}  ({HERE}:{number})\n" in source, source


def test_derivative_blocks_say_with_respect_to_what():
    number, text = line_of(readable_logistic, "z = x @ w + b")
    source = symdiff.grad(readable_logistic).source(W, 0.5, X, Y)
    assert f"    # d/dw of: {text}  ({HERE}:{number})\n" in source, source
    both = SOURCES["grad"]()
    assert "# d/d(w, b) of: " in both, both
    assert "# d2/dw2 of: " in SOURCES["hessian"](), SOURCES["hessian"]()


def test_scalar_derivatives_name_their_variables():
    def poly(x, y):
        return np.sin(x) * y + x**2

    number, text = line_of(poly, "return np.sin(x)")
    assert f"# d2/dx2 of: {text}  ({HERE}:{number})" in symdiff.derivative(poly, order=2).source(1.0, 2.0)
    assert f"# d/dy of: {text}" in symdiff.derivative(poly, argnums=1).source(1.0, 2.0)


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_commented_code_compiles_and_gives_the_same_numbers(kind):
    source = SOURCES[kind]()
    name = generated_functions(source)[0].name
    fn = load(source, name)
    if kind == "jacobian":
        want = symdiff.jacobian(lambda v: np.tanh(X @ v) * v[0])(W)
        got = fn(W, X=X)
    else:
        transform = {"grad": symdiff.grad(readable_logistic, argnums=(0, 1)),
                     "value_and_grad": symdiff.value_and_grad(readable_logistic),
                     "hessian": symdiff.hessian(readable_logistic)}[kind]
        want, got = transform(W, 0.5, X, Y), fn(W, 0.5, X, Y)
    for a, b in zip(np.atleast_1d(np.asarray(want, dtype=object)), np.atleast_1d(np.asarray(got, dtype=object))):
        np.testing.assert_allclose(np.asarray(b, float), np.asarray(a, float), rtol=1e-12)


def test_gradient_matches_finite_differences():
    fn = load(SOURCES["grad"](), "grad_readable_logistic")
    gw, gb = fn(W, 0.5, X, Y)
    h = 1e-6
    fd_b = (readable_logistic(W, 0.5 + h, X, Y) - readable_logistic(W, 0.5 - h, X, Y)) / (2 * h)
    fd_w = [(readable_logistic(W + h * e, 0.5, X, Y) - readable_logistic(W - h * e, 0.5, X, Y)) / (2 * h)
            for e in np.eye(3)]
    np.testing.assert_allclose(gb, fd_b, rtol=1e-6)
    np.testing.assert_allclose(gw, fd_w, rtol=1e-6)


def test_no_comment_where_the_line_is_unknown():
    scope = {"np": np}
    exec(compile("def typed(x):\n    return np.sum(np.exp(x))\n", "<typed>", "exec"), scope)  # noqa: S102 - generated and test code
    source = symdiff.grad(scope["typed"]).source(W)
    assert "# from:" not in source and "# d/d" not in source, source
    compile_source(source)


def test_comments_are_one_short_ascii_line():
    long = "value = " + " + ".join(["np.sin(x)"] * 40) + "  # \u00e9t\u00e9\r\n"
    origin = origins.Origin("/some/dir/file\nname.py", ((7, long),))
    text = origin.describe(("x",))
    assert len(text) <= origins.MAX_COMMENT and "\n" not in text and "\r" not in text
    assert text.isascii() and text.endswith("(file name.py:7)") and "..." in text
    merged = origins.merge([origins.Origin("f.py", ((3, "a = 1"),)), origins.Origin("f.py", ((5, "b = a"),))])
    assert merged.describe() == "from: a = 1; b = a  (f.py:3,5)"
    assert origins.merge([origins.Origin("f.py", ((3, "a"),)), origins.Origin("g.py", ((3, "a"),))]) is None


def test_origins_are_not_part_of_the_structure(tmp_path):
    roots = []
    for k, code in enumerate(["def f(x):\n    return np.sum(np.exp(x))\n", "\n\ndef f(x):\n    return np.sum(np.exp(x))\n"]):
        path = tmp_path / f"moved_{k}.py"
        path.write_text(code)
        scope = {"np": np}
        exec(compile(code, str(path), "exec"), scope)  # noqa: S102 - test code
        roots.append(symdiff.trace.run(scope["f"], [ir.input_node(0, (3,), "float64")]))
    assert roots[0].origin.describe().endswith("(moved_0.py:2)")
    assert roots[1].origin.describe().endswith("(moved_1.py:4)")
    assert ir.structure_key([roots[0]]) == ir.structure_key([roots[1]])


def test_renumbering_leaves_comments_and_user_text_alone():
    statements = [
        {"op": "assign", "target": "c0", "expr": "np.exp(x)", "origin": "from: t0 = c0  (f.py:1)"},
        {"op": "assign", "target": "t3", "expr": "c0 + t0_", "origin": "from: t0 = c0  (f.py:1)"},
        {"op": "call", "target": "t3", "fn": "np.add", "args": "t3, c0"},
    ]
    renamed, returns, _ = emit_layout.renumber(statements, ["t3"])
    assert [s["target"] for s in renamed] == ["t0", "t1", "t1"]
    assert renamed[1]["expr"] == "t0 + t0_" and renamed[2]["args"] == "t1, t0" and returns == ["t1"]
    assert renamed[0]["origin"] == "from: t0 = c0  (f.py:1)"
