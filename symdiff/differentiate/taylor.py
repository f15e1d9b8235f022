"""High-order derivatives of scalar functions by univariate Taylor propagation on the IR.

Repeated ``sympy.diff`` of an expression swells exponentially with the order. Instead every
subexpression ``e`` of the function gets Taylor coefficients ``e_0 .. e_K`` in the direction of
the variable, each one an elementwise IR node built from lower coefficients: sums add, products are
Cauchy products, powers with a constant exponent follow their recurrence, and every other function
``g`` uses ``h' = g'(u) u'`` with SymPy supplying ``g'``. The generated program therefore has
O(K^2) operations per subexpression, and ``K! * f_K`` is the K-th derivative.
"""

from __future__ import annotations

import math

import sympy

from .. import ir
from ..ir import placeholder
from ..primitives import Where, clean_derivative


class TaylorBuilder:
    """Coefficients of subexpressions of ``body`` (over placeholders for ``inputs``) along one variable."""

    def __init__(self, inputs, variable: int, dtype: str):
        self.inputs, self.variable, self.dtype = list(inputs), variable, dtype
        self._memo: dict = {}
        self._derivatives: dict = {}

    # -- coefficient arithmetic: a coefficient is a SymPy number or an IR node ----------------
    def combine(self, expr_of, operands):
        """Apply ``expr_of(*symbols)`` to operands, folding numbers in and dropping zeros."""
        symbols, nodes = ir.bind(operands)
        body = sympy.sympify(expr_of(*symbols))
        if not nodes or body.is_number:
            return body
        used = sorted({int(s.name[1:]) for s in body.free_symbols})
        if len(used) != len(nodes):
            keep = [nodes[i] for i in used]
            body = body.xreplace({placeholder(old): placeholder(new) for new, old in enumerate(used)})
            nodes = keep
        return ir.elementwise(body, nodes, dtype=self.dtype)

    def total(self, products):
        """Sum of products: ``products`` is a list of (number, [coefficients])."""
        terms = [(c, fs) for c, fs in products if c != 0 and not any(f is sympy.S.Zero or f == 0 for f in fs if not isinstance(f, ir.Node))]
        if not terms:
            return sympy.S.Zero
        flat = [f for _, fs in terms for f in fs]

        def expr(*syms):
            out, k = [], 0
            for c, fs in terms:
                out.append(c * sympy.Mul(*syms[k : k + len(fs)]))
                k += len(fs)
            return sympy.Add(*out)

        return self.combine(expr, flat)

    # -- the coefficients ---------------------------------------------------------------------
    def coef(self, e: sympy.Expr, k: int):
        key = (e, k)
        if key not in self._memo:
            self._memo[key] = self._coef(e, k)
        return self._memo[key]

    def _depends(self, e) -> bool:
        return placeholder(self.variable) in e.free_symbols

    def _coef(self, e, k):
        if k == 0:
            return self.combine(lambda *s: e.xreplace(dict(zip(self._symbols(), s))), self.inputs) if e.free_symbols else e
        if not self._depends(e):
            return sympy.S.Zero
        if e == placeholder(self.variable):
            return sympy.S.One if k == 1 else sympy.S.Zero
        if e.is_Add:
            return self.total([(1, [self.coef(a, k)]) for a in e.args])
        if e.is_Mul:
            return self._product(list(e.args), k)
        if e.is_Pow and e.exp.is_number:
            return self._power(e.base, e.exp, k)
        if e.is_Pow:
            return self.coef(sympy.exp(e.exp * sympy.log(e.base)), k)
        if isinstance(e, Where):
            return self._select(e, k)
        return self._function(e, k)

    def _symbols(self):
        return [placeholder(i) for i in range(len(self.inputs))]

    def _product(self, factors, k):
        constant = [f for f in factors if not self._depends(f)]
        varying = [f for f in factors if self._depends(f)]
        c = sympy.Mul(*constant)
        if len(varying) == 1:
            inner = self.coef(varying[0], k)
        else:
            head, rest = varying[0], sympy.Mul(*varying[1:])
            inner = self.total([(1, [self.coef(head, j), self.coef(rest, k - j)]) for j in range(k + 1)])
        if c == 1:
            return inner
        return self.total([(1, [self.coef(c, 0), inner])])

    def _power(self, u, r, k):
        if r.is_Integer and r > 0:  # Cauchy products: no division by u_0, which may be zero
            if r == 1:
                return self.coef(u, k)
            half = u ** (r // 2)
            rest = u ** (r - r // 2)
            return self.total([(1, [self.coef(half, j), self.coef(rest, k - j)]) for j in range(k + 1)])
        # p = u**r:  k u_0 p_k = sum_{j=1..k} (r j - (k - j)) u_j p_{k-j}
        p = u**r
        terms = [(r * j - (k - j), [self.coef(u, j), self.coef(p, k - j)]) for j in range(1, k + 1)]
        numerator = self.total(terms)
        return self.total([(sympy.Rational(1, k), [numerator, self.coef(1 / u, 0)])])

    def _select(self, e, k):
        """where(c, x, y) is piecewise x or y, so its coefficients are the selected branch's: a
        select of coefficients (never mask products, which would multiply the NaN of an untaken
        branch by 0)."""
        c, x, y = e.args
        cx, cy = self.coef(x, k), self.coef(y, k)
        if not isinstance(cx, ir.Node) and not isinstance(cy, ir.Node) and cx == cy:
            return cx
        n = len(self.inputs)
        return self.combine(
            lambda *s: Where(c.xreplace(dict(zip(self._symbols(), s[:n]))), s[n], s[n + 1]),
            [*self.inputs, cx, cy],
        )

    def _function(self, e, k):
        """h = g(u1, u2, ...):  k h_k = sum_i sum_{j=1..k} j (u_i)_j (d_i g)_{k-j}."""
        products = []
        for i, u in enumerate(e.args):
            if not self._depends(u):
                continue
            d = self._partial(e, i)
            if d == 0:
                continue
            for j in range(1, k + 1):
                products.append((sympy.Rational(j, k), [self.coef(u, j), self.coef(d, k - j)]))
        return self.total(products)

    def _partial(self, e, i):
        key = (e, i)
        if key not in self._derivatives:
            s = sympy.Dummy("s", real=True)
            args = list(e.args)
            args[i] = s
            g = e.func(*args)
            self._derivatives[key] = clean_derivative(sympy.diff(g, s)).xreplace({s: e.args[i]})
        return self._derivatives[key]


def derivative_node(body, inputs, variable: int, order: int, dtype: str):
    """The ``order``-th derivative of ``body`` in input ``variable``, as IR over ``inputs``."""
    builder = TaylorBuilder(inputs, variable, dtype)
    c = builder.coef(sympy.sympify(body), order)
    scaled = builder.total([(math.factorial(order), [c])]) if isinstance(c, ir.Node) else c * math.factorial(order)
    if isinstance(scaled, ir.Node):
        return scaled
    shape = ir.elementwise(sympy.S.Zero, inputs).shape if inputs else ()
    return ir.fill(scaled, shape, dtype)
