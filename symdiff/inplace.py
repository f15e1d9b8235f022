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

from .ops import REGISTRY, ufuncs
from .primitives import Max, Min, Sigmoid, _Comparison

MIN_SIZE = 1 << 16
# statements whose target is not an array this function may write into: a broadcast view, a
# core-first copy of an argument, a numba column, a ``del``; every other non-view result is fresh
NOT_BUFFERS = {"assign_full", "core_first", "column", "free"}
VIEWS = {"reshape", "transpose", "broadcast", "index"}  # shared macros whose result is a view of s.x
OUT = ufuncs.out_ufuncs()  # SymPy function -> the ufunc writing its value into out= (from the table)
_IDENT = re.compile(r"[A-Za-z_]\w*")


def rewrite(statements, returns, shapes, printer, exp_bound=708.0):
    """Replace big assignments by in-place ufunc sequences. ``shapes``: name -> static shape (the
    buffers the sequences add are entered into it)."""
    last_use = last_reads(statements, returns)
    for s in reversed(statements):  # an array lives as long as its views (a view of a view included)
        source = _view_source(s)
        if source is not None:
            last_use[source] = max(last_use.get(source, -1), last_use.get(s["target"], -1))
    owned = {s["target"] for s in statements
             if s["op"] not in NOT_BUFFERS and _view_source(s) is None and not _not_a_buffer(s)}
    out = []
    for i, s in enumerate(statements):
        expr = s.get("sexpr")
        shape = shapes.get(s["target"])
        if s["op"] != "assign" or expr is None or shape is None or int(np.prod(shape)) < MIN_SIZE:
            out.append(s)
            continue
        dying = {n for n in owned if last_use.get(n) == i and shapes.get(n) == shape}
        calls = _Generator(shapes, printer, dying, shape, exp_bound).program(expr, s["target"])
        for c in calls or ():  # the calls come from the statement's source line
            if "origin" in s:
                c["origin"] = s["origin"]
        out.extend(calls if calls is not None else [s])
    return out


def drop_unread(statements, returns):
    """The statements without those whose value nothing reads, such as an operand an elementwise
    node keeps only for its shape (``np.broadcast_to`` gives the shape), nor what only they read."""
    needed = set(_IDENT.findall(" ".join(returns)))
    kept = []
    for s in reversed(statements):
        if s.get("target") in needed:
            kept.append(s)
            needed.update(_reads(s))
    return kept[::-1]


def release(statements, returns, shapes):
    """``del`` every array of at least ``MIN_SIZE`` elements after the statement that reads it last,
    so that peak memory follows the values still needed, not every value the function computed.
    Names of one array (``t1 = t0``) go together, after the last read of either."""
    last_use = last_reads(statements, returns)
    returned = set(_IDENT.findall(" ".join(returns)))
    targets = [s["target"] for s in statements if s.get("target")]
    group = {n: {n} for n in targets}
    for s in statements:
        if _is_alias(s) and s["expr"] in group:
            group[s["target"]] |= group[s["expr"]]
            for n in group[s["target"]]:
                group[n] = group[s["target"]]
    dead_after: dict = {}
    done: set = set()
    for name in dict.fromkeys(targets):
        names = group[name]
        if name in done or names & returned or int(np.prod(shapes.get(name, ()))) < MIN_SIZE:
            continue
        done |= names
        i = max(last_use.get(n, -1) for n in names)
        if 0 <= i < len(statements):
            dead_after.setdefault(i, []).extend(n for n in dict.fromkeys(targets) if n in names)
    out = []
    for i, s in enumerate(statements):
        out.append(s)
        if i in dead_after:
            out.append({"op": "free", "names": dead_after[i]})
    return out


def last_reads(statements, returns) -> dict:
    """name -> index of the last statement that reads it (``len(statements)`` if it is returned)."""
    last_use = {}
    for i, s in enumerate(statements):
        for n in _reads(s):
            last_use[n] = i
    for n in _IDENT.findall(" ".join(returns)):
        last_use[n] = len(statements)
    return last_use


def _reads(s) -> list:
    return _IDENT.findall(json.dumps({k: v for k, v in s.items() if k not in ("target", "sexpr", "origin", "comment", "block")}))


def _view_source(s):
    """The name whose memory the result of statement ``s`` may share: reshapes, transposes, basic
    indexing, broadcasts and one-operand einsums return views; ``t1 = t0`` is the same array."""
    if s["op"] in VIEWS or getattr(REGISTRY.get(s["op"]), "returns_view", False):
        return s["x"]
    if s["op"] == "einsum" and len(s["operands"]) == 1:
        return s["operands"][0]
    if s["op"] in ("assign", "assign_full") and _IDENT.fullmatch(s.get("expr", "")):
        return s["expr"]
    return None


def _is_alias(s) -> bool:
    return s["op"] == "assign" and _IDENT.fullmatch(s.get("expr", "")) is not None


def _not_writable(e) -> bool:
    """Printed ``e`` may not be a new float array to compute into: a comparison's bool array, or
    ``np.real``/``np.imag`` of a real array (a view of it, and a read-only array of zeros)."""
    return isinstance(e, (_Comparison, sympy.logic.boolalg.Boolean, sympy.re, sympy.im))


def _not_a_buffer(s) -> bool:
    return _not_writable(s.get("sexpr")) or s.get("dtype") == "bool_"


class _Generator:
    def __init__(self, shapes, printer, dying, shape, exp_bound):
        self.shapes, self.printer, self.shape = shapes, printer, tuple(shape)
        self.bound = repr(float(exp_bound))
        self.dying = dying
        self.calls: list = []
        self.buffers: set = set()  # names this evaluation may overwrite
        self.spare: list = []  # buffers whose value has been read for the last time
        self.counter = 0

    def program(self, expr, target):
        self.target = target
        # a dying array may be overwritten by the operation that reads it for the last time
        self.reads_left = {s.name: expr.count(s) for s in expr.free_symbols if s.name in self.dying}
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
            return e.name
        if e.is_number:
            return self.printer(e)
        return self.gen(e)

    def apply(self, fn, args):
        """fn(*args) into a buffer among the arguments, a spare one, or a new one. Every buffer among
        the arguments is read here for the last time (an intermediate value is read once)."""
        for a in args:
            if a in self.reads_left:
                self.reads_left[a] -= 1
                if not self.reads_left[a]:
                    self.buffers.add(a)
        out = next((a for a in sorted(args, key=lambda a: a != self.target) if a in self.buffers), None)
        if out is None and self.spare:
            out = self.spare.pop()
        if out is None:
            out = self.new_name()
            self.calls.append({"op": "apply", "target": out, "fn": fn, "args": list(args)})
            self.buffers.add(out)
        else:
            self.calls.append({"op": "call", "target": out, "fn": fn, "args": list(args)})
            self.buffers.add(out)
        self.spare.extend(a for a in dict.fromkeys(args) if a in self.buffers and a != out)
        self.buffers.difference_update(self.spare)
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
        if isinstance(e, Sigmoid):  # 1/(1 + exp(-u)), with -u clipped
            x = self.operand(-e.args[0])
            x = self.apply("np.clip", [x, "-" + self.bound, self.bound])
            x = self.apply("np.exp", [x])
            x = self.apply("np.add", [x, "1.0"])
            return self.apply("np.reciprocal", [x])
        if isinstance(e, (sympy.Max, sympy.Min)):
            if not any(self.full(a) for a in e.args):
                return self.fresh(e)  # full-sized only in combination: see add()
            args = [self.operand(a) for a in sorted(e.args, key=lambda a: not self.full(a))]
            fn = OUT[Max if isinstance(e, sympy.Max) else Min]  # also SymPy's own, in hand-built IR
            acc = args[0]
            for a in args[1:]:
                acc = self.apply(fn, [acc, a])
            return acc
        if isinstance(e, sympy.Heaviside):
            return self.apply("np.heaviside", [self.operand(e.args[0]), "0.5"])
        if e.func in OUT:
            return self.apply(OUT[e.func], [self.operand(a) for a in e.args])
        return self.fresh(e)

    def new_name(self):
        """The statement's own name for its first buffer, numbered names after it."""
        name = self.target if not self.calls else f"{self.target}_{self.counter}"
        self.counter += 1
        self.shapes[name] = self.shape
        return name

    def fresh(self, e):
        name = self.new_name()
        self.calls.append({"op": "assign", "target": name, "expr": self.printer(e)})
        if not _not_writable(e):
            self.buffers.add(name)
        return name

    def add(self, e):
        terms = list(e.args)
        coeffs = {abs(t.as_coeff_Mul()[0]) for t in terms}
        if len(coeffs) == 1 and float(c := coeffs.pop()) != 1:  # c*a - c*b -> (a - b)*c (1.0 != 1 in SymPy)
            inner = self.add(sympy.Add(*[t / c for t in terms], evaluate=False))
            return self.apply("np.multiply", [inner, self.printer(c)])
        if not any(self.full(t) for t in terms):
            # e.g. a column plus a row: partial sums would be smaller than the buffers they need
            return self.fresh(e)
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
        if any(self.full(f) for f in numer):  # an array-sized computed factor first: the others go into it
            numer.sort(key=lambda f: (not self.full(f), f.is_Symbol and f.name not in self.dying))
            acc = self.operand(numer[0])
            for f in numer[1:]:
                acc = self.apply("np.multiply", [acc, self.operand(f)])
        elif any(self.full(d) for d in denom):  # a smaller numerator, divided into an array-sized result
            denom.sort(key=lambda d: not self.full(d))
            acc = self.printer(sympy.Mul(*numer)) if numer else None
        else:  # array-sized only in combination: partial products would not fill a buffer
            return self.fresh(e)
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
