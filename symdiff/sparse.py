"""Sparse Jacobians and Hessians by graph colouring and compressed products.

The pattern comes from the IR (``symdiff.sparsity``). Columns that share no row get one colour
(Curtis-Powell-Reid), so one forward-mode product per colour gives every nonzero; rows coloured
the same way give reverse-mode products, and the mode with fewer colours is used. A Hessian uses the
distance-2 column colouring of its pattern with one Hessian-vector product per colour, and takes
each off-diagonal pair from one product, so the result is exactly symmetric. The products are one
generated function (the Jacobian, by the existing transforms, of the function with its argument
moved along the colour classes); the CSR data is gathered from them in an order fixed when compiled.
Nothing of size n x n, and never n passes.
"""

from __future__ import annotations

import heapq

import numpy as np

from . import environment
from .errors import SymdiffError
from .ops import patterns as pat

RANDOM_ORDERS = 20  # extra greedy orders tried on small patterns
GREEDY_UP_TO = 300_000  # columns: beyond, the greedy sweep (a Python loop) runs only if no cyclic colouring fits
DSATUR_UP_TO = 20_000  # columns: DSATUR too (a Python heap: 1.2 s at 65,536; Brusselator 128x128: 11 colours, not 12)


def _valid(pattern, colours, k) -> bool:
    """Whether no row of ``pattern`` has two columns of one colour."""
    rows = np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr))
    keys = np.sort(rows * k + colours[pattern.indices])
    return not (keys[1:] == keys[:-1]).any()


def _adjacency(pattern):
    """The column intersection graph ``P^T P`` as (indptr, indices) lists."""
    graph = (pattern.T.astype(np.int32) @ pattern.astype(np.int32)).tocsr()
    return graph.indptr.tolist(), graph.indices.tolist()


def _greedy(adjacency, n, tries: int = 0) -> np.ndarray:
    """Greedy colouring in column order and in ``tries`` seeded random orders; the fewest colours."""
    indptr, indices = adjacency
    rng = np.random.default_rng(0)
    best = None
    for order in [range(n)] + [rng.permutation(n).tolist() for _ in range(tries)]:
        colour = [-1] * n
        for v in order:
            used = {colour[u] for u in indices[indptr[v] : indptr[v + 1]]}
            c = 0
            while c in used:
                c += 1
            colour[v] = c
        if best is None or max(colour) < max(best):
            best = colour
    return np.asarray(best, dtype=np.int64)


def _dsatur(adjacency, n) -> np.ndarray:
    """DSATUR (Brelaz): next the column whose neighbours already use the most colours (a periodic
    stencil on a 10x10 grid: 5 colours where the column-order greedy finds 10)."""
    indptr, indices = adjacency
    colour = [-1] * n
    seen: list = [set() for _ in range(n)]
    degree = [indptr[v + 1] - indptr[v] for v in range(n)]
    heap = [(0, -degree[v], v) for v in range(n)]
    heapq.heapify(heap)
    while heap:
        saturation, _, v = heapq.heappop(heap)
        if colour[v] >= 0 or -saturation != len(seen[v]):
            continue  # coloured already, or a stale entry
        c = 0
        while c in seen[v]:
            c += 1
        colour[v] = c
        for u in indices[indptr[v] : indptr[v + 1]]:
            if colour[u] < 0 and c not in seen[u]:
                seen[u].add(c)
                heapq.heappush(heap, (-len(seen[u]), -degree[u], u))
    return np.asarray(colour, dtype=np.int64)


def column_colouring(pattern) -> np.ndarray:
    """Colours of the columns such that no row has two nonzero columns of one colour (CPR). The
    cyclic colourings ``j mod k`` (banded patterns: optimal) are tried first, checked in O(nnz)
    each; greedy and DSATUR colourings when they do better or nothing cyclic fits."""
    sp = pat.scipy_sparse()
    pattern = sp.csr_array(pattern)
    n = pattern.shape[1]
    if pattern.nnz == 0:
        return np.zeros(n, dtype=np.int64)
    widest = int(np.diff(pattern.indptr).max())
    best = None
    for k in range(widest, min(2 * widest, n) + 1):
        colours = np.arange(n, dtype=np.int64) % k
        if _valid(pattern, colours, k):
            best = colours
            break
    if best is None or (n <= GREEDY_UP_TO and best.max() + 1 > widest):
        adjacency = _adjacency(pattern)
        found = [_greedy(adjacency, n, tries=RANDOM_ORDERS if pattern.nnz <= 50_000 else 0)]
        if n <= DSATUR_UP_TO:
            found.append(_dsatur(adjacency, n))
        for colours in found:
            if best is None or colours.max() < best.max():
                best = colours
    return best


def symmetric_colouring(pattern, candidates: int = 8):
    """(colours, heavy) for a symmetric pattern with direct symmetric recovery: the ``heavy``
    columns (dense rows of an arrowhead) get one colour each, the rest the distance-2 colouring of
    the pattern without them. An entry touching a heavy column is read from that column's product
    (its colour is unique), any other from the CPR colouring; the split with fewest colours wins
    (no heavy column: plain CPR)."""
    n = pattern.shape[0]
    colours = column_colouring(pattern)
    best = (colours, np.zeros(n, dtype=bool))
    degree = np.diff(pattern.indptr)
    for threshold in np.unique(degree)[::-1][1 : candidates + 1]:
        heavy = degree > threshold
        if heavy.sum() >= colour_count(best[0]):
            break
        keep = np.flatnonzero(~heavy)
        reduced = column_colouring(pattern[keep][:, keep])
        colours = np.empty(n, dtype=np.int64)
        colours[keep] = reduced
        colours[heavy] = colour_count(reduced) + np.arange(heavy.sum())
        if colour_count(colours) < colour_count(best[0]):
            best = (colours, heavy)
    return best


def colour_count(colours) -> int:
    return int(colours.max()) + 1 if len(colours) else 0


class Compressed:
    """One compiled sparse derivative for one argument layout: the pattern, the colouring, the
    transform computing the compressed products, and where each nonzero is read from them."""

    def __init__(self, pattern, colours, mode, products, take, symmetric):
        self.pattern, self.colours, self.mode, self.products, self.take = pattern, colours, mode, products, take
        self.symmetric = symmetric
        self._take_transposed = None
        products.note = (f"{self.summary} The products are the columns of this result; the CSR data "
                         "array is gathered from them in an order fixed when compiled.")

    @property
    def summary(self) -> str:
        kind = "Hessian" if self.symmetric else "Jacobian"
        how = {"forward": "Jacobian-vector products", "reverse": "vector-Jacobian products",
               "hvp": "Hessian-vector products"}[self.mode]
        return (f"Sparse {kind} of shape {self.pattern.shape}: {self.pattern.nnz} structural nonzeros, "
                f"{colour_count(self.colours)} colours ({colour_count(self.colours)} {how}).")

    def _seed(self) -> tuple:
        """The extra argument of the forward products: the point ``t = 0`` along the colour classes."""
        return () if self.mode == "reverse" else (np.zeros(colour_count(self.colours)),)

    def __call__(self, args, kwargs):
        sp = pat.scipy_sparse()
        values = np.asarray(self.products(*args, *self._seed(), **kwargs))
        front = np.moveaxis(values, -1, 0) if self.mode != "reverse" else values
        if front is not values and front.flags.c_contiguous:
            # forward products are computed colour-first and returned as a transposed view: no copy
            if self._take_transposed is None:
                rows, k = np.divmod(self.take, values.shape[-1])
                self._take_transposed = k * (values.size // values.shape[-1]) + rows
            data = front.reshape(-1)[self._take_transposed]
        else:
            data = values.reshape(-1)[self.take]
        return sp.csr_array((data, self.pattern.indices.copy(), self.pattern.indptr.copy()), shape=self.pattern.shape)


def _rows_of(pattern):
    return np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr))


def _moved(fun, position, colours, shape):
    """``fun`` with its argument at ``position`` moved by ``t[colour]``: its Jacobian with respect to
    ``t`` (the last argument) at ``t = 0`` is the Jacobian times the seed matrix of the colouring."""
    classes = colours.reshape(shape)

    def seeded(*args):
        *args, t = args
        args[position] = args[position] + t[classes]
        return fun(*args)

    return seeded


def _summed(fun, colours, m):
    """``fun``'s output entries summed per row colour: its Jacobian is the seed matrix's transpose
    times the Jacobian (the rows of one colour never share a column)."""
    seed = np.zeros((colour_count(colours), m))
    seed[colours, np.arange(m)] = 1.0

    def grouped(*args):
        return seed @ np.reshape(fun(*args), (m,))

    return grouped


def compile_jacobian(fun, position, args, kwargs, kw):
    from . import sparsity, transforms

    pattern = sparsity.jacobian_pattern(fun, position, kw, args, kwargs)
    m, n = pattern.shape
    rows = _rows_of(pattern)
    columns = column_colouring(pattern)
    row_colours = column_colouring(pattern.T.tocsr())
    x = np.asarray(args[position])
    if colour_count(columns) <= colour_count(row_colours):
        c = colour_count(columns)
        products = transforms.jacobian(_moved(fun, position, columns, x.shape), argnums=len(args), **kw)
        take = rows * c + columns[pattern.indices]  # entry (i, j) is product colour(j) at row i
        return Compressed(pattern, columns, "forward", products, take, False)
    c = colour_count(row_colours)
    products = transforms.jacobian(_summed(fun, row_colours, m), argnums=position, **kw)
    take = row_colours[rows] * n + pattern.indices  # entry (i, j) is product colour(i) at column j
    return Compressed(pattern, row_colours, "reverse", products, take, False)


def compile_hessian(fun, position, args, kwargs, kw):
    from . import sparsity, transforms

    pattern = sparsity.hessian_pattern(fun, position, kw, args, kwargs)
    pattern = pat.binary(pattern + pattern.T)  # symmetric by construction already; made sure
    colours, heavy = symmetric_colouring(pattern)
    c = colour_count(colours)
    x = np.asarray(args[position])
    gradient = transforms.grad(fun, argnums=position, **kw)
    products = transforms.jacobian(_moved(gradient, position, colours, x.shape), argnums=len(args), **kw)
    rows, cols = _rows_of(pattern), pattern.indices.astype(np.int64)
    # each pair from one product: H[i, j] = H[j, i] = (H S)[min, colour(max)], or, when exactly one
    # of i, j is heavy, from the heavy one's product at the other's row
    upper = np.where(heavy[rows] != heavy[cols], heavy[cols], rows <= cols)
    lo, hi = np.where(upper, rows, cols), np.where(upper, cols, rows)
    take = lo * c + colours[hi]
    return Compressed(pattern, colours, "hvp", products, take, True)


def _layout(value):
    """What of an argument fixes the structure: a static value itself, an array's shape and dtype."""
    if isinstance(value, (bool, int, str, tuple, type(None))):
        return repr(value)
    return np.shape(value), np.asarray(value).dtype.str


class Sparse:
    """``jacobian(fun, sparse=True)`` or ``hessian(fun, sparse=True)``: called like ``fun``, returns a
    ``scipy.sparse.csr_array``; compiles once per argument layout (shapes, dtypes, static values)."""

    def __init__(self, fun, kind, argnums, kw):
        pat.scipy_sparse()
        if not isinstance(argnums, (int, np.integer)) or kw.get("wrt") is not None:
            raise SymdiffError(f"{kind}(sparse=True) differentiates one argument: pass one int as argnums")
        self.fun, self.kind, self.argnums, self.kw = fun, kind, int(argnums), kw
        self.__name__ = getattr(fun, "__name__", kind)
        self._compiled: dict = {}

    def compiled(self, *args, **kwargs) -> Compressed:
        # Python ints, bools, strings, None and tuples are static values: each may change the structure;
        # so may anything the function reads (a closed-over matrix's nonzeros, a constant mask): a
        # pattern is reused only while its guard says all of that is unchanged, and a function whose
        # reads cannot be watched gets its pattern built anew on every call
        layout = tuple(_layout(a) for a in args) + tuple(sorted((k, _layout(v)) for k, v in kwargs.items()))
        unchanged, found = self._compiled.get(layout, (None, None))
        if found is None or unchanged is None or not unchanged():
            reads = environment.read_set(self.fun)
            position = self.argnums % len(args)
            build = compile_hessian if self.kind == "hessian" else compile_jacobian
            found = build(self.fun, position, args, kwargs, self.kw)
            self._compiled[layout] = (None if reads is None else reads.guard(), found)
        return found

    def __call__(self, *args, **kwargs):
        return self.compiled(*args, **kwargs)(args, kwargs)

    def source(self, *args, **kwargs) -> str:
        """The summary (nnz, colours) and the generated module computing the compressed products."""
        c = self.compiled(*args, **kwargs)
        return f"# {c.summary}\n" + c.products.source(*args, *c._seed(), **kwargs)
