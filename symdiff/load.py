"""Stage 5, load: turn generated source into callables, cached in memory and on disk.

A cache entry ``<key>.py`` is the generated module plus two header lines: ``# symdiff-cache-1
sha256=<digest> <key>`` (a SHA-256 of everything after that line) and ``# meta: {json}``.
``index/<alias>`` files map a digest of a function and its argument types to an entry key, so a new
process can skip tracing.

What can go wrong on disk, and what happens then (see docs/cache.md):

* Several processes compile the same function at once: each writes a private temporary file
  (``mkstemp``: unique name, mode 0600) and renames it over the entry, so readers see the old file or
  the new one, never a partial one, and the last rename leaves one valid entry.
* An entry is truncated, empty, garbage, of another format version or fails its hash: it is
  discarded with one ``CacheWarning`` before anything in it runs, and recompiled.
* The directory cannot be created or written, or is not trusted (owned by another user, or writable
  by group or others, so importing from it could run someone else's code): the disk cache is off for
  that directory in this process and symdiff uses memory only, with one ``CacheWarning``.
  ``SYMDIFF_CACHE_DIR=`` (empty) turns the disk cache off without a warning.
* The cache is bounded (``SYMDIFF_CACHE_MAX_MB``, default 256): after a write, the least recently
  used entries (oldest mtime; a disk hit refreshes it) are removed until the total fits.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
import tempfile
import threading
import time
import types
import warnings
import weakref

from .errors import CacheWarning

FORMAT = "symdiff-cache-1"
DEFAULT_MAX_MB = 256
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600  # a temporary file this old belongs to a writer that died
_HEX = frozenset("0123456789abcdef")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

_memory: dict = {}
# function -> {(transform chain, argument key): guarded runner}: what new transform objects of a
# function already compiled in this process find without tracing (cleared with the memory cache)
runners: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.RLock()
_dir_problem: dict = {}  # cache directory -> None (usable) or why this process does not use it
_warned_max: set = set()


# -- where, and may we use it ------------------------------------------------------------------


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


def max_bytes() -> int:
    """The size bound of the disk cache: ``$SYMDIFF_CACHE_MAX_MB`` megabytes (default 256)."""
    text = os.environ.get("SYMDIFF_CACHE_MAX_MB", "").strip()
    if text:
        try:
            mb = float(text)
            if mb > 0 and mb != float("inf"):
                return max(1, int(mb * 1024 * 1024))
        except ValueError:
            pass
        if text not in _warned_max:
            _warned_max.add(text)
            _warn(f"SYMDIFF_CACHE_MAX_MB={text!r} is not a positive number of megabytes; using {DEFAULT_MAX_MB}")
    return DEFAULT_MAX_MB * 1024 * 1024


def _untrusted(st: os.stat_result, what: str) -> str | None:
    """Why a file or directory with this stat must not be trusted, or None."""
    if not hasattr(os, "geteuid"):  # Windows: no POSIX owners or mode bits to check
        return None
    if st.st_uid != os.geteuid():
        return f"{what} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _check_dir(d: str, create: bool) -> str | None:
    """Why directory ``d`` cannot hold the disk cache, or None if it can (creating it, mode 0700)."""
    try:
        st = os.stat(d)
    except (FileNotFoundError, NotADirectoryError):
        if not create:
            return None
        try:
            os.makedirs(d, mode=0o700)
            os.chmod(d, 0o700)  # makedirs applies the umask; the cache is private whatever it is
            st = os.stat(d)
        except FileExistsError:
            try:
                st = os.stat(d)
            except OSError as e:
                return f"cannot create it ({e})"
        except OSError as e:
            return f"cannot create it ({e})"
    except OSError as e:
        return f"cannot use it ({e})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    problem = _untrusted(st, "the directory")
    if problem:
        return problem + "; importing modules from it could run someone else's code"
    if not os.access(d, os.W_OK | os.X_OK):
        return "it is not writable"
    return None


def _usable_dir() -> str | None:
    """The disk cache directory if this process may use it; else None (one warning per directory)."""
    d = cache_dir()
    if d is None:
        return None
    if d not in _dir_problem:
        with _lock:
            if d not in _dir_problem:
                problem = _check_dir(d, create=True)
                _dir_problem[d] = problem
                if problem:
                    _warn_unusable(d, problem)
    return None if _dir_problem[d] else d


def _disable(d: str, problem: str) -> None:
    """Stop using ``d`` for the rest of this process, with one warning."""
    with _lock:
        if _dir_problem.get(d):
            return
        _dir_problem[d] = problem
    _warn_unusable(d, problem)


def _warn_unusable(d: str, problem: str) -> None:
    _warn(
        f"not using the disk cache in {d}: {problem}. Compiled code is cached in memory only. "
        "Set SYMDIFF_CACHE_DIR to a private writable directory, or to an empty value to turn the disk cache "
        "off without this warning."
    )


def _warn(message: str) -> None:
    """A ``CacheWarning`` attributed to the innermost frame outside symdiff (the user's call)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn("symdiff: " + message, CacheWarning, stacklevel=level)


# -- loaded entries ----------------------------------------------------------------------------


class Compiled:
    """A loaded generated module: its source, metadata and namespace."""

    __slots__ = ("key", "source", "meta", "namespace")

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


def recall(alias: str) -> str | None:
    """The entry key recorded for ``alias`` (a digest of a function and its arguments), if any."""
    d = _usable_dir() if _is_hex(alias) else None
    if d is None:
        return None
    path = os.path.join(d, "index", alias)
    try:
        text, _ = _read_trusted(path, "index file")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        _discard(path, None, e)
        return None
    key = text.strip()
    if len(key) == 32 and _is_hex(key):
        return key
    _discard(path, None, "it does not hold an entry key")
    return None


def forget(alias: str, reason: str) -> None:
    """Remove the index file of ``alias`` (it points at an entry that does not fit), with one warning."""
    d = _usable_dir() if _is_hex(alias) else None
    if d is not None:
        _discard(os.path.join(d, "index", alias), None, reason)


def remember(alias: str, key: str) -> None:
    """Record that ``alias`` compiles to entry ``key``, so a new process can skip tracing."""
    d = _usable_dir() if _is_hex(alias) and _is_hex(key) else None
    if d is None:
        return
    try:
        _atomic_write(os.path.join(d, "index", alias), key)
    except OSError:
        pass  # the index is only a shortcut; the entry itself is still cached


# -- files -------------------------------------------------------------------------------------


def _is_hex(text: str) -> bool:
    return bool(text) and set(text) <= _HEX


def _path(key: str) -> str | None:
    d = _usable_dir() if _is_hex(key) else None
    return os.path.join(d, f"{key}.py") if d else None


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _read_trusted(path: str, what: str) -> tuple[str, os.stat_result]:
    """The text of ``path`` (no symlinks followed), or ValueError when its owner or mode is not ours."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"the {what} is not a regular file")
        problem = _untrusted(st, f"the {what}")
        if problem:
            raise ValueError(problem)
        data = fh.read()
    return data.decode("utf-8"), st


def _parse(key: str, text: str) -> tuple[str, dict]:
    """(source, meta) of an entry file, after checking its header, version and content hash."""
    if not text:
        raise ValueError("the file is empty")
    header, sep, body = text.partition("\n")
    parts = header.split(" ")
    if not sep or len(parts) != 4 or parts[0] != "#" or not parts[2].startswith("sha256="):
        raise ValueError("it has no valid symdiff cache header")
    if parts[1] != FORMAT:
        raise ValueError(f"it is in format {parts[1]!r}, this symdiff reads {FORMAT!r}")
    if parts[3] != key:
        raise ValueError("it belongs to another key")
    if parts[2] != f"sha256={_digest(body)}":
        raise ValueError("its content does not match its SHA-256 (truncated or modified)")
    meta_line, _, source = body.partition("\n")
    if not meta_line.startswith("# meta: "):
        raise ValueError("its metadata line is missing")
    meta = json.loads(meta_line[len("# meta: ") :])
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise ValueError("its metadata belongs to another key")
    return source, meta


def _format(key: str, source: str, meta: dict) -> str:
    """The text of the entry file for ``key`` (the inverse of ``_parse``)."""
    body = "# meta: " + json.dumps({**meta, "key": key}, sort_keys=True) + "\n" + source
    return f"# {FORMAT} sha256={_digest(body)} {key}\n{body}"


def _read_disk(key: str) -> Compiled | None:
    path = _path(key)
    if path is None:
        return None
    st = None
    try:
        text, st = _read_trusted(path, "entry")
        source, meta = _parse(key, text)
        entry = Compiled(key, source, meta, path)
    except FileNotFoundError:
        return None  # a miss (or evicted by another process a moment ago)
    except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, the user's program goes on
        _discard(path, st, e)
        return None
    try:  # least-recently-used order: a hit makes the entry young again (access time only: the
        # modification time stays, as numba's cache of the module's loops is keyed on it)
        os.utime(path, (time.time(), os.stat(path).st_mtime))
    except OSError:
        pass
    return entry


def _discard(path: str, st: os.stat_result | None, reason) -> None:
    """Warn once about an unusable file and remove it, unless another process has replaced it since."""
    _warn(f"discarding unusable cache file {path} ({reason}); recompiling")
    try:
        now = os.lstat(path)
        if st is None or (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
            os.unlink(path)
    except OSError:
        pass


def _atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX)  # O_EXCL, unique name, mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_disk(key: str, source: str, meta: dict) -> str | None:
    """Write the entry; return its path, or None when it lives in memory only."""
    d = _usable_dir() if _is_hex(key) else None
    if d is None:
        return None
    path, text = os.path.join(d, f"{key}.py"), _format(key, source, meta)
    for attempt in range(2):
        try:
            _atomic_write(path, text)
            break
        except FileNotFoundError:  # the directory was removed under us (cache clear); recreate once
            if attempt:
                _disable(d, "its files disappear while being written")
                return None
        except OSError as e:
            why = "it is full" if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else f"cannot write ({e})"
            _disable(d, why)
            return None
    _evict(d, keep=path)
    return path


# -- size bound --------------------------------------------------------------------------------


def _scan(d: str, sweep: bool = False) -> list[tuple[float, int, str]]:
    """(last use, size, path) of every entry in ``d``; ``sweep`` removes temporary files of dead writers."""
    found = []
    stale = time.time() - _STALE_TMP_SECONDS
    for folder in (d, os.path.join(d, "index")):
        for name, path in _files(folder):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if name.startswith(_TMP_PREFIX):
                if sweep and st.st_mtime < stale:
                    _unlink(path)
            elif folder == d and name.endswith(".py") and stat.S_ISREG(st.st_mode):
                found.append((max(st.st_atime, st.st_mtime), st.st_size, path))
    return found


def _files(folder: str) -> list[tuple[str, str]]:
    """(name, path) of everything in ``folder``; empty if it cannot be listed."""
    try:
        return [(name, os.path.join(folder, name)) for name in os.listdir(folder)]
    except OSError:
        return []


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def _evict(d: str, keep: str | None = None) -> int:
    """Remove least recently used entries until the total size fits ``max_bytes()``; return how many."""
    entries = _scan(d, sweep=True)
    total, bound = sum(size for _, size, _ in entries), max_bytes()
    removed = 0
    for _, size, path in sorted(entries):
        if total <= bound:
            break
        if path != keep and _unlink(path):
            total -= size
            removed += 1
    if removed:
        _prune_index(d)
    return removed


def _prune_index(d: str) -> None:
    """Remove index files whose entry is gone (index files are tiny; their entries are not)."""
    for name, path in _files(os.path.join(d, "index")):
        if name.startswith(_TMP_PREFIX):
            continue
        try:
            with open(path, encoding="ascii") as fh:
                key = fh.read(64).strip()
        except (OSError, UnicodeDecodeError):
            continue
        if not os.path.exists(os.path.join(d, f"{key}.py")):
            _unlink(path)


# -- maintenance -------------------------------------------------------------------------------


def clear_memory() -> None:
    """Forget the in-memory entries and what this process concluded about cache directories."""
    with _lock:
        _memory.clear()
        runners.clear()
        _dir_problem.clear()
        _warned_max.clear()


def cache_info() -> dict:
    """The disk cache: directory, entries, bytes, in_memory, plus max_bytes, trusted and problem.

    ``trusted`` is whether the directory passes the ownership/mode check (None if it does not exist
    or the disk cache is off); ``problem`` is why this process does not use it, or None.
    """
    d = cache_dir()
    entries = _scan(d) if d and os.path.isdir(d) else []
    problem = _dir_problem.get(d) if d in _dir_problem else (_check_dir(d, create=False) if d else None)
    trusted = None
    if d:
        try:
            trusted = _untrusted(os.stat(d), "the directory") is None
        except OSError:
            trusted = None
    return {
        "directory": d,
        "entries": len(entries),
        "bytes": sum(size for _, size, _ in entries),
        "in_memory": len(_memory),
        "max_bytes": max_bytes(),
        "trusted": trusted,
        "problem": problem,
    }


def cache_clear() -> int:
    """Delete every disk entry and index file, forget the in-memory ones; return how many entries were removed."""
    removed = 0
    d = cache_dir()
    if d and os.path.isdir(d):
        removed = sum(_unlink(path) for _, _, path in _scan(d))
        for name, path in _files(os.path.join(d, "index")):
            if not name.startswith(_TMP_PREFIX):
                _unlink(path)
    clear_memory()
    return removed
