"""np.linalg: solve, inv, det, slogdet, matrix_power and the decompositions cholesky, eigh and svd,
over the trailing two axes (leading batch and basis axes pass through).

Each rule is IR again (einsum, transpose, elementwise and these ops), so every order of derivative
follows; generated code calls np.linalg and expands nothing. The decompositions' derivatives are
JAX's: the input is read as symmetric, so a tangent or cotangent is symmetrized, (dA + dA^T) / 2
(numpy itself reads only the lower triangle). Products (matmul, einsum...) are ``products.py``.
"""

from __future__ import annotations

import collections
import numbers

import numpy as np

from ..errors import ShapeError
from ..graph import Node, const_node, lead_shape, placeholder, result_dtype
from . import elementwise as ew
from . import masks, shape
from .base import Op, pad_rank, register, unbroadcast
from .indexing import index
from .products import einsum
from .surface import as_node, numpy_function, refuse

# ---------------------------------------------------------------------------------------------
# solve, inv, det, slogdet and matrix_power (the decompositions follow below)
# ---------------------------------------------------------------------------------------------


def square(x: Node, what: str) -> Node:
    """``x`` checked to be a stack of square matrices, as numpy's LinAlgError says."""
    if x.ndim < 2:
        raise ShapeError(f"{what}: {x.ndim}-dimensional array given. Array must be at least two-dimensional")
    if x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"{what}: last 2 dimensions of the array must be square, got {x.shape}")
    return x


def mT(x: Node) -> Node:
    """The last two axes swapped."""
    return shape.transpose(x, (1, 0))


def mm(*xs: Node) -> Node:
    """The matrix product of stacks of matrices (leading axes broadcast)."""
    out = xs[0]
    for x in xs[1:]:
        out = einsum("ij,jk->ik", out, x)
    return out


def scaled(x: Node, s: Node) -> Node:
    """``x`` (…, n, n) times the number ``s`` (…) of each matrix."""
    return ew.elementwise(placeholder(0) * placeholder(1), (x, shape.reshape(s, 0, (1, 1))))


def symmetrized(x: Node) -> Node:
    """(x + x^T) / 2 on the trailing two axes."""
    return ew.elementwise((placeholder(0) + placeholder(1)) / 2, (x, mT(x)))


def _same_rank(a: Node, b: Node) -> tuple:
    """Size-1 leading axes in front of the lower-rank operand: numpy then never reads b as vectors."""
    rank = max(a.ndim, b.ndim)
    return pad_rank(a, rank, a.ndim), pad_rank(b, rank, b.ndim)


def solve(a: Node, b: Node) -> Node:
    """A^-1 B for stacks of square A (…, n, n) and matrices B (…, n, k); leading axes broadcast."""
    square(a, "solve")
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise ShapeError(f"solve: shapes {a.shape} and {b.shape} are not aligned")
    a, b = _same_rank(a, b)
    lead = np.broadcast_shapes(lead_shape(a.shape, 2), lead_shape(b.shape, 2))
    return Node("solve", (a, b), tuple(lead) + b.shape[-2:], result_dtype(a.dtype, b.dtype))


def inv(a: Node) -> Node:
    square(a, "inv")
    return Node("inv", (a,), a.shape, result_dtype(a.dtype))


def det(a: Node) -> Node:
    square(a, "det")
    return Node("det", (a,), a.shape[:-2], result_dtype(a.dtype))


def slogdet(a: Node, part: int) -> Node:
    """Part 0 (the sign) or 1 (log |det|) of np.linalg.slogdet."""
    square(a, "slogdet")
    return Node("slogdet", (a,), a.shape[:-2], result_dtype(a.dtype), (part,))


def _trace_of_product(x: Node, y: Node) -> Node:
    """tr(x y) for stacks of matrices."""
    return einsum("ij,ji->", x, y)


class _LinalgOp(Op):
    """What the np.linalg ops share: derivatives from their rules only (never from a SymPy
    expansion of their value), and no per-point kernels."""

    opaque = True

    def per_point(self, node, arguments, outputs):
        return False

    def sparsity(self, node, patterns):
        """Dense within each matrix of a stack, nothing across the stack's entries."""
        from . import patterns as pat

        return pat.per_matrix(node, patterns)

    def evaluate(self, node, xs, symbolic):
        if symbolic:
            raise NotImplementedError(
                f"{self.name} has no formula: np.linalg ops are evaluated on numbers only (use a numeric transform)")
        return self.numeric(node, *xs)


@register
class Solve(_LinalgOp):
    """np.linalg.solve(A, B): A^-1 B over the trailing two axes (B a matrix; vectors are reshaped)."""

    name = "solve"
    # the standard's solve broadcasts B as a stack of matrices: widen_b as for numpy
    array_api_template = """{{ s.target }} = xp.linalg.solve({{ s.inputs[0] }}, {% if s.widen_b -%}
xp.broadcast_to({{ s.inputs[1] }}, tuple(xp.broadcast_shapes({{ s.inputs[0] }}.shape[:-2], {{ s.inputs[1] }}.shape[:-2])) + {{ s.inputs[1] }}.shape[-2:])
{%- else %}{{ s.inputs[1] }}{% endif %})"""

    def batched_operand_ranks(self, node):
        return [node.ndim, node.ndim]

    def vjp(self, node, g, wanted, n_lead):
        a, b = node.inputs
        gb = solve(mT(a), g)
        if 1 in wanted:
            yield 1, unbroadcast(gb, g.shape[:n_lead] + b.shape, n_lead)
        if 0 in wanted:
            ga = ew.elementwise(-placeholder(0), (mm(gb, mT(node)),))
            yield 0, unbroadcast(ga, g.shape[:n_lead] + a.shape, n_lead)

    def jvp(self, node, tangents, lead):
        da, rhs = tangents
        if da is not None:
            rhs = masks.add(rhs, ew.elementwise(-placeholder(0), (mm(da, node),)))
        return solve(node.inputs[0], rhs)

    def numeric(self, node, a, b):
        return np.linalg.solve(a, b)

    def statement(self, node, emit):
        a, b = node.inputs
        s = super().statement(node, emit)
        # a batched A with an unbatched B: B gets A's batch axes (numpy 1.x would read B as vectors)
        s["widen_b"] = emit.batched(a) and not emit.batched(b)
        return s

    template = """{{ s.target }} = np.linalg.solve({{ s.inputs[0] }}, {% if s.widen_b -%}
np.broadcast_to({{ s.inputs[1] }}, np.broadcast_shapes({{ s.inputs[0] }}.shape[:-2], {{ s.inputs[1] }}.shape[:-2]) + {{ s.inputs[1] }}.shape[-2:])
{%- else %}{{ s.inputs[1] }}{% endif %})"""


@register
class Inv(_LinalgOp):
    """np.linalg.inv(A) over the trailing two axes."""

    name = "inv"
    template = "{{ s.target }} = np.linalg.inv({{ s.x }})"
    array_api_template = "{{ s.target }} = xp.linalg.inv({{ s.x }})"

    def vjp(self, node, g, wanted, n_lead):
        ga = ew.elementwise(-placeholder(0), (mm(mT(node), g, mT(node)),))
        yield 0, unbroadcast(ga, g.shape[:n_lead] + node.inputs[0].shape, n_lead)

    def jvp(self, node, tangents, lead):
        return ew.elementwise(-placeholder(0), (mm(node, tangents[0], node),))

    def numeric(self, node, a):
        return np.linalg.inv(a)


@register
class Det(_LinalgOp):
    """np.linalg.det(A); d det = det tr(A^-1 dA) (NaN at singular A)."""

    name = "det"
    template = "{{ s.target }} = np.linalg.det({{ s.x }})"
    array_api_template = "{{ s.target }} = xp.linalg.det({{ s.x }})"

    def vjp(self, node, g, wanted, n_lead):
        a = node.inputs[0]
        weight = ew.elementwise(placeholder(0) * placeholder(1), (g, node))
        yield 0, unbroadcast(scaled(mT(inv(a)), weight), g.shape[:n_lead] + a.shape, n_lead)

    def jvp(self, node, tangents, lead):
        t = _trace_of_product(inv(node.inputs[0]), tangents[0])
        return ew.elementwise(placeholder(0) * placeholder(1), (t, node))

    def numeric(self, node, a):
        return np.asarray(np.linalg.det(a))


@register
class SlogDet(_LinalgOp):
    """Part ``params[0]`` of np.linalg.slogdet(A): 0 the sign (derivative 0), 1 log|det A|."""

    name = "slogdet"
    template = "{{ s.target }} = np.linalg.slogdet({{ s.x }})[{{ s.params[0] }}]"
    array_api_template = "{{ s.target }} = xp.linalg.slogdet({{ s.x }})[{{ s.params[0] }}]"

    def vjp(self, node, g, wanted, n_lead):
        if node.params[0] == 1:
            a = node.inputs[0]
            yield 0, unbroadcast(scaled(mT(inv(a)), g), g.shape[:n_lead] + a.shape, n_lead)

    def jvp(self, node, tangents, lead):
        if node.params[0] == 0:
            return None
        return _trace_of_product(inv(node.inputs[0]), tangents[0])

    def numeric(self, node, a):
        return np.asarray(np.linalg.slogdet(a)[node.params[0]])


SlogdetResult = collections.namedtuple("SlogdetResult", ["sign", "logabsdet"])


@numpy_function(np.linalg.solve)
def np_linalg_solve(a, b):
    x, y = as_node(a), as_node(b)
    if y.ndim == 1:  # a vector (numpy 2's rule): solved as a one-column matrix
        r = solve(x, shape.reshape(y, 1, (y.shape[0], 1)))
        return shape.reshape(r, 2, (r.shape[-2],))
    return solve(x, y)


@numpy_function(np.linalg.inv)
def np_linalg_inv(a):
    return inv(as_node(a))


@numpy_function(np.linalg.det)
def np_linalg_det(a):
    return det(as_node(a))


@numpy_function(np.linalg.slogdet)
def np_linalg_slogdet(a):
    x = as_node(a)
    return SlogdetResult(slogdet(x, 0), slogdet(x, 1))


def transposed_jvp(op: Op, node: Node, g: Node, n_lead: int) -> Node:
    """The VJP of a one-input op as the transpose of its JVP (linear in the tangent): reverse mode
    through the JVP applied to a fresh tangent, which the result never depends on."""
    from ..differentiate import vjp
    from ..graph import fresh_input

    a = node.inputs[0]
    t = fresh_input(0, a.shape, a.dtype, "tangent")
    (c,) = vjp([op.jvp(node, [t], ())], [g], [t], lead=g.shape[:n_lead])
    return c


@numpy_function(np.linalg.matrix_power)
def np_linalg_matrix_power(a, n):
    x = square(as_node(a), "matrix_power")
    if not isinstance(n, numbers.Integral):
        raise TypeError("exponent must be an integer")
    if n < 0:
        x, n = inv(x), -n
    if n == 0:
        return shape.broadcast(ew.cast(as_node(np.eye(x.shape[-1])), x.dtype), 2, x.shape)
    result, power = None, x
    while n:  # binary powers: O(log n) products, each differentiated as einsum
        if n & 1:
            result = power if result is None else mm(result, power)
        n >>= 1
        if n:
            power = mm(power, power)
    return result


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
    array_api_template = "{{ s.target }} = xp.linalg.cholesky({{ s.x }})"

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
    array_api_template, spelled = False, "np.linalg.eigh (UPLO= has no equivalent in the standard)"
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
    array_api_template = """{{ s.target }} = {% if s.params[0] == 1 -%}
xp.linalg.svdvals({{ s.x }})
{%- else %}xp.linalg.svd({{ s.x }}, full_matrices=False)[{{ s.params[0] }}]{% endif %}"""
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
