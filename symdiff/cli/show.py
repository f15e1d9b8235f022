"""``symdiff show``: the derivative formulas as SymPy prints them, and what CSE saves.

The operation counts tell a reader why the generated code looks the way it does: the formula as a
human would write it out, against the formula once common subexpressions are computed once.
"""

from __future__ import annotations

import numpy as np
import sympy


def leaves(target, kind, order, result) -> list:
    """``[(partials, expr)]`` for one transform's result; ``partials`` names the differentiations."""
    single = not isinstance(target.positions, tuple)
    wrt = target.wrt_names()
    if kind == "derivative":
        partials = wrt if not single else wrt * order
        return [(partials, result)]
    if kind == "value_and_grad":
        value, grads = result
        return [([], value)] + leaves(target, "grad", order, grads)
    if kind == "hessian":
        if single:
            return [(wrt * 2, result)]
        return [([a, b], result[i][j]) for i, a in enumerate(wrt) for j, b in enumerate(wrt)]
    if single:
        return [(wrt, result)]
    return [([w], r) for w, r in zip(wrt, result)]


def label(name: str, partials: list, latex: bool) -> str:
    """``d^2 f/dx dy`` (or its LaTeX fraction) for the derivative of ``name`` along ``partials``."""
    n = len(partials)
    if latex:
        fname = r"\mathrm{" + name.replace("_", r"\_") + "}"
        if n == 0:
            return fname
        power = "" if n == 1 else f"^{{{n}}}"
        below = r" \, ".join(r"\partial " + p for p in partials)
        return rf"\frac{{\partial{power} {fname}}}{{{below}}}"
    if n == 0:
        return name
    if len(set(partials)) == 1 and n > 1:
        return f"d^{n} {name}/d{partials[0]}^{n}"
    return f"d{'' if n == 1 else f'^{n}'} {name}/" + " ".join(f"d{p}" for p in partials)


def scalars(expr) -> list:
    """The scalar entries of an expression, Matrix or Array."""
    if isinstance(expr, (sympy.MatrixBase, sympy.NDimArray)):
        return list(np.array(expr.tolist(), dtype=object).ravel())
    return [sympy.sympify(expr)]


def operation_counts(exprs) -> tuple:
    """SymPy's ``count_ops`` of ``exprs`` as written, and after ``cse`` (replacements included)."""
    before = sum(sympy.count_ops(e) for e in exprs)
    replacements, reduced = sympy.cse(exprs)
    after = sum(sympy.count_ops(v) for _, v in replacements) + sum(sympy.count_ops(e) for e in reduced)
    return before, after


def render(expr, latex: bool, unicode: bool, width: int) -> str:
    """LaTeX, or SymPy's 2-D pretty form when it fits in ``width`` columns, else one line."""
    if latex:
        return sympy.latex(expr)
    text = sympy.pretty(expr, use_unicode=unicode, wrap_line=False)
    if max(len(line) for line in text.splitlines()) <= width:
        return text
    return sympy.sstr(expr)
