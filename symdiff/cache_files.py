"""The files of the disk cache: entries and index files, read only when verified, written atomically.

An entry ``<key>.py`` is a generated module plus two header lines: ``# symdiff-cache-1
sha256=<digest> <key>`` (a SHA-256 of everything after that line) and ``# meta: {json}``. An
``index/<alias>`` file holds the key of the entry that a digest of a function and its argument types
compiled to, so a new process can skip tracing.

* Several processes compile the same function at once: each writes a private temporary file
  (``mkstemp``: unique name, mode 0600) and renames it over the target, so readers see the old file
  or the new one, never a partial one, and the last rename leaves one valid file.
* An entry is truncated, empty, garbage, of another format version or fails its hash, or a file is
  not a regular file of this user with a private mode: it is discarded with one ``CacheWarning``
  before anything in it runs, and the caller recompiles.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
import time

from .cache_trust import disable, untrusted, usable_dir, warn

FORMAT = "symdiff-cache-1"
TMP_PREFIX = ".tmp-"
_HEX = frozenset("0123456789abcdef")


def is_hex(text: str) -> bool:
    return bool(text) and set(text) <= _HEX


def is_key(text: str) -> bool:
    return len(text) == 32 and is_hex(text)


def digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


# -- entries -----------------------------------------------------------------------------------


def parse(key: str, text: str) -> tuple[str, dict]:
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
    if parts[2] != f"sha256={digest(body)}":
        raise ValueError("its content does not match its SHA-256 (truncated or modified)")
    meta_line, _, source = body.partition("\n")
    if not meta_line.startswith("# meta: "):
        raise ValueError("its metadata line is missing")
    meta = json.loads(meta_line[len("# meta: ") :])
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise ValueError("its metadata belongs to another key")
    return source, meta


def format_entry(key: str, source: str, meta: dict) -> str:
    """The text of the entry file for ``key`` (the inverse of ``parse``)."""
    body = "# meta: " + json.dumps({**meta, "key": key}, sort_keys=True) + "\n" + source
    return f"# {FORMAT} sha256={digest(body)} {key}\n{body}"


def read_trusted(path: str, what: str) -> tuple[str, os.stat_result]:
    """The text of ``path`` (no symlinks followed), or ValueError when its owner or mode is not ours."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"the {what} is not a regular file")
        problem = untrusted(st, f"the {what}")
        if problem:
            raise ValueError(problem)
        data = fh.read()
    return data.decode("utf-8"), st


def read_entry(key: str, load):
    """``load(source, meta, path)`` of the verified entry for ``key``, or None on a miss. An entry that
    fails verification, or that ``load`` rejects, is discarded."""
    d = usable_dir() if is_hex(key) else None
    if d is None:
        return None
    path, st = os.path.join(d, f"{key}.py"), None
    try:
        text, st = read_trusted(path, "entry")
        source, meta = parse(key, text)
        entry = load(source, meta, path)
    except FileNotFoundError:
        return None  # a miss (or evicted by another process a moment ago)
    except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, the user's program goes on
        discard(path, st, e)
        return None
    try:  # least-recently-used order: a hit makes the entry young again (access time only: the
        # modification time stays, as numba's cache of the module's loops is keyed on it)
        os.utime(path, (time.time(), os.stat(path).st_mtime))
    except OSError:
        pass
    return entry


def write_entry(key: str, source: str, meta: dict) -> str | None:
    """Write the entry and keep the cache within its size bound; return its path, or None when it
    lives in memory only."""
    d = usable_dir() if is_hex(key) else None
    if d is None:
        return None
    path, text = os.path.join(d, f"{key}.py"), format_entry(key, source, meta)
    for attempt in range(2):
        try:
            atomic_write(path, text)
            break
        except FileNotFoundError:  # the directory was removed under us (cache clear); recreate once
            if attempt:
                disable(d, "its files disappear while being written")
                return None
        except OSError as e:
            why = "it is full" if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else f"cannot write ({e})"
            disable(d, why)
            return None
    from .cache_evict import evict  # maintenance code is loaded only by processes that write

    evict(d, keep=path)
    return path


def discard(path: str, st: os.stat_result | None, reason) -> None:
    """Warn once about an unusable file and remove it, unless another process has replaced it since."""
    warn(f"discarding unusable cache file {path} ({reason}); recompiling")
    try:
        now = os.lstat(path)
        if st is None or (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
            os.unlink(path)
    except OSError:
        pass


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)  # O_EXCL, unique name, mode 0600
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


# -- the index: alias -> entry key -------------------------------------------------------------


def recall(alias: str) -> str | None:
    """The entry key recorded for ``alias`` (a digest of a function and its arguments), if any."""
    d = usable_dir() if is_hex(alias) else None
    if d is None:
        return None
    path = os.path.join(d, "index", alias)
    try:
        text, _ = read_trusted(path, "index file")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        discard(path, None, e)
        return None
    key = text.strip()
    if is_key(key):
        return key
    discard(path, None, "it does not hold an entry key")
    return None


def forget(alias: str, reason: str) -> None:
    """Remove the index file of ``alias`` (it points at an entry that does not fit), with one warning."""
    d = usable_dir() if is_hex(alias) else None
    if d is not None:
        discard(os.path.join(d, "index", alias), None, reason)


def remember(alias: str, key: str) -> None:
    """Record that ``alias`` compiles to entry ``key``, so a new process can skip tracing."""
    d = usable_dir() if is_hex(alias) and is_hex(key) else None
    if d is None:
        return
    try:
        atomic_write(os.path.join(d, "index", alias), key)
    except OSError:
        pass  # the index is only a shortcut; the entry itself is still cached
