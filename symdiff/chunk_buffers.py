"""The chunk loop's body with every operation writing into buffers allocated once (symdiff.chunking).

On a slice of 8192 points every numpy operation would allocate a new 64 KB temporary, and its malloc
and page faults cost most of the operation. Inside the loop the body is therefore written as ufunc
calls with ``out=``: each intermediate value goes into one of a few buffers made before the loop and
reused on every slice. The calls are read off the body's own printed expressions, operation by
operation in Python's order, so the numbers are bit-identical to the plain body. A buffer is free
again after the last read of its value (statement liveness from symdiff.inplace). A body with
anything else than arithmetic and numpy ufuncs keeps the plain chunk loop (None).
"""

from __future__ import annotations

import ast

import numpy as np

from . import inplace

_BINARY = {ast.Add: "np.add", ast.Sub: "np.subtract", ast.Mult: "np.multiply", ast.Div: "np.divide"}
_UNARY = {ast.USub: "np.negative", ast.UAdd: "np.positive"}
# what ``a ** n`` calls for these n (numpy's own fast paths; bit-identical to np.power)
_POWERS = {2: "np.square", 0.5: "np.sqrt", -1: "np.reciprocal"}


def model(statements: list, returned: list, outputs: list, inputs: set, name_buffer) -> dict | None:
    """``{"calls", "buffers", "copies"}`` for the template, or None. ``outputs``: the slice each
    returned value is written into; ``name_buffer(k)``: a local name for the k-th buffer."""
    names = [r["name"] for r in returned]
    writer = _Writer(inplace.last_reads(statements, names), inputs, name_buffer)
    direct = {r["name"]: o for r, o in zip(returned, outputs) if r["dtype"] is None and r["broadcast"] is None}
    for i, s in enumerate(statements):
        if s["op"] == "free":
            continue
        if s["op"] != "assign":
            return None
        try:
            writer.statement(i, s["target"], ast.parse(s["expr"], mode="eval").body, direct.pop(s["target"], None))
        except _Plain:
            return None
    written = {c["out"] for c in writer.calls}
    copies = [{"out": o, "value": r["name"]} for r, o in zip(returned, outputs) if o not in written]
    if any(c["value"] not in writer.defined for c in copies):
        return None  # an argument or a number returned as it is: nothing to gain
    return {"calls": writer.calls, "buffers": writer.buffers, "copies": copies}


def _number(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None  # e.g. 1/3: np.power computes with it as Python does


def _float_ufunc(func, nargs) -> bool:
    """``func`` is ``np.<ufunc>`` of ``nargs`` float64 operands giving one float64 (not a bool)."""
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "np"):
        return False
    u = getattr(np, func.attr, None)
    return isinstance(u, np.ufunc) and u.nin == nargs and u.nout == 1 and "d" * nargs + "->d" in u.types


class _Plain(Exception):
    """The body has something the ufunc calls do not cover."""


class _Writer:
    def __init__(self, last_read, inputs, name_buffer):
        self.last_read, self.inputs, self.name_buffer = last_read, inputs, name_buffer
        self.calls: list = []
        self.buffers: list = []  # every buffer's name
        self.free: list = []  # buffers whose value has been read for the last time
        self.holds: dict = {}  # statement target -> its buffer
        self.defined: set = set()

    def statement(self, i, target, tree, out):
        self.index, self.target, self.root, self.out = i, target, tree, out
        # names this statement reads for the last time free their buffer after their last occurrence
        self.reads_left = {}
        for n in ast.walk(tree):
            if isinstance(n, ast.Name) and n.id in self.holds and self.last_read.get(n.id) == i:
                self.reads_left[n.id] = self.reads_left.get(n.id, 0) + 1
        if not self.array(tree):
            raise _Plain  # a bare name or a number: no operation to write into a buffer
        self.gen(tree)
        self.defined.add(target)

    def array(self, node) -> bool:
        """True if ``node`` reads a value of the body (else it is a Python number such as ``-1``)."""
        return any(isinstance(n, ast.Name) and n.id != "np" for n in ast.walk(node))

    def gen(self, node):
        """Code for ``node``'s value: a leaf's text, or the buffer an operation wrote it into."""
        if not self.array(node):  # a Python number, computed as the plain body computes it
            n = _number(node)
            if type(n) is int and abs(n) < 2**53:  # the same float64 operand, without numpy's
                return repr(float(n))  # checks of a Python int (~0.3 us a call)
            return ast.unparse(node)
        if isinstance(node, ast.Name):
            if node.id not in self.inputs and node.id not in self.defined:
                raise _Plain
            return node.id
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self.apply(node, _BINARY[type(node.op)], [node.left, node.right])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and not self.array(node.right):
            n = _number(node.right)
            if n in _POWERS:
                return self.apply(node, _POWERS[n], [node.left])
            return self.apply(node, "np.power", [node.left, node.right])
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return self.apply(node, _UNARY[type(node.op)], [node.operand])
        if isinstance(node, ast.Call) and not node.keywords and _float_ufunc(node.func, len(node.args)):
            return self.apply(node, ast.unparse(node.func), node.args)
        raise _Plain

    def apply(self, node, fn, operands):
        args = [self.gen(a) for a in operands]
        dying = [a for a in args if a in self.buffers]  # a value inside this expression: read once
        for a in args:
            if a in self.reads_left:
                self.reads_left[a] -= 1
                if not self.reads_left[a]:
                    dying.append(self.holds[a])
        root = node is self.root
        if root and self.out is not None:
            out = self.out
        else:
            out = dying[0] if dying else self.free.pop() if self.free else self.new_buffer()
        self.free.extend(b for b in dict.fromkeys(dying) if b != out)
        if root:
            if out in self.buffers:
                self.holds[self.target] = out
            self.calls.append({"target": self.target, "fn": fn, "args": args, "out": out})
            return self.target
        self.calls.append({"target": None, "fn": fn, "args": args, "out": out})
        return out

    def new_buffer(self):
        self.buffers.append(self.name_buffer(len(self.buffers)))
        return self.buffers[-1]
