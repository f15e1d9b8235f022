"""Part of emission: the final layout of a generated function, after its statements are written.

Afterwards temporaries are named ``t0, t1, ...`` in the order the function defines them (whatever
order the optimizer, ``sympy.cse`` or the in-place pass made them in), each run of statements from
one line of the user's source has that line as its comment (tangent's style), and the statements
are split into SymForce's sections: intermediate terms, then the output terms that end the function.

``Total ops`` counts what the statements after the argument checks execute, read off the rendered
function: every arithmetic operator and comparison, every call (numpy function, method or in-place
ufunc) and every subscript that reads (indexing); a negative literal and an operation on two
literals (folded by Python's compiler) are not operations. Assigning,
``del`` and attribute views such as ``.T`` cost nothing.
"""

from __future__ import annotations

import ast
import re

_TEMPORARY = re.compile(r"\b([tc]\d+(?:_\d+)?)\b")  # emit's t<k>, cse's c<k>, in-place buffers t<k>_<j>
_SECTION = re.compile(r"^\s*# (Intermediate|Output) terms", re.MULTILINE)
_NOT_NAMES = {"op", "sexpr", "origin", "comment", "block", "dtype", "spec", "fn"}  # fields that hold no identifiers


def tag_origin(statements: list, start: int, text) -> None:
    """Give the statements from ``start`` on (those one node wrote) the comment text of its origin."""
    if text:
        for s in statements[start:]:
            s.setdefault("origin", text)


def renumber(statements: list, returns: list) -> tuple:
    """Temporaries renamed ``t0, t1, ...`` in the order statements define them: (statements, returns,
    the renaming of any other value), renamed in every field that holds names (never in comments)."""
    order: dict = {}
    for s in statements:
        target = s.get("target")
        if target and _TEMPORARY.fullmatch(target) and target not in order:
            order[target] = f"t{len(order)}"

    def rename(value, key=None):
        if key in _NOT_NAMES:
            return value
        if isinstance(value, str):
            return _TEMPORARY.sub(lambda m: order.get(m.group(1), m.group(1)), value)
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v, k) for k, v in value.items()}
        return value

    return [rename(s) for s in statements], [rename(r) for r in returns], rename


def comments(statements: list) -> None:
    """Mark the first statement of each run from one origin as the start of a ``block`` (a blank line
    before it) with the origin as its ``comment``; statements of unknown origin are a block without
    one, so that they do not read as part of the block before. A ``del`` does not break a run."""
    last = None
    for s in statements:
        if s["op"] == "free":
            continue
        origin = s.get("origin")
        if origin != last:
            s["block"] = True
            if origin:
                s["comment"] = origin
        last = origin


def output_start(statements: list, returns: list) -> int:
    """Index of the first statement of the output terms: the trailing run of statements that write
    returned arrays (and the ``del`` among them)."""
    returned = set(re.findall(r"[A-Za-z_]\w*", " ".join(returns)))
    k = len(statements)
    while k and (statements[k - 1]["op"] == "free" or statements[k - 1].get("target") in returned):
        k -= 1
    return k


def intermediate_count(statements: list) -> int:
    """How many arrays the intermediate statements define."""
    return len({s["target"] for s in statements if s["op"] != "free" and s.get("target")})


def count_ops(body: str) -> int:
    """The ops of the statements from the first section header on, in one rendered function body."""
    header = _SECTION.search(body)
    first_line = body.count("\n", 0, header.start()) + 1 if header else 1
    # parsed as the body of a function (its lines are indented; a wrapped expression may not be)
    (function,) = ast.parse("def f():\n" + body).body
    return sum(_ops(node) for stmt in function.body if stmt.lineno - 1 >= first_line for node in ast.walk(stmt))


def _ops(node) -> int:
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return 0 if _literal(node) else 1
    if isinstance(node, (ast.BoolOp, ast.Call)):
        return 1
    if isinstance(node, ast.Compare):
        return len(node.ops)
    if isinstance(node, ast.Subscript):
        return 1 if isinstance(node.ctx, ast.Load) else 0
    return 0


def _literal(node) -> bool:
    """A number, or arithmetic on numbers only (``-708.0``, ``-1/10``): folded when Python compiles."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    return isinstance(node, ast.BinOp) and _literal(node.left) and _literal(node.right)
