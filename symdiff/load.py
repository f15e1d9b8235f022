"""Stage 5, load: turn generated source into callables, cached in memory and on disk.

This module holds what a running process has loaded: the compiled entries (one module object per
key), the table of guarded runners that new transform objects of a function find without tracing,
and ``lookup``, which compiles only on a miss in memory and on disk. The disk cache itself lives in
three modules with one job each (see docs/cache.md):

* ``cache_trust``: where the cache lives, its size bound, and whether this process may use it;
* ``cache_files``: entry and index files, read only once verified, written atomically;
* ``cache_evict``: the size bound, the report and clearing (loaded only by processes that write).

The names tests and tools use from here (``cache_dir``, ``cache_info``, ``recall``, ``FORMAT``, ...)
stay importable from ``symdiff.load``.
"""

from __future__ import annotations

import sys
import threading
import types
import weakref

from . import cache_files, cache_trust
from .cache_files import FORMAT, forget, recall, remember  # noqa: F401 - the load API
from .cache_files import digest as _digest  # noqa: F401
from .cache_files import format_entry as _format  # noqa: F401
from .cache_files import parse as _parse  # noqa: F401
from .cache_files import read_trusted as _read_trusted  # noqa: F401
from .cache_files import write_entry as _write_disk
from .cache_trust import DEFAULT_MAX_MB, cache_dir, max_bytes  # noqa: F401

_memory: dict = {}
# function -> {(transform chain, argument key): guarded runner}: what new transform objects of a
# function already compiled in this process find without tracing (cleared with the memory cache)
runners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.RLock()


class Compiled:
    """A loaded generated module: its source, metadata and namespace."""

    __slots__ = ("key", "meta", "namespace", "source")

    def __init__(self, key: str, source: str, meta: dict, path: str | None = None):
        self.key, self.source, self.meta = key, source, meta
        # A registered module compiled under the verified entry's own path (two blank lines stand
        # for its header): tracebacks show real lines, and numba can cache numba-backend loops.
        module = types.ModuleType(f"symdiff_generated_{key}")
        if path:
            module.__file__ = path
        sys.modules[module.__name__] = module
        filename = path or f"<symdiff {key[:12]}>"
        code = compile("\n\n" + source if path else source, filename, "exec")
        exec(code, module.__dict__)
        self.namespace: dict = module.__dict__

    def function(self, name: str):
        return self.namespace[name]


def _read_disk(key: str) -> Compiled | None:
    return cache_files.read_entry(key, lambda source, meta, path: Compiled(key, source, meta, path))


def lookup(key: str, build) -> Compiled:
    """The compiled entry for ``key``; ``build()`` -> (source, meta) runs only on a miss."""
    hit = _memory.get(key)
    if hit is not None:
        return hit
    with _lock:
        hit = _memory.get(key)
        if hit is not None:
            return hit
        entry = _read_disk(key)
        if entry is None:
            source, meta = build()
            path = _write_disk(key, source, meta)
            entry = Compiled(key, source, meta, path)
        _memory[key] = entry
        return entry


def lookup_existing(key: str) -> Compiled | None:
    """The entry for ``key`` if memory or disk has it; never compiles."""
    hit = _memory.get(key)
    if hit is None:
        with _lock:
            hit = _memory.get(key) or _read_disk(key)
            if hit is not None:
                _memory[key] = hit
    return hit


def clear_memory() -> None:
    """Forget the in-memory entries and what this process concluded about cache directories."""
    with _lock:
        _memory.clear()
        runners.clear()
    cache_trust.forget_verdicts()


def cache_info() -> dict:
    """The disk cache: directory, entries, bytes, in_memory, max_bytes, numba_files, numba_bytes,
    trusted and problem.

    ``bytes`` is what the size bound counts: entries plus numba's cache files for them (``numba_*``).
    ``trusted`` is whether the directory passes the ownership/mode check (None if it does not exist
    or the disk cache is off); ``problem`` is why this process does not (or would not) use it, or None.
    """
    from .cache_evict import info

    return info(len(_memory))


def cache_clear() -> int:
    """Delete the disk entries, their numba files and the index files, forget the in-memory entries;
    return how many entries were removed. Files symdiff did not write are left alone.

    Raises SymdiffError, deleting nothing, for a directory symdiff would not use (not a directory,
    owned by another user, writable by group or others): what is in there is not known to be ours.
    """
    from .cache_evict import clear_disk

    removed = clear_disk()
    clear_memory()
    return removed
