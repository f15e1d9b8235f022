"""Pictures of graphs: the traced program, its derivative and a torchlike ``grad_fn`` chain, as DOT,
Mermaid or SVG text.

A ``Picture`` is a plain list of vertices (op, shape, formula, the rule a derivative node came from)
and edges (data flow). DOT and Mermaid are written here as text with no dependency (Mermaid renders
in GitHub and Jupyter markdown); SVG asks Graphviz (the ``graphviz`` package and its ``dot``
program) to lay out the DOT text. Large pictures collapse chains of elementwise vertices into one
vertex that shows the composed formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from .errors import SymdiffError

FORMATS = ("text", "dot", "mermaid", "svg")
MAX_VERTICES = 40  # above this, elementwise chains collapse into one vertex each
MAX_LABEL = 48  # characters of one label line
_FILL = {"input": "#dbeafe", "const": "#f3f4f6", "derivative": "#fde68a", "op": "#ffffff"}


@dataclass
class Vertex:
    """One box: ``name`` is how formulas of its users refer to it; ``formula`` (SymPy over the
    names of ``inputs``) is set for elementwise work, ``rule`` says which derivative rule made it."""

    key: str
    name: str
    op: str
    shape: tuple
    dtype: str
    kind: str = "op"  # input | const | op | derivative
    inputs: list = field(default_factory=list)  # keys of the vertices it reads
    formula: sympy.Expr | None = None
    detail: str = ""
    rule: str = ""
    output: bool = False

    def lines(self) -> list:
        head = self.name if self.kind in ("input", "const") else self.op
        if self.formula is not None:
            head = f"{self.name} = {_cap(sympy.sstr(self.formula))}"
        lines = [_cap(head)]
        if self.detail:
            lines.append(_cap(self.detail))
        lines.append(f"{self.dtype}{list(self.shape)}" if self.dtype else str(tuple(self.shape)))
        if self.rule:
            lines.append(_cap(self.rule))
        return lines


@dataclass
class Picture:
    title: str
    vertices: list  # in data-flow order: inputs before users

    @property
    def edges(self) -> list:
        return [(src, v.key) for v in self.vertices for src in dict.fromkeys(v.inputs)]


def _cap(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


# -- from the IR --------------------------------------------------------------------------------


def from_ir(outputs, param_names=(), title: str = "", max_vertices: int = MAX_VERTICES) -> Picture:
    """The picture of the IR graph that ``outputs`` reach; derivative nodes show their rule."""
    from . import ir
    from .graph import _param_text, placeholder

    nodes = ir.toposort(outputs)
    keys = {id(n): f"n{k}" for k, n in enumerate(nodes)}
    names: dict = {}
    vertices = []
    out_ids = {id(o) for o in outputs}
    for n in nodes:
        key = keys[id(n)]
        kind, detail, formula = "op", "", None
        if n.op == "input":
            p = n.params[0]
            name, kind = (param_names[p] if p < len(param_names) else f"arg{p}"), "input"
        elif n.op == "const":
            c = n.params[0]
            value = c.value.item() if c.value.size == 1 else None
            name, kind = c.name or (f"{value:g}" if value is not None else f"c{key[1:]}"), "const"
        else:
            name = key
            if n.op == "elementwise":
                formula = n.body.xreplace({placeholder(i): sympy.Symbol(names[id(x)]) for i, x in enumerate(n.inputs)})
            else:
                detail = _param_text(n)
        names[id(n)] = name
        rule = _rule_text(n.origin, param_names)
        vertices.append(Vertex(key, name, n.op, n.shape, n.dtype, "derivative" if rule else kind,
                               [keys[id(x)] for x in n.inputs], formula, detail, rule, id(n) in out_ids))
    return collapse(Picture(title, vertices), max_vertices)


def _rule_text(origin, param_names) -> str:
    """``d/dx rule (line 3): sin(a0)`` for a node a derivative rule made, else ''."""
    if origin is None or not origin.order:
        return ""
    rules = [op if body is None else sympy.sstr(body) for op, body in origin.rules]
    shown = ", ".join(rules[:2]) + (", …" if len(rules) > 2 else "")
    where = f" (line {origin.lines[0][0]})" if origin.lines else ""
    kind = origin._kind(param_names).removesuffix(" of")
    return f"{kind} rule{where}: {shown}" if shown else f"{kind}{where}"


def collapse(picture: Picture, max_vertices: int = MAX_VERTICES) -> Picture:
    """Merge each elementwise vertex read only by one elementwise vertex into its reader (the
    reader's formula absorbs it), while the picture has more than ``max_vertices`` vertices."""
    if len(picture.vertices) <= max_vertices:
        return picture
    readers: dict = {}
    for v in picture.vertices:
        for src in dict.fromkeys(v.inputs):
            readers.setdefault(src, []).append(v)
    gone = set()
    for v in picture.vertices:  # producers first: a chain folds forward into its last vertex
        users = readers.get(v.key, [])
        if v.formula is None or v.output or len(users) != 1 or users[0].formula is None:
            continue
        user = users[0]
        user.formula = user.formula.xreplace({sympy.Symbol(v.name): v.formula})
        user.inputs = [k for src in user.inputs for k in (v.inputs if src == v.key else [src])]
        user.rule = user.rule or v.rule
        for src in v.inputs:
            readers[src] = [user if r is v else r for r in readers.get(src, [])]
        gone.add(v.key)
    return Picture(picture.title, [v for v in picture.vertices if v.key not in gone])


# -- text formats -------------------------------------------------------------------------------


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(picture: Picture) -> str:
    """Graphviz DOT text: one box per vertex (inputs as ellipses, derivative nodes filled)."""
    lines = [f"digraph {_dot_quote(picture.title or 'symdiff')} {{",
             "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    if picture.title:
        lines.append(f"  label={_dot_quote(picture.title)}; labelloc=t;")
    for v in picture.vertices:
        label = "\\n".join(t.replace("\\", "\\\\").replace('"', '\\"') for t in v.lines())
        shape = ", shape=ellipse" if v.kind == "input" else ""
        bold = ", penwidth=2" if v.output else ""
        lines.append(f'  {v.key} [label="{label}", fillcolor="{_FILL[v.kind]}"{shape}{bold}];')
    lines += [f"  {a} -> {b};" for a, b in picture.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


_MERMAID_ESCAPES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "#": "#35;", "`": "#96;", "&": "#amp;"}


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in text)


def to_mermaid(picture: Picture) -> str:
    """Mermaid ``flowchart`` text (renders in GitHub and Jupyter markdown inside a mermaid block)."""
    lines = ["flowchart TD"]
    for v in picture.vertices:
        label = "<br/>".join(_mermaid_text(t) for t in v.lines())
        left, right = ("([", "])") if v.kind == "input" else ("[", "]")
        lines.append(f'  {v.key}{left}"{label}"{right}')
    lines += [f"  {a} --> {b}" for a, b in picture.edges]
    for kind, colour in _FILL.items():
        members = [v.key for v in picture.vertices if v.kind == kind]
        if members and kind != "op":
            lines += [f"  classDef {kind} fill:{colour},stroke:#555", f"  class {','.join(members)} {kind}"]
    outs = [v.key for v in picture.vertices if v.output]
    if outs:
        lines += ["  classDef output stroke-width:3px", f"  class {','.join(outs)} output"]
    return "\n".join(lines) + "\n"


class DotText(str):
    """DOT text that Jupyter draws as SVG when Graphviz is installed (else shows the text)."""

    def _repr_svg_(self):
        try:
            return to_svg(self)
        except SymdiffError:
            return None


class MermaidText(str):
    """Mermaid text that Jupyter and GitHub draw (a mermaid block in markdown)."""

    def _repr_markdown_(self):
        return f"```mermaid\n{self}```\n"


def to_svg(dot_text: str) -> str:
    """SVG of DOT text, laid out by Graphviz; a SymdiffError saying what to install if it is missing."""
    try:
        import graphviz
    except ImportError:
        raise SymdiffError(
            "format='svg' needs the graphviz package and the Graphviz programs: pip install 'symdiff[pictures]' "
            "and install Graphviz (e.g. apt install graphviz, brew install graphviz); format='dot' or "
            "'mermaid' need nothing"
        ) from None
    try:
        return graphviz.Source(dot_text).pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound:
        raise SymdiffError(
            "format='svg' needs the Graphviz program 'dot' on PATH: install Graphviz (e.g. apt install graphviz, "
            "brew install graphviz, conda install graphviz); format='dot' or 'mermaid' need nothing"
        ) from None


def program(fun, *args, format="dot", **kwargs) -> str:
    """The picture of ``fun``'s own traced program for arguments like ``args`` (a transform's
    ``.graph`` draws its derivative): ``format`` 'text', 'dot', 'mermaid' or 'svg'."""
    from .transforms import Transform
    from .views import graph

    return graph(Transform(fun, "jacobian"), args, kwargs, format, program=True)


def render(picture: Picture, format: str) -> str:
    """``picture`` as ``format`` ('dot', 'mermaid' or 'svg')."""
    if format == "dot":
        return DotText(to_dot(picture))
    if format == "mermaid":
        return MermaidText(to_mermaid(picture))
    if format == "svg":
        return to_svg(to_dot(picture))
    raise SymdiffError(f"unknown graph format {format!r}; choose one of {', '.join(FORMATS)}")
