"""Sparse Jacobians and Hessians by graph colouring and compressed products.

The pattern comes from the IR (``symdiff.sparsity``). Columns that share no row get one colour
(Curtis-Powell-Reid), so one forward-mode product per colour gives every nonzero; rows coloured
the same way give reverse-mode products, and the mode with fewer colours is used. A Hessian uses a
symmetric colouring (``symdiff.colouring``: star or distance-2, the fewer colours) with one
Hessian-vector product per colour, and takes each off-diagonal pair from one product, so the
result is exactly symmetric. The products are one
generated function (the Jacobian, by the existing transforms, of the function with its argument
moved along the colour classes); the CSR data is gathered from them in an order fixed when compiled.
Nothing of size n x n, and never n passes.
"""

from __future__ import annotations

import functools

import numpy as np

from . import environment, pytrees
from .colouring import colour_count, column_colouring, symmetric_colouring, symmetric_take
from .ops import patterns as pat
from .symbolic import _regrouped


class Compressed:
    """One compiled sparse derivative for one argument layout: the pattern, the colouring, the
    transform computing the compressed products, and where each nonzero is read from them.
    ``blocks`` (several arguments or pytree leaves): how the result is cut and put in the structure
    the dense transform returns."""

    def __init__(self, pattern, colours, mode, products, take, symmetric, blocks=None):
        self.pattern, self.colours, self.mode, self.products, self.take = pattern, colours, mode, products, take
        self.symmetric, self.blocks = symmetric, blocks
        self._take_transposed = self._seed_args = None
        # the index arrays of the result, made once: each call only gathers its data array
        self._indices, self._indptr = pattern.indices.astype(np.int32), pattern.indptr.astype(np.int32)
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
        """The extra arguments of the forward products: the point ``t = 0`` along the colour classes,
        and the colour of each column (an argument, not a closed-over array the guard would compare)."""
        if self.mode == "reverse":
            return ()
        if self._seed_args is None:
            self._seed_args = (np.zeros(colour_count(self.colours)), self.colours)
        return self._seed_args

    def data(self, args, kwargs) -> np.ndarray:
        """The CSR data array of the derivative at ``args``."""
        values = self.products(*args, *self._seed(), **kwargs)
        if self.mode == "reverse" and not isinstance(values, np.ndarray):  # one block per argument leaf
            leaves = pytrees.flatten(values)[0]
            values = np.concatenate([np.reshape(v, (colour_count(self.colours), -1)) for v in leaves], axis=1)
        values = np.asarray(values)
        front = np.moveaxis(values, -1, 0) if self.mode != "reverse" else values
        if front is not values and front.flags.c_contiguous:
            # forward products are computed colour-first and returned as a transposed view: no copy
            if self._take_transposed is None:
                rows, k = np.divmod(self.take, values.shape[-1])
                self._take_transposed = k * (values.size // values.shape[-1]) + rows
            return front.reshape(-1)[self._take_transposed]
        return values.reshape(-1)[self.take]

    def __call__(self, args, kwargs):
        data = self.data(args, kwargs)
        if self.blocks is None:
            return _csr(data, self._indices, self._indptr, self.pattern.shape)
        transform, groups, single, parts = self.blocks
        made = [_csr(data[take], indices, indptr, shape) for take, indices, indptr, shape in parts]
        if self.symmetric:
            k = int(round(len(made) ** 0.5))
            made = [made[r * k : (r + 1) * k] for r in range(k)]
        return _regrouped(transform, made, groups, single)


def _csr(data, indices, indptr, shape):
    """A ``csr_array`` from arrays known to be canonical (sorted int32 indices, no duplicates):
    scipy's constructor would check and copy them on every call."""
    sp = pat.scipy_sparse()
    return sp.csr_array((data, indices, indptr), shape=shape, copy=False)


def _rows_of(pattern):
    return np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr))


class Layout:
    """The differentiated arguments of one call: their positions, which are pytrees, each leaf's
    shape (the columns of the pattern, leaf after leaf), and the dense transform's grouping."""

    def __init__(self, fun, kind, argnums, kw, args, kwargs):
        from .transforms import Transform

        self.transform = Transform(fun, kind, argnums=argnums, **kw)
        _, specs, _, call = self.transform._specs(args, kwargs)
        n_positional = len(specs) - len(call.keywords)
        self.groups = self.transform._wrt_groups(n_positional, call)
        self.single = not isinstance(self.transform.positions, tuple)
        positions = self.transform.positions if not self.single else (self.transform.positions,)
        self.positions = [p % len(args) for p in positions]
        self.trees = {q for q, _, _ in call.trees}
        self.shapes = [tuple(specs[i][0]) for _, nodes in self.groups for i in nodes]
        self.several = not self.single or bool(self.trees & set(self.positions))

    def offsets(self):
        return np.cumsum([0] + [int(np.prod(s, dtype=np.int64)) for s in self.shapes])

    def blocks(self, pattern, symmetric):
        """(transform, groups, single, [(data positions, indices, indptr, shape) per block]), or None
        for one plain argument. Blocks: column ranges of a Jacobian; row x column ranges of a Hessian."""
        if not self.several:
            return None
        sp = pat.scipy_sparse()
        cut = self.offsets()
        numbered = sp.csr_array((np.arange(1, pattern.nnz + 1), pattern.indices, pattern.indptr), shape=pattern.shape)
        rows = [(cut[r], cut[r + 1]) for r in range(len(self.shapes))] if symmetric else [(0, pattern.shape[0])]
        parts = []
        for r0, r1 in rows:
            for c in range(len(self.shapes)):
                block = numbered[r0:r1][:, cut[c] : cut[c + 1]]
                block.sort_indices()
                parts.append((block.data.astype(np.int64) - 1, block.indices.astype(np.int32),
                              block.indptr.astype(np.int32), block.shape))
        return self.transform, self.groups, self.single, parts

    def moved(self, fun):
        """``fun`` with each differentiated leaf moved by ``t[colour]``: its Jacobian with respect to
        ``t`` at ``t = 0`` is the Jacobian times the seed matrix of the colouring. ``t`` and the
        colours of the columns are its last two arguments."""
        cut = tuple(int(c) for c in self.offsets())
        positions, trees = tuple(self.positions), frozenset(self.trees)  # watchable reads: compiled once
        shapes = tuple(self.shapes)

        def seeded(*args, **kwargs):
            *args, t, colours = args
            k = 0
            for p in positions:
                leaves, structure, _ = pytrees.flatten(args[p]) if p in trees else ([args[p]], None, None)
                if len(shapes) == 1:
                    leaves = [leaves[0] + t[np.reshape(colours, shapes[0])]]
                else:
                    leaves = [leaf + t[np.reshape(colours[cut[k + i] : cut[k + i + 1]], shapes[k + i])]
                              for i, leaf in enumerate(leaves)]
                k += len(leaves)
                args[p] = pytrees.unflatten(structure, leaves) if p in trees else leaves[0]
            return fun(*args, **kwargs)

        return seeded


def _flat(fun):
    """``fun`` with its pytree result (the gradient of several arguments) as one flat vector."""

    @functools.wraps(fun)
    def flat(*args, **kwargs):
        leaves = pytrees.flatten(fun(*args, **kwargs))[0]
        return np.concatenate([np.reshape(v, (-1,)) for v in leaves])

    return flat


def _summed(fun, colours, m):
    """``fun``'s output entries summed per row colour: its Jacobian is the seed matrix's transpose
    times the Jacobian (the rows of one colour never share a column)."""
    seed = np.zeros((colour_count(colours), m))
    seed[colours, np.arange(m)] = 1.0

    @functools.wraps(fun)
    def grouped(*args, **kwargs):
        return seed @ np.reshape(fun(*args, **kwargs), (m,))

    return grouped


def _no_wrt(kw):
    """The options for the products transform, whose extra argument ``t`` is picked by position."""
    return {k: v for k, v in kw.items() if k != "wrt"}


def compile_jacobian(fun, argnums, args, kwargs, kw):
    from . import sparsity, transforms

    layout = Layout(fun, "jacobian", argnums, kw, args, kwargs)
    pattern = sparsity.jacobian_pattern(fun, argnums, kw, args, kwargs)
    m, n = pattern.shape
    rows = _rows_of(pattern)
    columns = column_colouring(pattern)
    row_colours = column_colouring(pattern.T.tocsr())
    blocks = layout.blocks(pattern, False)
    if colour_count(columns) <= colour_count(row_colours):
        c = colour_count(columns)
        products = transforms.jacobian(layout.moved(fun), argnums=len(args), **_no_wrt(kw))
        take = rows * c + columns[pattern.indices]  # entry (i, j) is product colour(j) at row i
        return Compressed(pattern, columns, "forward", products, take, False, blocks)
    c = colour_count(row_colours)
    products = transforms.jacobian(_summed(fun, row_colours, m), argnums=argnums, **kw)
    take = row_colours[rows] * n + pattern.indices  # entry (i, j) is product colour(i) at column j
    return Compressed(pattern, row_colours, "reverse", products, take, False, blocks)


def compile_hessian(fun, argnums, args, kwargs, kw):
    from . import sparsity, transforms

    layout = Layout(fun, "hessian", argnums, kw, args, kwargs)
    pattern = sparsity.hessian_pattern(fun, argnums, kw, args, kwargs)
    pattern = pat.binary(pattern + pattern.T)  # symmetric by construction already; made sure
    colours, take = symmetric_colouring(pattern)
    gradient = transforms.grad(fun, argnums=argnums, **kw)
    if layout.several:
        gradient = _flat(gradient)
    products = transforms.jacobian(layout.moved(gradient), argnums=len(args), **_no_wrt(kw))
    return Compressed(pattern, colours, "hvp", products, take, True, layout.blocks(pattern, True))


def _layout(value):
    """What of an argument fixes the structure: a static value itself, an array's shape and dtype,
    a pytree's structure and its leaves' shapes and dtypes."""
    if pytrees.is_tree_argument(value):
        leaves, structure, _ = pytrees.flatten(value)
        return repr(structure), tuple(_layout(v) for v in leaves)
    if isinstance(value, (bool, int, str, tuple, type(None))):
        return repr(value)
    return np.shape(value), np.asarray(value).dtype.str


class Sparse:
    """``jacobian(fun, sparse=True)`` or ``hessian(fun, sparse=True)``: called like ``fun``, returns a
    ``scipy.sparse.csr_array`` (several arguments or a pytree: one per block, in the structure the
    dense transform returns); compiles once per argument layout (shapes, dtypes, static values)."""

    def __init__(self, fun, kind, argnums, kw):
        pat.scipy_sparse()
        self.fun, self.kind, self.argnums, self.kw = fun, kind, argnums, kw
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
            build = compile_hessian if self.kind == "hessian" else compile_jacobian
            found = build(self.fun, self.argnums, args, kwargs, self.kw)
            self._compiled[layout] = (None if reads is None else reads.guard(), found)
        return found

    def __call__(self, *args, **kwargs):
        return self.compiled(*args, **kwargs)(args, kwargs)

    def source(self, *args, **kwargs) -> str:
        """The summary (nnz, colours) and the generated module computing the compressed products."""
        c = self.compiled(*args, **kwargs)
        return f"# {c.summary}\n" + c.products.source(*args, *c._seed(), **kwargs)
