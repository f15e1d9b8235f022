"""A scalar entry point: a plain-Python twin of a small elementwise function for calls on Python floats.

A derivative called on a Python float pays numpy's scalar machinery (about 80 ns an operation) or,
with the numba backend, numba's dispatch on 0-d arrays (about 15 us). For small functions of scalars
the emitter also writes ``_scalar_<name>``: the per-point statements of the numba kernel, printed with
``math`` functions, run on Python floats. It is only a shortcut: whatever Python does differently from
numpy on a point (raises on 1/0, log(0), overflow of ``**`` or ``exp``) makes the caller run the array
function instead, and bodies whose Python form would treat NaN differently from numpy (conditionals,
``min``/``max``) get no scalar entry at all.
"""

from __future__ import annotations

from functools import lru_cache

MAX_NODES = 64  # latency matters for small functions; a large one costs far more than the dispatch
_NAN_SENSITIVE = (" if ", "max(", "min(")  # Python's forms differ from numpy's on NaN


@lru_cache(maxsize=1)
def _printer():
    """The numba printer, with powers that raise (and so fall back) where numpy gives NaN. Built on
    first use: the call path imports this module and must not import SymPy."""
    import sympy

    from .printing import NumbaPrinter, wrap

    class ScalarPrinter(NumbaPrinter):
        def _print_Pow(self, expr, rational=False):
            if expr.exp.is_Integer or expr.exp == sympy.S.Half:  # x**n never turns complex; sqrt raises
                return super()._print_Pow(expr, rational)
            # (-8.0)**(1/3) is a complex number in Python; math.pow raises ValueError (NaN in numpy)
            return f"math.pow({self._print(expr.base)}, {self._print(expr.exp)})"

    printer = ScalarPrinter({"fully_qualified_modules": True})
    return lambda expr: wrap(printer.doprint(expr))


def eligible(plan) -> bool:
    """A small function of float64 scalars to float64 scalars that reads no arrays."""
    if not plan.inputs or any(n.shape != () or n.dtype != "float64" for n in plan.inputs):
        return False
    if any(o.shape != () or o.dtype != "float64" for o in plan.outputs):
        return False
    if any(str(d) != "float64" for d in plan.output_dtypes):
        return False
    from . import ir

    nodes = ir.toposort(plan.outputs)
    return len(nodes) <= MAX_NODES and all(n.op in ("input", "elementwise") for n in nodes)


def model(plan, writer_class) -> dict | None:
    """What the template needs for ``_scalar_<name>`` (params, statements, returned names), or None
    when the function has no safe scalar form. ``writer_class``: the emitter's function writer."""
    if not eligible(plan):
        return None
    from sympy.printing.codeprinter import PrintMethodNotImplementedError

    writer = writer_class(plan, True, None, None)
    writer.print_expr = _printer()
    try:
        statements, returned = writer.write()
    except PrintMethodNotImplementedError:  # a function with no Python form (polygamma, erfcx, ...)
        return None
    if writer.const_names or any(s["op"] not in ("assign", "fill") for s in statements):
        return None
    lines = [{"target": s["target"], "expr": s["expr"] if s["op"] == "assign" else s["value"]} for s in statements]
    if any(bad in line["expr"] for line in lines for bad in _NAN_SENSITIVE):
        return None
    return {"params": list(plan.param_names), "statements": lines, "returned": [r["name"] for r in returned],
            "uses_math": any("math." in line["expr"] for line in lines)}


_GUARDED = """
def guarded(*a):
    try:
        if not ({test}):
            return _stale
    except ValueError:  # a closure cell was emptied
        return _stale
    try:
        result = _scalar(*a)
    except (ArithmeticError, ValueError, TypeError):  # 1/0, log(0), overflow: numpy's answer
        return _slow(*a)
    return result if result.__class__ is float else _slow(*a)
"""


def fast_runner(compiled, name, slow, args, tree):
    """``slow`` (the runner of the array function) behind the module's scalar entry, when the call is
    positional Python floats to one float and the module has one; else ``slow`` itself."""
    scalar = compiled.namespace.get(f"_scalar_{name}")
    if scalar is None or not isinstance(tree, int) or any(a.__class__ is not float for a in args):
        return slow

    def run(*a):
        try:
            result = scalar(*a)
        except (ArithmeticError, ValueError, TypeError):  # 1/0, log(0), overflow: numpy's answer
            return slow(*a)
        return result if result.__class__ is float else slow(*a)

    def with_guard(reads, stale):
        """``run`` behind the environment guard, its test inlined: one Python call per hit."""
        test, scope = reads.guard_test()
        scope.update(_scalar=scalar, _slow=slow, _stale=stale)
        exec(compile(_GUARDED.format(test=test), "<symdiff scalar entry>", "exec"), scope)
        return scope["guarded"]

    run.with_guard = with_guard
    return run
