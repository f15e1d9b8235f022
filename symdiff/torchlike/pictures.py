"""Pictures and rich display of a tensor's ``grad_fn`` chain: ``make_dot`` (torchviz's name and role)
and the markdown Jupyter shows for a tensor that has a ``grad_fn``.

Importing this module gives ``Tensor`` its ``_repr_markdown_`` (``symdiff.torchlike`` imports it),
so ``tensor.py`` stays about autograd state. Elementwise steps show their formula, rebuilt from the
record the way ``backward`` rebuilds it; a record already freed by ``backward`` shows names only.
"""

from __future__ import annotations

import sympy

from .. import pictures
from ..errors import SymdiffError
from . import engine
from .tensor import Tensor

FORMULA_INPUTS = 64  # scalar inputs above which a tensor's display shows no written-out formula
FORMULA_OUTPUTS = 16


class Digraph:
    """What ``make_dot`` returns: ``.source`` is the DOT text (``str()`` too, or Mermaid with
    ``format='mermaid'``); Jupyter draws it (SVG with Graphviz, else Mermaid markdown)."""

    def __init__(self, picture, format="dot"):
        if format not in ("dot", "mermaid", "svg"):
            raise SymdiffError(f"unknown graph format {format!r}; choose one of dot, mermaid, svg")
        self.picture, self.format = picture, format
        self.source = pictures.to_dot(picture)
        self.mermaid = pictures.to_mermaid(picture)

    def __str__(self) -> str:
        return self.mermaid if self.format == "mermaid" else self.source

    def pipe(self, format="svg") -> bytes:
        return pictures.render(self.picture, format).encode("utf-8")

    def render(self, filename="graph", format="svg") -> str:
        """Write ``filename.format`` (svg, dot or mermaid) and return its path."""
        path = f"{filename}.{format}"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(pictures.render(self.picture, format))
        return path

    def _repr_svg_(self):
        return pictures.DotText(self.source)._repr_svg_() if self.format != "mermaid" else None

    def _repr_markdown_(self):
        return pictures.MermaidText(self.mermaid)._repr_markdown_()


def make_dot(var, params=None, format="dot", max_vertices=pictures.MAX_VERTICES, **_torchviz_options) -> Digraph:
    """The ``grad_fn`` chain that produced ``var``: one box per backward function (its name, result
    shape and, for elementwise steps, the formula), leaves as ellipses named by ``params``
    (``{name: tensor}``, e.g. ``dict(model.named_parameters())``)."""
    return Digraph(chain_picture(var, params, max_vertices), format)


def chain_picture(var, params=None, max_vertices=pictures.MAX_VERTICES) -> pictures.Picture:
    if not isinstance(var, Tensor):
        raise TypeError(f"make_dot expects a Tensor, got {type(var).__name__}")
    given = {id(t): name for name, t in (params or {}).items()}
    ir_of = _ir_nodes(var)
    key_of, symbol_of, vertices = {}, {}, []  # tensor -> vertex key; IR node -> name in formulas
    for t in engine._post_order([var], set()):
        fn, node = t.grad_fn, ir_of.get(id(t))
        if fn is None and not t.requires_grad:
            if t.numel() == 1 and node is not None:
                symbol_of[id(node)] = f"{t._value.item():g}"
            continue
        key = key_of[id(t)] = f"n{len(vertices)}"
        dtype = str(t._value.dtype)
        if fn is None:
            name = given.get(id(t), f"leaf{len(vertices)}")
            vertices.append(pictures.Vertex(key, name, "AccumulateGrad", t.shape, dtype, "input"))
        else:
            name = key
            keys = [key_of[id(x)] for x in fn._inputs if id(x) in key_of]
            formula = _formula(node, symbol_of)
            vertices.append(pictures.Vertex(key, key, fn.name(), t.shape, dtype, "op", keys, formula,
                                            fn.name() if formula is not None else "", output=t is var))
        if node is not None:
            symbol_of[id(node)] = name
    return pictures.collapse(pictures.Picture(f"grad_fn chain of {var.grad_fn.name() if var.grad_fn else 'a leaf'}",
                                              vertices), max_vertices)


def _ir_nodes(var) -> dict:
    """``{id(tensor): IR node}`` of the record below ``var`` ({} once ``backward`` freed it)."""
    try:
        rebuilt = engine._Rebuilt(engine._post_order([var], set()), set())
    except RuntimeError:
        return {}
    return {id(t): rebuilt.node_of[id(t)] for t in engine._post_order([var], set())}


def _formula(node, names):
    """The elementwise body of ``node`` over its operands' names, when every operand has one."""
    if node is None or node.op != "elementwise" or any(id(x) not in names for x in node.inputs):
        return None
    from ..graph import placeholder

    return node.body.xreplace({placeholder(i): sympy.Symbol(names[id(x)]) for i, x in enumerate(node.inputs)})


def tensor_markdown(t):
    """What Jupyter shows for a tensor with a ``grad_fn`` (None otherwise: the plain repr)."""
    if t.grad_fn is None:
        return None
    from .. import display

    lines = ["```", repr(t), "```", "", f"Shape {tuple(t.shape)}, {t.dtype}, made by `{t.grad_fn.name()}`."]
    try:
        written = _written_out(t)
    except Exception:  # noqa: BLE001 - an op without a symbolic evaluation: the display goes without it
        written = None
    if written is not None:
        legend, expr = written
        lines += ["", "Where " + "; ".join(legend) + ":", "", display.latex_block([("y", expr)])]
    picture = chain_picture(t)
    if len(picture.vertices) <= 12:
        lines += ["", pictures.MermaidText(pictures.to_mermaid(picture))._repr_markdown_()]
    return "\n".join(lines)


def _written_out(t):
    """(legend lines, SymPy formula) of ``t`` over its record's input tensors, when small enough."""
    from .. import optimize, views

    try:
        rebuilt = engine._Rebuilt(engine._post_order([t], set()), set())
    except RuntimeError:
        return None
    if sum(n.size for n in rebuilt.in_nodes) > FORMULA_INPUTS or t.numel() > FORMULA_OUTPUTS:
        return None
    names = [f"t{k}" for k in range(len(rebuilt.in_nodes))]
    flat = optimize.optimize([rebuilt.node_of[id(t)]])
    specs = [(n.shape, n.dtype) for n in rebuilt.in_nodes]
    (value,) = views._evaluate_symbolically(flat, specs, names)
    legend = [f"`{name}` is a {'leaf that requires grad' if x.requires_grad else 'constant'}, "
              f"{x.dtype} shape {tuple(x.shape)}" for name, x in zip(names, rebuilt.operands)]
    return legend, views._to_sympy(value)


Tensor._repr_markdown_ = tensor_markdown
