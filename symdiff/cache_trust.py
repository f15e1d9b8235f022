"""Where the disk cache lives, how large it may grow, and whether this process may use it.

Modules are imported from the cache directory, so a directory owned by another user or writable by
group or others could make symdiff run someone else's code: such a directory (or one that cannot be
created or written) is not used for the rest of the process, with one ``CacheWarning``, and symdiff
keeps compiled code in memory only. ``SYMDIFF_CACHE_DIR=`` (empty) turns the disk cache off without
a warning. The verdicts are per process and per directory (``forget_verdicts`` drops them).
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import warnings

from .errors import CacheWarning

DEFAULT_MAX_MB = 256
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

_lock = threading.Lock()
_dir_problem: dict = {}  # cache directory -> None (usable) or why this process does not use it
_warned_max: set = set()


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
            warn(f"SYMDIFF_CACHE_MAX_MB={text!r} is not a positive number of megabytes; using {DEFAULT_MAX_MB}")
    return DEFAULT_MAX_MB * 1024 * 1024


def untrusted(st: os.stat_result, what: str) -> str | None:
    """Why a file or directory with this stat must not be trusted, or None."""
    if not hasattr(os, "geteuid"):  # Windows: no POSIX owners or mode bits to check
        return None
    if st.st_uid != os.geteuid():
        return f"{what} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _create(d: str) -> tuple[os.stat_result | None, str | None]:
    """(stat, None) of the new directory ``d`` (mode 0700), or (None, why it cannot be created)."""
    try:
        os.makedirs(d, mode=0o700)
        os.chmod(d, 0o700)  # makedirs applies the umask; the cache is private whatever it is
        return os.stat(d), None
    except FileExistsError:  # another process created it a moment ago
        try:
            return os.stat(d), None
        except OSError as e:
            return None, f"cannot create it ({e})"
    except OSError as e:
        return None, f"cannot create it ({e})"


def check_dir(d: str, create: bool) -> str | None:
    """Why directory ``d`` cannot hold the disk cache, or None if it can (creating it, mode 0700)."""
    try:
        st = os.stat(d)
    except (FileNotFoundError, NotADirectoryError):
        if not create:
            return None
        st, problem = _create(d)
        if problem:
            return problem
    except OSError as e:
        return f"cannot use it ({e})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    problem = untrusted(st, "the directory")
    if problem:
        return problem + "; importing modules from it could run someone else's code"
    if not os.access(d, os.W_OK | os.X_OK):
        return "it is not writable"
    return None


def usable_dir() -> str | None:
    """The disk cache directory if this process may use it; else None (one warning per directory)."""
    d = cache_dir()
    if d is None:
        return None
    if d not in _dir_problem:
        with _lock:
            if d not in _dir_problem:
                problem = check_dir(d, create=True)
                _dir_problem[d] = problem
                if problem:
                    _warn_unusable(d, problem)
    return None if _dir_problem[d] else d


def disable(d: str, problem: str) -> None:
    """Stop using ``d`` for the rest of this process, with one warning."""
    with _lock:
        if _dir_problem.get(d):
            return
        _dir_problem[d] = problem
    _warn_unusable(d, problem)


def verdict(d: str) -> str | None:
    """Why this process does not (or would not) use ``d``, or None: its own verdict where it has one."""
    return _dir_problem[d] if d in _dir_problem else check_dir(d, create=False)


def trust(d: str) -> tuple[bool | None, str | None]:
    """(trusted, why not) for directory ``d``; (None, None) if it does not exist yet."""
    try:
        st = os.stat(d)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as e:
        return None, f"cannot use it ({e})"
    if not stat.S_ISDIR(st.st_mode):
        return False, "it is not a directory"
    problem = untrusted(st, "the directory")
    return problem is None, problem


def forget_verdicts() -> None:
    """Forget what this process concluded about cache directories and size settings."""
    with _lock:
        _dir_problem.clear()
        _warned_max.clear()


def _warn_unusable(d: str, problem: str) -> None:
    warn(
        f"not using the disk cache in {d}: {problem}. Compiled code is cached in memory only. "
        "Set SYMDIFF_CACHE_DIR to a private writable directory, or to an empty value to turn the disk cache "
        "off without this warning."
    )


def warn(message: str) -> None:
    """A ``CacheWarning`` attributed to the innermost frame outside symdiff (the user's call)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn("symdiff: " + message, CacheWarning, stacklevel=level)
