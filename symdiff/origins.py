"""Where each IR node came from: the user's source line, for the comments of generated code.

A node records its origin when it is created (``graph.Node`` reads ``current()``): while a function
is traced, the user's line that is running; while a derivative rule or an optimizer rewrite works on
a node, that node's origin (marked as a derivative for the rules). Origins are metadata only: they
take no part in a graph's structure key, so a cached module may carry the comments of the first
trace of equal math, and a node made outside any scope has none (its statements get no comment).
"""

from __future__ import annotations

import linecache
import os
import re
import sys
import threading

from .errors import _PACKAGE_DIR

MAX_COMMENT = 100  # characters of one generated comment


class Origin:
    """Lines of the file ``path`` (``lines``: sorted (number, stripped text) pairs), and for a
    derivative its order and the positions of the arguments it is taken with respect to (None: not
    known by position). ``rules``: for a derivative, the (op, elementwise body or None) of the nodes
    whose rules made it, for graph pictures only (not part of equality: comments ignore it)."""

    __slots__ = ("lines", "order", "path", "rules", "wrt")

    def __init__(self, path: str, lines: tuple, order: int = 0, wrt=None, rules=()):
        self.path, self.lines, self.order, self.wrt = path, tuple(lines), order, wrt
        self.rules = tuple(rules)

    def _fields(self):
        return (self.path, self.lines, self.order, self.wrt)

    def __eq__(self, other):
        return isinstance(other, Origin) and self._fields() == other._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return f"Origin({self.describe()!r})"

    def describe(self, param_names=()) -> str:
        """The comment text: ``from: <line>  (file.py:3)`` or ``d/dw of: <line>  (file.py:3)``."""
        numbers = [n for n, _ in self.lines]
        contiguous = numbers == list(range(numbers[0], numbers[-1] + 1))
        where = f"{numbers[0]}-{numbers[-1]}" if contiguous and len(numbers) > 1 else ",".join(map(str, numbers))
        where = "  (" + _one_line(f"{os.path.basename(self.path)}:{where}", MAX_COMMENT // 2) + ")"
        text = "; ".join(t for _, t in self.lines)
        return _one_line(f"{self._kind(param_names)}: {text}", MAX_COMMENT - len(where)) + where

    def _kind(self, param_names) -> str:
        if not self.order:
            return "from"
        if self.wrt is None or any(p >= len(param_names) for p in self.wrt):
            return "derivative of" if self.order == 1 else f"derivative (order {self.order}) of"
        names = [param_names[p] for p in self.wrt]
        var = names[0] if len(names) == 1 else f"({', '.join(names)})"
        return f"d/d{var} of" if self.order == 1 else f"d{self.order}/d{var}{self.order} of"


def _one_line(text: str, cap: int = MAX_COMMENT) -> str:
    """``text`` as one printable ASCII line of at most ``cap`` characters."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).encode("ascii", "backslashreplace").decode("ascii")
    text = " ".join(text.split())
    return text if len(text) <= cap else text[: max(cap - 3, 0)].rstrip() + "..."


# ---------------------------------------------------------------------------------------------
# The scope new nodes take their origin from
# ---------------------------------------------------------------------------------------------


class _UserLine:
    """Scope marker: the origin is the user's line running now (while tracing)."""


USER_LINE = _UserLine()


class _State(threading.local):
    def __init__(self):
        self.current = None


_state = _State()


def current():
    """The origin of a node created now (None outside any scope)."""
    c = _state.current
    return user_line() if c is USER_LINE else c


def enter(origin):
    """Make ``origin`` (an Origin, None or ``USER_LINE``) the scope; returns the one to restore."""
    previous, _state.current = _state.current, origin
    return previous


def leave(previous) -> None:
    _state.current = previous


_internal_code: dict = {}  # code object -> True if it is symdiff's or numpy's own


def _is_internal(code) -> bool:
    hit = _internal_code.get(code)
    if hit is None:
        path = os.path.abspath(code.co_filename)
        hit = path.startswith(_PACKAGE_DIR) or f"{os.sep}numpy{os.sep}" in path
        _internal_code[code] = hit
    return hit


def user_line():
    """The Origin of the innermost frame that is the user's code (None if there is none, or its
    file has no text, e.g. code typed at an interactive prompt)."""
    frame = sys._getframe(1)
    while frame is not None and _is_internal(frame.f_code):
        frame = frame.f_back
    if frame is None:
        return None
    path, line = frame.f_code.co_filename, frame.f_lineno
    text = linecache.getline(path, line).strip()
    return Origin(path, ((line, text),)) if text else None


# ---------------------------------------------------------------------------------------------
# Origins of nodes made from other nodes
# ---------------------------------------------------------------------------------------------


def derived(origin, wrt_nodes=None, positions=None, rule=None):
    """The origin of a derivative of a node from ``origin``: one order higher, with respect to the
    arguments at ``positions`` (or those of the plain input nodes ``wrt_nodes``), made by the rule
    of ``rule`` (the node differentiated) when given."""
    if origin is None:
        return None
    if positions is None and wrt_nodes is not None:
        plain = all(w.op == "input" and len(w.params) == 1 for w in wrt_nodes)
        positions = tuple(w.params[0] for w in wrt_nodes) if plain and wrt_nodes else None
    wrt = tuple(positions) if positions is not None else None
    if origin.order and origin.wrt != wrt:
        wrt = None  # a mixed derivative: say only its order
    rules = ((rule.op, rule.body if rule.op == "elementwise" else None),) if rule is not None else ()
    return Origin(origin.path, origin.lines, origin.order + 1, wrt, rules)


def merge(origins):
    """One origin for a node that combines nodes of these origins (a fused elementwise chain): the
    range of their lines when they are of one file and one kind, else None. Unknown ones are skipped."""
    known = [o for o in origins if o is not None]
    if not known:
        return None
    first = known[0]
    rules = tuple(dict.fromkeys(r for o in known for r in o.rules))
    if all(o == first for o in known[1:]):
        return first if rules == first.rules else Origin(first.path, first.lines, first.order, first.wrt, rules)
    if any(o.path != first.path or o.order != first.order or o.wrt != first.wrt for o in known):
        return None
    lines = sorted({pair for o in known for pair in o.lines})
    return Origin(first.path, lines, first.order, first.wrt, rules)
