"""The structure of a recorded graph as a cheap hashable key, so that a training step whose graph
repeats runs its compiled gradient without rebuilding IR (the rebuild traces every operation through
SymPy and costs more than the step itself).

The key holds what decides the IR and nothing else: per recorded operation, its rebuild function
*by value* (code object plus the values it closed over: Python numbers by ``repr``, so ``0.0`` and
``-0.0`` differ; index and mask arrays by their bytes), the positions of its operands and its
result's shape and dtype; per graph input, its shape, dtype and role. Tensor values are never in
the key: they are the arguments of the compiled gradient. Anything the key cannot state by value
(an object it does not know, a derivative graph from ``create_graph``) makes the graph uncacheable
here and it takes the full rebuild path, which is always right.
"""

from __future__ import annotations

import types

import numpy as np

_MAX_ARRAY = 4096  # entries: larger closed-over arrays are not hashed (full rebuild instead)
_PERSISTENT = (type, types.BuiltinFunctionType, types.ModuleType, np.ufunc, np.dtype, type(np.mean))  # module-level objects


class Unfreezable(Exception):
    """A value whose identity-free description is unknown: no fast key."""


def _function(v, depth):
    cells = v.__closure__ or ()
    try:
        closed = tuple(freeze(c.cell_contents, depth + 1) for c in cells)
    except ValueError:  # an empty cell
        raise Unfreezable from None
    defaults = v.__defaults__
    code = v.__code__  # code objects compare equal across files: the file and name tell them apart
    return (code, code.co_filename, v.__qualname__, v.__module__, closed,
            None if defaults is None else freeze(defaults, depth + 1),
            None if v.__kwdefaults__ is None else freeze(v.__kwdefaults__, depth + 1))


def _number(v, depth):
    return (type(v), repr(v))  # repr: 0.0 and -0.0 (and 1 and 1.0) are different constants


def _sequence(v, depth):
    return (type(v), tuple(freeze(x, depth + 1) for x in v))


def _array(v, depth):
    if v.size > _MAX_ARRAY or v.dtype.kind not in "biuf":
        raise Unfreezable
    return ("a", v.shape, v.dtype.str, v.tobytes())


def _itself(v, depth):
    return v


_BY_TYPE = {
    types.FunctionType: _function, float: _number, int: _number, bool: _number, np.float64: _number,
    np.float32: _number, np.int64: _number, np.int32: _number, np.bool_: _number, tuple: _sequence,
    list: _sequence, np.ndarray: _array, str: _itself, type(None): _itself, type(Ellipsis): _itself,
    slice: lambda v, d: ("s", freeze(v.start, d + 1), freeze(v.stop, d + 1), freeze(v.step, d + 1)),
    dict: lambda v, d: ("d", tuple((k, freeze(x, d + 1)) for k, x in v.items())),
}


def freeze(v, depth: int = 0):
    """A hashable value-based description of ``v`` (raises ``Unfreezable``)."""
    if depth > 12:
        raise Unfreezable
    how = _BY_TYPE.get(type(v))
    if how is not None:
        return how(v, depth)
    if isinstance(v, _PERSISTENT) or type(v).__module__ == "symdiff.torchlike.dtypes":
        return v
    raise Unfreezable


def graph_key(order, is_input, outputs, grad_outputs, wrt):
    """The key of the graph whose tensors are ``order`` (operands before results), or None.

    Raises nothing: an unknown closure value gives None (take the full path)."""
    position = {}
    tokens = []
    try:
        for i, t in enumerate(order):
            position[id(t)] = i
            value = t._value
            if is_input(t):
                tokens.append((value.shape, value.dtype.str, t.grad_fn is None and t.requires_grad))
            else:
                fn = t.grad_fn
                tokens.append((freeze(fn._build), tuple(position[id(x)] for x in fn._inputs), value.shape,
                               value.dtype.str, t._retains_grad or bool(t._hooks)))
    except Unfreezable:
        return None
    outs = tuple(position[id(o)] for o in outputs)
    cots = tuple(None if c is None else (position.get(id(c), -1), c._value.shape, c._value.dtype.str)
                 for c in grad_outputs)
    targets = None if wrt is None else tuple(position.get(id(t), -1) for t in wrt)
    return (tuple(tokens), outs, cots, targets)
