"""Graph pictures (DOT, Mermaid, SVG) and the rich Jupyter display of transforms and torchlike tensors.

The DOT and Mermaid texts are parsed back and compared with the IR listing ``.graph()`` prints
(format 'text', written by independent code in ``symdiff.graph``): one box per IR node, one edge
per distinct operand, every edge endpoint declared, labels with the op and the shape.
"""

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import symdiff
import symdiff.torchlike as torch
from symdiff import cli, display, pictures
from symdiff.errors import SymdiffError

ROOT = Path(__file__).resolve().parent.parent
FUNCS = str(ROOT / "examples" / "cli_functions.py")

_DOT_NODE = re.compile(r'^  (n\d+) \[label="((?:[^"\\]|\\.)*)", fillcolor="#[0-9a-f]{6}"(, shape=ellipse)?(, penwidth=2)?\];$')
_DOT_EDGE = re.compile(r"^  (n\d+) -> (n\d+);$")
_DOT_HEADER = re.compile(r'^digraph "(?:[^"\\]|\\.)*" \{$')
_MERMAID_NODE = re.compile(r'^  (n\d+)(?:\(\["|\[")([^"]*)(?:"\]\)|"\])$')
_MERMAID_EDGE = re.compile(r"^  (n\d+) --> (n\d+)$")


def parse_dot(text):
    """{key: label lines}, [(src, dst)]; fails on any line that is not DOT this writer makes."""
    lines = text.strip().splitlines()
    assert _DOT_HEADER.match(lines[0]) and lines[-1] == "}", text
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := _DOT_NODE.match(line):
            assert m.group(1) not in nodes
            nodes[m.group(1)] = m.group(2).split("\\n")
        elif m := _DOT_EDGE.match(line):
            edges.append(m.groups())
        else:
            assert line.startswith(("  rankdir=", "  node [", "  label=")), line
    assert all(a in nodes and b in nodes for a, b in edges), "an edge endpoint is not declared"
    assert len(set(edges)) == len(edges)
    return nodes, edges


def parse_mermaid(text):
    lines = text.strip().splitlines()
    assert lines[0] == "flowchart TD"
    nodes, edges = {}, []
    for line in lines[1:]:
        if m := _MERMAID_NODE.match(line):
            nodes[m.group(1)] = m.group(2).split("<br/>")
        elif m := _MERMAID_EDGE.match(line):
            edges.append(m.groups())
        else:
            assert re.match(r"^  (classDef \w+ [\w:#,-]+|class [n\d,]+ \w+)$", line), line
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


def parse_listing(text):
    """[(op, args, 'dtype[shape]')] of ``ir.format_graph`` text."""
    rows = []
    for line in text.splitlines()[:-1]:
        m = re.match(r"^%(\d+) = (\w+)\[.*\]\(([%\d, ]*)\) : (\w+\[[\d, ]*\])$", line)
        assert m, line
        rows.append((m.group(2), [int(a[1:]) for a in m.group(3).split(", ") if a], m.group(4)))
    return rows


def logistic(w, b, x, y):
    z = x @ w + b
    return np.mean(np.logaddexp(0.0, z) - y * z)


def poly(x):
    return 2 * x**3 + 5 * x**2 + 8


CASES = [
    (symdiff.grad(logistic, argnums=(0, 1)), (np.random.default_rng(0).normal(size=(5, 3)), np.zeros(3), np.ones(5), np.zeros(3))),
    (symdiff.hessian(lambda x: np.sum(np.sin(x) * np.roll(x, 1))), (np.linspace(0, 1, 4),)),
    (symdiff.jacobian(lambda x: np.cumsum(x**2)), (np.arange(3.0),)),
    (symdiff.grad(poly), (1.0,)),
]


@pytest.mark.parametrize("t, args", CASES)
def test_dot_and_mermaid_match_the_ir(t, args):
    rows = parse_listing(t.graph(*args))
    nodes, edges = parse_dot(t.graph(*args, format="dot"))
    assert len(nodes) == len(rows)
    assert len(edges) == sum(len(set(a)) for _, a, _ in rows)
    assert set(edges) == {(f"n{i}", f"n{k}") for k, (_, a, _) in enumerate(rows) for i in a}
    for k, (op, _, shape) in enumerate(rows):
        label = " ".join(nodes[f"n{k}"])
        assert shape in label
        if op not in ("input", "const"):
            assert op in label or label.startswith(f"n{k} = ")  # an elementwise box shows its formula
    m_nodes, m_edges = parse_mermaid(t.graph(*args, format="mermaid"))
    assert set(m_nodes) == set(nodes) and sorted(m_edges) == sorted(edges)


def test_derivative_nodes_name_their_rule():
    def f(x):
        return np.sum(np.sin(x))

    dot = symdiff.grad(f).graph(np.ones(3), format="dot")
    nodes, _ = parse_dot(dot)
    ruled = [" ".join(v) for v in nodes.values() if "rule" in " ".join(v)]
    assert ruled and all("d/dx rule" in r for r in ruled)
    assert any("sin(a0)" in r for r in ruled)
    assert "#fde68a" in dot  # derivative boxes are filled


def test_unknown_format_is_a_symdiff_error():
    with pytest.raises(SymdiffError, match="mermaid"):
        symdiff.grad(poly).graph(1.0, format="png")


def test_svg_without_graphviz_says_what_to_install(monkeypatch):
    g = symdiff.grad(poly)
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(SymdiffError, match=r"pip install 'symdiff\[pictures\]'.*apt install graphviz"):
        g.graph(1.0, format="svg")


def test_svg_without_the_dot_program_says_what_to_install(monkeypatch):
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SymdiffError, match="program 'dot'.*apt install graphviz"):
        symdiff.grad(poly).graph(1.0, format="svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz program dot is not installed")
def test_svg_with_graphviz():
    pytest.importorskip("graphviz")
    svg = symdiff.grad(poly).graph(1.0, format="svg")
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg


def test_long_elementwise_chains_collapse_into_one_box_with_the_formula():
    x = torch.tensor([0.5, 1.0], requires_grad=True)
    y = x
    for _ in range(30):
        y = torch.sin(y) * 1.5
    full = torch.make_dot(y, max_vertices=1000)
    short = torch.make_dot(y)
    assert len(parse_dot(full.source)[0]) == 61
    nodes, edges = parse_dot(short.source)
    assert len(nodes) == 2 and edges == [("n0", "n60")]
    assert "sin(sin(" in nodes["n60"][0] or "…" in nodes["n60"][0]


# -- torchlike -----------------------------------------------------------------------------------


def test_make_dot_of_the_seed_example():
    x = torch.rand(2, 2, requires_grad=True)
    y = torch.sum(x * 3)
    dot = torch.make_dot(y, params={"x": x})
    assert str(dot) == dot.source
    nodes, edges = parse_dot(dot.source)
    labels = [" ".join(v) for v in nodes.values()]
    assert len(nodes) == 3 and len(edges) == 2
    assert any(lbl.startswith("x ") and "float32[2, 2]" in lbl for lbl in labels)
    assert any("MulBackward0" in lbl and "3*x" in lbl for lbl in labels)
    assert any("SumBackward0" in lbl and "float32[]" in lbl for lbl in labels)
    m_nodes, m_edges = parse_mermaid(str(torch.make_dot(y, format="mermaid")))
    assert len(m_nodes) == 3 and len(m_edges) == 2
    y.backward()  # the record is freed: the picture keeps names and shapes, drops formulas
    nodes, edges = parse_dot(torch.make_dot(y).source)
    assert len(nodes) == 3 and not any("=" in v[0] for v in nodes.values())


def test_make_dot_formats_and_render(tmp_path):
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    dot = torch.make_dot(torch.sum(torch.exp(x)))
    path = dot.render(str(tmp_path / "chain"), format="mermaid")
    assert parse_mermaid(Path(path).read_text())[0]
    assert dot._repr_markdown_().startswith("```mermaid\nflowchart TD")
    with pytest.raises(SymdiffError, match="unknown graph format"):
        torch.make_dot(x * 2, format="png")
    with pytest.raises(TypeError, match="expects a Tensor"):
        torch.make_dot(np.ones(2))


def test_make_dot_of_a_second_order_graph():
    x = torch.tensor(1.0, requires_grad=True)
    y = 2 * x**3 + 5 * x**2 + 8
    (g,) = torch.autograd.grad(y, x, create_graph=True)
    nodes, edges = parse_dot(torch.make_dot(g, params={"x": x}).source)
    assert nodes and all(a != b for a, b in edges)


def test_tensor_markdown():
    x = torch.tensor(1.0, requires_grad=True)
    assert x._repr_markdown_() is None  # a leaf: Jupyter shows the plain repr
    y = 2 * x**3 + 5 * x**2 + 8
    md = y._repr_markdown_()
    assert "tensor(15., grad_fn=<AddBackward0>)" in md
    assert "2 t_{0}^{3} + 5 t_{0}^{2} + 8" in md
    assert "```mermaid\nflowchart TD" in md


def test_tensor_markdown_of_a_large_tensor_has_no_written_out_formula():
    x = torch.ones(100, requires_grad=True)
    md = torch.exp(x)._repr_markdown_()
    assert "$$" not in md and "ExpBackward0" in md


# -- transforms ----------------------------------------------------------------------------------


def test_transform_markdown_before_and_after_compiling():
    g = symdiff.grad(lambda x, y: np.sum(np.sin(x) * y))
    md = g._repr_markdown_()
    assert "Gradient of" in md and "Not compiled yet" in md
    g(np.zeros(2), np.ones(2))
    md = g._repr_markdown_()
    assert "Not compiled yet" not in md
    assert "`x` float64 shape (2,)" in md and "Result: float64 shape (2,)" in md
    assert r"\frac{\partial \mathrm{lambda\_}}{\partial x}" in md
    assert r"y_{0} \cos{\left(x_{0} \right)}" in md


def test_transform_markdown_of_a_chain_and_of_a_second_transform_object():
    def f(x):
        return np.sum(np.sin(x))

    symdiff.grad(f)(np.ones(3))
    second = symdiff.grad(f)
    second(np.ones(3))  # runs the first object's compiled code: still counts as compiled
    assert r"\cos{\left(x_{0} \right)}" in second._repr_markdown_()
    gg = symdiff.grad(symdiff.grad(lambda x: x**3))
    gg(2.0)
    md = gg._repr_markdown_()
    assert "composed: grad of grad" in md and r"\mathrm{result} &= 6 x" in md


def test_long_formulas_are_named_and_cut():
    h = symdiff.hessian(lambda a: np.sum(np.tanh(np.outer(a, a)) ** 3))
    h(np.ones(5))
    md = h._repr_markdown_()
    assert r"\tau_{0} &=" in md  # common subexpressions, named
    assert "more lines not shown" in md and ".source()" in md
    assert len(md) < display.MAX_LATEX + 1000


def test_formula_too_large_points_at_source():
    g = symdiff.grad(lambda x: np.sum(np.sin(x)))
    g(np.ones(1000))
    assert "Formula not shown" in g._repr_markdown_()


# -- command line --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, parse", [("dot", parse_dot), ("mermaid", parse_mermaid)])
def test_cli_show_graph(fmt, parse, capsys, tmp_path):
    assert cli.main(["show", f"{FUNCS}:rosenbrock", "--wrt", "x,y", "--graph", "--format", fmt]) == 0
    nodes, edges = parse(capsys.readouterr().out)
    assert nodes and edges
    out = tmp_path / f"g.{fmt}"
    assert cli.main(["show", f"{FUNCS}:rosenbrock", "--graph", "--format", fmt, "-o", str(out)]) == 0
    assert parse(out.read_text())[0]


def test_program_picture(capsys):
    def f(x, y):
        return np.sum(np.sin(x) * y)

    rows = parse_listing(pictures.program(f, np.ones(3), np.ones(3), format="text"))
    assert [op for op, _, _ in rows] == ["input", "input", "elementwise", "sum"]
    nodes, edges = parse_dot(pictures.program(f, np.ones(3), np.ones(3)))
    assert len(nodes) == 4 and len(edges) == 3 and not any("rule" in " ".join(v) for v in nodes.values())
    assert cli.main(["show", f"{FUNCS}:rosenbrock", "--graph", "--program", "--format", "mermaid"]) == 0
    m_nodes, _ = parse_mermaid(capsys.readouterr().out)
    assert not any("rule" in " ".join(v) for v in m_nodes.values())


def test_cli_format_needs_graph(capsys):
    assert cli.main(["show", f"{FUNCS}:rosenbrock", "--format", "mermaid"]) == 2
    assert "--graph" in capsys.readouterr().err


def test_picture_module_has_no_graphviz_import():
    assert "graphviz" not in pictures.__dict__
