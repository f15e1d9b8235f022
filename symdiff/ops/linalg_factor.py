"""np.linalg.qr and np.linalg.pinv over the trailing two axes (leading batch axes pass through).

As in ``linalg.py``: every rule is IR again (solve, einsum, transpose, elementwise and these ops), so
every order of derivative follows, and generated code calls np.linalg without expanding anything.
QR is differentiated for tall or square inputs of full column rank (JAX's restriction); pinv for a
rank that does not change near the input (JAX's assumption, Golub & Pereyra 1973).
"""

from __future__ import annotations

import collections
import numbers

import numpy as np

from ..errors import ShapeError
from ..graph import Node, const_node, placeholder, result_dtype
from . import elementwise as ew
from .base import register, unbroadcast
from .linalg import _LinalgOp, mm, mT, solve
from .surface import as_node, numpy_function, refuse

# ---------------------------------------------------------------------------------------------
# qr: A = Q R, Q (…, m, n) with orthonormal columns, R (…, n, n) upper triangular, m >= n
# ---------------------------------------------------------------------------------------------


def matrices(a: Node, what: str) -> Node:
    """``a`` checked to be a stack of matrices, as numpy's LinAlgError says."""
    if a.ndim < 2:
        raise ShapeError(f"{what}: {a.ndim}-dimensional array given. Array must be at least two-dimensional")
    return a


def qr(a: Node, part: int) -> Node:
    """Part 0 (Q) or 1 (R) of the reduced QR decomposition of a tall or square ``a``."""
    *lead, m, n = matrices(a, "qr").shape
    out = (*lead, m, n) if part == 0 else (*lead, n, n)
    return Node("qr", (a,), out, result_dtype(a.dtype), (part,))


def _times_inverse_transpose(y: Node, r: Node) -> Node:
    """Y R^-T (one solve; R is triangular, np.linalg.solve does not need to know)."""
    return mT(solve(r, mT(y)))


def _weights(n: int, k: int, upper: bool = False) -> Node:
    """The 0/1 matrix of np.tril(ones, k) (or np.triu) as a constant."""
    ones = np.ones((n, n))
    return const_node(np.triu(ones, k) if upper else np.tril(ones, k))


@register
class QR(_LinalgOp):
    """Part ``params[0]`` of np.linalg.qr(A) (0 Q, 1 R), A (…, m, n) with m >= n and full column
    rank. JVP (JAX's qr_jvp_rule): with X = dA R^-1 and C = Q^T X, dO = tril(C, -1) - tril(C, -1)^T,
    dQ = Q (dO - C) + X and dR = (C - dO) R. VJP (Walter & Lehmann 2018; Liao et al. 2019): with
    M = R gR^T - gQ^T Q, gA = (gQ + Q copyltu(M)) R^-T, copyltu(M) the symmetric matrix with M's
    lower triangle."""

    name = "qr"
    array_api_template = """{{ s.target }} = xp.linalg.qr({{ s.x }})[{{ s.params[0] }}]"""
    template = """{{ s.target }} = {% if s.params[0] == 1 -%}
np.linalg.qr({{ s.x }}, mode="r")
{%- else %}np.linalg.qr({{ s.x }})[0]{% endif %}"""

    def _pair(self, node):
        a, (part,) = node.inputs[0], node.params
        return (node if part == 0 else qr(a, 0)), (node if part == 1 else qr(a, 1))

    def jvp(self, node, tangents, lead):
        q, r = self._pair(node)
        n = r.shape[-1]
        x = _times_inverse_transpose(tangents[0], mT(r))  # dA R^-1 = (R^-T dA^T)^T
        c = mm(mT(q), x)
        # dO - C, elementwise: tril(C, -1) - tril(C, -1)^T - C
        skew_minus_c = ew.elementwise(placeholder(0) * placeholder(2) - placeholder(1) * placeholder(3) - placeholder(0),
                                      (c, mT(c), _weights(n, -1), _weights(n, 1, upper=True)))
        if node.params[0] == 0:
            return ew.elementwise(placeholder(0) + placeholder(1), (mm(q, skew_minus_c), x))
        return mm(ew.elementwise(-placeholder(0), (skew_minus_c,)), r)

    def vjp(self, node, g, wanted, n_lead):
        q, r = self._pair(node)
        a, n = node.inputs[0], r.shape[-1]
        if node.params[0] == 0:
            m_, outer = ew.elementwise(-placeholder(0), (mm(mT(g), q),)), g
        else:
            m_, outer = mm(r, mT(g)), None
        lower, upper = _weights(n, 0), _weights(n, 1, upper=True)
        copyltu = ew.elementwise(placeholder(0) * placeholder(2) + placeholder(1) * placeholder(3),
                                 (m_, mT(m_), lower, upper))
        inner = mm(q, copyltu)
        if outer is not None:
            inner = ew.elementwise(placeholder(0) + placeholder(1), (outer, inner))
        yield 0, unbroadcast(_times_inverse_transpose(inner, r), g.shape[:n_lead] + a.shape, n_lead)

    def numeric(self, node, a):
        return np.linalg.qr(a, mode="r") if node.params[0] == 1 else np.linalg.qr(a)[0]


QRResult = collections.namedtuple("QRResult", ["Q", "R"])


@numpy_function(np.linalg.qr)
def np_linalg_qr(a, mode="reduced"):
    x = matrices(as_node(a), "qr")
    m, n = x.shape[-2:]
    if mode not in ("reduced", "r", "complete"):
        raise refuse(f"np.linalg.qr with mode={mode!r}", "use mode='reduced' (the default), 'r' or 'complete'")
    if mode == "complete" and m != n:
        raise refuse("np.linalg.qr with mode='complete' on a non-square matrix",
                     "use mode='reduced' (the default): the extra columns of Q have no derivative")
    if m < n:
        raise refuse(f"np.linalg.qr of a wide matrix ({m} x {n}, fewer rows than columns): QR is differentiated "
                     "for m >= n only (as JAX)",
                     f"factor the square left block, q, r1 = np.linalg.qr(a[..., :, :{m}]), and take "
                     f"r2 = np.swapaxes(q, -1, -2) @ a[..., :, {m}:] (R = [r1, r2]); or factor a.T")
    if mode == "r":
        return qr(x, 1)
    return QRResult(qr(x, 0), qr(x, 1))


# ---------------------------------------------------------------------------------------------
# pinv: the Moore-Penrose pseudo-inverse P (…, n, m) of A (…, m, n)
# ---------------------------------------------------------------------------------------------


def pinv(a: Node, cutoff: tuple = ()) -> Node:
    """np.linalg.pinv(a); ``cutoff`` is () or (keyword, number): numpy's rcond= or rtol=."""
    matrices(a, "pinv")
    out = a.shape[:-2] + (a.shape[-1], a.shape[-2])
    return Node("pinv", (a,), out, result_dtype(a.dtype), tuple(cutoff))


@register
class PInv(_LinalgOp):
    """np.linalg.pinv(A) (rcond=/rtol= passed through). Derivatives assume the rank does not change
    near A (as JAX; a cutoff that drops a singular value changes it): Golub & Pereyra's
    dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P."""

    name = "pinv"
    array_api_template = """{{ s.target }} = xp.linalg.pinv({{ s.x }}{% if s.params %}, rtol={{ s.params[1] }}{% endif %})"""
    template = """{{ s.target }} = np.linalg.pinv({{ s.x }}{% if s.params %}, {{ s.params[0] }}={{ s.params[1] }}{% endif %})"""

    def jvp(self, node, tangents, lead):
        a, p, da_t = node.inputs[0], node, mT(tangents[0])
        u = mm(p, mT(p), da_t)  # P P^T dA^T
        v = mm(da_t, mT(p), p)  # dA^T P^T P
        terms = (mm(p, tangents[0], p), u, mm(u, a, p), v, mm(p, a, v))
        x = [placeholder(i) for i in range(5)]
        return ew.elementwise(-x[0] + x[1] - x[2] + x[3] - x[4], terms)

    def vjp(self, node, g, wanted, n_lead):
        a, p, g_t = node.inputs[0], node, mT(g)
        w = mm(g_t, p, mT(p))  # G^T P P^T: (I - A P) w is the second term's share
        z = mm(mT(p), p, g_t)  # P^T P G^T: z (I - P A) the third's
        terms = (mm(mT(p), g, mT(p)), w, mm(a, p, w), z, mm(z, p, a))
        x = [placeholder(i) for i in range(5)]
        ga = ew.elementwise(-x[0] + x[1] - x[2] + x[3] - x[4], terms)
        yield 0, unbroadcast(ga, g.shape[:n_lead] + a.shape, n_lead)

    def numeric(self, node, a):
        return np.linalg.pinv(a, **({node.params[0]: node.params[1]} if node.params else {}))


@numpy_function(np.linalg.pinv)
def np_linalg_pinv(a, rcond=None, hermitian=False, *, rtol=np._NoValue):
    if hermitian:
        raise refuse("np.linalg.pinv with hermitian=True", "drop it: the result is the same for a symmetric input")
    cutoff = ()
    for keyword, value in (("rcond", rcond), ("rtol", None if rtol is np._NoValue else rtol)):
        if value is None:
            continue
        if cutoff:
            raise refuse("np.linalg.pinv with both rcond= and rtol=", "pass one of them")
        if not isinstance(value, numbers.Real):
            raise refuse(f"np.linalg.pinv with {keyword}= an array or traced value",
                         f"pass {keyword}= a Python number (one cutoff for every matrix)")
        cutoff = (keyword, float(value))
    return pinv(as_node(a), cutoff)
