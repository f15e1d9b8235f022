"""Rewrite a user's function so that control flow on traced values becomes selects.

Like tangent's and autograph's source passes, this reads the function's source, rewrites its AST and
compiles it under the user's file name and line numbers (so errors and the comments of generated
code still name the user's lines). Afterwards:

- ``return``/``break``/``continue`` nested in a statement are flags (``_sdv_ret``...) and the
  statements after them run under ``if not flag:``; a loop really breaks once a flag is a plain True;
- every ``if`` decides at run time (``rewrite_runtime``): a plain condition runs one branch, a
  traced one runs both and joins each name they assign with ``np.where``; ``a if c else b``,
  ``and``/``or``/``not`` likewise; ``while`` refuses a traced condition;
- ``x[k] = v`` and ``x op= v`` are ``x = _sd.setitem(x, k, v)``/``_sd.augassign``, functional when
  a traced value is involved; ``np.array``/``np.asarray`` calls go through ``_sd.array``, and
  ``X.r_[...]``/``X.c_[...]`` through ``_sd.concatenator`` (numpy's r_/c_ call np.array on items);
- functions and methods it calls (``helper(x)``, ``self.helper(x)``) go through ``_sd.convert``,
  which rewrites the user's own ones the same way.

A lambda is found in its file by line, parameters and columns. Functions whose source cannot be read
(code typed at a prompt, builtins) or that this pass does not handle (generators, async) run unchanged.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import inspect
import linecache
import math
import textwrap
import types
import warnings
import weakref

from . import rewrite_math, rewrite_runtime
from .rewrite_escapes import (
    _HELPERS,
    _TEMP,
    _assign,
    _at,
    _call,
    _call_attr,
    _Escapes,
    _load,
    _store,
    _thunk,
    _walk_scope,
)

_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # code object -> rewritten code, or None


def rewritten(fun):
    """``fun`` with its control flow rewritten, or ``fun`` itself when there is nothing to do."""
    if isinstance(fun, types.MethodType):
        inner = rewritten(fun.__func__)
        return fun if inner is fun.__func__ else types.MethodType(inner, fun.__self__)
    code = getattr(fun, "__code__", None)
    if not isinstance(fun, types.FunctionType) or code is None:
        return fun
    try:
        new_code = _cache[code]
    except KeyError:
        try:
            new_code = _rewrite_code(fun)
        except (OSError, TypeError, SyntaxError):  # no source, or source out of date
            new_code = None
        except Exception as e:  # noqa: BLE001  a construct this pass gets wrong: trace the function as it is
            warnings.warn(
                f"symdiff could not rewrite the control flow of {fun.__qualname__}: {e!r}", RuntimeWarning, stacklevel=2
            )
            new_code = None
        _cache[code] = new_code
    if new_code is None:
        return fun
    cells = dict(zip(code.co_freevars, fun.__closure__ or ()))
    cells[_HELPERS] = types.CellType(rewrite_runtime)
    closure = tuple(cells[name] for name in new_code.co_freevars)
    new = types.FunctionType(new_code, fun.__globals__, fun.__name__, fun.__defaults__, closure)
    new.__kwdefaults__, new.__qualname__ = fun.__kwdefaults__, fun.__qualname__
    new.__dict__.update(fun.__dict__)
    return new


def _rewrite_code(fun):
    code = fun.__code__
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
        return None
    if fun.__name__ == "<lambda>":  # its lines may not parse alone (`for f in (lambda x: ...,):`): the whole file
        fdef = _lambda_def(ast.parse("".join(linecache.getlines(code.co_filename))), code)
    else:
        lines, first = inspect.getsourcelines(fun)
        tree = ast.parse(textwrap.dedent("".join(lines)))
        ast.increment_lineno(tree, first - 1)
        fdef = tree.body[0]
    modules = {name for name, v in fun.__globals__.items() if isinstance(v, types.ModuleType) and v is not math}
    if not isinstance(fdef, ast.FunctionDef) or fdef.name != fun.__name__ or not _worth_rewriting(fdef, modules):
        return None
    fdef.decorator_list = []
    filename = code.co_filename
    fdef.body = _Escapes(fdef).lower_function()
    fdef = _ControlFlow(filename, modules).visit(fdef)
    freevars = [v for v in code.co_freevars if v != _HELPERS]
    outer = ast.FunctionDef(
        name="_sd_outer",
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(arg=a) for a in [_HELPERS, *freevars]],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        ),
        body=[fdef, ast.Return(value=ast.Name(id=fdef.name, ctx=ast.Load()))],
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    module = ast.Module(body=[outer], type_ignores=[])
    _fill_locations(module, fdef)
    future = sum(getattr(__future__, f).compiler_flag for f in __future__.all_feature_names)
    compiled = compile(module, filename, "exec", flags=code.co_flags & future, dont_inherit=True)
    outer_code = next(c for c in compiled.co_consts if isinstance(c, types.CodeType))
    new_code = next(c for c in outer_code.co_consts if isinstance(c, types.CodeType) and c.co_name == fun.__name__)
    if new_code.co_varnames[: code.co_argcount + code.co_kwonlyargcount] != code.co_varnames[
        : code.co_argcount + code.co_kwonlyargcount
    ] or set(new_code.co_freevars) - set(code.co_freevars) - {_HELPERS}:
        return None
    if set(code.co_varnames) - set(new_code.co_varnames) - set(new_code.co_cellvars):  # source out of date
        return None
    return new_code


def _lambda_def(tree, code):
    """The lambda of ``code`` in its file as ``def <lambda>(...): return ...``, or None when the file
    holds no lambda, or several, with its first line, parameters and columns."""
    n_args = code.co_argcount + code.co_kwonlyargcount
    found = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Lambda)
        and n.lineno == code.co_firstlineno
        and tuple(a.arg for a in n.args.posonlyargs + n.args.args + n.args.kwonlyargs) == code.co_varnames[:n_args]
    ]
    if len(found) > 1:  # several on the line: the one whose body holds the code's first position
        positions = getattr(code, "co_positions", lambda: ())()
        cols = [c for _, _, c, e in positions if c is not None and e is not None and e > c]
        found = [n for n in found if cols and n.body.col_offset <= min(cols) <= n.body.end_col_offset]
    if len(found) != 1:
        return None
    lam = found[0]
    body = [ast.copy_location(ast.Return(value=lam.body), lam.body)]
    fdef = ast.FunctionDef(name="<lambda>", args=lam.args, body=body, decorator_list=[], returns=None)
    return ast.copy_location(fdef, lam)


def _fill_locations(module, fdef):
    """Nodes the rewrite made take the line of the user's statement they stand for."""
    for parent in ast.walk(module):
        for child in ast.iter_child_nodes(parent):
            if not hasattr(child, "lineno") and hasattr(parent, "lineno") and "lineno" in child._attributes:
                _at(child, parent)
    module.body[0].lineno = module.body[0].end_lineno = fdef.lineno
    module.body[0].col_offset = module.body[0].end_col_offset = 0
    ast.fix_missing_locations(module)


# ---------------------------------------------------------------------------------------------
# What the function contains
# ---------------------------------------------------------------------------------------------


def _worth_rewriting(fdef, modules) -> bool:
    for n in _walk_scope(fdef):
        if isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)):
            return False
    for n in ast.walk(fdef):
        if isinstance(n, (ast.If, ast.IfExp, ast.While, ast.BoolOp, ast.AugAssign)):
            return True
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not):
            return True
        if isinstance(n, ast.Assign) and any(_has_subscript(t) for t in n.targets):
            return True
        if isinstance(n, ast.Call) and (_assembler_name(n.func) or _helper_call(n, modules)):
            return True
        if isinstance(n, ast.Subscript) and _concatenator_name(n.value):
            return True
    return False


def _helper_call(call, modules) -> bool:
    """A call of a function by a plain name that is not a builtin, or of a method (``self.helper(x)``,
    not ``np.sin(x)`` of a module the function's globals hold): maybe the user's own helper. Also
    ``max``/``min`` and ``math`` functions: ``_sd.convert`` gives their twins for traced values."""
    if isinstance(call.func, ast.Name):
        name = call.func.id
        return name != _HELPERS and (not hasattr(builtins, name) or name in rewrite_math.BUILTIN_NAMES)
    root = call.func
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(call.func, ast.Attribute) and not (isinstance(root, ast.Name) and root.id in modules)


def _concatenator_name(value) -> bool:
    """``np.r_``, ``numpy.c_``, ``r_``...: maybe numpy's r_/c_, which call np.array on their items."""
    name = value.attr if isinstance(value, ast.Attribute) else value.id if isinstance(value, ast.Name) else None
    return name in ("r_", "c_")


def _has_subscript(target) -> bool:
    if isinstance(target, ast.Subscript):
        return True
    return isinstance(target, (ast.Tuple, ast.List)) and any(_has_subscript(e) for e in target.elts)


def _assembler_name(func) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name in ("array", "asarray", "asanyarray")


def _assigned_names(stmts) -> list:
    """Names the statements bind in the function's own scope, in order of first binding."""
    seen = {}
    for s in stmts:
        nodes = [s, *_walk_scope(s)]
        for n in nodes:
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                seen.setdefault(n.id)
            elif (
                isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and n is not s
                or (n is s and isinstance(n, (ast.FunctionDef, ast.ClassDef)))
            ):
                seen.setdefault(n.name)
            elif isinstance(n, (ast.Import, ast.ImportFrom)):
                for a in n.names:
                    seen.setdefault((a.asname or a.name).split(".")[0])
    return [n for n in seen if not n.startswith(_TEMP) and n != _HELPERS]


# ---------------------------------------------------------------------------------------------
# if / while / conditional expressions / and, or, not / item assignment / np.array
# ---------------------------------------------------------------------------------------------


class _ControlFlow(ast.NodeTransformer):
    def __init__(self, filename: str, modules):
        self.filename, self.modules = filename, modules
        self.count = 0
        self.depth = 0

    def _where(self, node) -> ast.Constant:
        return ast.Constant(f"{self.filename}:{node.lineno}")

    # nested functions and classes keep their own code
    def visit_FunctionDef(self, node):
        """The function, and functions it defines (they see ``_sd`` through its closure)."""
        if any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)) for n in _walk_scope(node)):
            return node
        if self.depth:
            node.body = _Escapes(node).lower_function()
        self.depth += 1
        node.body = self._statements(node.body)
        self.depth -= 1
        return node

    def visit_AsyncFunctionDef(self, node):
        return node

    visit_ClassDef = visit_AsyncFunctionDef

    def _statements(self, stmts):
        out = []
        for s in stmts:
            r = self.visit(s)
            out.extend(r if isinstance(r, list) else [r])
        return out

    def visit_If(self, node):
        self.count += 1
        k = self.count
        c = f"{_TEMP}c{k}"
        test = self.visit(node.test)
        body, orelse = self._statements(node.body), self._statements(node.orelse)
        names = _assigned_names(body + orelse)
        where = self._where(node)
        out = [_assign(c, _call("test", test))]
        traced = _call("is_traced", _load(c))

        def save(prefix, fallback):
            saved = []
            for n in names:
                saved.append(
                    ast.Try(
                        body=[_assign(f"{prefix}{n}", _load(n))],
                        handlers=[
                            ast.ExceptHandler(
                                type=_load("NameError"), name=None, body=[_assign(f"{prefix}{n}", fallback(n))]
                            )
                        ],
                        orelse=[],
                        finalbody=[],
                    )
                )
            return saved

        before, then, other = f"{_TEMP}b{k}_", f"{_TEMP}t{k}_", f"{_TEMP}e{k}_"
        unbound = lambda n: _call("unbound", ast.Constant(n), where)
        if names:
            out.append(ast.If(test=traced, body=save(before, unbound), orelse=[]))
        out.append(ast.If(test=_call("maybe", _load(c)), body=[*body, ast.Expr(_call("leave", _load(c)))], orelse=[]))
        if names:
            restore = [_assign(n, _load(before + n)) for n in names]
            out.append(ast.If(test=traced, body=save(then, unbound) + restore, orelse=[]))
        if orelse:
            out.append(
                ast.If(test=_call("maybe_not", _load(c)), body=[*orelse, ast.Expr(_call("leave", _load(c)))], orelse=[])
            )
        if names:
            joins = [
                _assign(n, _call("merge", _load(c), _load(then + n), _load(other + n), ast.Constant(n), where))
                for n in names
            ]
            out.append(ast.If(test=traced, body=save(other, unbound) + joins, orelse=[]))
        return [_at(s, node) for s in out]

    def visit_Return(self, node):
        self.generic_visit(node)
        if node.value is not None:
            node.value = _at(_call("returned", node.value), node.value)
        return node

    def visit_While(self, node):
        self.generic_visit(node)
        node.test = _at(_call("while_test", node.test), node.test)
        return node

    def visit_IfExp(self, node):
        self.generic_visit(node)
        return _at(_call("ifexp", node.test, _thunk(node.body), _thunk(node.orelse)), node)

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if any(isinstance(n, ast.NamedExpr) for v in node.values[1:] for n in ast.walk(v)):
            return node
        helper = "and_" if isinstance(node.op, ast.And) else "or_"
        expr = node.values[-1]
        for v in reversed(node.values[:-1]):
            expr = _call(helper, v, _thunk(expr))
        return _at(expr, node)

    def visit_Compare(self, node):
        """``a < b < c`` as ``a < b and b < c`` (Python asks for the truth of ``a < b``), ``b`` once."""
        self.generic_visit(node)
        if len(node.ops) == 1:
            return node
        operands = [node.left, *node.comparators]
        names = []
        for i in range(1, len(operands) - 1):
            self.count += 1
            names.append(f"{_TEMP}m{self.count}")
        left = lambda i: operands[0] if i == 0 else _load(names[i - 1])
        right = lambda i: (
            operands[-1] if i == len(names) else ast.NamedExpr(target=_store(names[i]), value=operands[i + 1])
        )
        expr = None
        for i in reversed(range(len(node.ops))):
            compare = ast.Compare(left=left(i), ops=[node.ops[i]], comparators=[right(i)])
            expr = compare if expr is None else _call("and_", compare, _thunk(expr))
        return _at(expr, node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return _at(_call("not_", node.operand), node)
        return node

    def visit_Subscript(self, node):
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load) and _concatenator_name(node.value):
            node.value = _at(_call("concatenator", node.value), node.value)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if _assembler_name(node.func) and node.args and not any(isinstance(a, ast.Starred) for a in node.args):
            node.args = [node.func, *node.args]
            node.func = _call_attr("array")
        elif _helper_call(node, self.modules):
            node.func = _at(_call("convert", node.func), node.func)  # the user's helpers are rewritten too
        return node

    def visit_Assign(self, node):
        node.value = self.visit(node.value)
        if not any(_has_subscript(t) for t in node.targets):
            return node
        self.count += 1
        tmp = f"{_TEMP}v{self.count}"
        out = [_assign(tmp, node.value)]
        for t in node.targets:
            out += self._store_into(t, _load(tmp))
        return [_at(s, node) for s in out]

    def _store_into(self, target, value) -> list:
        if isinstance(target, ast.Subscript):
            base = self.visit(_as_load(target.value))
            key = self.visit(target.slice)
            self.count += 1
            k = f"{_TEMP}k{self.count}"
            updated = _call("setitem", base, _load(k), value)
            if isinstance(target.value, (ast.Name, ast.Subscript, ast.Attribute)):
                return [_assign(k, key), *self._store_into(target.value, updated)]
            return [_assign(k, key), ast.Expr(updated)]
        if isinstance(target, (ast.Name, ast.Attribute)):
            target = ast.parse(ast.unparse(target), mode="exec").body[0].value
            target.ctx = ast.Store()
        if isinstance(target, (ast.Tuple, ast.List)) and _has_subscript(target):
            self.count += 1
            tmp = f"{_TEMP}u{self.count}"
            names = [f"{tmp}_{i}" for i in range(len(target.elts))]
            if any(isinstance(e, ast.Starred) for e in target.elts):
                return [ast.Assign(targets=[target], value=value)]
            out = [ast.Assign(targets=[ast.Tuple(elts=[_store(n) for n in names], ctx=ast.Store())], value=value)]
            for e, n in zip(target.elts, names):
                out += self._store_into(e, _load(n))
            return out
        return [ast.Assign(targets=[target], value=value)]

    def visit_AugAssign(self, node):
        node.value = self.visit(node.value)
        op = type(node.op).__name__
        if isinstance(node.target, ast.Name):
            new = _call("augassign", ast.Constant(op), _load(node.target.id), node.value)
            return _at(_assign(node.target.id, new), node)
        if isinstance(node.target, ast.Subscript):
            self.count += 1
            k, base = f"{_TEMP}k{self.count}", f"{_TEMP}x{self.count}"
            current = ast.Subscript(value=_load(base), slice=_load(k), ctx=ast.Load())
            new = _call("augassign", ast.Constant(op), current, node.value)
            out = [_assign(base, self.visit(_as_load(node.target.value))), _assign(k, self.visit(node.target.slice))]
            updated = _call("setitem", _load(base), _load(k), new)
            if isinstance(node.target.value, (ast.Name, ast.Subscript, ast.Attribute)):
                out += self._store_into(node.target.value, updated)
            else:
                out.append(ast.Expr(updated))
            return [_at(s, node) for s in out]
        return node


def _as_load(expr):
    """A copy of a target expression that reads it."""
    expr = ast.parse(ast.unparse(expr), mode="eval").body
    return expr
