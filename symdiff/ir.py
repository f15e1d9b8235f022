"""The intermediate representation: a DAG of array operations with static shapes.

Elementwise nodes carry a SymPy expression over placeholder symbols ``a0, a1, ...`` (one per input);
every other node is a structural or reduction operation whose parameters address the *trailing* axes
of its inputs. Leading axes pass through untouched, which is what lets one IR serve batched
(``signature=``) calls and tangents that carry an extra basis axis (vectorized Jacobians).
"""

from __future__ import annotations

import hashlib
import itertools
from functools import lru_cache

import numpy as np
import sympy

from .environment import array_digest
from .errors import ShapeError


@lru_cache(maxsize=None)
def placeholder(i: int) -> sympy.Symbol:
    """The scalar symbol that stands for input ``i`` of an elementwise body."""
    return sympy.Symbol(f"a{i}", real=True)


class Node:
    """One array operation. Nodes are immutable and compared by identity; a graph is what outputs reach."""

    __slots__ = ("op", "inputs", "shape", "dtype", "params", "__weakref__")

    def __init__(self, op: str, inputs: tuple, shape: tuple, dtype: str, params: tuple = ()):
        self.op = op
        self.inputs = tuple(inputs)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.params = params

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


# ---------------------------------------------------------------------------------------------
# Node constructors. Each computes the static output shape and checks its inputs.
# ---------------------------------------------------------------------------------------------


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


def elementwise(body, inputs, shape=None, dtype: str | None = None) -> Node:
    """Apply a scalar SymPy body to broadcast inputs. ``shape`` is only needed without inputs."""
    body = sympy.sympify(body)
    inputs = tuple(inputs)
    if shape is None:
        try:
            shape = np.broadcast_shapes(*(n.shape for n in inputs))
        except ValueError:
            raise ShapeError(
                "operands could not be broadcast together with shapes "
                + " ".join(str(n.shape) for n in inputs)
            ) from None
    if dtype is None:
        dtype = result_dtype(*(n.dtype for n in inputs))
    return Node("elementwise", inputs, shape, dtype, (body,))


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


def fill(value, shape, dtype: str = "float64") -> Node:
    """An array of one repeated number: an elementwise node with no inputs."""
    return elementwise(sympy.sympify(value), (), shape=shape, dtype=dtype)


def is_fill(node: Node, value=None) -> bool:
    if node.op != "elementwise" or node.inputs or not node.body.is_number:
        return False
    return value is None or node.body == value


def eye_basis(shape, dtype: str) -> Node:
    """The standard basis of arrays of ``shape``, stacked on a leading axis: eye(n).reshape(n, *shape)."""
    n = int(np.prod(shape, dtype=np.int64))
    return Node("eye", (), (n,) + tuple(shape), dtype, (n,))


def _lead(shape, r):
    return tuple(shape[: len(shape) - r])


def reduce_sum(x: Node, axes) -> Node:
    """Sum over the given negative axes (relative to the end of the shape)."""
    axes = tuple(sorted(set(axes)))
    if not axes:
        return x
    keep = [d for i, d in enumerate(x.shape) if i - x.ndim not in axes]
    return Node("sum", (x,), keep, x.dtype, (axes,))


def reshape(x: Node, r_in: int, new_core) -> Node:
    """Reshape the trailing ``r_in`` axes into ``new_core``."""
    new_core = tuple(int(d) for d in new_core)
    old_core = x.shape[x.ndim - r_in :]
    if int(np.prod(old_core, dtype=np.int64)) != int(np.prod(new_core, dtype=np.int64)):
        raise ShapeError(f"cannot reshape an array of shape {old_core} into shape {new_core}")
    if old_core == new_core:
        return x
    return Node("reshape", (x,), _lead(x.shape, r_in) + new_core, x.dtype, (r_in, new_core))


def broadcast(x: Node, r_in: int, target_core) -> Node:
    """Broadcast the trailing ``r_in`` axes of ``x`` to ``target_core`` (numpy's rules)."""
    target_core = tuple(int(d) for d in target_core)
    core = x.shape[x.ndim - r_in :]
    if np.broadcast_shapes(core, target_core) != target_core:
        raise ShapeError(f"cannot broadcast shape {core} to {target_core}")
    if core == target_core:
        return x
    if r_in < len(target_core):  # align explicitly, so the node only ever stretches size-1 axes
        x = reshape(x, r_in, (1,) * (len(target_core) - r_in) + core)
        r_in = len(target_core)
    return Node("broadcast", (x,), _lead(x.shape, r_in) + target_core, x.dtype, (r_in, target_core))


def transpose(x: Node, perm) -> Node:
    """Permute the trailing ``len(perm)`` axes."""
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))):
        return x
    r = len(perm)
    core = x.shape[x.ndim - r :]
    return Node("transpose", (x,), _lead(x.shape, r) + tuple(core[p] for p in perm), x.dtype, (perm,))


def einsum(spec: str, *operands: Node) -> Node:
    """Explicit-subscript einsum over the trailing axes; leading axes broadcast."""
    if not all(c.isascii() and (c.isalpha() or c in ",->") for c in spec) or spec.count("->") != 1:
        raise ShapeError(f"einsum subscripts must be letters, commas and one '->', got {spec!r}")
    ins, out = spec.split("->")
    terms = ins.split(",")
    if len(terms) != len(operands):
        raise ShapeError(f"einsum '{spec}' needs {len(terms)} operands, got {len(operands)}")
    sizes: dict = {}
    leads = []
    for term, op in zip(terms, operands):
        if len(term) > op.ndim:
            raise ShapeError(f"einsum '{spec}': operand of shape {op.shape} has too few axes")
        core = op.shape[op.ndim - len(term) :]
        for ch, d in zip(term, core):
            if sizes.setdefault(ch, d) != d:
                if sizes[ch] == 1:
                    sizes[ch] = d
                elif d != 1:
                    raise ShapeError(f"einsum '{spec}': axis '{ch}' has sizes {sizes[ch]} and {d}")
        leads.append(_lead(op.shape, len(term)))
    lead = np.broadcast_shapes(*leads)
    dtype = result_dtype(*(o.dtype for o in operands))
    return Node("einsum", operands, tuple(lead) + tuple(sizes[c] for c in out), dtype, (spec,))


def index(x: Node, idx: tuple) -> Node:
    """Basic indexing of the trailing axes. ``idx`` is normalized: one entry per core axis
    (int or (start, stop, step)), plus None entries that insert an axis."""
    r = sum(1 for e in idx if e is not None)
    core = x.shape[x.ndim - r :]
    out, k = [], 0
    for e in idx:
        if e is None:
            out.append(1)
            continue
        if isinstance(e, tuple):
            out.append(len(range(*e)))
        k += 1
    return Node("index", (x,), _lead(x.shape, r) + tuple(out), x.dtype, (idx, core))


def scatter(g: Node, idx: tuple, core) -> Node:
    """The adjoint of ``index``: a zero array of trailing shape ``core`` with ``g`` written at ``idx``."""
    r_out = len(index_shape(idx, core))
    return Node("scatter", (g,), _lead(g.shape, r_out) + tuple(core), g.dtype, (idx, tuple(core)))


def reduce_extreme(x: Node, axes, which: str) -> Node:
    """``max`` or ``min`` over negative axes."""
    axes = tuple(sorted(set(axes)))
    keep = [d for i, d in enumerate(x.shape) if i - x.ndim not in axes]
    return Node(which, (x,), keep, x.dtype, (axes,))


def cumsum(x: Node, axis: int, reverse: bool = False) -> Node:
    """Cumulative sum along a negative axis (``reverse`` sums from the end: the adjoint)."""
    return Node("cumsum", (x,), x.shape, x.dtype, (axis, reverse))


def gather(x: Node, layout: tuple, core, index_nodes) -> Node:
    """Integer-array indexing of the trailing axes. ``layout`` has one entry per key item:
    ("s", (start, stop, step)), ("a", k) for index array k, or None for a new axis."""
    key = gather_key(layout, [np.zeros(n.shape, dtype=np.intp) for n in index_nodes])
    out_core = np.empty(core, dtype=np.int8)[key].shape
    return Node("gather", (x, *index_nodes), _lead(x.shape, len(core)) + out_core, x.dtype, (layout, tuple(core)))


def scatter_add(g: Node, layout: tuple, core, index_nodes) -> Node:
    """The adjoint of ``gather``: zeros of trailing shape ``core`` with ``g`` added at the key."""
    key = gather_key(layout, [np.zeros(n.shape, dtype=np.intp) for n in index_nodes])
    r_out = np.empty(core, dtype=np.int8)[key].ndim
    return Node("scatter_add", (g, *index_nodes), _lead(g.shape, r_out) + tuple(core), g.dtype, (layout, tuple(core)))


def gather_key(layout, arrays) -> tuple:
    key = []
    for e in layout:
        if e is None:
            key.append(None)
        elif e[0] == "s":
            start, stop, step = e[1]
            key.append(slice(start, None if stop < 0 else stop, step))
        else:
            key.append(arrays[e[1]])
    return tuple(key)


def pack(entries, where, core, dtype: str, lead=()) -> Node:
    """An array of trailing shape ``core`` that is zero except at ``where[k]`` (a list of core
    positions), which hold ``entries[k]`` (broadcast over leading axes)."""
    return Node("pack", tuple(entries), tuple(lead) + tuple(core), dtype, (tuple(map(tuple, where)), tuple(core)))


def index_shape(idx, core):
    out = []
    for e in idx:
        if e is None:
            out.append(1)
        elif isinstance(e, tuple):
            out.append(len(range(*e)))
    return tuple(out)


def concat(nodes, axis: int) -> Node:
    """Concatenate along a negative axis; leading axes must agree."""
    nodes = tuple(nodes)
    ref = nodes[0].shape
    for n in nodes[1:]:
        if len(n.shape) != len(ref) or any(
            a != b for i, (a, b) in enumerate(zip(n.shape, ref)) if i - len(ref) != axis
        ):
            raise ShapeError(
                f"all arrays must match except along the concatenation axis: {[n.shape for n in nodes]}"
            )
    shape = list(ref)
    shape[axis] = sum(n.shape[axis] for n in nodes)
    return Node("concat", nodes, shape, result_dtype(*(n.dtype for n in nodes)), (axis,))


# ---------------------------------------------------------------------------------------------
# Graph utilities
# ---------------------------------------------------------------------------------------------


def toposort(outputs) -> list:
    """Every node reachable from ``outputs``, inputs before users, in a deterministic order."""
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
            for child in reversed(node.inputs):
                if id(child) not in seen:
                    stack.append((child, False))
    return order


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
        params = sympy.srepr(n.body) if n.op == "elementwise" else repr(
            tuple(p.digest if isinstance(p, Constant) else p for p in n.params)
        )
        h.update(f"{n.op}|{[ids[id(i)] for i in n.inputs]}|{n.shape}|{n.dtype}|{params}\n".encode())
    h.update(repr([ids[id(o)] for o in outputs]).encode())
    return h.hexdigest()


_fresh_inputs = itertools.count()


def fresh_input(position: int, shape, dtype: str) -> Node:
    """An input node unlike any other (never merged with another trace's inputs): nested
    transforms and scalar derivatives trace over these, then put the real operands in their place."""
    return Node("input", (), shape, dtype, (position, "fresh", next(_fresh_inputs)))


def substitute(outputs, replacements: dict) -> list:
    """``outputs`` with nodes replaced (``{id(old): new}``, same shapes), every user rebuilt."""
    mapping: dict = {}
    for n in toposort(outputs):
        if id(n) in replacements:
            mapping[id(n)] = replacements[id(n)]
            continue
        inputs = tuple(mapping[id(i)] for i in n.inputs)
        changed = any(a is not b for a, b in zip(inputs, n.inputs))
        mapping[id(n)] = Node(n.op, inputs, n.shape, n.dtype, n.params) if changed else n
    return [mapping[id(o)] for o in outputs]
