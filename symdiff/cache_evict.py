"""Keeping the disk cache within its size bound, reporting on it and clearing it.

After a write, the least recently used entries (a disk hit refreshes them) are removed, with numba's
cache files for them, until the total fits ``SYMDIFF_CACHE_MAX_MB``. Only processes that write or
are asked for a report load this module.

``SYMDIFF_CACHE_DIR`` may point at a directory that also holds the user's own files, so clear and
eviction delete only files the cache can prove it wrote (regular files, never symlinks; ``index`` and
``__pycache__`` are entered only when they are real directories):

* entries: ``<32 lowercase hex>.py`` whose first line is a symdiff header naming that same key (any
  format version: after an upgrade, old entries are never read again and must still be removable).
  The header, not the SHA-256, is the proof of authorship. The hash exists to stop corrupt files
  from running; a torn or truncated entry is still ours, and exactly what clear must remove. And the
  header is one short line, so a scan need not read whole files. No file gets a header naming its
  own file name by accident.
* numba's cache of an entry's loops: ``__pycache__/<key>.*.nbi`` and ``.nbc`` (numba names them
  ``<key>.<function>-<line>.py3XX.nbi`` / ``.py3XX.<n>.nbc`` after the module file ``<key>.py``);
  they are counted and removed with their entry, and removed alone when the entry is gone.
* index files: ``index/<lowercase hex>`` holding a 32-hex key.
* temporaries: ``.tmp-*`` (``mkstemp`` names) in the directory and ``index/``, removed only once the
  writer has been gone for an hour, since a live writer renames its temporary into place.
"""

from __future__ import annotations

import os
import re
import stat
import time

from .cache_files import TMP_PREFIX, is_hex, is_key
from .cache_trust import cache_dir, max_bytes, trust, verdict
from .errors import SymdiffError

_STALE_TMP_SECONDS = 3600  # a temporary file this old belongs to a writer that died
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


# -- which files are ours ------------------------------------------------------------------------


def _regular(path: str) -> os.stat_result | None:
    """``lstat`` of ``path`` if it is a regular file (a symlink is not, whatever it points to)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _open_unread(path: str) -> int | None:
    """A descriptor of ``path`` that follows no symlink, blocks on no FIFO and, where the system allows,
    leaves the access time alone; None if it cannot be opened."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        try:
            return os.open(path, flags | getattr(os, "O_NOATIME", 0))
        except PermissionError:  # O_NOATIME is refused on files of other users
            return os.open(path, flags)
    except OSError:
        return None


def _head(path: str, st: os.stat_result, size: int) -> bytes | None:
    """The first ``size`` bytes of ``path`` if it is still the regular file ``st`` (no symlink, no FIFO).

    The access time is left as it was: it is the entry's last use for LRU eviction, and a scan is not a use.
    """
    fd = _open_unread(path)
    if fd is None:
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
    if not name.endswith(".py") or not is_key(key):
        return None
    st = _regular(path)
    head = _head(path, st, 200) if st else None
    match = _HEADER.fullmatch(head.split(b"\n", 1)[0]) if head else None
    return st if match and match.group(1).decode() == key else None


def _owned_index(name: str, path: str) -> str | None:
    """The key an index file symdiff wrote points at, or None if ``path`` is not one."""
    st = _regular(path) if is_hex(name) else None
    if st is None or st.st_size > 64:
        return None
    try:
        key = (_head(path, st, 64) or b"").decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return key if is_key(key) else None


def _numba_key(name: str) -> str | None:
    """The entry key of a numba cache file name (``<key>.<...>.nbi``/``.nbc``), else None."""
    key = name[:32]
    return key if name[32:33] == "." and is_key(key) and name.endswith(_NUMBA_SUFFIXES) else None


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


def scan(d: str, sweep: bool = False) -> list[_Group]:
    """Every entry of ``d`` with its numba files (and numba files whose entry is gone); ``sweep``
    removes temporary files of writers that died."""
    groups: dict[str, _Group] = {}
    stale = time.time() - _STALE_TMP_SECONDS
    for sub in (None, "index"):
        for name, path in _files(d, sub):
            if name.startswith(TMP_PREFIX):
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


# -- removing them -------------------------------------------------------------------------------


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


def evict(d: str, keep: str | None = None) -> int:
    """Remove least recently used entries (with their numba files) until the total fits
    ``max_bytes()``; return how many entries went."""
    groups = scan(d, sweep=True)
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


# -- reports and clearing ------------------------------------------------------------------------


def info(in_memory: int) -> dict:
    """The disk cache report of ``load.cache_info`` (``in_memory``: entries loaded in this process)."""
    d = cache_dir()
    groups = scan(d) if d and os.path.isdir(d) else []
    problem = verdict(d) if d else None
    trusted, why = trust(d) if d else (None, None)
    if trusted is False:
        problem = problem or why  # an earlier verdict of this process may predate a chmod
    return {
        "directory": d,
        "entries": sum(g.entry is not None for g in groups),
        "bytes": sum(g.size for g in groups),
        "in_memory": in_memory,
        "max_bytes": max_bytes(),
        "numba_files": sum(len(g.numba) for g in groups),
        "numba_bytes": sum(g.numba_size for g in groups),
        "trusted": trusted,
        "problem": problem,
    }


def clear_disk() -> int:
    """Delete the disk entries, their numba files and the index files; return how many entries went.

    Raises SymdiffError, deleting nothing, for a directory symdiff would not use (see ``load.cache_clear``).
    """
    d = cache_dir()
    if not d:
        return 0
    _, why = trust(d)
    if why:
        raise SymdiffError(
            f"not clearing the cache directory {d}: {why}, so symdiff does not use it and cannot tell "
            "its files from someone else's. Point SYMDIFF_CACHE_DIR at your own private cache directory, "
            "or make this one yours and private (chmod 700) if it is"
        )
    removed = 0
    if os.path.isdir(d):
        for group in scan(d, sweep=True):
            removed += _remove(group)[0]
        for name, path in _files(d, "index"):
            if _owned_index(name, path):
                _unlink(path)
    return removed
