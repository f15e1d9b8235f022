"""np.linalg's decompositions: cholesky and eigh, over the trailing two axes.

Their derivatives are JAX's: the input is read as symmetric, so a tangent or cotangent is
symmetrized, (dA + dA^T) / 2 (numpy itself reads only the lower triangle). Each rule is IR again
(einsum, transpose, elementwise, solve and these ops), so every order of derivative follows.
"""

from __future__ import annotations

import collections

import numpy as np

from ..errors import ShapeError
from ..graph import Node, const_node, placeholder, result_dtype
from . import elementwise as ew
from . import shape
from .base import register, unbroadcast
from .indexing import index
from .linalg import _LinalgOp, einsum, mm, mT, solve, square, symmetrized, transposed_jvp
from .surface import as_node, numpy_function, refuse


def cholesky(a: Node) -> Node:
    """The lower Cholesky factor L of symmetric positive definite A = L L^T."""
    square(a, "cholesky")
    return Node("cholesky", (a,), a.shape, result_dtype(a.dtype))


def eigh(a: Node, part: int, uplo: str = "L") -> Node:
    """Part 0 (eigenvalues, ascending) or 1 (eigenvectors, as columns) of np.linalg.eigh."""
    square(a, "eigh")
    out = a.shape[:-1] if part == 0 else a.shape
    return Node("eigh", (a,), out, result_dtype(a.dtype), (part, uplo))


def _phi(x: Node) -> Node:
    """The lower triangle of ``x`` with its diagonal halved (Murray 2016)."""
    n = x.shape[-1]
    weights = const_node(np.tril(np.ones((n, n))) - 0.5 * np.eye(n))
    return ew.elementwise(placeholder(0) * placeholder(1), (x, weights))


@register
class Cholesky(_LinalgOp):
    """np.linalg.cholesky(A): dL = L phi(L^-1 sym(dA) L^-T) (JAX's rule; Murray 2016)."""

    name = "cholesky"
    template = "{{ s.target }} = np.linalg.cholesky({{ s.x }})"

    def jvp(self, node, tangents, lead):
        low = node
        ds = symmetrized(tangents[0])
        inner = solve(low, mT(solve(low, ds)))  # L^-1 dS L^-T (dS symmetric)
        return mm(low, _phi(inner))

    def vjp(self, node, g, wanted, n_lead):
        low = node
        p = _phi(mm(mT(low), g))
        q = solve(mT(low), p)  # L^-T phi(L^T g)
        ga = mT(solve(mT(low), mT(q)))  # ... L^-1
        yield 0, unbroadcast(symmetrized(ga), g.shape[:n_lead] + node.inputs[0].shape, n_lead)

    def numeric(self, node, a):
        return np.linalg.cholesky(a)


def _gaps(w: Node) -> Node:
    """F with F_ij = 1 / (w_j - w_i) off the diagonal and 0 on it (distinct eigenvalues)."""
    n = w.shape[-1]
    eye = const_node(np.eye(n))
    rows, cols = shape.reshape(w, 1, (1, n)), shape.reshape(w, 1, (n, 1))
    return ew.elementwise(1 / (placeholder(2) + placeholder(0) - placeholder(1)) - placeholder(2), (rows, cols, eye))


@register
class Eigh(_LinalgOp):
    """Part ``params[0]`` of np.linalg.eigh(A) (0 eigenvalues, 1 eigenvectors); JAX's rule, for
    distinct eigenvalues: dw = diag(V^T dA V), dV = V (F * V^T dA V), F_ij = 1/(w_j - w_i)."""

    name = "eigh"
    template = "{{ s.target }} = np.linalg.eigh({{ s.x }}, UPLO={{ s.params[1]|tojson }})[{{ s.params[0] }}]"

    def _pair(self, node):
        a = node.inputs[0]
        part, uplo = node.params
        return (node if part == 0 else eigh(a, 0, uplo)), (node if part == 1 else eigh(a, 1, uplo))

    def jvp(self, node, tangents, lead):
        w, v = self._pair(node)
        ds = symmetrized(tangents[0])
        if node.params[0] == 0:
            return einsum("ji,jk,ki->i", v, ds, v)  # diag(V^T dA V)
        rotated = einsum("ji,jk,kl->il", v, ds, v)
        return mm(v, ew.elementwise(placeholder(0) * placeholder(1), (_gaps(w), rotated)))

    def vjp(self, node, g, wanted, n_lead):
        w, v = self._pair(node)
        if node.params[0] == 0:
            ga = einsum("ik,k,jk->ij", v, g, v)  # V diag(g) V^T
        else:
            inner = ew.elementwise(placeholder(0) * placeholder(1), (_gaps(w), mm(mT(v), g)))
            ga = symmetrized(mm(v, inner, mT(v)))
        yield 0, unbroadcast(ga, g.shape[:n_lead] + node.inputs[0].shape, n_lead)

    def numeric(self, node, a):
        part, uplo = node.params
        return np.linalg.eigh(a, UPLO=uplo)[part]


EighResult = collections.namedtuple("EighResult", ["eigenvalues", "eigenvectors"])


@numpy_function(np.linalg.cholesky)
def np_linalg_cholesky(a, /, *, upper=False):
    low = cholesky(as_node(a))
    return mT(low) if upper else low


@numpy_function(np.linalg.eigh)
def np_linalg_eigh(a, UPLO="L"):
    if UPLO not in ("L", "U"):
        raise refuse(f"np.linalg.eigh with UPLO={UPLO!r}", "UPLO is 'L' or 'U'")
    x = as_node(a)
    return EighResult(eigh(x, 0, UPLO), eigh(x, 1, UPLO))



def svd(a: Node, part: int) -> Node:
    """Part 0 (U), 1 (singular values, descending) or 2 (Vh) of the reduced SVD A = U diag(s) Vh."""
    if a.ndim < 2:
        raise ShapeError(f"svd: {a.ndim}-dimensional array given. Array must be at least two-dimensional")
    *lead, m, n = a.shape
    k = min(m, n)
    out = [(*lead, m, k), (*lead, k), (*lead, k, n)][part]
    return Node("svd", (a,), out, result_dtype(a.dtype), (part,))


@register
class SVD(_LinalgOp):
    """Part ``params[0]`` of np.linalg.svd(A, full_matrices=False) (0 U, 1 s, 2 Vh); JAX's rule,
    for distinct nonzero singular values: ds = diag(U^T dA V)."""

    name = "svd"
    template = """{{ s.target }} = {% if s.params[0] == 1 -%}
np.linalg.svd({{ s.x }}, compute_uv=False)
{%- else %}np.linalg.svd({{ s.x }}, full_matrices=False)[{{ s.params[0] }}]{% endif %}"""

    def jvp(self, node, tangents, lead):
        a, (part,), da = node.inputs[0], node.params, tangents[0]
        u, s, vh = (node if part == p else svd(a, p) for p in range(3))
        v = mT(vh)
        if part == 1:
            return einsum("ji,jk,ki->i", u, da, v)
        m, n = a.shape[-2:]
        k = s.shape[-1]
        rotated = einsum("ji,jk,kl->il", u, da, v)  # U^T dA V
        row, col = shape.reshape(s, 1, (1, k)), shape.reshape(s, 1, (k, 1))
        gaps = ew.elementwise(1 / ((placeholder(0) + placeholder(1)) * (placeholder(0) - placeholder(1)) + placeholder(2))
                              - placeholder(2), (row, col, const_node(np.eye(k))))
        x, y = placeholder(0), placeholder(1)
        if part == 0:
            weighted = ew.elementwise(x * y, (rotated, row))  # dS diag(s)
            du = mm(u, ew.elementwise(placeholder(2) * (x + y), (weighted, mT(weighted), gaps)))
            if m > n:
                dav = mm(da, v)
                du = ew.elementwise(x + (y - placeholder(2)) / placeholder(3),
                                    (du, dav, mm(u, mT(u), dav), row))
            return du
        weighted = ew.elementwise(x * y, (rotated, col))  # diag(s) dS
        dv = mm(v, ew.elementwise(placeholder(2) * (x + y), (weighted, mT(weighted), gaps)))
        if n > m:
            dahu = mm(mT(da), u)
            dv = ew.elementwise(x + (y - placeholder(2)) / placeholder(3), (dv, dahu, mm(v, vh, dahu), row))
        return mT(dv)

    def vjp(self, node, g, wanted, n_lead):
        if node.params[0] == 1:  # U diag(g) V^T
            u, vh = svd(node.inputs[0], 0), svd(node.inputs[0], 2)
            yield 0, unbroadcast(einsum("ik,k,kj->ij", u, g, vh), g.shape[:n_lead] + node.inputs[0].shape, n_lead)
            return
        yield 0, transposed_jvp(self, node, g, n_lead)

    def numeric(self, node, a):
        return np.linalg.svd(a, full_matrices=False)[node.params[0]]


SVDResult = collections.namedtuple("SVDResult", ["U", "S", "Vh"])


@numpy_function(np.linalg.svd)
def np_linalg_svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    x = as_node(a)
    if hermitian:
        raise refuse("np.linalg.svd with hermitian=True", "drop it: the general SVD gives the same singular values")
    if not compute_uv:
        return svd(x, 1)
    if full_matrices and x.ndim >= 2 and x.shape[-1] != x.shape[-2]:
        raise refuse("np.linalg.svd with full_matrices=True on a non-square matrix", "pass full_matrices=False")
    return SVDResult(svd(x, 0), svd(x, 1), svd(x, 2))


def matrix_norm(x: Node, ord, keepdims: bool) -> Node:
    """np.linalg.norm of the trailing matrices for ord 'nuc' (sum), 2 (largest) or -2 (smallest
    singular value)."""
    from .reductions import reduce_sum

    s = svd(x, 1)
    k = s.shape[-1]
    pick = {"nuc": None, 2: 0, -2: k - 1}[ord]
    out = reduce_sum(s, (-1,)) if pick is None else index(s, (pick,))
    return shape.reshape(out, 0, (1, 1)) if keepdims else out
