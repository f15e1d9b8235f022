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
  used entries (a disk hit refreshes them) are removed, with numba's cache files for them, until the
  total fits. Clear and eviction delete only files the cache can prove it wrote (see ``_scan``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import threading
import time
import types
import warnings
import weakref

from .errors import CacheWarning, SymdiffError

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
#
# SYMDIFF_CACHE_DIR may point at a directory that also holds the user's own files, so clear and
# eviction delete only files the cache can prove it wrote (regular files, never symlinks; ``index`` and
# ``__pycache__`` are entered only when they are real directories):
#
# * entries: ``<32 lowercase hex>.py`` whose first line is a symdiff header naming that same key (any
#   format version: after an upgrade, old entries are never read again and must still be removable).
#   The header, not the SHA-256, is the proof of authorship. The hash exists to stop corrupt files
#   from running; a torn or truncated entry is still ours, and exactly what clear must remove. And the
#   header is one short line, so a scan need not read whole files. No file gets a header naming its
#   own file name by accident.
# * numba's cache of an entry's loops: ``__pycache__/<key>.*.nbi`` and ``.nbc`` (numba names them
#   ``<key>.<function>-<line>.py3XX.nbi`` / ``.py3XX.<n>.nbc`` after the module file ``<key>.py``);
#   they are counted and removed with their entry, and removed alone when the entry is gone.
# * index files: ``index/<lowercase hex>`` holding a 32-hex key.
# * temporaries: ``.tmp-*`` (``mkstemp`` names) in the directory and ``index/``, removed only once the
#   writer has been gone for an hour, since a live writer renames its temporary into place.

_NUMBA_SUFFIXES = (".nbi", ".nbc")
_HEADER = re.compile(rb"# symdiff-cache-[0-9]+ sha256=[0-9a-f]{64} ([0-9a-f]{32})")


class _Group:
    """An entry and numba's cache files for it: counted, aged and removed together."""

    __slots__ = ("entry", "entry_size", "key", "last_use", "numba", "numba_size")

    def __init__(self, key: str):
        self.key, self.entry, self.entry_size = key, None, 0
        self.numba: list[tuple[str, int]] = []
        self.numba_size, self.last_use = 0, 0.0

    @property
    def size(self) -> int:
        return self.entry_size + self.numba_size

    def touch(self, st: os.stat_result) -> None:
        self.last_use = max(self.last_use, st.st_atime, st.st_mtime)


def _is_key(text: str) -> bool:
    return len(text) == 32 and _is_hex(text)


def _regular(path: str) -> os.stat_result | None:
    """``lstat`` of ``path`` if it is a regular file (a symlink is not, whatever it points to)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _head(path: str, st: os.stat_result, size: int) -> bytes | None:
    """The first ``size`` bytes of ``path`` if it is still the regular file ``st`` (no symlink, no FIFO).

    The access time is left as it was: it is the entry's last use for LRU eviction, and a scan is not a use.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        try:
            fd = os.open(path, flags | getattr(os, "O_NOATIME", 0))
        except PermissionError:  # O_NOATIME is refused on files of other users
            fd = os.open(path, flags)
    except OSError:
        return None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or (before.st_ino, before.st_dev) != (st.st_ino, st.st_dev):
            return None
        data = os.read(fd, size)
        after = os.fstat(fd)
        if after.st_atime_ns != before.st_atime_ns:  # no O_NOATIME here: put the access time back
            try:
                os.utime(fd if os.utime in os.supports_fd else path, ns=(before.st_atime_ns, after.st_mtime_ns))
            except OSError:
                pass
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


def _owned_entry(name: str, path: str) -> os.stat_result | None:
    """``lstat`` of ``path`` if it is an entry symdiff wrote (see above), else None."""
    key = name[:-3]
    if not name.endswith(".py") or not _is_key(key):
        return None
    st = _regular(path)
    head = _head(path, st, 200) if st else None
    match = _HEADER.fullmatch(head.split(b"\n", 1)[0]) if head else None
    return st if match and match.group(1).decode() == key else None


def _owned_index(name: str, path: str) -> str | None:
    """The key an index file symdiff wrote points at, or None if ``path`` is not one."""
    st = _regular(path) if _is_hex(name) else None
    if st is None or st.st_size > 64:
        return None
    try:
        key = (_head(path, st, 64) or b"").decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return key if _is_key(key) else None


def _numba_key(name: str) -> str | None:
    """The entry key of a numba cache file name (``<key>.<...>.nbi``/``.nbc``), else None."""
    key = name[:32]
    return key if name[32:33] == "." and _is_key(key) and name.endswith(_NUMBA_SUFFIXES) else None


def _scan(d: str, sweep: bool = False) -> list[_Group]:
    """Every entry of ``d`` with its numba files (and numba files whose entry is gone); ``sweep``
    removes temporary files of writers that died."""
    groups: dict[str, _Group] = {}
    stale = time.time() - _STALE_TMP_SECONDS
    for sub in (None, "index"):
        for name, path in _files(d, sub):
            if name.startswith(_TMP_PREFIX):
                st = _regular(path)
                if sweep and st and st.st_mtime < stale:
                    _unlink(path)
            elif sub is None:
                st = _owned_entry(name, path)
                if st:
                    group = groups.setdefault(name[:-3], _Group(name[:-3]))
                    group.entry, group.entry_size = path, st.st_size
                    group.touch(st)
    for name, path in _files(d, "__pycache__"):
        key = _numba_key(name)
        st = _regular(path) if key else None
        if st:
            group = groups.setdefault(key, _Group(key))
            group.numba.append((path, st.st_size))
            group.numba_size += st.st_size
            group.touch(st)
    return list(groups.values())


def _files(d: str, sub: str | None = None) -> list[tuple[str, str]]:
    """(name, path) of everything in ``d`` or in its subfolder ``sub``; empty if it cannot be listed, or
    if ``sub`` is a symlink (``d`` itself the user named; links inside it could lead anywhere)."""
    folder = os.path.join(d, sub) if sub else d
    try:
        if sub and not stat.S_ISDIR(os.lstat(folder).st_mode):
            return []
        return [(name, os.path.join(folder, name)) for name in os.listdir(folder)]
    except OSError:
        return []


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def _remove(group: _Group) -> tuple[bool, int]:
    """Delete a group's files, entry first; (whether the entry was deleted, bytes freed)."""
    removed = bool(group.entry) and _unlink(group.entry)
    freed = group.entry_size if removed else 0
    for path, size in group.numba:
        if _unlink(path):
            freed += size
    return removed, freed


def _evict(d: str, keep: str | None = None) -> int:
    """Remove least recently used entries (with their numba files) until the total fits
    ``max_bytes()``; return how many entries went."""
    groups = _scan(d, sweep=True)
    total, bound = sum(g.size for g in groups), max_bytes()
    removed = 0
    for group in sorted(groups, key=lambda g: g.last_use):
        if total <= bound:
            break
        if keep is not None and group.entry == keep:
            continue
        gone, freed = _remove(group)
        total -= freed
        removed += gone
    if removed:
        _prune_index(d)
    return removed


def _prune_index(d: str) -> None:
    """Remove index files whose entry is gone (index files are tiny; their entries are not)."""
    for name, path in _files(d, "index"):
        key = _owned_index(name, path)
        if key and not os.path.lexists(os.path.join(d, f"{key}.py")):
            _unlink(path)


# -- maintenance -------------------------------------------------------------------------------


def clear_memory() -> None:
    """Forget the in-memory entries and what this process concluded about cache directories."""
    with _lock:
        _memory.clear()
        runners.clear()
        _dir_problem.clear()
        _warned_max.clear()


def _trust(d: str) -> tuple[bool | None, str | None]:
    """(trusted, why not) for directory ``d``; (None, None) if it does not exist yet."""
    try:
        st = os.stat(d)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as e:
        return None, f"cannot use it ({e})"
    if not stat.S_ISDIR(st.st_mode):
        return False, "it is not a directory"
    problem = _untrusted(st, "the directory")
    return problem is None, problem


def cache_info() -> dict:
    """The disk cache: directory, entries, bytes, in_memory, max_bytes, numba_files, numba_bytes,
    trusted and problem.

    ``bytes`` is what the size bound counts: entries plus numba's cache files for them (``numba_*``).
    ``trusted`` is whether the directory passes the ownership/mode check (None if it does not exist
    or the disk cache is off); ``problem`` is why this process does not (or would not) use it, or None.
    """
    d = cache_dir()
    groups = _scan(d) if d and os.path.isdir(d) else []
    problem = _dir_problem.get(d) if d in _dir_problem else (_check_dir(d, create=False) if d else None)
    trusted, why = _trust(d) if d else (None, None)
    if trusted is False:
        problem = problem or why  # an earlier verdict of this process may predate a chmod
    return {
        "directory": d,
        "entries": sum(g.entry is not None for g in groups),
        "bytes": sum(g.size for g in groups),
        "in_memory": len(_memory),
        "max_bytes": max_bytes(),
        "numba_files": sum(len(g.numba) for g in groups),
        "numba_bytes": sum(g.numba_size for g in groups),
        "trusted": trusted,
        "problem": problem,
    }


def cache_clear() -> int:
    """Delete the disk entries, their numba files and the index files, forget the in-memory entries;
    return how many entries were removed. Files symdiff did not write are left alone.

    Raises SymdiffError, deleting nothing, for a directory symdiff would not use (not a directory,
    owned by another user, writable by group or others): what is in there is not known to be ours.
    """
    removed = 0
    d = cache_dir()
    if d:
        _, why = _trust(d)
        if why:
            raise SymdiffError(
                f"not clearing the cache directory {d}: {why}, so symdiff does not use it and cannot tell "
                "its files from someone else's. Point SYMDIFF_CACHE_DIR at your own private cache directory, "
                "or make this one yours and private (chmod 700) if it is"
            )
        if os.path.isdir(d):
            for group in _scan(d, sweep=True):
                removed += _remove(group)[0]
            for name, path in _files(d, "index"):
                if _owned_index(name, path):
                    _unlink(path)
    clear_memory()
    return removed
