"""Sample sums (issue 16, item 1): outputs that are sums over the rows of the data, computed in one pass.

Most losses are a mean over rows of a per-row term, so their gradients are sums over rows of per-row
gradients. ``split`` proves that structure on an optimized graph or returns None: every node is

* ``PARAM``: reads no row data (parameters, small constants, anything computed from them only);
* ``ROW``: axis 0 is the row axis and row ``i`` depends only on row ``i`` of the data and on ``PARAM``
  values (parameters broadcast along the rows, elementwise ops, einsums that keep the row index first,
  sums/max over other axes);
* ``SUM``: a sum over the row axis of ``ROW`` values (a sum including axis 0, or an einsum contracting
  the row index of its row operands): the sum of the same node computed over row blocks.

* ``TAIL``: computed from sums and parameters only, once the sums are complete (the value of a mean loss
  beside its gradient: a sum times 1/N).

Every output is a ``SUM`` or a ``TAIL`` and no row value reads a sum (a column mean subtracted from the
rows, a Gram matrix fed back into the rows, a cumsum or sort along the rows: all refused), so evaluating
the row part over row blocks, adding the block sums, then the tail, is the same computation with the
sums added in another order. Any op not listed above touching row data refuses the split: the ordinary code path runs.
``symdiff.sample_sum_emit`` writes the code (numpy: row blocks that stay in L2; numba: one fused loop).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

# the graph modules (and SymPy behind them) load on first use: ``setting`` is read by every cache lookup

PARAM, ROW, SUM, TAIL = "param", "row", "sum", "tail"
ENV = "SYMDIFF_SAMPLE_SUM"  # "0"/"off": never split; a number: rows per block (numpy backend)
MIN_ROWS = 64  # fewer rows than this: nothing to gain


def setting() -> str:
    """The environment's choice ("auto", "off" or a block size in rows); part of every cache key."""
    text = os.environ.get(ENV, "").strip().lower()
    if text in ("0", "off", "no", "false"):
        return "off"
    return text if text.isdigit() else "auto"


@dataclass
class Split:
    """A graph proven to be a sum over ``rows`` rows: the kind of every node (by id) and the row inputs."""

    rows: int
    kinds: dict
    nodes: list  # toposorted
    outputs: list
    row_inputs: list  # input nodes whose axis 0 is the row axis
    sums: list  # the distinct SUM nodes, in graph order
    tail: bool  # some output is computed from the sums (else every output is one of them)


def split(inputs, outputs) -> Split | None:
    """The proof that every output is a sum over rows of per-row values, or None."""
    if setting() == "off" or not outputs:
        return None
    leading = [n.shape[0] for n in inputs if n.ndim >= 1]
    if not leading or max(leading) < MIN_ROWS:
        return None
    from .graph import toposort

    rows = max(leading)
    nodes = toposort(outputs)
    kinds: dict = {}
    for n in nodes:
        kind = _kind(n, kinds, rows)
        if kind is None:
            return None
        kinds[id(n)] = kind
    if any(kinds[id(o)] not in (SUM, TAIL) for o in outputs) or any(np.dtype(n.dtype) != np.float64 for n in nodes):
        return None
    row_inputs = [n for n in inputs if kinds.get(id(n)) == ROW]
    if not row_inputs or any(n.op == "input" and kinds[id(n)] == ROW and n not in row_inputs for n in nodes):
        return None
    sums = [n for n in nodes if kinds[id(n)] == SUM]
    tail = any(kinds[id(o)] == TAIL for o in outputs)
    return Split(rows, kinds, nodes, list(outputs), row_inputs, sums, tail)


def _kind(n, kinds: dict, rows: int) -> str | None:
    ins = [kinds[id(i)] for i in n.inputs]
    if SUM in ins or TAIL in ins:
        return TAIL if ROW not in ins else None  # a sum read by row values: rows coupled (two passes)
    if n.op in ("input", "const") or (n.op == "elementwise" and not n.inputs):
        is_row = n.ndim >= 1 and n.shape[0] == rows
        if is_row and n.op == "const":
            return None  # row data built into the function: not sliced here
        return ROW if is_row else PARAM
    if ROW not in ins:
        return ROW if _stretched_param(n, rows) else PARAM
    rule = _RULES.get(n.op)
    return rule(n, ins, rows) if rule else None


def _stretched_param(n, rows) -> bool:
    """A parameter broadcast along the rows (``w`` as an N x 3 array, which gradients build): the same
    value in every row, so a row value (its blocks are ``block`` rows of it)."""
    if n.op != "broadcast" or n.ndim == 0 or n.shape[0] != rows:
        return False
    x = n.inputs[0]
    return n.params[0] == x.ndim == n.ndim and x.shape[0] == 1


def _elementwise(n, ins, rows):
    if n.ndim == 0 or n.shape[0] != rows:
        return None
    for x, kind in zip(n.inputs, ins):
        if kind == ROW and (x.ndim != n.ndim or x.shape[0] != rows):
            return None  # its row axis would not line up with the result's
        if kind == PARAM and x.ndim == n.ndim and x.shape[0] != 1:
            return None  # would broadcast along the rows: per-row data in disguise
    return ROW


def einsum_terms(n):
    """(operand terms, output term) of an einsum node."""
    ins, out = n.params[0].split("->")
    return ins.split(","), out


def _einsum(n, ins, rows):
    terms, out = einsum_terms(n)
    sizes: dict = {}
    for term, x in zip(terms, n.inputs):
        if len(term) != x.ndim or len(set(term)) != len(term):
            return None  # leading broadcast axes or a diagonal: not handled here
        for ch, d in zip(term, x.shape):
            if sizes.setdefault(ch, d) != d:
                return None  # size-1 broadcasting inside an einsum
    row_letters = {term[0] for term, kind in zip(terms, ins) if kind == ROW}
    if len(row_letters) != 1:
        return None
    (r,) = row_letters
    if sizes[r] != rows or any(r in term for term, kind in zip(terms, ins) if kind == PARAM):
        return None
    if r not in out:
        return SUM
    return ROW if out[0] == r else None


def _sum(n, ins, rows):
    x = n.inputs[0]
    if x.shape[0] != rows:
        return None
    return SUM if -x.ndim in n.params[0] else ROW


def _extreme(n, ins, rows):
    x = n.inputs[0]
    return ROW if x.shape[0] == rows and -x.ndim not in n.params[0] else None


def _reshape(n, ins, rows):
    """Reshapes and broadcasts that keep axis 0 (C order keeps each row's entries in its row)."""
    x = n.inputs[0]
    return ROW if x.shape[0] == rows and n.ndim >= 1 and n.shape[0] == rows else None


def _scatter(n, ins, rows):
    """A row array written into a zero array through a key whose first entry takes every row."""
    from .ops.indexing import index_shape

    idx, core = n.params
    g = n.inputs[0]
    if len(core) != n.ndim or not idx or idx[0] != (0, rows, 1) or g.ndim != len(index_shape(idx, core)):
        return None
    return ROW


def _index(n, ins, rows):
    """Basic indexing whose key takes every row first (``m[:, 0]``): row i of the result is read from
    row i."""
    idx, core = n.params
    x = n.inputs[0]
    return ROW if len(core) == x.ndim and idx and idx[0] == (0, rows, 1) and n.shape[0] == rows else None


_RULES = {"elementwise": _elementwise, "einsum": _einsum, "sum": _sum, "max": _extreme, "min": _extreme,
          "reshape": _reshape, "broadcast": _reshape, "scatter": _scatter, "index": _index}


def _block_params(n, block: int):
    """The parameters of row node ``n`` over ``block`` rows (those that spell out the row count)."""
    if n.op in ("reshape", "broadcast") and n.params[0] == n.inputs[0].ndim:
        return (n.params[0], (block,) + tuple(n.params[1][1:]))
    if n.op in ("scatter", "index"):
        idx, core = n.params
        return ((((0, block, 1),) + tuple(idx[1:])), (block,) + tuple(core[1:]))
    return n.params


def block_graph(s: Split, block: int):
    """The graph of the sums over ``block`` rows: (new node by original id, the sums). Row nodes get
    ``block`` rows, every other node keeps its shape and parameters."""
    from .graph import Node

    mapping: dict = {}
    for n in s.nodes:
        if s.kinds[id(n)] == TAIL:
            continue
        inputs = tuple(mapping[id(i)] for i in n.inputs)
        row = s.kinds[id(n)] == ROW
        shape = (block,) + tuple(n.shape[1:]) if row else n.shape
        new = Node(n.op, inputs, shape, n.dtype, _block_params(n, block) if row else n.params)
        new.origin = n.origin
        mapping[id(n)] = new
    return mapping, [mapping[id(o)] for o in s.sums]


def tail_graph(s: Split):
    """The outputs computed from the sums: (one fresh input per sum, outputs over them)."""
    from .graph import fresh_input, substitute

    inputs = [fresh_input(k, n.shape, n.dtype, "sample sum") for k, n in enumerate(s.sums)]
    return inputs, substitute(s.outputs, {id(n): x for n, x in zip(s.sums, inputs)})
