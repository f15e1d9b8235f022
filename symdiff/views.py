"""What a transform shows besides its values: the emitter's plan of its generated function, its
optimized IR as text, and its result as a SymPy formula.

``plan`` is the data model the emitter renders (names, docstring lines, inputs and outputs); the
call path compiles it on a cache miss. ``graph`` and ``formula`` are for people reading what a
transform computes. Like ``symbolic``, nothing here is loaded by a call whose code is cached.
"""

from __future__ import annotations

import numpy as np

from . import emit, ir, ops, optimize, symbolic
from .arguments import NO_KEYWORDS
from .dispatch import _base, _chain_kinds, _flatten, _unflatten
from .errors import SymdiffError
from .graph import placeholder
from .transforms import _primal

_SUMMARY = {
    "grad": "Gradient of {f} with respect to {wrt}.",
    "value_and_grad": "Value and gradient of {f} with respect to {wrt}.",
    "jacobian": "Jacobian of {f} with respect to {wrt} (output axes first, then input axes).",
    "hessian": "Hessian of {f} with respect to {wrt}.",
    "derivative": "Derivative of order {order} of {f} with respect to {wrt}, elementwise over broadcast arguments.",
}


def plan(t, in_nodes, base_out=None, core_ranks=None, call=None):
    """(the emitter's ``FunctionPlan``, the output tree, constant digest -> value) of transform ``t``."""
    core_ranks = core_ranks or {}
    call = call or NO_KEYWORDS
    flat, tree = _flatten(t.symbolic(in_nodes, base_out, batched=bool(core_ranks), call=call))
    flat = optimize.optimize(flat)
    n_positional = len(in_nodes) - len(call.keywords)
    names = sanitized_params(t._traced_names(n_positional, call) + list(call.keywords))
    base_name = getattr(_base(t), "__name__", "f")
    function_plan = emit.FunctionPlan(
        name=emit.sanitize(f"{t.kind}_{base_name}", set(names)),
        summary=_summary(t, base_name, [names[p] for p in t._wrt_list(n_positional, call)]),
        param_names=names,
        inputs=in_nodes,
        outputs=flat,
        output_dtypes=[o.dtype for o in flat],
        doc=_doc(t, in_nodes, flat, names, core_ranks, call),
        core_ranks=core_ranks,
        keyword_inputs=len(call.keywords),
        elementwise=t.kind == "derivative",
    )
    values = {n.params[0].digest: n.params[0].value for n in ir.toposort(flat) if n.op == "const"}
    return function_plan, tree, values


def _summary(t, base_name, wrt_names) -> str:
    summary = _SUMMARY[t.kind].format(f=emit.sanitize(base_name, set()), wrt=", ".join(wrt_names), order=t.order)
    if _base(t) is not t.fun:
        summary += f" (composed: {' of '.join(_chain_kinds(t))})"
    if getattr(t, "note", None):  # what the result is part of (sparse derivatives: nnz and colours)
        summary += f"\n\n{t.note}"
    return summary


def _doc(t, in_nodes, flat, names, core_ranks, call) -> list:
    """The docstring lines of the generated function: arguments (static values baked in included),
    results and the short formula."""
    elementwise = t.kind == "derivative"
    doc = ["Arguments:"]
    for i, n in enumerate(in_nodes):
        shape = "any shape (broadcast)" if elementwise else f"shape {n.shape}"
        batch = " with leading batch axes" if i in core_ranks and not elementwise else ""
        doc.append(f"    {names[i]}: {n.dtype}, {shape}{batch}")
    statics = [(t._arg_name(p), v) for p, v in call.fixed] + sorted(call.static.items())
    doc += [f"    {name} = {_static_text(v)} (static)" for name, v in statics]
    doc.append("Returns:")
    batch = "..., " if core_ranks and not elementwise else ""
    for o in flat:
        shape = f"({batch}{', '.join(map(str, o.shape))})" if batch else str(o.shape)
        doc.append(f"    {o.dtype} array" if elementwise else f"    {o.dtype} array of shape {shape}")
    formula = _short_formula(flat, names)
    if formula:
        doc += ["Formula:", f"    {formula}"]
    return doc


def _static_text(value) -> str:
    """A static value for the docstring: its repr, unless that is long or could end the docstring."""
    text = repr(value)
    if len(text) > 60 or not text.isprintable() or "\\" in text or '"' in text:
        return f"<{type(value).__name__}>"
    return text


def graph(t, args, kwargs, format="text", program=False) -> str:
    """The optimized IR of transform ``t`` (or with ``program``, of the function it differentiates)
    for arguments like ``args``, as text, or as a picture (``symdiff.pictures``: 'dot', 'mermaid' or 'svg')."""
    from . import pictures

    if format not in pictures.FORMATS:
        raise SymdiffError(f"unknown graph format {format!r}; choose one of {', '.join(pictures.FORMATS)}")
    _, specs, _, call = t._specs(args, kwargs)
    in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
    out = _primal(t.fun, in_nodes, None, call) if program else t.symbolic(in_nodes, call=call)
    flat = optimize.optimize(_flatten(out)[0])
    if format == "text":
        return ir.format_graph(flat)
    n_positional = len(specs) - len(call.keywords)
    names = sanitized_params(t._traced_names(n_positional, call) + list(call.keywords))
    base_name = getattr(_base(t), "__name__", "f")
    title = _summary(t, base_name, [names[p] for p in t._wrt_list(n_positional, call)]).split("\n")[0]
    title = f"The program of {emit.sanitize(base_name, set())}" if program else title
    return pictures.render(pictures.from_ir(flat, names, title), format)


def formula(t, args, kwargs):
    """The result of transform ``t`` as SymPy: an expression for scalars, a Matrix or Array for arrays."""
    _, specs, _, call = t._specs(args, kwargs)
    n_positional = len(specs) - len(call.keywords)
    names = sanitized_params(t._traced_names(n_positional, call) + list(call.keywords))
    if t.kind == "derivative":  # one closed form, whatever the generated program looks like
        return _derivative_formula(t, specs, call, names, n_positional)
    in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
    flat, tree = _flatten(t.symbolic(in_nodes, call=call))
    flat = optimize.optimize(flat)
    if sum(int(np.prod(s, dtype=np.int64)) for s, _ in specs) > 400:
        raise SymdiffError("formula() scalarizes every element; use arguments with at most 400 elements")
    return _unflatten(tree, [_to_sympy(v) for v in _evaluate_symbolically(flat, specs, names)])


def _derivative_formula(t, specs, call, names, n_positional):
    import sympy

    in_nodes = [ir.input_node(i, (), d) for i, (_, d) in enumerate(specs)]
    wrt_pos = t._wrt_list(n_positional, call)
    (fused,) = optimize.optimize([_primal(t.fun, in_nodes, None, call)], keep=in_nodes, lower=False)
    size = symbolic.written_out_size(fused)
    if size > symbolic.MAX_FORMULA_TERMS:
        raise SymdiffError(
            f"the formula of this derivative has about {size:.2g} terms when written out (a value used "
            "twice per line doubles it); read the generated program with .source() instead"
        )
    by_rules = any(ops.of(n).opaque for n in ir.toposort([fused]))
    if by_rules:
        fused = symbolic.derivative_by_rules(t, fused, in_nodes, wrt_pos)
    body, free = symbolic.scalar_body_or_fail(t, fused, in_nodes)
    if any(not (n.op == "const" and n.shape == ()) for n in free):
        raise SymdiffError("formula() of a derivative needs a function of its scalar arguments and numbers")
    values = {placeholder(len(in_nodes) + k): sympy.Float(float(n.params[0].value)) for k, n in enumerate(free)}
    d = body.xreplace(values) if by_rules else symbolic.derivative_expr(t, body.xreplace(values), wrt_pos)
    return d.xreplace({placeholder(i): sympy.Symbol(n, real=True) for i, n in enumerate(names)})


def _evaluate_symbolically(flat, specs, names):
    """The outputs evaluated on arrays of SymPy symbols, one per element (``x_0_1`` for ``x[0, 1]``)."""
    import sympy

    from .evaluate import evaluate

    inputs = {}
    for i, (shape, _) in enumerate(specs):
        if shape == ():
            inputs[i] = np.array(sympy.Symbol(names[i], real=True), dtype=object)
        else:
            arr = np.empty(shape, dtype=object)
            for idx in np.ndindex(shape):
                arr[idx] = sympy.Symbol(f"{names[i]}_{'_'.join(map(str, idx))}", real=True)
            inputs[i] = arr
    return evaluate(flat, inputs, symbolic=True)


def _to_sympy(v):
    import sympy

    v = np.asarray(v, dtype=object)
    if v.ndim == 0:
        return sympy.sympify(v[()])
    if v.ndim <= 2:
        return sympy.Matrix(v.reshape(v.shape[0], -1) if v.ndim == 2 else v.reshape(-1, 1))
    return sympy.Array(v.tolist())


def _short_formula(flat, names):
    import sympy

    if len(flat) != 1 or flat[0].op != "elementwise" or any(i.op != "input" for i in flat[0].inputs):
        return None
    body = flat[0].body
    if sympy.count_ops(body) > 30:
        return None
    subs = {placeholder(i): sympy.Symbol(names[x.params[0]], real=True) for i, x in enumerate(flat[0].inputs)}
    return str(body.xreplace(subs))


def sanitized_params(names):
    taken: set = set()
    return [emit.sanitize(n, taken) for n in names]
