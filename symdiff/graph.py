"""The graph of the intermediate representation: nodes, constants, placeholders and graph utilities.

A graph is a DAG of array operations with static shapes. Elementwise nodes carry a SymPy expression
over placeholder symbols ``a0, a1, ...`` (one per input); every other node is a structural or
reduction operation whose parameters address the *trailing* axes of its inputs. Leading axes pass
through untouched, which is what lets one IR serve batched (``signature=``) calls and tangents that
carry an extra basis axis (vectorized Jacobians). What each operation *is* lives in ``symdiff.ops``.
"""

from __future__ import annotations

import hashlib
import itertools
from functools import lru_cache

import numpy as np
import sympy

from .environment import array_digest
from .origins import current as _current_origin


@lru_cache(maxsize=None)
def placeholder(i: int) -> sympy.Symbol:
    """The scalar symbol that stands for input ``i`` of an elementwise body."""
    return sympy.Symbol(f"a{i}", real=True)


class Node:
    """One array operation. Nodes are immutable and compared by identity; a graph is what outputs reach.

    ``origin`` (``symdiff.origins``) is metadata for comments in generated code: the user's line the
    node derives from, taken from the scope it is created in; it is not part of the node's structure."""

    __slots__ = ("op", "inputs", "shape", "dtype", "params", "origin", "__weakref__")

    def __init__(self, op: str, inputs: tuple, shape: tuple, dtype: str, params: tuple = ()):
        self.op = op
        self.inputs = tuple(inputs)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.params = params
        self.origin = _current_origin()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def body(self) -> sympy.Expr:
        """The SymPy body of an elementwise node."""
        return self.params[0]

    def __repr__(self) -> str:
        return f"<Node {self.op} {self.dtype}{list(self.shape)}>"


class Constant:
    """An array the user's function read (closed over, or built inside it): data, never pasted.

    ``name`` is the user's variable name when the array was read from the function's closure,
    globals or defaults (generated code then takes it as a keyword parameter of that name)."""

    __slots__ = ("value", "name", "_digest")

    def __init__(self, value: np.ndarray, name: str | None = None, digest: str | None = None):
        value.setflags(write=False)
        self.value, self.name, self._digest = value, name, digest

    @property
    def digest(self) -> str:
        if self._digest is None:  # hashed once per constant, however often the graph is keyed
            self._digest = array_digest(self.value)
        return self._digest

    def __repr__(self) -> str:
        return f"const#{self.digest[:8]}" + (f"({self.name})" if self.name else "")


def result_dtype(*dtypes: str) -> str:
    floats = [d for d in dtypes if np.dtype(d).kind == "f"]
    return str(np.result_type(*floats)) if floats else "float64"


def input_node(position: int, shape, dtype: str) -> Node:
    return Node("input", (), shape, dtype, (position,))


def const_node(value, keep_dtype: bool = False, name: str | None = None, digest: str | None = None) -> Node:
    """A constant array node; ``value`` is copied (a later in-place change by the user is not seen).
    ``digest`` may be passed when already known for exactly these values and dtype."""
    arr = np.array(value)
    if arr.dtype.kind in "biu" and arr.dtype != np.bool_ and not keep_dtype:
        arr, digest = arr.astype(np.float64), None
    return Node("const", (), arr.shape, str(arr.dtype), (Constant(arr, name, digest),))


def bind(items):
    """Placeholders for the nodes among ``items`` (each distinct node once, in order of first use);
    other items (SymPy numbers) pass through. Returns (symbols, nodes)."""
    nodes, symbols = [], []
    for it in items:
        if isinstance(it, Node):
            if it not in nodes:
                nodes.append(it)
            symbols.append(placeholder(nodes.index(it)))
        else:
            symbols.append(it)
    return symbols, nodes


def lead_shape(shape, r):
    return tuple(shape[: len(shape) - r])


_fresh_inputs = itertools.count()


def fresh_input(position: int, shape, dtype: str, role: str = "fresh") -> Node:
    """An input node unlike any other (never merged with another trace's inputs): nested
    transforms, scalar derivatives and user-defined rules trace over these, then put the real
    operands in their place. ``role`` tells apart the kinds of inputs one graph has (primal,
    tangent, ...): the structure key of such a graph counts its inputs by (position, role)."""
    return Node("input", (), shape, dtype, (position, role, next(_fresh_inputs)))


def toposort(outputs, children=None) -> list:
    """Every node reachable from ``outputs``, inputs before users, in a deterministic order.

    ``children(node)``: a node's inputs (default ``node.inputs``; torchlike walks its tensors)."""
    order, seen = [], set()
    for root in outputs:
        if id(root) in seen:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for child in reversed(node.inputs if children is None else children(node)):
                if id(child) not in seen:
                    stack.append((child, False))
    return order


def rewrite(outputs, visit) -> list:
    """Rebuild the graph bottom-up (the one rebuild loop every pass shares): each node, with its
    inputs replaced by what they became, goes to ``visit(node, original)``, which returns what it
    becomes (``node`` itself to keep it)."""
    mapping: dict = {}
    for n in toposort(outputs):
        inputs = tuple(mapping[id(i)] for i in n.inputs)
        same = all(a is b for a, b in zip(inputs, n.inputs))
        mapping[id(n)] = visit(n if same else copy_node(n, inputs), n)
    return [mapping[id(o)] for o in outputs]


def substitute(outputs, replacements: dict) -> list:
    """``outputs`` with nodes replaced (``{id(old): new}``, same shapes), every user rebuilt."""
    return rewrite(outputs, lambda node, original: replacements.get(id(original), node))


def copy_node(node: Node, inputs) -> Node:
    """``node`` over other ``inputs`` (same op, shape, dtype, parameters and origin)."""
    new = Node(node.op, tuple(inputs), node.shape, node.dtype, node.params)
    new.origin = node.origin
    return new


def _param_text(node: Node) -> str:
    if node.op == "elementwise":
        return str(node.body)
    if node.op == "input":
        return f"arg{node.params[0]}"
    return ", ".join(repr(p) for p in node.params)


def format_graph(outputs) -> str:
    """A readable listing of the graph, one node per line, for debugging and tests."""
    nodes = toposort(outputs)
    names = {id(n): f"%{i}" for i, n in enumerate(nodes)}
    lines = []
    for n in nodes:
        args = ", ".join(names[id(i)] for i in n.inputs)
        lines.append(f"{names[id(n)]} = {n.op}[{_param_text(n)}]({args}) : {n.dtype}{list(n.shape)}")
    lines.append("return " + ", ".join(names[id(o)] for o in outputs))
    return "\n".join(lines)


def structure_key(outputs) -> str:
    """A hash of the graph's structure and constant values: the identity of what was traced."""
    nodes = toposort(outputs)
    ids = {id(n): i for i, n in enumerate(nodes)}
    h = hashlib.sha256()
    for n in nodes:
        if n.op == "elementwise":
            params = sympy.srepr(n.body)
        elif n.op == "input":
            params = repr(n.params[:2])  # a fresh input's counter is not structure
        else:
            params = repr(tuple(p.digest if isinstance(p, Constant) else p for p in n.params))
        h.update(f"{n.op}|{[ids[id(i)] for i in n.inputs]}|{n.shape}|{n.dtype}|{params}|{_rules(n.op)}\n".encode())
    h.update(repr([ids[id(o)] for o in outputs]).encode())
    return h.hexdigest()


def _rules(op: str) -> str:
    """Nothing for symdiff's own ops (the compiler version covers them); for an op registered from
    outside symdiff (an extension), a digest of its class's source: edited rules or templates
    compile again instead of reusing code cached for the old ones."""
    from .extensions import source_digest
    from .ops.base import REGISTRY

    cls = type(REGISTRY[op])
    return "" if cls.__module__.startswith("symdiff.") else source_digest(cls)

