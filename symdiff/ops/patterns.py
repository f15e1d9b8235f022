"""Structural nonzero patterns of ops: the shared pieces of the ``sparsity`` rules on the op classes.

A pattern is a boolean ``scipy.sparse.csr_array`` of shape ``(node.size, n)``: row ``k`` (C order)
says which of the ``n`` differentiated scalars entry ``k`` of the node may depend on. Every helper
is vectorized (sparse row selection and products), so patterns of a million entries take seconds.
scipy is imported here only, and this module only when a pattern is asked for.
"""

from __future__ import annotations

import numpy as np

from ..errors import SymdiffError


def scipy_sparse():
    """``scipy.sparse``, or a clear error naming the optional extra."""
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is installed in the test environment
        raise SymdiffError("sparse derivatives need scipy: pip install 'symdiff[sparse]'") from None
    return sp


def empty(rows: int, n: int):
    sp = scipy_sparse()
    return sp.csr_array((rows, n), dtype=bool)


def binary(m):
    """``m`` as a boolean pattern (sums of products counted, then made 0/1)."""
    sp = scipy_sparse()
    m = sp.csr_array(m)
    m.sum_duplicates()
    m.eliminate_zeros()
    return sp.csr_array((np.ones(m.nnz, dtype=bool), m.indices, m.indptr), shape=m.shape)


def union(patterns, rows: int, n: int):
    """The entrywise or of patterns of the same shape."""
    patterns = [p for p in patterns if p is not None and p.nnz]
    if not patterns:
        return empty(rows, n)
    if len(patterns) == 1:
        return patterns[0]
    total = patterns[0].astype(np.int32)
    for p in patterns[1:]:
        total = total + p.astype(np.int32)
    return binary(total)


def take_rows(pattern, rows):
    """Rows ``rows`` of ``pattern`` (-1: an empty row): the pattern of entries that each come from
    one entry of the input, or from none (a zero written around them). Built with numpy directly
    (scipy's fancy row indexing costs several times more at a million rows)."""
    sp = scipy_sparse()
    rows = np.asarray(rows, dtype=np.int64).ravel()
    if len(rows) == pattern.shape[0] and (rows == np.arange(len(rows))).all():
        return pattern
    if pattern.shape[0] == 0:  # a zero-size input: nothing to read, every row is empty
        return empty(len(rows), pattern.shape[1])
    valid = rows >= 0
    safe = np.where(valid, rows, 0)
    counts = np.where(valid, np.diff(pattern.indptr)[safe], 0)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    positions = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1] - pattern.indptr[safe], counts)
    return sp.csr_array((np.ones(len(positions), dtype=bool), pattern.indices[positions], indptr),
                        shape=(len(rows), pattern.shape[1]))


def grouped(pattern, targets, rows: int, sources=None):
    """The pattern of entries that each sum (or reduce) the input entries sent to them: input
    entry ``sources[k]`` (default: entry ``k``) goes to output row ``targets[k]``."""
    sp = scipy_sparse()
    targets = np.asarray(targets, dtype=np.int64).ravel()
    sources = np.arange(len(targets)) if sources is None else np.asarray(sources, dtype=np.int64).ravel()
    if pattern.nnz == 0:
        return empty(rows, pattern.shape[1])
    gather = sp.csr_array((np.ones(len(targets), dtype=np.int32), (targets, sources)), shape=(rows, pattern.shape[0]))
    return binary(gather @ pattern.astype(np.int32))


DENSE_LIMIT = 50_000_000  # entries of a conservative pattern: beyond, an error rather than a dense matrix


def everything(node, patterns):
    """Every entry depends on every scalar any input depends on: a correct superset for any op."""
    sp = scipy_sparse()
    n = patterns[0].shape[1]
    cols = np.unique(np.concatenate([p.indices for p in patterns] + [np.zeros(0, np.int32)]))
    if not len(cols):
        return empty(node.size, n)
    if node.size * len(cols) > DENSE_LIMIT:
        raise SymdiffError(
            f"the sparsity pattern through the op {node.op!r} (shape {node.shape}) would be dense: "
            f"{node.size} x {len(cols)} entries, as it has no exact pattern rule; use the dense jacobian/hessian, "
            "or write this step with operations whose structure symdiff knows (slices, np.roll, sums, products)"
        )
    indices = np.tile(cols, node.size)
    indptr = np.arange(node.size + 1, dtype=np.int64) * len(cols)
    return sp.csr_array((np.ones(len(indices), dtype=bool), indices, indptr), shape=(node.size, n))


def moved(op, node, patterns):
    """The pattern of an op that only moves, repeats or drops entries (reshape, transpose, broadcast,
    slicing, concatenation, gather): the op evaluated on entry numbers says where each entry comes from."""
    data = [k for k, x in enumerate(node.inputs) if np.dtype(x.dtype).kind == "f"]
    values, offset = [], 0
    for k, x in enumerate(node.inputs):
        if k in data:
            values.append(np.arange(offset + 1, offset + x.size + 1, dtype=np.float64).reshape(x.shape))
            offset += x.size
        elif x.op == "const":
            values.append(x.params[0].value)
        else:  # positions computed from the arguments (argsort): any entry may come from anywhere
            return everything(node, patterns)
    source = np.asarray(op.evaluate(node, values, False), dtype=np.float64).astype(np.int64) - 1
    stacked = scipy_sparse().vstack([patterns[k] for k in data], format="csr") if data else None
    if stacked is None:
        return empty(node.size, patterns[0].shape[1])
    return take_rows(stacked, source)


def broadcast_rows(x, shape) -> np.ndarray:
    """For each entry of an array of ``shape``, the entry of ``x`` that numpy broadcasting reads."""
    return np.broadcast_to(np.arange(x.size, dtype=np.int64).reshape(x.shape), shape).ravel()


def einsum_pattern(spec: str, node, patterns, limit: int = 50_000_000):
    """The pattern of an einsum: output entry ``o`` depends on operand ``k``'s entry ``e`` when some
    term of the sum pairs them with nonzero factors (a constant's structural nonzeros, anything
    computed from the arguments). The terms are enumerated over the constants' nonzeros times the
    remaining letters' ranges; beyond ``limit`` terms, the conservative pattern."""
    ins, out = spec.split("->")
    terms = ins.split(",")
    xs = node.inputs
    if node.ndim != len(out) or any(x.ndim != len(t) for x, t in zip(xs, terms)):
        return everything(node, patterns)  # leading axes: not in primal graphs of one point
    sizes = {}
    for t, x in zip(terms, xs):
        for c, d in zip(t, x.shape):
            sizes[c] = max(sizes.get(c, 1), d)
    n = patterns[0].shape[1]
    parts = []
    for k, p in enumerate(patterns):
        if p is None or p.nnz == 0:
            continue
        # enumerate the nonzeros of the constant operands jointly (one, the common case), other letters densely
        consts = [j for j, x in enumerate(xs) if j != k and x.op == "const"]
        letters: dict = {}
        count = 1
        if consts:
            j = consts[0]
            nz = np.nonzero(xs[j].params[0].value)
            valid = np.ones(len(nz[0]) if nz else 1, dtype=bool)
            for c, v in zip(terms[j], nz):
                if c in letters:
                    valid &= letters[c] == v
                else:
                    letters[c] = v
            letters = {c: v[valid] for c, v in letters.items()}
            count = int(valid.sum())
            consts = consts[1:]
        base = {c: v for c, v in letters.items()}
        rest = [c for c in sizes if c not in base]
        total = count * int(np.prod([sizes[c] for c in rest], dtype=np.int64))
        if total > limit:
            return everything(node, patterns)
        grids = np.indices([sizes[c] for c in rest]).reshape(len(rest), -1) if rest else np.zeros((0, 1), np.int64)
        combo = {c: np.repeat(v, grids.shape[1]) for c, v in base.items()}
        combo.update({c: np.tile(g, count) for c, g in zip(rest, grids)})
        keep = np.ones(total, dtype=bool)
        for j in consts:  # further constants: keep the terms where they are nonzero too
            keep &= xs[j].params[0].value[tuple(_at(combo, terms[j], xs[j].shape, total))] != 0
        o = np.ravel_multi_index(tuple(_at(combo, out, node.shape, total)), node.shape) if out else np.zeros(total, np.int64)
        e = np.ravel_multi_index(tuple(_at(combo, terms[k], xs[k].shape, total)), xs[k].shape) if terms[k] else np.zeros(total, np.int64)
        sp = scipy_sparse()
        m = sp.csr_array((np.ones(int(keep.sum()), dtype=np.int32), (o[keep], e[keep])), shape=(node.size, xs[k].size))
        parts.append(binary(m @ p.astype(np.int32)))
    return union(parts, node.size, n)


def _at(combo, term, shape, total):
    """The index of each enumerated term along each axis of an operand (size-1 axes broadcast)."""
    return [combo[c] if d != 1 else np.zeros(total, np.int64) for c, d in zip(term, shape)]


def per_matrix(node, patterns):
    """The pattern of an op on stacks of matrices (the trailing two axes of every input): each output
    entry depends on everything its own matrices depend on, and on nothing of the other stack entries
    (batch axes broadcast as numpy does). Without batch axes, the conservative pattern."""
    batch_rank = max(x.ndim - 2 for x in node.inputs)
    batch = node.shape[:batch_rank]
    count = int(np.prod(batch, dtype=np.int64))
    if batch_rank <= 0 or count == 1 or node.ndim < batch_rank:
        return everything(node, patterns)
    n = patterns[0].shape[1]
    per_batch = []
    for x, p in zip(node.inputs, patterns):
        if p is None or p.nnz == 0:
            continue
        core = x.shape[x.ndim - 2 :]
        entries = np.arange(x.size, dtype=np.int64).reshape(x.shape[: x.ndim - 2] + (core[0] * core[1],))
        entries = np.broadcast_to(entries, batch + entries.shape[-1:]).reshape(count, -1)
        targets = np.repeat(np.arange(count, dtype=np.int64), entries.shape[1])
        per_batch.append(grouped(p, targets, count, sources=entries.ravel()))
    merged = union(per_batch, count, n)
    per_entry = node.size // count
    if int(np.diff(merged.indptr).sum()) * per_entry > DENSE_LIMIT:
        return everything(node, patterns)  # refuses with the message that says what to do
    return take_rows(merged, np.repeat(np.arange(count, dtype=np.int64), per_entry))
