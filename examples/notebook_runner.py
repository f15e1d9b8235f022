"""A tiny Jupyter stand-in for the document scripts: run code cells in order in one namespace and
show what the notebook shows (printed text, the value of a cell's last expression, the last line
of an error), optionally followed by a reference value computed independently with numpy.

The cells are the documents' code, verbatim except the import line, so the same cells can also
run against real PyTorch (``run(cells, torch_module="torch")``), which is what the tests do.
"""

from __future__ import annotations

import ast
import contextlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

IMPORT = "import symdiff.torchlike as torch"


@dataclass
class Cell:
    label: str
    code: str
    reference: Callable | None = None  # namespace -> [(description, numpy value)]
    note: str = ""


@dataclass
class CellResult:
    label: str
    output: str
    tensors: dict = field(default_factory=dict)  # name -> (value, grad or None, requires_grad), copies
    error: str | None = None


def _is_tensor(v) -> bool:
    cls = type(v)  # class attributes only: reading .grad of a non-leaf makes PyTorch warn
    return all(hasattr(cls, a) for a in ("detach", "requires_grad", "grad", "is_leaf"))


def snapshot(ns: dict) -> dict:
    """Values and gradients of every tensor in the namespace (and in tuples of tensors), as float64 copies."""
    out = {}
    for name, v in ns.items():
        items = [(name, v)] if _is_tensor(v) else []
        if isinstance(v, tuple) and v and all(_is_tensor(x) for x in v):
            items = [(f"{name}[{i}]", x) for i, x in enumerate(v)]
        for key, t in items:
            grad = None if not t.is_leaf or t.grad is None else np.array(t.grad.detach().numpy(), dtype=np.float64)
            out[key] = (np.array(t.detach().numpy(), dtype=np.float64), grad, bool(t.requires_grad))
    return out


def pretty(value) -> str:
    """IPython's display of a value: continuation lines of a multi-line item in a tuple or list are
    indented by the bracket."""
    if isinstance(value, (tuple, list)):
        items = [repr(v).replace("\n", "\n ") for v in value]
        if isinstance(value, tuple):
            return "(" + ", ".join(items) + (",)" if len(items) == 1 else ")")
        return "[" + ", ".join(items) + "]"
    return repr(value)


def _execute(code: str, ns: dict):
    """exec the cell; return the value of a final expression statement (None otherwise, or when the
    cell ends with a semicolon, as in Jupyter)."""
    tree = ast.parse(code)
    shown = not code.rstrip().endswith(";")
    last = tree.body[-1] if shown and tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    exec(compile(tree, "<cell>", "exec"), ns)  # noqa: S102 - running the cell is the point
    if last is not None:
        return eval(compile(ast.Expression(last.value), "<cell>", "eval"), ns)
    return None


def reference_text(description: str, value) -> str:
    from symdiff.torchlike import float32
    from symdiff.torchlike.printing import tensor_repr

    values = np.asarray(value, dtype=np.float32)
    return f"# reference, {description}:\n{tensor_repr(values, float32, None, False)}"


def run(cells, torch_module: str = "symdiff.torchlike", show=True, references=True) -> list:
    """Run ``cells``; print each cell's label and output (when ``show``); return the results."""
    ns: dict = {"__name__": "__notebook__"}
    results = []
    for cell in cells:
        code = cell.code.replace(IMPORT, f"import {torch_module} as torch")
        buffer = io.StringIO()
        error = None
        with contextlib.redirect_stdout(buffer):
            try:
                value = _execute(code, ns)
                if value is not None:
                    print(pretty(value))
            except Exception as e:  # noqa: BLE001 - the notebook shows the error, then runs the next cell
                error = f"{type(e).__name__}: {e}"
                print(error)
            if references and cell.reference is not None and error is None:
                for description, ref in cell.reference(ns):
                    print(reference_text(description, ref))
        results.append(CellResult(cell.label, buffer.getvalue(), snapshot(ns), error))
        if show:
            print(f"{cell.label}:" + (f"  # {cell.note}" if cell.note else ""))
            sys.stdout.write(buffer.getvalue())
    return results
