"""What an op is: one class per IR operation, registered by name, holding every rule about it.

The stages (differentiate, evaluate, optimize, emit) look an op up here and ask it; none of them
switches on op names. An op class states, next to each other, how a node of it is built (its shape
rule: a constructor function in the same module), its reverse-mode rule (``vjp``), its forward-mode
rule (``jvp``), how it evaluates on numpy or object arrays (``evaluate``), how it folds when an
input is one repeated number (``fold``), what generated code it becomes (``statement``: a data
model rendered by the op's own ``template`` or a shared macro of ``templates/statements.j2``), and
the numpy functions and array methods that build it (``ops.surface.numpy_function``, beside it).
"""

from __future__ import annotations

from ..extensions import note_extension
from ..graph import Node

REGISTRY: dict = {}


class Op:
    """The rules of one operation; subclasses override what applies to them."""

    name = ""
    # The VJP moves, copies or sums the entries of the cotangent (max/min: times a 0/1 mask over a
    # positive count), so the same rule applied to a 0/1 liveness says where a contribution may be
    # nonzero: a masked cotangent (np.where) keeps its mask through it.
    linear = False
    # A leaf (argument, constant, basis): no inputs, no derivative rules.
    leaf = False
    # Passed to the generated function (an argument or a constant), so no statement computes it.
    passed_in = False
    # Differentiated only by its own rules (a user-defined rule): never through a formula of its
    # value (the per-point SymPy paths, derivative()'s closed forms, are not used across it).
    opaque = False
    # The jinja text of this op's statement (its data model is ``s``, the macros of statements.j2
    # are ``st``); None: ``statement`` names a macro of statements.j2 that several ops share.
    template = None
    # backend="array_api": the jinja text of this op's statement there (its data model is ``s``, the
    # macros of templates/array_api_statements.j2 are ``st``); None: the macro its statement names;
    # False: the standard has no equivalent, and compiling says so naming ``spelled``.
    array_api_template = None
    # how a program writes this op, or the forms of it the standard lacks (np.einsum('ii->i')): the
    # array API backend's errors name it, and docs/operations.md lists it
    spelled = ""
    # The statement's result may share memory with its input ``s.x`` (a view): never written in place.
    returns_view = False
    # Every entry of the result is one entry of a (floating) input or a zero: its sparsity pattern
    # is the op evaluated on entry numbers (``ops.patterns.moved``).
    moves_entries = False

    def lower(self, node: Node):
        """What ``node`` is computed as in generated code, if not itself (after differentiation)."""
        return None

    def vjp(self, node: Node, g: Node, wanted: list, n_lead: int):
        """Yield ``(input position, cotangent contribution)`` for the inputs in ``wanted``."""
        raise NotImplementedError(f"no reverse-mode rule for {self.name}")

    def jvp(self, node: Node, tangents: list, lead: tuple):
        """The tangent of ``node`` (shape ``lead + node.shape``) from its inputs' (None: zero)."""
        raise NotImplementedError(f"no forward-mode rule for {self.name}")

    def evaluate(self, node: Node, xs: list, symbolic: bool):
        """The value of ``node`` from its inputs' values (object arrays of SymPy expressions if ``symbolic``)."""
        raise NotImplementedError(f"no evaluation rule for {self.name}")

    def sparsity(self, node: Node, patterns: list):
        """The structural nonzero pattern of ``node``'s derivative (boolean csr, one row per entry in C
        order) from its inputs' (``ops.patterns``). By default every entry depends on everything any
        input depends on: a correct superset, exact rules where an op can say better."""
        from . import patterns as pat

        return pat.moved(self, node, patterns) if self.moves_entries else pat.everything(node, patterns)

    def fold(self, node: Node, values: list):
        """A smaller equivalent of ``node`` (a one-number array, an identity removed) given which
        inputs are one repeated number (``values``: that number or None, per input), or None."""
        return None

    def per_point(self, node: Node, arguments: set, outputs: list) -> bool:
        """Whether a fused per-point kernel (the numba backend) computes ``node`` as one scalar per
        point (``arguments``: ids of the argument nodes)."""
        return False

    def batched_operand_ranks(self, node: Node):
        """The rank each input must have when it carries leading batch axes and numpy aligns
        trailing axes (elementwise: the node's rank), or None where no alignment is needed."""
        return None

    def statement(self, node: Node, emit) -> dict:
        """The data model of the generated statement computing ``node`` (``emit``: names and context).
        By default, for an op with its own ``template``: its target, input names and parameters."""
        if self.template is None:
            raise NotImplementedError(f"no code generation for {self.name}")
        inputs = [emit.name(i) for i in node.inputs]
        return {"op": self.name, "target": emit.name(node), "inputs": inputs, "x": inputs[0] if inputs else None,
                "params": node.params, "shape": node.shape}


class StatementContext:
    """What an op needs to write the statement of a node: the names of nodes, which nodes carry
    leading batch axes, the backend, and a core-first copy of a batched argument (written once)."""

    def __init__(self, names: dict, batched: set, numba: bool, statements: list, new_name, array_api=False):
        self._names, self._batched, self.numba, self.array_api = names, batched, numba, array_api
        self._statements, self._new_name, self._columns = statements, new_name, {}

    def name(self, node: Node) -> str:
        return self._names[id(node)]

    def batched(self, node: Node) -> bool:
        return id(node) in self._batched

    def swapped(self, name: str) -> str:
        """``name`` with its last two axes swapped, as the backend spells it (numpy 1.22 has no ``.mT``)."""
        return f"xp.matrix_transpose({name})" if self.array_api else f"np.swapaxes({name}, -1, -2)"

    def core_first(self, node: Node) -> str:
        """The name of a contiguous core-first copy of a batched argument (its columns then read fast)."""
        if id(node) not in self._columns:
            self._columns[id(node)] = self._new_name()
            self._statements.append({"op": "core_first", "target": self._columns[id(node)], "x": self.name(node),
                                     "rank": node.ndim})
        return self._columns[id(node)]


def numpy_dtype_name(dtype) -> str:
    """The attribute of numpy that names ``dtype`` in generated code (``np.float64``, ``np.bool_``)."""
    return {"bool": "bool_"}.get(str(dtype), str(dtype))


def register(cls):
    """Class decorator: one instance of ``cls`` is the op named ``cls.name`` (the same class
    defined again, as in a re-executed notebook cell, replaces itself)."""
    old = REGISTRY.get(cls.name)
    if old is not None and (type(old).__module__, type(old).__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"op {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    note_extension("op", cls.name, cls)
    return cls


def lookup(name: str) -> Op:
    return REGISTRY[name]


def of(node: Node) -> Op:
    """The op of ``node``."""
    return REGISTRY[node.op]


# ---------------------------------------------------------------------------------------------
# Helpers the rules share
# ---------------------------------------------------------------------------------------------


def with_ones(x: Node, axes) -> tuple:
    """``x``'s shape with the (negative) ``axes`` set to 1: a reduced result, ready to broadcast back."""
    return tuple(1 if k - x.ndim in axes else d for k, d in enumerate(x.shape))


def refilled(node: Node, values: list):
    """The fold of an op that only moves or repeats its input's entries: one repeated number in gives
    the same number out, as an array of the node's shape."""
    from .elementwise import fill

    return None if values[0] is None else fill(values[0], node.shape, node.dtype)


def zeros(shape, dtype) -> Node:
    from .elementwise import fill

    return fill(0, shape, dtype)


def unbroadcast(x: Node, target: tuple, n_lead: int) -> Node:
    """Sum ``x`` (shape ``L + s``) down to ``target`` (``L + t``, ``t`` broadcastable to ``s``)."""
    from .reductions import reduce_sum
    from .shape import reshape

    target = tuple(target)
    if x.shape == target:
        return x
    r_x, r_t = x.ndim - n_lead, len(target) - n_lead
    axes = list(range(-r_x, -r_t)) if r_x > r_t else []
    for k in range(1, r_t + 1):
        if target[-k] == 1 and x.shape[-k] != 1:
            axes.append(-k)
    out = reduce_sum(x, axes)
    return reshape(out, out.ndim - n_lead, target[n_lead:]) if n_lead or out.shape != target else out


def pad_rank(t: Node, rank: int, core_rank: int) -> Node:
    """Insert size-1 axes in front of the trailing ``core_rank`` axes until they number ``rank``."""
    from .shape import reshape

    if core_rank >= rank:
        return t
    core = t.shape[t.ndim - core_rank :]
    return reshape(t, core_rank, (1,) * (rank - core_rank) + core)


def lower(outputs) -> list:
    """``outputs`` with every node that has a lowering replaced by it (repeatedly: a lowered graph
    may hold more such nodes). Differentiation is over by then."""
    from ..graph import rewrite

    while True:
        lowered_any = False

        def lowered(node, original):
            nonlocal lowered_any
            replacement = REGISTRY[node.op].lower(node)
            lowered_any = lowered_any or replacement is not None
            return node if replacement is None else replacement

        outputs = rewrite(outputs, lowered)
        if not lowered_any:
            return outputs


def batch_carriers(outputs, batched_inputs: set) -> set:
    """The ids of the nodes that carry the leading batch axes of ``batched_inputs`` (a batched
    argument of a ``signature=`` function) and of every node computed from them."""
    from ..graph import toposort

    batched = set(batched_inputs)
    for n in toposort(outputs):
        if any(id(i) in batched for i in n.inputs):
            batched.add(id(n))
    return batched


def align_batches(outputs, batched_inputs: set) -> list:
    """Lowering for batched functions: the batch axes lead every array that carries them, so an
    operand of lower rank than its op expects gets explicit size-1 axes in front (numpy aligns
    trailing axes, which would otherwise pair a batch axis with a core axis)."""
    from ..graph import copy_node, rewrite
    from .shape import reshape

    batched = batch_carriers(outputs, batched_inputs)

    def aligned(node, original):
        ranks = REGISTRY[node.op].batched_operand_ranks(node)
        if ranks is not None:
            inputs = [reshape(x, x.ndim, (1,) * (rank - x.ndim) + x.shape) if id(o) in batched and x.ndim < rank else x
                      for x, o, rank in zip(node.inputs, original.inputs, ranks)]
            if any(a is not b for a, b in zip(inputs, node.inputs)):
                node = copy_node(node, inputs)
        if id(original) in batched:
            batched.add(id(node))
        return node

    return rewrite(outputs, aligned)
