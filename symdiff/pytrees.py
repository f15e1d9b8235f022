"""Nested containers of arrays (pytrees, as JAX calls them): dicts, lists, tuples, namedtuples and
dataclasses, flattened to their leaves and a description of the structure that is plain JSON (it
is stored in cache entries), and rebuilt from the two.

A structure is an int (the index of a leaf) or ``{"t": kind, "c": children}``, with ``"k"`` the
keys of a dict or the fields of a namedtuple or dataclass and ``"cls"`` the ``module:qualname`` of
a namedtuple or dataclass. Classes are found again by that name (those seen in this process first),
so two classes with the same module and qualified name are one class to symdiff.
"""

from __future__ import annotations

import dataclasses
import sys
import weakref

import numpy as np

from .errors import SymdiffError

_CLASSES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # "module:qualname" -> class


def _is_namedtuple(v) -> bool:
    return isinstance(v, tuple) and hasattr(type(v), "_fields")


def _is_dataclass(v) -> bool:
    return dataclasses.is_dataclass(v) and not isinstance(v, type)


def is_record(v) -> bool:
    """A dict, namedtuple or dataclass instance: always a container of arrays, never one array."""
    return isinstance(v, dict) or _is_namedtuple(v) or _is_dataclass(v)


def has_class(tree) -> bool:
    """Whether ``tree`` holds a namedtuple or dataclass (which tracing cannot pass through as they are)."""
    if _is_namedtuple(tree) or _is_dataclass(tree):
        return True
    if isinstance(tree, (list, tuple)):
        return any(has_class(t) for t in tree)
    if isinstance(tree, dict):
        return any(has_class(t) for t in tree.values())
    return False


def is_tree_argument(v) -> bool:
    """Whether a positional argument is a pytree rather than one array: a dict, namedtuple or
    dataclass, or a list or tuple holding one of those or arrays of different shapes. A list of
    numbers, or of arrays of one shape, stays one array, as ``np.asarray`` reads it."""
    if is_record(v):
        return True
    if v.__class__ not in (list, tuple):
        return False
    if any(is_tree_argument(e) for e in v):
        return True
    if not any(hasattr(e, "shape") and not isinstance(e, np.generic) for e in v):
        return False
    try:
        return len({tuple(np.shape(e)) for e in v}) > 1
    except ValueError:  # a ragged nested list
        return True


def _reference(cls) -> str:
    ref = f"{cls.__module__}:{cls.__qualname__}"
    _CLASSES[ref] = cls
    return ref


def _class(ref: str):
    cls = _CLASSES.get(ref)
    if cls is None:
        module, _, qualname = ref.partition(":")
        cls = sys.modules.get(module)
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        if not isinstance(cls, type):
            raise SymdiffError(f"cannot rebuild a {qualname} (from {module}): the class is not importable by that name")
    return cls


def flatten(tree, is_leaf=None):
    """(leaves, structure, leaf paths such as ``"layers_0_w"``) of ``tree``; without ``is_leaf``
    everything but lists, tuples, dicts, namedtuples and dataclasses is a leaf."""
    leaves: list = []
    paths: list = []

    def go(t, path):
        if is_leaf is not None and is_leaf(t):
            leaves.append(t)
            paths.append("_".join(path) or "value")
            return len(leaves) - 1
        if _is_namedtuple(t):
            fields = list(type(t)._fields)
            return {"t": "namedtuple", "cls": _reference(type(t)), "k": fields,
                    "c": [go(x, path + [f]) for f, x in zip(fields, t)]}
        if _is_dataclass(t):
            fields = [f.name for f in dataclasses.fields(t) if f.init]
            return {"t": "dataclass", "cls": _reference(type(t)), "k": fields,
                    "c": [go(getattr(t, f), path + [f]) for f in fields]}
        if isinstance(t, (tuple, list)):
            return {"t": type(t).__name__, "c": [go(x, path + [str(i)]) for i, x in enumerate(t)]}
        if isinstance(t, dict):
            return {"t": "dict", "k": [str(k) for k in t], "c": [go(v, path + [str(k)]) for k, v in t.items()]}
        if is_leaf is not None:
            raise SymdiffError(f"cannot return a {type(t).__name__} from a differentiated function")
        leaves.append(t)
        paths.append("_".join(path) or "value")
        return len(leaves) - 1

    return leaves, go(tree, []), paths


def unflatten(tree, leaves):
    """The structure ``tree`` (from ``flatten``) with ``leaves`` in it."""
    if isinstance(tree, int):
        return leaves[tree]
    children = [unflatten(c, leaves) for c in tree["c"]]
    kind = tree["t"]
    if kind == "dict":
        return dict(zip(tree["k"], children))
    if kind == "namedtuple":
        return _class(tree["cls"])(*children)
    if kind == "dataclass":
        return _class(tree["cls"])(**dict(zip(tree["k"], children)))
    return tuple(children) if kind == "tuple" else list(children)


def map_leaves(fn, tree):
    """``tree`` with ``fn`` applied to every leaf (containers rebuilt as they were)."""
    leaves, structure, _ = flatten(tree)
    return unflatten(structure, [fn(x) for x in leaves])


class Packed(tuple):
    """The leaves of a result holding namedtuples or dataclasses, passed through tracing as a tuple."""
