"""What a function reads besides its arguments, and whether a compiled entry may be reused unseen.

A trace bakes every value the function reads from its code, defaults, keyword defaults, closure
cells and global names (and, recursively, those of the helper functions it calls) into the IR. The
IR key is therefore sound by construction. Skipping the trace (the dispatch fast path, and the
on-disk index a new process uses) is only sound when everything the trace could have read is known
not to have changed. ``read_set`` walks those places and proves it for a closed set of values:

* numbers, strings, bytes, None, numpy scalars, tuples/frozensets of such values;
* numpy arrays (in process by identity -- mutating a closed-over array in place is not seen, as
  with ``jax.jit`` -- and across processes by content digest);
* plain functions and ``functools.partial`` objects (walked recursively), symdiff transforms;
* numpy's, the standard math modules' and symdiff's own modules, functions, ufuncs and types;
* small dicts and lists of such values (their items are compared on every call).

Anything else -- instances, classes (their attributes can be reassigned), user modules, bound
methods (``self`` is mutable), generators, random generators -- cannot be proven unchanged:
``read_set`` returns None and the caller traces on every call and keys by the IR.

This module imports neither SymPy nor the compiler, so the fast path stays fast.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import types

import numpy as np

STABLE_MODULES = frozenset({"numpy", "math", "cmath", "builtins", "symdiff", "operator"})
MAX_DEPTH = 8  # helper functions nested deeper than this are not walked: no fast path
MAX_ITEMS = 64  # dicts, lists and tuples longer than this are not compared item by item
_MISSING = object()  # a global name that is not bound (Python falls back to builtins)


def array_digest(arr: np.ndarray) -> str:
    """The content digest of an array: dtype, shape and bytes (the one used for cache keys)."""
    v = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{v.dtype.str}{v.shape}".encode())
    h.update(memoryview(v.reshape(-1)).cast("B") if v.size else b"")  # no copy of the data
    return h.hexdigest()[:20]


class DigestMemo:
    """Array digests computed during one call, so each array is hashed at most once per call."""

    def __init__(self):
        self._by_id: dict = {}

    def __call__(self, arr: np.ndarray) -> str:
        hit = self._by_id.get(id(arr))
        if hit is None or hit[0] is not arr:
            hit = self._by_id[id(arr)] = (arr, array_digest(arr))
        return hit[1]

    def known(self, arr) -> str | None:
        hit = self._by_id.get(id(arr))
        return hit[1] if hit is not None and hit[0] is arr else None


class Reads:
    """Everything a function reads besides its arguments, as places to re-check and values to digest."""

    __slots__ = ("checks", "values", "array_names", "strict")

    def __init__(self, strict: bool = True):
        self.strict = strict  # False: skip what cannot be proven (enough to name arrays, not to skip a trace)
        self.checks: list = []  # (kind, place, key, expected): see unchanged()
        self.values: list = []  # (label, text or array) in walk order: what the persistent digest covers
        self.array_names: dict = {}  # id(array) -> (array, the user's name for it where first read)

    def unchanged(self) -> bool:
        """True while every place read still holds the object (or items) it held when walked."""
        return self.guard()()

    def guard(self):
        """``unchanged`` as one compiled expression of identity tests: it runs on every call of a
        compiled transform, so it costs what a handful of attribute loads cost, not a loop."""
        test, scope = self.guard_test()
        source = "def unchanged():\n    try:\n        return " + test
        source += "\n    except ValueError:  # a closure cell was emptied\n        return False\n"
        exec(compile(source, "<symdiff guard>", "exec"), scope)
        return scope["unchanged"]

    def guard_test(self):
        """(expression, names it reads): the test ``guard`` compiles, for callers that inline it
        (a ValueError from it means a closure cell was emptied: changed)."""
        tests, scope = [], {"_MISSING": _MISSING, "_items_unchanged": _items_unchanged, "_same_content": _same_content}
        arrays = [v for _, v in self.values if isinstance(v, np.ndarray)]
        for k, array in enumerate(arrays):  # the trace copied them: an array changed in place is a new value
            scope[f"a{k}"], scope[f"s{k}"] = array, array.copy()
            tests.append(f"_same_content(a{k}, s{k})")
        for k, (kind, place, key, expected) in enumerate(self.checks):
            scope[f"p{k}"], scope[f"e{k}"] = place, expected
            if kind == "attr":  # key: one of a few dunder/attribute names written by the walk
                tests.append(f"p{k}.{key} is e{k}")
            elif kind == "name":
                tests.append(f"p{k}.get({key!r}, _MISSING) is e{k}")
            elif kind == "cell" and expected is not _MISSING:
                tests.append(f"p{k}.cell_contents is e{k}")
            else:
                tests.append(f"_items_unchanged({kind!r}, p{k}, e{k})")
        return " and ".join(tests) or "True", scope

    def digest(self, memo: DigestMemo) -> str:
        """A digest of every value read (arrays by content): equal digests, equal traces."""
        h = hashlib.sha256()
        for label, value in self.values:
            h.update(label.encode() + b"=" + _describe(value, memo).encode() + b"\n")
        return h.hexdigest()

    def arrays(self, memo: DigestMemo) -> dict:
        """digest -> array for every array read: the data a cached entry's keyword constants need."""
        return {memo(v): v for _, v in self.values if isinstance(v, np.ndarray)}


def read_set(fun, strict: bool = True) -> Reads | None:
    """The places ``fun`` reads and their values, or None when some of them cannot be proven
    unchanged. With ``strict=False`` such values are skipped instead (the result then only serves
    to know the user's names for the arrays the function reads)."""
    reads = Reads(strict)
    try:
        _walk(fun, "f", reads, 0, set())
    except _Unprovable:
        return None
    _read_extensions(reads)
    return reads


def _read_extensions(reads: Reads) -> None:
    """Every trace also reads the op registry: an op or numpy function registered from outside
    symdiff (or edited and registered again) makes code compiled before it stale."""
    from . import extensions

    reads.checks.append(("attr", extensions, "EXTENSIONS", extensions.EXTENSIONS))
    if extensions.EXTENSIONS:
        reads.values.append(("symdiff extensions", repr(extensions.EXTENSIONS)))


class _Unprovable(Exception):
    pass


def _same_content(array: np.ndarray, snapshot: np.ndarray) -> bool:
    """``array`` still holds what it held when compiled (shape, dtype, every entry; NaN equals NaN).
    Runs on every fast call: small arrays are compared as bytes (about 1 us), large ones by numpy."""
    if array.shape != snapshot.shape or array.dtype != snapshot.dtype:
        return False
    if array.size and array.nbytes <= 4096 and array.flags.c_contiguous:
        return memoryview(array).cast("B") == memoryview(snapshot).cast("B")  # bitwise: NaN == NaN
    return bool((array == snapshot).all()) or (array.dtype.kind == "f" and np.array_equal(array, snapshot, equal_nan=True))


def _items_unchanged(kind: str, place, expected) -> bool:
    """The items of a dict or list read by the function are the same objects (or an empty cell is still empty)."""
    if kind == "cell":
        try:
            place.cell_contents
        except ValueError:
            return True
        return False
    if len(place) != len(expected):
        return False
    if kind == "list":
        return all(a is b for a, b in zip(place, expected))
    return all(place.get(k, _MISSING) is v for k, v in expected)


_STABLE_KINDS = (type, types.FunctionType, types.BuiltinFunctionType, type(np.sum))


def _stable_name(v) -> str | None:
    """``module.qualname`` of a function, ufunc or type that a module whose code cannot change
    defines under that name (looked up, not taken from ``__module__``, which code can set freely)."""
    if isinstance(v, np.ufunc):
        return f"ufunc:{v.__name__}" if getattr(np, v.__name__, None) is v else None
    if not isinstance(v, _STABLE_KINDS):
        return None
    module, name = getattr(v, "__module__", None), getattr(v, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(name, str) and module.split(".")[0] in STABLE_MODULES):
        return None
    found = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    return f"{module}.{name}" if found is v else None


def _walk(v, label: str, reads: Reads, depth: int, seen: set) -> None:
    """Record the value ``v`` found at ``label`` and everything it lets a trace read."""
    try:
        _walk_value(v, label, reads, depth, seen)
    except _Unprovable:
        if reads.strict:
            raise


def _walk_value(v, label: str, reads: Reads, depth: int, seen: set) -> None:
    if v is _MISSING:
        reads.values.append((label, "unbound"))
        return
    if isinstance(v, np.generic):
        reads.values.append((label, repr((type(v).__name__, v.item()))))
        return
    if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
        reads.values.append((label, repr((type(v).__name__, v))))
        return
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            raise _Unprovable
        reads.array_names.setdefault(id(v), (v, label.rsplit(".", 1)[-1]))
        reads.values.append((label, v))
        return
    if isinstance(v, (tuple, frozenset)):
        if len(v) > MAX_ITEMS:
            raise _Unprovable
        reads.values.append((label, f"{type(v).__name__}[{len(v)}]"))
        for i, x in enumerate(sorted(v, key=repr) if isinstance(v, frozenset) else v):
            _walk(x, f"{label}[{i}]", reads, depth, seen)
        return
    if type(v) in (list, dict):
        if len(v) > MAX_ITEMS or id(v) in seen:
            raise _Unprovable
        seen = seen | {id(v)}
        if type(v) is list:
            reads.checks.append(("list", v, None, list(v)))
            items = list(enumerate(v))
        else:
            if not all(isinstance(k, (str, int, float, bool, tuple)) for k in v):
                raise _Unprovable
            reads.checks.append(("dict", v, None, list(v.items())))
            items = list(v.items())
        reads.values.append((label, f"{type(v).__name__}[{len(v)}]"))
        for k, x in items:
            _walk(x, f"{label}[{k!r}]", reads, depth, seen)
        return
    if isinstance(v, types.ModuleType):
        if v.__name__.split(".")[0] not in STABLE_MODULES:
            raise _Unprovable
        reads.values.append((label, "module:" + v.__name__))
        return
    transform = _transform_chain(v)
    if transform is not None:
        chain, base = transform
        reads.values.append((label, "transform:" + chain))
        _walk(base, label + ".fun", reads, depth, seen)
        return
    custom = getattr(type(v), "__symdiff_reads__", None)
    if custom is not None:  # a custom_jvp/custom_vjp function: its function and rules, each watched
        if depth >= MAX_DEPTH:
            raise _Unprovable
        reads.values.append((label, f"custom:{type(v).__name__}"))
        for attr, value in v.__symdiff_reads__():
            reads.checks.append(("attr", v, attr, value))
            _walk(value, f"{label}.{attr}", reads, depth + 1, seen)
        return
    stable = _stable_name(v)
    if stable is not None:
        reads.values.append((label, "stable:" + stable))
        return
    if isinstance(v, functools.partial):
        if depth >= MAX_DEPTH:
            raise _Unprovable
        reads.values.append((label, "partial"))
        reads.checks.append(("attr", v, "keywords", v.keywords))
        _walk(v.func, label + ".func", reads, depth + 1, seen)
        _walk(tuple(v.args), label + ".args", reads, depth + 1, seen)
        _walk(dict(v.keywords), label + ".keywords", reads, depth + 1, seen)
        return
    if isinstance(v, types.FunctionType):
        _walk_function(v, label, reads, depth, seen)
        return
    raise _Unprovable  # instances, classes, bound methods, user modules, ...


def _walk_function(f: types.FunctionType, label: str, reads: Reads, depth: int, seen: set) -> None:
    if id(f) in seen:
        reads.values.append((label, "recursive"))
        return
    if depth >= MAX_DEPTH:
        raise _Unprovable
    seen = seen | {id(f)}
    code = f.__code__
    reads.values.append((label, f"function:{f.__qualname__}:{_code_digest(code)}"))
    reads.checks.append(("attr", f, "__code__", code))
    # defaults set later on a function without them change nothing: its parameters are all passed
    if f.__defaults__ is not None:
        reads.checks.append(("attr", f, "__defaults__", f.__defaults__))
    if f.__kwdefaults__ is not None:
        reads.checks.append(("attr", f, "__kwdefaults__", f.__kwdefaults__))
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    defaults = f.__defaults__ or ()
    for name, d in zip(names[code.co_argcount - len(defaults) : code.co_argcount], defaults):
        _walk(d, f"{label}.{name}", reads, depth + 1, seen)
    kwdefaults = f.__kwdefaults__ or {}
    if kwdefaults:
        reads.checks.append(("dict", kwdefaults, None, list(kwdefaults.items())))
    for name in sorted(kwdefaults):
        _walk(kwdefaults[name], f"{label}.{name}", reads, depth + 1, seen)
    for name, cell in zip(code.co_freevars, f.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # not assigned yet
            value = _MISSING
        reads.checks.append(("cell", cell, None, value))
        _walk(value, f"{label}.{name}" if depth else name, reads, depth + 1, seen)
    scope = f.__globals__
    for name in _global_names(code):
        value = scope.get(name, _MISSING)
        reads.checks.append(("name", scope, name, value))
        if value is not _MISSING:
            _walk(value, f"{label}.{name}" if depth else name, reads, depth + 1, seen)


def _transform_chain(v):
    """(text of the transform chain, base function) of a symdiff transform, else None."""
    describe = getattr(type(v), "chain_text", None)
    if describe is None or not callable(describe):
        return None
    return describe(v), v.base_function


def _describe(value, memo: DigestMemo) -> str:
    """Arrays are digested lazily (only the persistent index needs their content); the rest is text."""
    return "array:" + memo(value) if isinstance(value, np.ndarray) else value


@functools.lru_cache(maxsize=4096)
def _code_digest(code) -> str:
    """A digest of what a code object does (``marshal`` output is not stable across processes)."""
    h = hashlib.sha256(code.co_code)
    for c in code.co_consts:
        h.update((_code_digest(c) if hasattr(c, "co_code") else repr((type(c).__name__, c))).encode())
    h.update(repr((code.co_name, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                   code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=4096)
def _global_names(code) -> tuple:
    """Every name the code (and code nested in it: lambdas, comprehensions) may look up globally."""
    names = set(code.co_names)
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            names.update(_global_names(c))
    return tuple(sorted(names))
