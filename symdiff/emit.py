"""Stage 4, emit: turn an optimized IR graph into the source of a standalone numpy module.

The emitter only prepares a data model (names, statements as plain dicts) and renders the jinja2
templates in ``templates/``; SymPy's printer writes the scalar bodies. Afterwards the source imports
numpy and nothing else, and every identifier in it was generated or sanitized here.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
import keyword
import re
from dataclasses import dataclass, field
import numpy as np
import sympy

from . import emit_layout as layout
from . import chunking, inplace, ir, ops, sample_sum_emit, scalar_entry
from .ir import placeholder
from .ops.base import StatementContext, numpy_dtype_name
from .printing import _ARRAY_API, _ARRAY_API32, _NUMBA, _NUMBA32, _PRINTER, _PRINTER32, array_literal, nested_list
from .printing import NumbaFastPrinter, share_exp, wrap
from .printing import print_expr as _print
from .emit_templates import environment as _environment
from .errors import CompileError

FUSED = ("numba", "numba_parallel")  # backends whose per-point functions are one compiled loop
CSE_MAX_BODIES = 80  # beyond this many elementwise bodies, sympy.cse costs more than it finds
RESERVED = {"np", "numpy", "batch", "sys", "os", "builtins", "abs", "min", "max", "sum", "len", "range",
            "math", "numba", "getattr", "_argument", "_REGENERATE", "_FLOAT64", "_FLOAT32", "_FLOAT16",
            "xp", "array_api_compat", "tuple"}
_INTERNAL = re.compile(r"^([tckK]|array)\d+$")


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


def sanitize(name: str, taken: set) -> str:
    """A readable, safe ASCII identifier for user-supplied ``name``, unique within ``taken``."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", str(name))[:40].strip("_") or "arg"
    if base[0].isdigit():
        base = "arg_" + base
    if keyword.iskeyword(base) or base in RESERVED or _INTERNAL.match(base) or base.startswith("__"):
        base = base.strip("_") + "_"
        if keyword.iskeyword(base) or not base.isidentifier():
            base = "arg_" + base
    candidate, k = base, 1
    while candidate in taken:
        k += 1
        candidate = f"{base}{k}"
    taken.add(candidate)
    return candidate


# ---------------------------------------------------------------------------------------------
# Data model of one generated function
# ---------------------------------------------------------------------------------------------


@dataclass
class FunctionPlan:
    """What one generated function computes: inputs, outputs, and the words for its docstring."""

    name: str
    summary: str
    param_names: list  # sanitized, one per input position
    inputs: list  # input nodes, one per position
    outputs: list  # flat list of output nodes
    output_dtypes: list  # dtype each output is returned as
    doc: list = field(default_factory=list)
    core_ranks: dict = field(default_factory=dict)  # position -> core rank, for batched arguments
    constant_names: list = field(default_factory=list)  # filled by render: keyword names of constants
    keyword_inputs: int = 0  # the last this many inputs are keyword-only parameters
    elementwise: bool = False  # every input is a batch of scalars (derivative): any shape is accepted


def render(title: str, notes: list, plans: list, version: str, backend: str = "numpy",
           regenerate: str | None = None) -> tuple[str, list]:
    """Source text of a module holding every plan's function, and each function's constant digests.

    With ``backend="numba"``, functions that are elementwise per point (scalar functions, small
    scalarized cores) become one compiled loop; the others stay numpy code. With
    ``backend="array_api"``, functions call the standard through their inputs' namespace."""
    array_api = backend == "array_api"
    functions, constants = [], []
    literals: dict = {}  # digest -> module-level name of a small array built inside the user's function
    module_constants: list = []
    kernels: list = []  # module-level loops of sample sums (symdiff.sample_sum_emit)
    for plan in plans:
        model, consts = _function_model(plan, numba=backend in FUSED and numba_fusible(plan),
                                        literals=literals, module_constants=module_constants, array_api=array_api)
        plan.constant_names = list(model["constants"])
        # numpy-only speedups: a Python-float twin of small scalar functions, and large elementwise
        # bodies over cache-sized slices; the array API module stays on its inputs' namespace
        model["scalar"] = None if array_api else scalar_entry.model(plan, _FunctionWriter)
        if model["points"] is None:  # a numpy function: render its body once, count what it executes
            model["body"] = _environment(array_api).get_template("function.j2").module.function_body(model)
            model["total_ops"] = layout.count_ops(model["body"])
            model["chunk"] = None if array_api else chunking.model(plan, model)
            if model["chunk"]:
                model["body"] = _environment().get_template("function.j2").module.function_body(model)
        # sample sums (issue 16): a proven sum over rows becomes one pass over the rows; else unchanged
        helpers, loops = ([], []) if array_api else sample_sum_emit.attach(
            plan, model, backend,
            lambda p: _function_model(p, literals=literals, module_constants=module_constants), _render_sample_sum)
        for helper in helpers:
            helper.setdefault("scalar", None)
        functions.extend(helpers)
        kernels.extend(loops)
        functions.append(model)
        constants.extend([[]] * len(helpers) + [consts])
    template = {"numba": "numba_module.py.j2", "numba_parallel": "numba_module.py.j2",
                "array_api": "array_api_module.py.j2"}.get(backend, "module.py.j2")
    uses_scipy_special = any("scipy.special." in repr(_code_fields(s)) for f in functions for s in f["statements"])
    uses_numpy = (backend in FUSED or bool(module_constants) or any(_uses_numpy(f) for f in functions)
                  or any(f["checks"] for f in functions))
    text = _environment(array_api).get_template(template).render(
        module={"title": _doc_text(title), "notes": [_doc_text(n) for n in notes], "version": version,
                "functions": functions, "uses_numpy": uses_numpy, "constants": module_constants,
                "uses_scipy": uses_scipy_special, "parallel": backend == "numba_parallel",
                "fast_math": sorted({h for f in functions if f.get("points") for h in f["points"]["helpers"]}
                                   | {h for k in kernels for h in k["helpers"]}),
                "uses_math": any(f.get("scalar") and f["scalar"]["uses_math"] for f in functions),
                "checks": any(f["checks"] for f in functions), "regenerate": repr(str(regenerate or _REGENERATE)),
                "check_dtypes": sorted({c["dtype"] for f in functions for c in f["checks"]}),
                # the array API module's helpers that some function calls (the others are left out)
                "helpers": {h for h in ("_core_first", "_set", "_broadcast_shapes")
                            if any(f["body"] and f"{h}(" in f["body"] for f in functions)}}
    )
    if kernels:
        text = text.rstrip() + "".join(_sample_sum_macros().kernel(k) for k in kernels)
        steps = repr([k["steps"] for k in kernels])  # the compiled block products they call, once
        text = text.rstrip() + _sample_sum_macros().block_products([h for h in sample_sum_emit.HELPERS if h in steps])
    return text.rstrip() + "\n", [c for c, f in zip(constants, functions) if not f.get("sample_sum_helper")]


# arrays built inside the user's function up to this size (and source length) are written into the module
LITERAL_MAX, LITERAL_MAX_TEXT = 256, 4096
_REGENERATE = "symdiff compiles for the shapes and dtypes of the arguments: call the transform with these arguments"


_PLAIN_OPS = {"assign", "index", "matmul", "reshape", "free"}  # statements whose templates write no `np.`


def _uses_numpy(f: dict) -> bool:
    return (
        bool(f.get("needs_batch"))
        or any(r["broadcast"] is not None or r["dtype"] for r in f["returned"])
        or any(s["op"] not in _PLAIN_OPS or "np." in repr(_code_fields(s)) for s in f["statements"])
    )


def _code_fields(statement: dict) -> dict:
    """The fields of a statement that become code (not its SymPy body nor its comment)."""
    return {k: v for k, v in statement.items() if k not in ("sexpr", "origin", "comment", "block")}


def _doc_text(s: str) -> str:
    """Text that is safe inside a triple-quoted docstring."""
    return str(s).replace("\\", "\\\\").replace('"""', "'''")


@lru_cache(maxsize=1)
def _sample_sum_macros():
    return _environment().get_template("sample_sum.j2").module


def _render_sample_sum(macro: str, model: dict, data) -> str:
    """A sample-sum body: ``function_body`` of function.j2, or a driver of sample_sum.j2."""
    if macro == "function_body":
        model["sample_sum_helper"] = True
        return _environment().get_template("function.j2").module.function_body(model)
    return getattr(_sample_sum_macros(), macro)(model, data)


def numba_fusible(plan: FunctionPlan) -> bool:
    """True if every value is a scalar per point: inputs, single elements of inputs, elementwise
    scalars, and packed outputs. Such a function runs as one loop over points."""
    if any(n.dtype not in ("float64", "float32") for n in plan.inputs):
        return False
    arguments = {id(n) for n in plan.inputs}
    if not all(ops.of(n).per_point(n, arguments, plan.outputs) for n in ir.toposort(plan.outputs)):
        return False
    return all(o.op != "input" or o.shape == () for o in plan.outputs)


def _function_model(plan: FunctionPlan, numba: bool = False, literals=None, module_constants=None,
                    array_api: bool = False):
    """The data model of one generated function (what its template renders), and the digests of the
    constants it takes as keyword arguments."""
    writer = _FunctionWriter(plan, numba, literals, module_constants, array_api)
    statements, returned = writer.write()
    names = [r["name"] for r in returned]
    n_positional = len(plan.param_names) - plan.keyword_inputs
    output_start = layout.output_start(statements, names)
    model = {
        "name": plan.name,
        "points": writer.points(returned, statements) if numba else None,
        "params": plan.param_names[:n_positional],
        "keyword_params": plan.param_names[n_positional:],
        "constants": writer.const_names,
        "checks": writer.checks(),
        "summary": _doc_text(plan.summary),
        "doc": [_doc_text(d) for d in writer.doc()],
        "batch_args": [{"name": plan.param_names[p], "core_rank": r} for p, r in sorted(plan.core_ranks.items())],
        "statements": statements,
        "output_start": output_start,
        "intermediate_terms": layout.intermediate_count(statements[:output_start]),
        "total_ops": None,  # filled by render, from the rendered body
        "chunk": None,  # filled by render for long elementwise bodies (symdiff.chunking)
        "body": None,  # rendered by render (once: the op count is read off it)
        "returned": returned,
        "needs_batch": any(s["op"] in ("pack", "assign_full") and s.get("batched") for s in statements)
        or any(r["broadcast"] is not None for r in returned),
        # array API: the arguments giving the namespace, and the one whose float dtype constants take
        "namespace_args": plan.param_names,
        "module_constants": module_constants if module_constants is not None else [],
        "float_arg": next((plan.param_names[i] for i, n in enumerate(plan.inputs[:n_positional])
                           if np.dtype(n.dtype).kind == "f"), None),
    }
    return model, writer.consts


class _FunctionWriter:
    """The statements of one function: a name for every node, one ``sympy.cse`` over all its
    elementwise bodies, each node's statement in topological order, then the in-place passes."""

    def __init__(self, plan: FunctionPlan, numba: bool, literals, module_constants, array_api=False):
        self.plan, self.numba, self.array_api = plan, numba, array_api
        batched_inputs = {id(plan.inputs[p]) for p in plan.core_ranks}
        self.outputs = plan.outputs if numba or not batched_inputs else ops.align_batches(plan.outputs, batched_inputs)
        self.batched = ops.batch_carriers(self.outputs, batched_inputs)
        self.single = all(np.dtype(n.dtype) != np.float64 for n in plan.inputs)
        # float64 kernels call the vectorizable helpers of numba_math.j2 (float32 ones stay on math)
        self.fast = NumbaFastPrinter({"fully_qualified_modules": True}) if numba and not self.single else None
        self.nodes = ir.toposort(self.outputs)
        self.names = {id(node): plan.param_names[pos] for pos, node in enumerate(plan.inputs)}
        self.taken = set(plan.param_names) | RESERVED
        self.consts, self.const_names = [], []
        self.statements: list = []
        self._counter = itertools.count()
        self._symbols: dict = {}
        self._emitted: set = set()
        self._name_nodes(literals, module_constants)
        self._share_bodies()
        self._count_uses()

    # -- names and shared subexpressions --------------------------------------------------------
    def print_expr(self, expr) -> str:
        if self.numba:
            return wrap((self.fast or (_NUMBA32 if self.single else _NUMBA)).doprint(expr))
        if self.array_api:
            return wrap((_ARRAY_API32 if self.single else _ARRAY_API).doprint(expr))
        return _print(expr, self.single)

    def new_name(self, prefix="t") -> str:
        while True:
            name = f"{prefix}{next(self._counter)}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def sym(self, node):
        # plain symbols: printing and cse then skip SymPy's (slow) assumption queries
        return self._symbols.setdefault(id(node), sympy.Symbol(self.names[id(node)]))

    def canonical(self, node):
        return self.twin_of.get(id(node), node)

    def _name_nodes(self, literals, module_constants):
        """Name every node; collect the elementwise bodies over named symbols for one global cse."""
        if self.numba:  # packed outputs are written straight into the output arrays
            for k, o in enumerate(self.outputs):
                if o.op == "pack":
                    self.names[id(o)] = f"out{k}"
        self.bodies, self.body_nodes = [], []
        by_body: dict = {}
        self.twin_of: dict = {}  # id of a node -> the earlier node with the same body over the same arrays
        for node in self.nodes:
            if id(node) in self.names:
                continue
            if node.op == "const":
                self.names[id(node)] = _constant_name(node.params[0], self.consts, self.const_names, self.taken,
                                                      literals, module_constants)
                continue
            if node.op == "elementwise" and node.inputs:
                body = node.body.xreplace({placeholder(i): self.sym(x) for i, x in enumerate(node.inputs)})
                twin = by_body.setdefault((body, node.shape, node.dtype), node)
                if twin is not node:  # e.g. minimum(y, x) beside minimum(x, y): one array under one name
                    self.twin_of[id(node)] = twin
                    self.names[id(node)] = self.names[id(twin)]
                    continue
                self.bodies.append(body)
                self.body_nodes.append(node)
            self.names[id(node)] = self.new_name()
        self.shapes = {self.names[id(n)]: n.shape for n in self.nodes}

    def _share_bodies(self):
        """One cse over every body; a node whose whole body is one cse temp takes the temp's place
        (no ``t1 = c0`` copies; the node's statement then moves to the temp's first use)."""
        bodies = share_exp(self.bodies)
        if bodies and len(bodies) <= CSE_MAX_BODIES:
            replacements, reduced = sympy.cse(bodies, symbols=_cse_symbols(self.taken), order="none")
        else:  # a long program (e.g. Taylor coefficients) is already shared node by node
            replacements, reduced = [], bodies
        temps = dict(replacements)
        alias = {}
        for n, e in zip(self.body_nodes, reduced):
            if e in temps and e not in alias:
                alias[e] = self.sym(n)
        if alias:
            temps = {alias.get(k, k): v.xreplace(alias) for k, v in temps.items()}
            reduced = [e.xreplace(alias) for e in reduced]
        self.temps = temps
        self.reduced_of = {id(n): e for n, e in zip(self.body_nodes, reduced)}
        self.node_of_temp = {self.sym(n): n for n in self.body_nodes if self.sym(n) in temps}

    def _count_uses(self):
        need_shape = _needs_exact_shape(self.nodes, self.outputs)
        self.consumers_need_shape = {id(self.canonical(n)) for n in self.nodes if id(n) in need_shape}
        self.uses, self.consumers = {}, {}
        for n in self.nodes:
            for i in map(self.canonical, n.inputs):
                self.uses[id(i)] = self.uses.get(id(i), 0) + 1
                self.consumers.setdefault(id(i), []).append(n)
        returned = {id(self.canonical(o)) for o in self.outputs}
        self.inline = {  # elementwise entries written straight into the slot of the pack that reads them
            id(e)
            for n in self.nodes
            if n.op == "pack"
            for e in map(self.canonical, n.inputs)
            if e.op == "elementwise" and e.inputs and self.uses.get(id(e)) == 1 and id(e) not in returned
        }

    # -- statements ------------------------------------------------------------------------------
    def write(self) -> tuple:
        """(statements, returned values) after the in-place passes and renumbering."""
        context = StatementContext(self.names, self.batched, self.numba, self.statements, self.new_name, self.array_api)
        for node in self.nodes:
            start = len(self.statements)
            origin = node.origin and node.origin.describe(self.plan.param_names)
            try:
                self._write(node, context)
            except CompileError as e:  # a form the backend lacks: say which line of the user's program needs it
                if not origin or "(at " in str(e):
                    raise
                raise CompileError(f"{e} (needed at {origin})") from None
            layout.tag_origin(self.statements, start, origin)
        returned = [self._returned(node, dtype) for node, dtype in zip(self.outputs, self.plan.output_dtypes)]
        names = [r["name"] for r in returned]
        statements = self.statements
        if not self.numba:
            statements = inplace.drop_unread(statements, names)
            # numpy's ufuncs into out= buffers: not on the array API (JAX arrays cannot be written)
            if not self.plan.core_ranks and len({n.dtype for n in self.plan.inputs}) <= 1 and not self.array_api:
                bound = (_PRINTER32 if self.single else _PRINTER).exp_bound
                statements = inplace.rewrite(statements, names, self.shapes, self.print_expr, bound)
            if not self.plan.core_ranks:
                statements = inplace.release(statements, names, self.shapes)
        statements, _, self.rename = layout.renumber(statements, names)
        layout.comments(statements)
        return statements, [{**r, "name": self.rename(r["name"])} for r in returned]

    def _write(self, node, context):
        if ops.of(node).passed_in or id(node) in self.twin_of:
            return
        if node.op == "pack":
            self._write_pack(node)
        elif node.op == "elementwise":
            self._write_elementwise(node)
        else:  # every other op writes its own statement (symdiff.ops: Op.statement)
            self.statements.append(ops.of(node).statement(node, context))

    def _emit_temps(self, expr):
        """The cse temps ``expr`` reads that are not written yet, each after those it reads."""
        for s in sorted(expr.free_symbols, key=lambda s: s.name):
            if s not in self.temps or s in self._emitted:
                continue
            self._emit_temps(self.temps[s])
            self._emitted.add(s)
            self.shapes[s.name] = _static_shape(self.temps[s], self.temps, self.shapes)
            node = self.node_of_temp.get(s)
            value = {"target": s.name, "expr": self.print_expr(self.temps[s]), "sexpr": self.temps[s]}
            if node is not None and id(node) in self.consumers_need_shape and self.shapes[s.name] != node.shape:
                self.shapes[s.name] = node.shape  # e.g. a body that does not read the operand giving its shape
                self.statements.append({"op": "assign_full", **value, "shape": node.shape,
                                        "batched": id(node) in self.batched})
            else:
                self.statements.append({"op": "assign", **value})

    def _fill(self, node, value):
        self.statements.append({"op": "fill", "target": self.names[id(node)], "shape": node.shape,
                                "dtype": _np_dtype(node.dtype), "value": self.print_expr(value)})

    def _write_elementwise(self, node):
        target, batched = self.names[id(node)], id(node) in self.batched
        if not node.inputs:
            if node.shape == () and self.uses.get(id(node)) and all(
                c.op == "pack" for c in self.consumers.get(id(node), ())
            ):
                return  # a number the packs that read it write inline
            self._fill(node, node.body)
            return
        if id(node) in self.inline:
            return  # written straight into its slot by the pack that uses it
        expr = self.reduced_of[id(node)]
        if expr in self.temps:
            self._emit_temps(expr)  # defined where the temp it replaced was first needed
        elif expr.is_number and not batched:
            self._fill(node, expr)  # a body that became a number (operands merged): np.full has its dtype
        else:
            self._emit_temps(expr)
            static = _static_shape(expr, self.temps, self.shapes)
            full = id(node) in self.consumers_need_shape and static != node.shape
            if not full:  # elementwise consumers broadcast a smaller array; their shapes must know it
                self.shapes[target] = static
            self.statements.append({"op": "assign_full" if full else "assign", "target": target,
                                    "expr": self.print_expr(expr), "shape": node.shape, "batched": batched,
                                    "sexpr": expr})

    def _write_pack(self, node):
        where, _ = node.params
        batched = id(node) in self.batched
        lines = []
        for entry, positions in zip(map(self.canonical, node.inputs), where):
            if ir.is_fill(entry) and entry.shape == ():
                value = self.print_expr(entry.body)
            elif id(entry) in self.inline:
                self._emit_temps(self.reduced_of[id(entry)])
                value = self.print_expr(self.reduced_of[id(entry)])
            else:
                value = self.names[id(entry)]
            lines.append({"positions": [list(p) for p in positions], "value": value})
        self.statements.append({
            "op": "pack", "target": self.names[id(node)], "shape": node.shape, "batched": batched and not self.numba,
            "dtype": _np_dtype(node.dtype), "lines": lines, "rank": node.ndim,
            "lead": ["i"] if self.numba else [] if batched else ["..."],  # batched packs are core-first
        })

    def _returned(self, node, dtype) -> dict:
        """A returned value: its name, the batch shape it is broadcast to, the dtype it is cast to."""
        broadcast = node.shape if self.plan.core_ranks and id(node) not in self.batched else None
        # an argument, or a cast node (its body is the bare operand, printed as the operand's name)
        cast = np.dtype(node.dtype) != np.dtype(dtype) or node.op == "input" or (
            node.op == "elementwise" and node.body.is_Symbol)
        return {"name": self.names[id(node)], "broadcast": broadcast, "dtype": _np_dtype(dtype) if cast else None}

    # -- the rest of the model -------------------------------------------------------------------
    def points(self, returned, statements) -> dict:
        """The numba kernel's view: per-point inputs and outputs, and the helpers of numba_math.j2 it
        calls with, per call, the test of points to rerun on ``math`` (``far``)."""
        plan = self.plan
        code = repr([_code_fields(s) for s in statements])
        calls = [(name, far, arg) for name, far, arg in ((n, f, self.rename(a)) for n, f, a in self.fast.calls)
                 if f"_fast_{name}({arg})" in code] if self.fast else []  # the calls that made it into statements
        return {
            "far": list(dict.fromkeys(f"_far_{far}({arg})" for _, far, arg in calls if far)),
            "helpers": sorted({name for name, _, _ in calls}),
            "inputs": [{"name": plan.param_names[i], "core": n.shape, "dtype": n.dtype, "scalar": n.shape == ()}
                       for i, n in enumerate(plan.inputs)],
            "outputs": [{"index": k, "core": o.shape, "dtype": _np_dtype(d), "packed": o.op == "pack",
                         "value": r["name"]}
                        for k, (o, d, r) in enumerate(zip(self.outputs, plan.output_dtypes, returned))],
        }

    def _const_nodes(self) -> dict:
        return {n.params[0].digest: n for n in self.nodes if n.op == "const"}

    def doc(self) -> list:
        lines = list(self.plan.doc)
        if self.const_names:
            const_nodes = self._const_nodes()
            lines.append("Keyword arguments (arrays the function reads; pass the same values):")
            for digest, name in zip(self.consts, self.const_names):
                const = const_nodes[digest].params[0]
                origin = f"the array {const.name}" if const.name else "an array built inside the function"
                lines.append(f"    {name}: {const.value.dtype} array of shape {const.value.shape}, {origin}")
        return lines

    def checks(self) -> list:
        plan, const_nodes = self.plan, self._const_nodes()
        checks = [_argument_check(plan, i, plan.param_names[i], n.shape, n.dtype) for i, n in enumerate(plan.inputs)]
        return checks + [{"name": name, "shape": const_nodes[d].shape, "dtype": str(const_nodes[d].dtype),
                          "batched": False} for d, name in zip(self.consts, self.const_names)]


def _argument_check(plan: FunctionPlan, position: int, name: str, shape, dtype) -> dict:
    """What the generated function checks about one argument on entry: its whole shape, the
    trailing (core) axes of a batched argument, or nothing for elementwise functions; and its dtype."""
    if plan.elementwise:
        shape, batched = None, False
    elif position in plan.core_ranks:
        rank = plan.core_ranks[position]
        shape, batched = (tuple(shape[len(shape) - rank :]) if rank else None), True
    else:
        batched = False
    return {"name": name, "shape": shape, "dtype": str(dtype), "batched": batched}


def _constant_name(const, consts, const_names, taken, literals, module_constants) -> str:
    """How generated code reads a constant: a small array built inside the user's function is a
    module-level literal; an array the function reads under a name is a keyword parameter of that
    name; a large array built inside the function is a keyword parameter ``array<k>``."""
    if const.digest in consts:
        return const_names[consts.index(const.digest)]
    text = array_literal(const.value) if const.name is None and const.value.size <= LITERAL_MAX else None
    if text is not None and len(text) <= LITERAL_MAX_TEXT and literals is not None:
        if const.digest not in literals:
            literals[const.digest] = f"K{len(literals)}"
            module_constants.append({"name": literals[const.digest], "value": text, "literal": nested_list(const.value),
                                     "dtype": numpy_dtype_name(const.value.dtype),
                                     "float": const.value.dtype.kind == "f"})
        return literals[const.digest]
    consts.append(const.digest)
    const_names.append(sanitize(const.name or f"array{len(consts) - 1}", taken))
    return const_names[-1]


_np_dtype = numpy_dtype_name


def _cse_symbols(taken):
    k = 0
    while True:
        name = f"c{k}"
        k += 1
        if name not in taken:
            taken.add(name)
            yield sympy.Symbol(name)


def _needs_exact_shape(nodes, outputs) -> set:
    """Elementwise results read by structural ops or returned must have their full shape; elementwise
    consumers broadcast anyway."""
    need = {id(o) for o in outputs}
    for n in nodes:
        if n.op != "elementwise":
            need.update(id(i) for i in n.inputs)
    return need


def _static_shape(expr, temps, shapes):
    syms = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        for s in e.free_symbols:
            if s in temps:
                stack.append(temps[s])
            else:
                syms.add(s)
    return tuple(np.broadcast_shapes(*(shapes[s.name] for s in syms))) if syms else ()


