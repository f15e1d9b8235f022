"""Code for sample sums (``symdiff.sample_sum``): one pass over the rows of the data.

numpy backend: the plan's function becomes a driver that runs the same graph over blocks of rows sized
to stay in the L2 cache (views of the row arguments, no copy) and adds the block sums in row order.
numba backend: when every row op is an elementwise op, an einsum or a sum, one compiled loop over
blocks of rows: products against parameters and sums of products over rows run on the block, which is
still in cache for the second product; elementwise terms and sums run row by row in one fused loop over
the block. Products with at most SKINNY columns on one side go to two compiled helpers (``_block_times``,
``_block_add_outer``, macro block_products of the template): four rows and two columns at a time, the
long contiguous axis innermost so numba's loop vectorizer uses AVX FMAs; wider ones to BLAS (``np.dot``).
An elementwise node calling a function with a fast helper (the ufunc table's ``fast=``, templates/numba_math.j2)
runs in its own loop over the block's entries, flat and contiguous for every operand so it vectorizes;
entries where a helper is not libm-exact are flagged and computed again on ``math`` before anything reads
them. W1 (loaded machine, CPU time): 0.45x of hand numpy with math.exp, 0.36x with the helper.
W1 (loaded machine, CPU time): np.dot 0.69x of hand-written numpy, the helpers 0.46x (OpenBLAS is slow on
8-column products; ``benchmarks/sample_sum.py --breakdown``); a loop over single rows with hand-written
products measured 1.6-2.8x slower than np.dot. Otherwise the numpy driver above. Rendered by
``templates/sample_sum.j2``.
"""

from __future__ import annotations

import numpy as np
import sympy

from . import sample_sum as ss
from .ir import placeholder
from .printing import NumbaFastPrinter, libm_text, wrap

L2_BYTES = 1024 * 1024  # this machine's L2; W1 (one loaded run): 2048 rows 0.82x, 512 0.99x, 8192 0.87x
MIN_BLOCK, MAX_BLOCK = 256, 8192
KERNEL_OPS = {"elementwise", "einsum", "sum"}
KERNEL_BLOCK = 512  # rows per block of the numba loop (W1, loaded machine: 256 to 2048 alike within noise)
# products with at most this many columns on one side run in the compiled helpers, wider ones in BLAS:
# X 100k x 64 against c columns, helpers/np.dot CPU time (loaded machine) c=8 0.71, 16 0.88, 32 1.04, 64 1.31
SKINNY = 16
HELPERS = ("_block_times", "_block_add_outer")  # their code: macro block_products of the template


def block_rows(s: ss.Split) -> int:
    """Rows per block: ``SYMDIFF_SAMPLE_SUM=<rows>``, or the power of two after which one block's row
    values (arguments and intermediates) would outgrow L2_BYTES."""
    chosen = ss.setting()
    if chosen.isdigit():
        return max(1, int(chosen))
    row_bytes = sum(8 * (n.size // max(n.shape[0], 1)) for n in s.nodes if s.kinds[id(n)] == ss.ROW)
    block = MIN_BLOCK
    while block * row_bytes <= L2_BYTES and block < MAX_BLOCK:
        block *= 2
    return block


def attach(plan, model, backend, function_model, render_body):
    """Turn ``model`` (the plan's function) into a one-pass driver when ``symdiff.sample_sum`` proves
    its outputs are sums over rows. Returns (helper function models, module-level kernel models); both
    empty (and ``model`` untouched) otherwise."""
    if plan.core_ranks or plan.elementwise or model["constants"] or model["points"] is not None:
        return [], []
    if any(str(d) != "float64" for d in plan.output_dtypes):
        return [], []
    s = ss.split(plan.inputs, plan.outputs)
    if s is None:
        return [], []
    names = {id(n): plan.param_names[k] for k, n in enumerate(plan.inputs)}
    row_names = [names[id(n)] for n in s.row_inputs]
    data = {"rows": s.rows, "row_args": row_names, "args": list(plan.param_names), "sums": len(s.sums)}
    kernel = _kernel(s, names, f"_rows_{plan.name}") if backend == "numba" and _kernel_fits(s) else None
    if kernel is not None and "scipy." in repr(kernel["steps"]):
        kernel = None  # scipy.special has no numba versions: the numpy driver
    block = block_rows(s)
    if kernel is None and s.rows <= block:
        return [], []
    helpers = []
    if kernel is None:
        for rows, name in ((block, f"_rows_{plan.name}"), (s.rows % block, f"_last_rows_{plan.name}")):
            if rows:
                helpers.append(_block_model(plan, s, rows, name, function_model, render_body))
    sums = [f"_sum{k}[0]" if kernel and n.ndim == 0 else f"_sum{k}" for k, n in enumerate(s.sums)]
    if s.tail:
        helpers.append(_tail_model(plan, s, function_model, render_body))
        returned = [f"{helpers[-1]['name']}({', '.join(data['args'] + sums)})"]
    else:
        returned = [next(e for e, n in zip(sums, s.sums) if n is o) for o in s.outputs]
    if any(h["constants"] for h in helpers):
        return [], []
    data["returned"] = ", ".join(returned)
    if kernel is not None:
        model["body"] = render_body("numba_driver", model, {**data, "kernel": kernel})
    else:
        model["body"] = render_body("blocked_driver", model, {
            **data, "block": block, "full_end": s.rows - s.rows % block, "rest": s.rows % block,
            "block_fn": helpers[0]["name"], "rest_fn": helpers[-1 - s.tail]["name"]})
    model["total_ops"] = None
    return helpers, [kernel] if kernel else []


def _tail_model(plan, s, function_model, render_body):
    """The function computing the outputs from the complete sums (and the arguments)."""
    from .emit import FunctionPlan

    inputs, outputs = ss.tail_graph(s)
    tail_plan = FunctionPlan(
        name=f"_total_{plan.name}", summary=f"{plan.summary} The outputs, from the sums over all rows.",
        param_names=list(plan.param_names) + [f"_sum{k}" for k in range(len(inputs))],
        inputs=list(plan.inputs) + inputs, outputs=outputs, output_dtypes=list(plan.output_dtypes),
        doc=[f"What {plan.name} returns, from its sums over rows _sum0, ..."])
    tail_model, _ = function_model(tail_plan)
    tail_model["body"] = render_body("function_body", tail_model, None)
    return tail_model


def _block_model(plan, s, rows, name, function_model, render_body):
    from .emit import FunctionPlan

    mapping, outputs = ss.block_graph(s, rows)  # arguments no output reads are passed on unsliced
    block_plan = FunctionPlan(
        name=name, summary=f"{plan.summary} Sums over {rows} rows (one block of {plan.name}).",
        param_names=list(plan.param_names), inputs=[mapping.get(id(n), n) for n in plan.inputs], outputs=outputs,
        output_dtypes=[o.dtype for o in outputs], doc=[f"The sums {plan.name} adds up, over {rows} rows."])
    block_model, _ = function_model(block_plan)
    block_model["body"] = render_body("function_body", block_model, None)
    return block_model


# -- the numba loop over rows -------------------------------------------------------------------


def _kernel_fits(s) -> bool:
    for n in s.nodes:
        kind = s.kinds[id(n)]
        if kind == ss.TAIL:
            continue  # computed by the numpy code after the loop
        if kind == ss.PARAM and n.op != "input":
            return False  # parameters computed from parameters: the numpy driver handles them
        if kind != ss.PARAM and n.op not in KERNEL_OPS and n.op != "input":
            return False
        if n.op == "elementwise" and not n.inputs:
            return False
    return True


class _Access:
    """How the kernel reads one value at given indices: a row of an argument, a row buffer, a
    parameter, or an accumulated sum."""

    def __init__(self, s, names):
        self.s, self.names, self.buffers, self.sums = s, names, {}, {}
        self.prelude, self.finish = [], []  # kernel lines before and after the loop over blocks
        for k, o in enumerate(s.sums):
            self.sums[id(o)] = f"_sum{k}"

    def name(self, n) -> str:
        if id(n) in self.sums:
            return self.sums[id(n)]
        if n.op == "input":
            return self.names[id(n)]
        return self.buffers.setdefault(id(n), f"_row{len(self.buffers)}")

    def at(self, n, idx) -> str:
        """``n`` at core indices ``idx`` (row values: the indices after the row axis; row ``_r`` of the
        data is row ``_b`` of the block buffers)."""
        kind, name = self.s.kinds[id(n)], self.name(n)
        if kind == ss.ROW:
            return f"{name}[{', '.join(['_r' if n.op == 'input' else '_b', *idx])}]"
        if id(n) in self.sums:
            return f"{name}[{', '.join(idx) if idx else '0'}]"
        return f"{name}[{', '.join(idx)}]" if idx else name

    def transposed(self, n) -> str:
        """A C-ordered transpose of parameter ``n``, made once before the loop."""
        name = f"_{self.name(n)}_T"
        line = f"{name} = np.ascontiguousarray({self.name(n)}.T)"
        if line not in self.prelude:
            self.prelude.append(line)
        return name

    def flat(self, n) -> str:
        """A flat view of row value ``n`` (an argument or a row buffer), made once before the loop."""
        return self._once(f"_{self.name(n).lstrip('_')}_flat", f"{self.name(n)}.reshape(-1)")

    def spread(self, n, core) -> str:
        """Parameter ``n`` broadcast to a block of rows of core shape ``core``, flat, made once before the loop."""
        name = f"_{self.name(n).lstrip('_')}_rows{len(core)}"
        shape = (KERNEL_BLOCK,) + tuple(core)
        return self._once(name, f"np.empty({int(np.prod(shape))})", f"{name}.reshape({shape})[:] = {self.name(n)}")

    def _once(self, name, value, *more) -> str:
        line = f"{name} = {value}"
        if line not in self.prelude:
            self.prelude.extend([line, *more])
        return name

    def block(self, n) -> str:
        """The rows of the current block of row value ``n``, as an array."""
        return f"{self.name(n)}[_start:_stop]" if n.op == "input" else f"{self.name(n)}[:_n]"


def _kernel(s, names, fname) -> dict:
    """The data model of the loop over row blocks: buffers, then per block the steps (a product by
    BLAS, or one loop over the block's rows running the loop nests of consecutive nodes)."""
    access, steps, sums_last = _Access(s, names), [], []
    for n in s.nodes:
        if n.op == "input" or s.kinds[id(n)] == ss.TAIL:
            continue
        product = _blas(n, s, access)
        nests = None if product is not None else _nests(n, s, access)
        if product is not None:  # nothing reads a sum: products into sums go last, row loops fuse
            (sums_last if s.kinds[id(n)] == ss.SUM else steps).append({"blas": product, "nests": None})
        elif nests[0].get("vector"):  # its own loop over the block (rows are independent: any order)
            steps.append({"blas": None, "nests": None, "vector": nests[0]})
        elif steps and steps[-1]["nests"] is not None:
            steps[-1]["nests"].extend(nests)
        else:
            steps.append({"blas": None, "nests": nests})
    steps += sums_last
    vectors = [step["vector"]["vector"] for step in steps if step.get("vector")]
    params = [names[id(n)] for n in s.nodes if n.op == "input"]
    zero_d = {names[id(n)] for n in s.nodes if n.op == "input" and n.ndim == 0}
    return {
        "name": fname, "rows": s.rows, "block": KERNEL_BLOCK, "params": params,
        # C order for np.dot and one compiled specialization: no copy for C-ordered data
        "call_args": [f"{p}[()]" if p in zero_d else f"np.ascontiguousarray({p})" for p in params],
        "sums": [{"name": access.sums[id(o)], "shape": tuple(o.shape) or (1,)} for o in s.sums],
        "buffers": [{"name": access.buffers[id(n)], "shape": (KERNEL_BLOCK,) + tuple(n.shape[1:])}
                    for n in s.nodes if id(n) in access.buffers],
        "steps": steps, "prelude": access.prelude, "finish": access.finish,
        # entries of the largest flagged vector step (the _far buffer); the fast helpers the kernel calls
        "far": max((KERNEL_BLOCK * v["size"] for v in vectors if v["far"]), default=0),
        "helpers": sorted({h for v in vectors for h in v["helpers"]}),
    }


def _blas(n, s, access) -> str | None:
    """A line computing einsum ``n`` for a whole block with ``np.dot``: a row value times a parameter
    (``ij,jk->ik``, ``ij,j->i``), or a sum over rows of a product of two row values (``ik,ij->jk``,
    ``i,ij->j``); None for any other form (the loop nests then compute it row by row)."""
    if n.op != "einsum" or len(n.inputs) != 2 or any(x.ndim > 2 for x in n.inputs):
        return None
    terms, out = ss.einsum_terms(n)
    kinds = [s.kinds[id(x)] for x in n.inputs]
    if s.kinds[id(n)] == ss.ROW and sorted(kinds) == [ss.PARAM, ss.ROW]:
        k = kinds.index(ss.ROW)
        (rt, pt), (rx, px) = (terms[k], terms[1 - k]), (n.inputs[k], n.inputs[1 - k])
        if len(rt) == 2 and pt[:1] == rt[1] and out == rt[0] + pt[1:]:
            if len(pt) == 2 and px.shape[1] <= SKINNY:
                return f"_block_times({access.block(rx)}, {access.transposed(px)}, {access.block(n)})"
            return f"{access.block(n)}[:] = np.dot({access.block(rx)}, {access.name(px)})"
        return None
    if s.kinds[id(n)] == ss.SUM and kinds == [ss.ROW, ss.ROW] and terms[0][0] == terms[1][0]:
        (a, b), (ta, tb) = n.inputs, (terms[0][1:], terms[1][1:])
        if out == tb + ta:
            (a, b), (ta, tb) = (b, a), (tb, ta)
        if out != ta + tb:
            return None
        if ta and tb and min(a.shape[1], b.shape[1]) <= SKINNY:
            # the longer row innermost: out, or its transpose added after the loop
            if a.shape[1] <= b.shape[1]:
                return f"_block_add_outer({access.block(a)}, {access.block(b)}, {access.name(n)})"
            total = f"{access.name(n)}_T"
            access.prelude.append(f"{total} = np.zeros(({b.shape[1]}, {a.shape[1]}))")
            access.finish.append(f"{access.name(n)} += {total}.T")
            return f"_block_add_outer({access.block(b)}, {access.block(a)}, {total})"
        if ta and tb:
            product = f"np.dot({access.block(a)}.T, {access.block(b)})"
        elif ta or tb:
            vector, matrix = (b, a) if ta else (a, b)
            product = f"np.dot({access.block(matrix)}.T, {access.block(vector)})"
        else:
            product = f"np.dot({access.block(a)}, {access.block(b)})"
        return f"{access.name(n)}{'[0]' if not out else ''} += {product}"
    return None


def _nests(n, s, access) -> list:
    kind = s.kinds[id(n)]
    core = list(n.shape[1:]) if kind == ss.ROW else list(n.shape)
    zero = [{"loops": [{"var": f"_o{a}", "extent": d} for a, d in enumerate(core)],
             "lines": [f"{access.at(n, [f'_o{a}' for a in range(len(core))])} = 0.0"], "comment": ""}] if kind == ss.ROW else []
    if n.op == "elementwise":
        idx = [f"_e{a}" for a in range(len(core))]
        reads = [f"_a{k} = {access.at(x, _broadcast_idx(x, s.kinds[id(x)], idx, len(core)))}"
                 for k, x in enumerate(n.inputs)]
        body = n.body.xreplace({placeholder(k): sympy.Symbol(f"_a{k}") for k in range(len(n.inputs))})
        printer = NumbaFastPrinter({"fully_qualified_modules": True})
        expr = wrap(printer.doprint(body))
        nest = {"loops": [{"var": v, "extent": d} for v, d in zip(idx, core)],
                "lines": reads + [f"{access.at(n, idx)} = {libm_text(expr)}"], "comment": "elementwise"}
        calls = [c for c in printer.calls if f"_fast_{c[0]}({c[2]})" in expr]
        flat = _flat_reads(n, s, access) if calls and kind == ss.ROW else None
        if flat is not None:
            # the table's vectorizable helpers in one loop over the block's entries (numba_math.j2);
            # entries where one is not libm-exact are flagged in _far and computed again on math
            size = int(np.prod(core, dtype=np.int64))
            lines = flat + [f"{access.flat(n)}[_i] = {expr}"]
            nest["vector"] = {"size": size, "lines": lines, "libm": [libm_text(line) for line in lines],
                              "far": list(dict.fromkeys(f"_far_{far}({arg})" for _, far, arg in calls if far)),
                              "helpers": sorted({name for name, _, _ in calls})}
        return [nest]
    if n.op == "einsum":
        terms, out = ss.einsum_terms(n)
        row = next(t[0] for t, x in zip(terms, n.inputs) if s.kinds[id(x)] == ss.ROW)
        sizes = {ch: d for t, x in zip(terms, n.inputs) for ch, d in zip(t, x.shape)}
        letters = [c for c in dict.fromkeys("".join(terms)) if c not in out and c != row]
        letters += [c for c in out if c != row]
        var = {c: f"_{c}" for c in letters}
        factors, hoist = [], []  # a factor the innermost loop does not index is read once, before it
        for t, x in zip(terms, n.inputs):
            used = t[1:] if s.kinds[id(x)] == ss.ROW else t
            value = access.at(x, [var[c] for c in used])
            if len(letters) > 1 and letters[-1] not in used:
                hoist.append(f"_f{len(hoist)} = {value}")
                value = f"_f{len(hoist) - 1}"
            factors.append(value)
        target = access.at(n, [var[c] for c in out if c != row])
        return zero + [{"loops": [{"var": var[c], "extent": sizes[c]} for c in letters], "hoist": hoist,
                        "lines": [f"{target} += {' * '.join(factors)}"], "comment": f"einsum {n.params[0]}"}]
    # a sum over axes (those after the row axis for a row result; including it for a sum over rows)
    x = n.inputs[0]
    idx = [f"_s{a}" for a in range(1, x.ndim)]
    kept = [v for a, v in enumerate(idx, start=1) if a - x.ndim not in n.params[0]]
    return zero + [{"loops": [{"var": v, "extent": d} for v, d in zip(idx, x.shape[1:])],
                    "lines": [f"{access.at(n, kept)} += {access.at(x, idx)}"], "comment": "sum"}]


def _flat_reads(n, s, access) -> list | None:
    """Reads of elementwise ``n``'s operands at entry ``_i`` of the block's flat row values (``_o``: the
    block's first entry in the data), contiguous for every operand so the loop vectorizes: row values of
    ``n``'s shape, parameters spread over a block of rows once before the loop; None when an operand
    broadcasts within rows (the loop nests over rows then compute ``n``)."""
    reads = []
    for k, x in enumerate(n.inputs):
        kind = s.kinds[id(x)]
        if kind == ss.ROW and tuple(x.shape) == tuple(n.shape):
            at = f"{access.flat(x)}[_o + _i]" if x.op == "input" else f"{access.flat(x)}[_i]"
        elif kind == ss.PARAM and x.ndim == 0:
            at = access.name(x)
        elif kind == ss.PARAM and x.ndim < n.ndim:
            at = f"{access.spread(x, n.shape[1:])}[_i]"
        else:
            return None
        reads.append(f"_a{k} = {at}")
    return reads


def _broadcast_idx(x, kind, idx, rank) -> list:
    """Indices of operand ``x`` of an elementwise node of core rank ``rank`` (numpy's broadcasting:
    trailing axes line up, size-1 axes read entry 0)."""
    if kind == ss.ROW:
        return [v if d != 1 else "0" for v, d in zip(idx, x.shape[1:])]
    full = ["_r", *idx][len(idx) + 1 - x.ndim:] if x.ndim else []
    return [v if d != 1 else "0" for v, d in zip(full, x.shape)]
