"""Stage 5, load: turn generated source into callables, cached in memory and on disk.

A cache entry is the generated module plus one header line holding a SHA-256 of the rest and a
little JSON metadata. Entries are written atomically (temporary file + rename) and checked against
their hash before they are executed, so a torn or corrupted file is recompiled, never imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import warnings

from .errors import CacheWarning

FORMAT = "symdiff-cache-1"
_memory: dict = {}
_lock = threading.Lock()


def cache_dir() -> str | None:
    """Where compiled modules live: ``$SYMDIFF_CACHE_DIR`` (empty disables), else the user cache dir."""
    env = os.environ.get("SYMDIFF_CACHE_DIR")
    if env is not None:
        return env or None
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    elif os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "symdiff")


class Compiled:
    """A loaded generated module: its source, metadata and namespace."""

    __slots__ = ("key", "source", "meta", "namespace")

    def __init__(self, key: str, source: str, meta: dict):
        self.key, self.source, self.meta = key, source, meta
        self.namespace: dict = {"__name__": f"symdiff_generated_{key[:12]}"}
        code = compile(source, f"<symdiff {key[:12]}>", "exec")
        exec(code, self.namespace)

    def function(self, name: str):
        return self.namespace[name]


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
            entry = Compiled(key, source, meta)
            _write_disk(key, source, meta)
        _memory[key] = entry
        return entry


def lookup_existing(key: str) -> Compiled | None:
    """The entry for ``key`` if memory or disk has it; never compiles."""
    hit = _memory.get(key)
    if hit is None:
        hit = _read_disk(key)
        if hit is not None:
            _memory[key] = hit
    return hit


def recall(alias: str) -> str | None:
    """The entry key recorded for ``alias`` (a digest of a function and its arguments), if any."""
    d = cache_dir()
    if not d:
        return None
    try:
        with open(os.path.join(d, "index", alias), encoding="ascii") as fh:
            key = fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return key if len(key) == 32 and all(c in "0123456789abcdef" for c in key) else None


def remember(alias: str, key: str) -> None:
    """Record that ``alias`` compiles to entry ``key``, so a new process can skip tracing."""
    d = cache_dir()
    if not d:
        return
    try:
        _atomic_write(os.path.join(d, "index", alias), key)
    except OSError:
        pass  # the index is only a shortcut; the entry itself is still cached


def _atomic_write(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _path(key: str) -> str | None:
    d = cache_dir()
    return os.path.join(d, f"{key}.py") if d else None


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _read_disk(key: str) -> Compiled | None:
    path = _path(key)
    if path is None or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline()
            body = fh.read()
        parts = header.split()
        if len(parts) != 4 or parts[1] != FORMAT or parts[2] != f"sha256={_digest(body)}":
            raise ValueError("header or content hash does not match")
        meta_line, source = body.split("\n", 1)
        meta = json.loads(meta_line[len("# meta: ") :])
        if meta.get("key") != key:
            raise ValueError("entry belongs to another key")
        return Compiled(key, source, meta)
    except (OSError, ValueError, SyntaxError, UnicodeDecodeError) as e:
        warnings.warn(f"symdiff: discarding unusable cache entry {path} ({e}); recompiling", CacheWarning, stacklevel=3)
        try:
            os.unlink(path)
        except OSError:
            pass
        return None


def _write_disk(key: str, source: str, meta: dict) -> None:
    path = _path(key)
    if path is None:
        return
    body = "# meta: " + json.dumps({**meta, "key": key}, sort_keys=True) + "\n" + source
    text = f"# {FORMAT} sha256={_digest(body)} {key}\n{body}"
    directory = os.path.dirname(path)
    try:
        _atomic_write(path, text)
    except OSError as e:
        warnings.warn(
            f"symdiff: cannot write the disk cache in {directory} ({e}); using the in-memory cache only. "
            "Set SYMDIFF_CACHE_DIR to a writable directory, or to an empty value to silence this.",
            CacheWarning,
            stacklevel=3,
        )


def clear_memory() -> None:
    _memory.clear()


def cache_info() -> dict:
    """Where the disk cache is, how many entries it holds and their total size in bytes."""
    d = cache_dir()
    entries = []
    if d and os.path.isdir(d):
        entries = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".py") and not f.startswith(".tmp-")]
    return {
        "directory": d,
        "entries": len(entries),
        "bytes": sum(os.path.getsize(p) for p in entries if os.path.exists(p)),
        "in_memory": len(_memory),
    }


def cache_clear() -> int:
    """Delete every disk entry and forget the in-memory ones; return how many files were removed."""
    removed = 0
    d = cache_dir()
    if d and os.path.isdir(d):
        for f in os.listdir(d):
            if f.endswith(".py"):
                try:
                    os.unlink(os.path.join(d, f))
                    removed += 1
                except OSError:
                    pass
    clear_memory()
    return removed
