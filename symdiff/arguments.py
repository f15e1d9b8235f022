"""What a call passes to a transform: which arguments are traced and which are static values
(declared static, or Python ints, bools, strings, None and tuples of them), keyword arguments, and
the key a call is dispatched by (types, shapes, dtypes, static values, pytree structures).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from . import pytrees
from .errors import SymdiffError


class Call:
    """How the user's function is called besides its traced positional arguments: the names of
    keyword arguments that are arrays (the last input nodes, data of the generated function), the
    static keyword values (Python numbers and strings: constants of the trace, part of its key) and
    the static positional arguments ``fixed``, (position, value) pairs in ascending positions:
    passed to the function as they are, no input node, part of the key. A pytree positional
    argument (``trees``) has one input node per leaf; a pytree keyword argument (``keyword_trees``)
    one keyword input per leaf, named ``batch_x`` for the leaf ``x`` of ``batch``."""

    __slots__ = ("fixed", "keyword_trees", "keywords", "static", "trees")

    def __init__(self, keywords=(), static=None, fixed=(), trees=(), keyword_trees=()):
        self.keywords, self.static, self.fixed = tuple(keywords), dict(static or {}), tuple(fixed)
        self.trees = tuple(trees)  # (position, structure, leaf paths) of each pytree positional argument
        self.keyword_trees = tuple(keyword_trees)  # (name, structure, leaf keyword names) of pytree keywords


NO_KEYWORDS = Call()


_STATIC_TYPES = (bool, int, float, complex, str, type(None))


def _is_static(v) -> bool:
    """Python numbers, strings, None and tuples of them: values a trace bakes in (as JAX's static arguments)."""
    if isinstance(v, tuple):
        return all(_is_static(x) for x in v)
    return isinstance(v, _STATIC_TYPES) and not isinstance(v, np.generic)


_AUTO_STATIC = (bool, int, str, type(None))


def _auto_static(v) -> bool:
    """A positional argument that is static without being declared: Python ints, bools, strings,
    None and tuples of them (a Python float stays a differentiable scalar)."""
    if v.__class__ is tuple:
        return all(_auto_static(x) for x in v)
    return v.__class__ in _AUTO_STATIC


def _static_value(v, what):
    """``v`` checked as a static argument: it keys compiled code, so it must be hashable and not traced."""
    if _is_tracer(v):
        raise SymdiffError(
            f"{what} is static but received a traced value: a static argument must be a Python value known "
            "before tracing (drop it from static_argnums/static_argnames to make it data)"
        )
    try:
        hash(v)
    except TypeError:
        raise SymdiffError(
            f"{what} is static, so it keys the compiled code and must be hashable; got a {type(v).__name__} "
            "(pass a tuple instead of a list, or drop it from static_argnums/static_argnames to make it data)"
        ) from None
    return v


def _token(v):
    """A static value as text for keys: type and repr (1, 1.0, True and -0.0 stay apart)."""
    return (type(v).__name__, repr(v))


def _scalar_call(args, call):
    """Whether every traced positional argument is a Python number (results are then Python floats)."""
    if call.trees:
        return False
    fixed = {p for p, _ in call.fixed}
    return all(_is_python_scalar(a) for i, a in enumerate(args) if i not in fixed)


def _keyword_call(kwargs, static_names=()):
    """(Call, keyword array operands in order) for the keyword arguments of a call; keywords named
    in ``static_names`` (static_argnames) are static whatever their type."""
    if not kwargs:
        return NO_KEYWORDS, []
    keywords, operands, static, trees = [], [], {}, []
    for name in sorted(kwargs):
        v = kwargs[name]
        if name in static_names:
            static[name] = _static_value(v, f"keyword argument {name!r}")
        elif _is_static(v):
            static[name] = v
        elif pytrees.is_tree_argument(v):
            leaves, tree, paths = pytrees.flatten(v)
            names = tuple(f"{name}_{path}" for path in paths)
            if not leaves or any(n in kwargs for n in names):
                raise SymdiffError(
                    f"keyword argument {name!r} is a {type(v).__name__} that holds no arrays"
                    if not leaves else f"keyword argument {name!r}: its leaves would be named like other keywords"
                )
            keywords.extend(names)
            operands.extend(leaves)
            trees.append((name, tree, names))
        elif isinstance(v, (np.ndarray, np.generic, list)) or _is_tracer(v):
            keywords.append(name)
            operands.append(v)
        else:
            raise SymdiffError(
                f"keyword argument {name!r} is a {type(v).__name__}: pass arrays (data of the generated code), "
                "Python numbers and strings (constants of the trace) or dicts, namedtuples and dataclasses of arrays"
            )
    if len(set(keywords)) != len(keywords):
        raise SymdiffError(f"keyword arguments {sorted(kwargs)}: the leaves of a pytree would be named like other keywords")
    return Call(keywords, static, keyword_trees=trees), operands


def _is_tracer(v) -> bool:
    traced = sys.modules.get("symdiff.trace")
    return traced is not None and isinstance(v, traced.Tracer)


# arrays of these libraries are keyed by type, shape and dtype, like numpy's (never traced values)
_ARRAY_LIBRARIES = frozenset({"torch", "jax", "jaxlib", "cupy", "dask", "array_api_strict"})


def _dispatch_key(args, shape_free: bool, kwargs=None, static=(), static_names=()):
    """What the compiled code depends on in the arguments, or None when only a trace can tell.

    Static values (at positions ``static``, named in ``static_names``, or ints, bools, strings,
    None and tuples of them) enter by type and repr; other static objects are not keyed: traced
    on every call, since only a trace sees what they hold."""
    key = []
    for i, a in enumerate(args):
        cls = a.__class__
        if static and i in static:
            if not _is_static(a):
                return None
            key.append(("static", *_token(a)))
        elif cls is float:
            key.append(cls)
        elif cls is np.ndarray:
            key.append(a.dtype if shape_free else (a.shape, a.dtype))
        elif cls.__module__.partition(".")[0] in _ARRAY_LIBRARIES:  # for backend="array_api"
            key.append((cls, str(a.dtype)) if shape_free else (cls, tuple(a.shape), str(a.dtype)))
        elif _auto_static(a):
            key.append(("static", *_token(a)))
        elif pytrees.is_tree_argument(a):
            leaves, tree, _ = pytrees.flatten(a)
            if not all(x.__class__ is np.ndarray or x.__class__ is float for x in leaves):
                return None
            key.append(("tree", json.dumps(tree), tuple(float if x.__class__ is float else (x.shape, x.dtype)
                                                         for x in leaves)))
        else:
            return None
    if kwargs:
        for name in sorted(kwargs):
            v = kwargs[name]
            if v.__class__ is np.ndarray and name not in static_names:
                key.append((name, v.dtype if shape_free else (v.shape, v.dtype)))
            elif _is_static(v):
                key.append((name, "static", *_token(v)))
            elif pytrees.is_tree_argument(v):
                leaves, tree, _ = pytrees.flatten(v)
                if not all(x.__class__ is np.ndarray for x in leaves):
                    return None
                key.append((name, "tree", json.dumps(tree), tuple((x.shape, x.dtype) for x in leaves)))
            else:
                return None
    return tuple(key)

def _is_python_scalar(a):
    return isinstance(a, (int, float)) and not isinstance(a, bool)
