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

import numpy as np

from . import environment
from .colouring import colour_count, column_colouring, symmetric_colouring, symmetric_take
from .errors import SymdiffError
from .ops import patterns as pat


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
    colours, take = symmetric_colouring(pattern)
    x = np.asarray(args[position])
    gradient = transforms.grad(fun, argnums=position, **kw)
    products = transforms.jacobian(_moved(gradient, position, colours, x.shape), argnums=len(args), **kw)
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
