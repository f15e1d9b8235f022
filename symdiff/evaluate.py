"""A direct interpreter of IR graphs on numpy arrays, each op evaluated by its own rule (``symdiff.ops``).

Used to build ``.formula()`` (run on object arrays of SymPy symbols) and, in tests, as a reference
that shares no code with the emitter.
"""

from __future__ import annotations

import numpy as np
import sympy

from . import ir, ops


def evaluate(outputs, inputs: dict, symbolic: bool = False) -> list:
    """Values of ``outputs`` given ``inputs`` (input position -> array)."""
    values: dict = {}
    for node in ir.toposort(outputs):
        if node.op == "input":
            value = inputs[node.params[0]]
        else:
            value = ops.of(node).evaluate(node, [values[id(i)] for i in node.inputs], symbolic)
        if symbolic:  # numpy reductions of object arrays return bare SymPy objects or floats
            value = np.vectorize(sympy.sympify, otypes=[object])(np.asarray(value, dtype=object))
        values[id(node)] = value
    return [values[id(o)] for o in outputs]
