"""The AST pieces of the control-flow rewrite (``rewrite.py``) that do not depend on what a value is:
names of the rewrite's variables, building calls of ``_sd`` helpers, walking one scope, and lowering
``return``/``break``/``continue`` that sit inside other statements to flags.
"""

from __future__ import annotations

import ast

_HELPERS = "_sd"
_TEMP = "_sd_"  # temporaries of the rewrite: never joined after an ``if``
_FLAG = "_sdv_"  # variables of the rewrite that are joined (flags, the return value)


def _at(new, old):
    """``new`` placed at the first line of ``old`` (one line: Python 3.11 gives an attribute access
    the line where it ends)."""
    if not hasattr(old, "lineno"):
        return new
    new.lineno = new.end_lineno = old.lineno
    new.col_offset = new.end_col_offset = old.col_offset
    return new


_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _walk_scope(node):
    """The nodes of ``node`` that belong to its own scope (not to nested functions or classes)."""
    todo = list(ast.iter_child_nodes(node))
    while todo:
        n = todo.pop()
        yield n
        if not isinstance(n, _SCOPES):
            todo.extend(ast.iter_child_nodes(n))


def _call(name: str, *args) -> ast.Call:
    return ast.Call(
        func=ast.Attribute(value=ast.Name(id=_HELPERS, ctx=ast.Load()), attr=name, ctx=ast.Load()),
        args=list(args),
        keywords=[],
    )


def _load(name):
    return ast.Name(id=name, ctx=ast.Load())


def _store(name):
    return ast.Name(id=name, ctx=ast.Store())


def _assign(name, value):
    return ast.Assign(targets=[_store(name)], value=value)


def _thunk(expr):
    return ast.Lambda(
        args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]), body=expr
    )


# ---------------------------------------------------------------------------------------------
# return / break / continue as flags
# ---------------------------------------------------------------------------------------------


def _always_returns(stmts) -> bool:
    """Every path through ``stmts`` ends in a ``return`` or ``raise`` (Python never falls off their end)."""
    for s in stmts:
        if isinstance(s, (ast.Return, ast.Raise)):
            return True
        if isinstance(s, ast.If) and _always_returns(s.body) and _always_returns(s.orelse):
            return True
        if isinstance(s, ast.With) and _always_returns(s.body):
            return True
    return False


class _Escapes:
    """Lower ``return``, ``break`` and ``continue`` that sit inside other statements to flags, so
    that an ``if`` on a traced value can run both branches. A statement at the top of the function
    body is left alone, so a function whose only ``return`` is its last line is unchanged."""

    RET, VALUE = _FLAG + "ret", _FLAG + "value"

    def __init__(self, fdef):
        self.fdef = fdef
        self.loops = 0

    def lower_function(self):
        body = self.fdef.body
        nested = any(
            isinstance(n, (ast.Return, ast.Break, ast.Continue))
            for s in body
            if not isinstance(s, ast.Return)
            for n in _walk_scope(s)
        )
        if not nested:
            return body
        out = [_assign(self.RET, ast.Constant(False)), _assign(self.VALUE, _call_attr("NORETURN"))]
        out += self.block(body, loop=None)
        always = ast.Constant(_always_returns(body))
        out.append(ast.Return(value=_call("result", _load(self.RET), _load(self.VALUE), always)))
        return out

    def block(self, stmts, loop):
        """``stmts`` with escapes lowered; ``loop`` is the (break, continue) flags of the innermost loop."""
        out = []
        for i, s in enumerate(stmts):
            if isinstance(s, ast.Return):
                value = s.value if s.value is not None else ast.Constant(None)
                out += [_at(_assign(self.VALUE, value), s), _at(_assign(self.RET, ast.Constant(True)), s)]
                return out
            if isinstance(s, (ast.Break, ast.Continue)) and loop is not None:
                flag = loop[0] if isinstance(s, ast.Break) else loop[1]
                out.append(_at(_assign(flag, ast.Constant(True)), s))
                return out
            flags = self.flags_set_by(s, loop)
            new = self.statement(s, loop)
            out.extend(new if isinstance(new, list) else [new])
            if flags and i + 1 < len(stmts):
                rest = self.block(stmts[i + 1 :], loop)
                guard = ast.If(test=_call("not_", _call("any_", *map(_load, flags))), body=rest, orelse=[])
                out.append(_at(guard, stmts[i + 1]))
                return out
        return out

    def flags_set_by(self, s, loop) -> list:
        flags = []
        nodes = list(_walk_own(s))
        if any(isinstance(n, ast.Return) for n in nodes):
            flags.append(self.RET)
        if loop is not None and not isinstance(s, (ast.For, ast.While)):
            outer = list(_walk_own(s, stop_at_loops=True))
            if any(isinstance(n, ast.Break) for n in outer):
                flags.append(loop[0])
            if any(isinstance(n, ast.Continue) for n in outer):
                flags.append(loop[1])
        return flags

    def statement(self, s, loop):
        if isinstance(s, ast.If):
            s.body, s.orelse = self.block(s.body, loop), self.block(s.orelse, loop)
        elif isinstance(s, (ast.With, ast.Try)):
            for field in ("body", "orelse", "finalbody"):
                if hasattr(s, field):
                    setattr(s, field, self.block(getattr(s, field), loop))
            for h in getattr(s, "handlers", ()):
                h.body = self.block(h.body, loop)
        elif isinstance(s, (ast.For, ast.While)):
            return self.loop(s)
        return s

    def loop(self, s):
        inner = list(_walk_own(s, stop_at_loops=True))
        if not any(isinstance(n, (ast.Return, ast.Break, ast.Continue)) for n in list(_walk_own(s))[1:]):
            return s
        self.loops += 1
        brk, cont = f"{_FLAG}break{self.loops}", f"{_FLAG}continue{self.loops}"
        uses_break = any(isinstance(n, ast.Break) for n in inner)
        uses_continue = any(isinstance(n, ast.Continue) for n in inner)
        returns = any(isinstance(n, ast.Return) for n in _walk_own(s))
        stops = ([self.RET] if returns else []) + ([brk] if uses_break else [])
        body = self.block(s.body, (brk, cont))
        head = [_assign(cont, ast.Constant(False))] if uses_continue else []
        if stops and isinstance(s, ast.For):  # after a traced break the target keeps its value then
            item = f"{_FLAG}item{self.loops}"
            body = [_at(ast.Assign(targets=[s.target], value=_load(item)), s.target), *body]
            s.target = _store(item)
        if stops:
            body = [
                ast.If(test=_call("not_", _call("any_", *map(_load, stops))), body=body, orelse=[]),
                ast.If(test=_call("stop", *map(_load, stops)), body=[ast.Break()], orelse=[]),
            ]
        s.body = [_at(n, s.body[0]) for n in head] + body if not stops else [_at(n, s.body[0]) for n in head + body]
        if s.orelse and stops:
            s.orelse = [
                _at(
                    ast.If(
                        test=_call("not_", _call("any_", *map(_load, stops))),
                        body=self.block(s.orelse, None),
                        orelse=[],
                    ),
                    s.orelse[0],
                )
            ]
        else:
            s.orelse = self.block(s.orelse, None)
        before = [_at(_assign(brk, ast.Constant(False)), s)] if uses_break else []
        return [*before, s] if before else s


def _call_attr(name):
    return ast.Attribute(value=ast.Name(id=_HELPERS, ctx=ast.Load()), attr=name, ctx=ast.Load())


def _walk_own(s, stop_at_loops=False):
    """``s`` and its nodes in the same scope; with ``stop_at_loops``, not inside nested loops."""
    yield s
    todo = list(ast.iter_child_nodes(s))
    while todo:
        n = todo.pop()
        yield n
        if isinstance(n, _SCOPES) or (stop_at_loops and isinstance(n, (ast.For, ast.While))):
            continue
        todo.extend(ast.iter_child_nodes(n))
