"""Part of emission: evaluate large elementwise bodies with numpy ufuncs writing in place.

A printed expression such as ``-c*Y + c/(1 + np.exp(-(b + t0)))`` allocates a new array for every
operation. For arrays of at least ``MIN_SIZE`` elements the emitter instead writes a sequence of
ufunc calls with ``out=``, reusing a buffer it owns: a fresh temporary, or an intermediate array of the
function whose last use is this statement. Peak memory then stays near one array per live value,
and common numeric factors are applied once at the end. Anything without a ufunc form is printed
as usual and becomes a buffer itself.
"""

from __future__ import annotations

import json
import re

import numpy as np
import sympy

from .primitives import LogAddExp, Sigmoid

MIN_SIZE = 1 << 16
FRESH = {"assign", "matmul", "einsum", "sum", "prod", "extreme", "concat", "scatter", "scatter_add", "pack",
         "fill", "eye", "cumsum", "call"}
UNARY = {
    sympy.exp: "np.exp", sympy.log: "np.log", sympy.sin: "np.sin", sympy.cos: "np.cos", sympy.tan: "np.tan",
    sympy.tanh: "np.tanh", sympy.sinh: "np.sinh", sympy.cosh: "np.cosh", sympy.asin: "np.arcsin",
    sympy.acos: "np.arccos", sympy.atan: "np.arctan", sympy.asinh: "np.arcsinh", sympy.atanh: "np.arctanh",
    sympy.Abs: "np.absolute", sympy.sign: "np.sign", sympy.floor: "np.floor", sympy.ceiling: "np.ceil",
}
_IDENT = re.compile(r"[A-Za-z_]\w*")


def rewrite(statements, returns, shapes, printer, exp_bound=708.0):
    """Replace big assignments by in-place ufunc sequences. ``shapes``: name -> static shape."""
    reads = [set(_IDENT.findall(json.dumps({k: v for k, v in s.items() if k not in ("target", "sexpr")})))
             for s in statements]
    last_use = {}
    for i, names in enumerate(reads):
        for n in names:
            last_use[n] = i
    for n in _IDENT.findall(" ".join(returns)):
        last_use[n] = len(statements)
    owned = {s["target"] for s in statements if s["op"] in FRESH and not _is_alias(s)}
    out = []
    for i, s in enumerate(statements):
        expr = s.get("sexpr")
        shape = shapes.get(s["target"])
        if s["op"] != "assign" or expr is None or shape is None or int(np.prod(shape)) < MIN_SIZE:
            out.append(s)
            continue
        dying = {n for n in owned if last_use.get(n) == i and shapes.get(n) == shape}
        calls = _Generator(shapes, printer, dying, shape, exp_bound).program(expr, s["target"])
        out.extend(calls if calls is not None else [s])
    return out


def _is_alias(s) -> bool:
    return s["op"] == "assign" and _IDENT.fullmatch(s.get("expr", "")) is not None


class _Generator:
    def __init__(self, shapes, printer, dying, shape, exp_bound):
        self.shapes, self.printer, self.shape = shapes, printer, tuple(shape)
        self.bound = repr(float(exp_bound))
        self.dying = dying
        self.calls: list = []
        self.buffers: set = set()  # names this evaluation may overwrite
        self.counter = 0

    def program(self, expr, target):
        self.target = target
        counts = {s.name: expr.count(s) for s in expr.free_symbols}
        self.dying = {n for n in self.dying if counts.get(n) == 1}  # safe to overwrite once read
        result = self.gen(expr)
        if result not in self.buffers:
            return None  # nothing to evaluate in place
        if result != target:
            self.calls.append({"op": "assign", "target": target, "expr": result})
        return self.calls

    # -- helpers ---------------------------------------------------------------------------------
    def full(self, e) -> bool:
        syms = [self.shapes.get(s.name, ()) for s in e.free_symbols]
        return bool(syms) and tuple(np.broadcast_shapes(*syms)) == self.shape

    def operand(self, e):
        if e.is_Symbol:
            if e.name in self.dying:
                self.buffers.add(e.name)
            return e.name
        if e.is_number:
            return self.printer(e)
        return self.gen(e)

    def apply(self, fn, args, extra=""):
        """fn(*args) into a buffer among the arguments, or into a new one."""
        out = next((a for a in args if a in self.buffers), None)
        text = ", ".join(args) + (f", {extra}" if extra else "")
        if out is None:
            out = self.target if self.target not in self.buffers and not self.calls else f"{self.target}_{self.counter}"
            self.counter += 1
            self.calls.append({"op": "assign", "target": out, "expr": f"{fn}({text})"})
            self.buffers.add(out)
        else:
            self.calls.append({"op": "call", "target": out, "fn": fn, "args": text})
        return out

    # -- the translation -------------------------------------------------------------------------
    def gen(self, e):
        if not self.full(e):  # a smaller operand: print it, broadcasting happens in the next op
            return self.printer(e)
        if e.is_Add:
            return self.add(e)
        if e.is_Mul:
            return self.mul(e)
        if e.is_Pow and e.exp.is_number:
            return self.power(e.base, e.exp)
        if isinstance(e, Sigmoid):
            x = self.operand(e.args[0])
            x = self.apply("np.negative", [x])
            x = self.apply("np.clip", [x, "-" + self.bound, self.bound])
            x = self.apply("np.exp", [x])
            x = self.apply("np.add", [x, "1.0"])
            return self.apply("np.reciprocal", [x])
        if isinstance(e, LogAddExp):
            return self.apply("np.logaddexp", [self.operand(a) for a in e.args])
        if isinstance(e, (sympy.Max, sympy.Min)):
            args = [self.operand(a) for a in e.args]
            fn = "np.maximum" if isinstance(e, sympy.Max) else "np.minimum"
            acc = args[0]
            for a in args[1:]:
                acc = self.apply(fn, [acc, a])
            return acc
        if isinstance(e, sympy.Heaviside):
            return self.apply("np.heaviside", [self.operand(e.args[0]), "0.5"])
        if e.func in UNARY and len(e.args) == 1:
            return self.apply(UNARY[e.func], [self.operand(e.args[0])])
        name = e.func.__name__
        if name in ("log1p", "expm1", "exp2", "log2", "log10") and len(e.args) == 1:
            return self.apply(f"np.{name}", [self.operand(e.args[0])])
        return self.fresh(e)

    def fresh(self, e):
        name = f"{self.target}_{self.counter}"
        self.counter += 1
        self.calls.append({"op": "assign", "target": name, "expr": self.printer(e)})
        self.buffers.add(name)
        return name

    def add(self, e):
        terms = list(e.args)
        coeffs = {abs(t.as_coeff_Mul()[0]) for t in terms}
        if len(coeffs) == 1 and (c := coeffs.pop()) != 1:  # c*a - c*b -> (a - b)*c
            inner = self.add(sympy.Add(*[t / c for t in terms], evaluate=False))
            return self.apply("np.multiply", [inner, self.printer(c)])
        # an array-sized computed term first: it becomes the buffer the others are added into
        terms.sort(key=lambda t: (not self.full(t), t.is_Symbol and t.name not in self.dying,
                                  t.as_coeff_Mul()[0] == -1))
        acc = self.operand(terms[0])
        for t in terms[1:]:
            c, rest = t.as_coeff_Mul()
            if c == -1:
                acc = self.apply("np.subtract", [acc, self.operand(rest)])
            else:
                acc = self.apply("np.add", [acc, self.operand(t)])
        return acc

    def mul(self, e):
        c, rest = e.as_coeff_Mul()
        factors = list(rest.args) if rest.is_Mul else [rest]
        numer = [f for f in factors if not (f.is_Pow and f.exp == -1)]
        denom = [f.base for f in factors if f.is_Pow and f.exp == -1]
        numer.sort(key=lambda f: not self.full(f))
        acc = self.operand(numer[0]) if numer else None
        for f in numer[1:]:
            acc = self.apply("np.multiply", [acc, self.operand(f)])
        for d in denom:
            acc = self.apply("np.divide", [acc if acc is not None else "1.0", self.operand(d)])
        if c == -1:
            acc = self.apply("np.negative", [acc])
        elif c != 1:
            acc = self.apply("np.multiply", [acc, self.printer(c)])
        return acc

    def power(self, base, n):
        x = self.operand(base)
        if n == 2:
            return self.apply("np.square", [x])
        if n == -1:
            return self.apply("np.reciprocal", [x])
        if n == sympy.Rational(1, 2):
            return self.apply("np.sqrt", [x])
        return self.apply("np.power", [x, self.printer(n)])
