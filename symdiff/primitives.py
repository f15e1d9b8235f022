"""The SymPy side of elementwise bodies: the functions every stage meets (``where``, comparisons, a
stable ``logaddexp`` and sigmoid, a ``Max``/``Min`` cheap to rebuild) with their derivatives (``fdiff``), and the conventions SymPy's
derivatives are cleaned up to (``clean_derivative``, ``lift_selects``, ``stable_forms``).

Which numpy and scipy.special ufuncs map to which SymPy body, and how each prints, is the table in
``ops.ufuncs``; functions only one of its entries uses are defined there.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy
from sympy.codegen.cfunctions import log1p
from sympy.core.operations import ShortCircuit
from sympy.printing.precedence import PRECEDENCE


class Where(sympy.Function):
    """``numpy.where(c, x, y)``; the condition carries no derivative.

    The derivative of a select is a select of the derivatives (``_eval_derivative``), never the
    mask products ``Where(c, 1, 0)*x' + Where(c, 0, 1)*y'``: the branch not taken may be NaN or inf
    (``sqrt`` of a negative number), and 0*NaN is NaN. ``lift_selects`` keeps products and sums of
    selects in that form."""

    nargs = 3

    @classmethod
    def eval(cls, c, x, y):
        if x == y:
            return x
        if c.is_number:
            truth = _truth(c)
            if truth is not None:
                return x if truth else y
        # inside the branches of Where(c, ..), the value of c is known
        if isinstance(x, Where) and x.args[0] == c:
            return Where(c, x.args[1], y)
        if isinstance(y, Where) and y.args[0] == c:
            return Where(c, x, y.args[2])
        return None

    def fdiff(self, argindex=1):
        c = self.args[0]
        if argindex == 1:
            return sympy.S.Zero
        return Where(c, 1, 0) if argindex == 2 else Where(c, 0, 1)

    def _eval_derivative(self, s):
        c, x, y = self.args
        return Where(c, x.diff(s), y.diff(s))


def _truth(c):
    """The truth of a numeric condition (a comparison of numbers is decided as numpy would), or None."""
    if isinstance(c, _Comparison):
        try:
            return bool(getattr(np, c.numpy_name)(float(c.args[0]), float(c.args[1])))
        except (TypeError, ValueError):
            return None
    return c != 0


class _Comparison(sympy.Function):
    """A boolean-valued elementwise comparison; its derivative is zero everywhere."""

    nargs = 2
    numpy_name = ""

    def fdiff(self, argindex=1):
        return sympy.S.Zero


def _comparison(name: str, numpy_name: str):
    return type(name, (_Comparison,), {"numpy_name": numpy_name})


Greater = _comparison("Greater", "greater")
GreaterEqual = _comparison("GreaterEqual", "greater_equal")
Less = _comparison("Less", "less")
LessEqual = _comparison("LessEqual", "less_equal")
Equal = _comparison("Equal", "equal")
NotEqual = _comparison("NotEqual", "not_equal")


class LogAddExp(sympy.Function):
    """``log(exp(a) + exp(b))`` evaluated without overflow; derivatives are stable sigmoids."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return Sigmoid(a - b) if argindex == 1 else Sigmoid(b - a)


class Sigmoid(sympy.Function):
    """The logistic function, printed in a form that cannot overflow."""

    nargs = 1
    # printed as a quotient (1/(1 + exp(-x))): parenthesized wherever a product would be, so that
    # x/sigmoid(y) is not printed as x/1/(...)
    precedence = PRECEDENCE["Mul"]

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sympy.S.Half
        return None

    def fdiff(self, argindex=1):
        s = Sigmoid(self.args[0])
        return s * (1 - s)


class _CheapExtremum:
    """SymPy's Max/Min, simplified only where that is cheap: nested calls flattened, repeated
    arguments dropped, numbers folded into one. SymPy's own constructor compares every pair of
    arguments symbolically (``_find_localzeros``) each time an expression is rebuilt (every
    ``xreplace``), which made the max of 12 element symbols and its derivatives a compile of minutes.
    Same name, printing, derivatives (``Heaviside``: 1/2 at ties) and ``isinstance`` as SymPy's."""

    _sympy: type  # SymPy's class, which still folds the numbers

    def __new__(cls, *args, evaluate=True, **assumptions):
        args = [sympy.sympify(a) for a in args]
        if evaluate:
            try:
                args = list(dict.fromkeys(cls._new_args_filter(args)))
            except ShortCircuit:
                return cls.zero
            numbers = [a for a in args if a.is_number]
            if len(numbers) > 1:
                args = [a for a in args if not a.is_number] + [cls._sympy(*numbers)]
        unique = frozenset(args)
        if len(unique) <= 1:
            return next(iter(unique), cls.identity)
        obj = sympy.Expr.__new__(cls, *sympy.ordered(unique), **assumptions)
        obj._argset = unique
        return obj

    def _others(self, argindex):
        return self.func(*(a for i, a in enumerate(self.args) if i != argindex - 1))


class Max(_CheapExtremum, sympy.Max):
    _sympy = sympy.Max

    def fdiff(self, argindex=1):
        if len(self.args) > 2 and 0 < argindex <= len(self.args):
            return sympy.Heaviside(self.args[argindex - 1] - self._others(argindex))
        return super().fdiff(argindex)


class Min(_CheapExtremum, sympy.Min):
    _sympy = sympy.Min

    def fdiff(self, argindex=1):
        if len(self.args) > 2 and 0 < argindex <= len(self.args):
            return sympy.Heaviside(self._others(argindex) - self.args[argindex - 1])
        return super().fdiff(argindex)


class _Special(sympy.Function):
    """A scipy.special function SymPy does not have (``ops.ufuncs`` defines them and their printing):
    generated code that calls one imports scipy.special, and numba kernels cannot."""


def clean_derivative(expr: sympy.Expr) -> sympy.Expr:
    """Fix the conventions SymPy leaves open: distributions and derivatives of step functions are zero
    almost everywhere, so they become 0 (as in JAX); products and sums of selects become selects
    (``lift_selects``), so the branch not taken cannot leak NaN into the derivative."""
    if expr.has(sympy.DiracDelta):
        expr = expr.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)
    if expr.has(sympy.Derivative):
        step = (sympy.floor, sympy.ceiling, sympy.sign, _Comparison)
        expr = expr.replace(
            lambda e: isinstance(e, sympy.Derivative) and isinstance(e.expr, step),
            lambda e: sympy.S.Zero,
        )
    if expr.has(sympy.Subs):
        expr = expr.replace(lambda e: isinstance(e, sympy.Subs), lambda e: e.doit())
    return lift_selects(expr)


# ---------------------------------------------------------------------------------------------
# Selects stay selects: the derivative of np.where(c, x, y) must never multiply the branch that was
# not taken (NaN or inf where it is undefined) by a zero mask.
# ---------------------------------------------------------------------------------------------


def lift_selects(expr: sympy.Expr) -> sympy.Expr:
    """An equivalent expression in which no select is multiplied or summed with another select:

    * ``Where(c, a, b) * r  ->  Where(c, a*r, b*r)`` (so ``Where(c, 1, 0) * f'`` is ``Where(c, f', 0)``,
      and the false branch is the exact 0, not ``0 * NaN``);
    * ``Where(c, p, q) + Where(c, r, s)  ->  Where(c, p + r, q + s)``;
    * ``Where(c, a, b) ** n  ->  Where(c, a**n, b**n)`` for a positive number ``n``;
    * inside the true (false) branch of ``Where(c, ..)``, a nested ``Where(c, p, q)`` is ``p`` (``q``).
    """
    if not isinstance(expr, sympy.Basic) or not expr.has(Where):
        return expr
    return _Lifter().lift(expr, ())


MAX_SELECT_NESTING = 6  # products of selects on more distinct conditions stay products (2**n branches)


class _Lifter:
    def __init__(self):
        self._memo: dict = {}
        self._has: dict = {}

    def has_select(self, e) -> bool:
        got = self._has.get(e)
        if got is None:
            got = isinstance(e, Where) or any(self.has_select(a) for a in e.args)
            self._has[e] = got
        return got

    def lift(self, e, known: tuple):
        """``known``: (condition, truth) pairs of the selects this expression sits in."""
        if not self.has_select(e):
            return e
        key = (e, known)
        out = self._memo.get(key)
        if out is None:
            out = self._lift(e, known)
            self._memo[key] = out
        return out

    def _lift(self, e, known):
        if isinstance(e, Where):
            c, x, y = e.args
            for cond, truth in known:
                if cond == c:
                    return self.lift(x if truth else y, known)
            return Where(c, self.lift(x, known + ((c, True),)), self.lift(y, known + ((c, False),)))
        args = [self.lift(a, known) for a in e.args]
        if e.is_Mul and len(known) < MAX_SELECT_NESTING:
            for i, a in enumerate(args):
                if isinstance(a, Where):
                    rest = sympy.Mul(*(args[:i] + args[i + 1 :]))
                    c, x, y = a.args
                    return self.lift(Where(c, x * rest, y * rest), known)
        if e.is_Mul:
            return sympy.Mul(*args)
        if e.is_Add:
            groups: dict = {}
            others = []
            for a in args:
                if isinstance(a, Where):
                    groups.setdefault(a.args[0], []).append(a)
                else:
                    others.append(a)
            if all(len(g) == 1 for g in groups.values()):
                return sympy.Add(*args)
            merged = [
                g[0] if len(g) == 1 else self.lift(Where(c, sympy.Add(*(w.args[1] for w in g)), sympy.Add(*(w.args[2] for w in g))), known)
                for c, g in groups.items()
            ]
            return sympy.Add(*others, *merged)
        if e.is_Pow and isinstance(args[0], Where) and args[1].is_number and args[1].is_positive \
                and len(known) < MAX_SELECT_NESTING:
            c, x, y = args[0].args
            return self.lift(Where(c, x ** args[1], y ** args[1]), known)
        return e.func(*args)


@lru_cache(maxsize=65536)
def local_derivative(body: sympy.Expr, symbol: sympy.Symbol) -> sympy.Expr:
    """d body / d symbol: the only place the differentiation stage calls SymPy, cached per pair."""
    return clean_derivative(sympy.diff(body, symbol))


# ---------------------------------------------------------------------------------------------
# Stable forms: numerically fragile idioms rewritten into primitives whose values and derivatives
# of every order cannot overflow (softplus, sigmoid, log-sigmoid, log-sum-exp of two terms).
# ---------------------------------------------------------------------------------------------


def _softplus_argument(term):
    """z if term is log(1 + exp(z)) or log1p(exp(z)), else None."""
    if isinstance(term, log1p) and isinstance(term.args[0], sympy.exp):
        return term.args[0].args[0]
    if isinstance(term, sympy.log) and term.args[0].is_Add and len(term.args[0].args) == 2:
        one, e = sorted(term.args[0].args, key=lambda t: not t.is_number)
        if one == 1 and isinstance(e, sympy.exp):
            return e.args[0]
    return None


def _rewrite_add(expr):
    """max(z, 0) + softplus(-|z|)  ->  softplus(z), the stable form users write by hand."""
    terms = list(expr.args)
    for t in terms:
        z = _softplus_argument(t)
        if z is None or not isinstance(-z, sympy.Abs):
            continue
        inner = (-z).args[0]
        m = Max(inner, 0)
        if m in terms:
            rest = [u for u in terms if u is not t and u != m]
            return sympy.Add(LogAddExp(0, inner), *rest)
    return expr


def _rewrite_log(expr):
    z = _softplus_argument(expr)
    if z is not None and not isinstance(-z, sympy.Abs):
        return LogAddExp(0, z)
    arg = expr.args[0]
    if isinstance(expr, sympy.log) and arg.is_Add and len(arg.args) == 2 and all(isinstance(t, sympy.exp) for t in arg.args):
        return LogAddExp(arg.args[0].args[0], arg.args[1].args[0])
    if isinstance(expr, sympy.log) and isinstance(arg, Sigmoid):
        return -LogAddExp(0, -arg.args[0])
    if isinstance(expr, sympy.log) and arg.is_Add and len(arg.args) == 2:
        one, s = sorted(arg.args, key=lambda t: not t.is_number)
        if one == 1 and s.could_extract_minus_sign() and isinstance(-s, Sigmoid):
            return -LogAddExp(0, (-s).args[0])
    return expr


def _rewrite_pow(expr):
    """1/(1 + exp(-z)) -> sigmoid(z)."""
    base, exponent = expr.args
    if exponent == -1 and base.is_Add and len(base.args) == 2:
        one, e = sorted(base.args, key=lambda t: not t.is_number)
        if one == 1 and isinstance(e, sympy.exp):
            return Sigmoid(-e.args[0])
    return expr


def stable_forms(expr: sympy.Expr) -> sympy.Expr:
    if not expr.has(sympy.exp):
        return expr
    expr = expr.replace(lambda e: isinstance(e, sympy.Pow), _rewrite_pow)
    expr = expr.replace(lambda e: isinstance(e, (sympy.log, log1p)), _rewrite_log)
    return expr.replace(lambda e: e.is_Add, _rewrite_add)
