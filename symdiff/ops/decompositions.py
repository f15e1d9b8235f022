"""np.linalg's decompositions: cholesky and eigh, over the trailing two axes.

Their derivatives are JAX's: the input is read as symmetric, so a tangent or cotangent is
symmetrized, (dA + dA^T) / 2 (numpy itself reads only the lower triangle). Each rule is IR again
(einsum, transpose, elementwise, solve and these ops), so every order of derivative follows.
"""

from __future__ import annotations

import collections

import numpy as np

from ..graph import Node, const_node, placeholder, result_dtype
from . import elementwise as ew
from . import shape
from .base import register, unbroadcast
from .linalg import _LinalgOp, einsum, mm, mT, solve, square, symmetrized
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

