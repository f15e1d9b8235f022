"""The on-disk cache under faults: concurrent writers, corrupt files, no write access, a size bound
with LRU eviction, and untrusted directories or entries (which must never be imported).

Every test gets its own empty ``SYMDIFF_CACHE_DIR``. "A new process" is simulated in-process by
``load.clear_memory()`` plus a new transform object; concurrency uses real processes.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import symdiff
from symdiff import cache_evict, load
from symdiff.errors import CacheWarning

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
POSIX = hasattr(os, "geteuid")
X = np.linspace(-1.0, 1.0, 5)
WEIGHTS = np.array([0.5, -1.0, 2.0, 0.25, 3.0])


def f_plain(x):  # no closed-over constants: reached through index/<alias> in a new process
    return np.sum(np.sin(x) ** 3)


def f_plain_grad(x):
    return 3 * np.sin(x) ** 2 * np.cos(x)


def f_const(x):  # a closed-over array: reached through lookup(key) after tracing
    return np.sum(WEIGHTS * np.exp(x))


def f_const_grad(x):
    return WEIGHTS * np.exp(x)


FUNCTIONS = {"plain": (f_plain, f_plain_grad), "constants": (f_const, f_const_grad)}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty cache directory for this test (created by symdiff on first use)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(d))
    monkeypatch.delenv("SYMDIFF_CACHE_MAX_MB", raising=False)
    load.clear_memory()
    yield d
    load.clear_memory()


def new_process():
    """Forget everything in memory, as a new Python process would."""
    load.clear_memory()


def cache_warnings(fn, *args):
    """(result, [CacheWarning, ...]) of ``fn(*args)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [w for w in caught if issubclass(w.category, CacheWarning)]


def grad_of(fun):
    return cache_warnings(lambda: symdiff.grad(fun)(X))


def entries(d) -> list[Path]:
    return sorted(Path(d).glob("*.py"))


def assert_valid_entry(path: Path):
    key = path.name[:-3]
    source, meta = load._parse(key, path.read_text(encoding="utf-8"))
    compile(source, str(path), "exec")
    if POSIX:
        st = path.stat()
        assert st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o600
    return source, meta


def only_entry(d) -> Path:
    found = entries(d)
    assert len(found) == 1, found
    return found[0]


def plant(path: Path, marker: Path, fix_hash=True, version=load.FORMAT):
    """Rewrite entry ``path`` so that importing it creates directory ``marker``."""
    key = path.name[:-3]
    source, meta = load._parse(key, path.read_text(encoding="utf-8"))
    evil = f"import os as _os; _os.makedirs({str(marker)!r}, exist_ok=True)\n" + source
    if fix_hash:
        text = load._format(key, evil, meta)
    else:
        text = path.read_text(encoding="utf-8").replace(source, evil)
    path.write_text(text.replace(load.FORMAT, version, 1), encoding="utf-8")
    path.chmod(0o600)


# ---------------------------------------------------------------------------------------------
# concurrent writers
# ---------------------------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, os, sys, time, warnings
    import numpy as np
    import symdiff
    from symdiff.errors import CacheWarning

    n, reps, me, barrier = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

    def wait(rep):  # a file barrier: every process starts repetition `rep` at the same moment
        open(os.path.join(barrier, f"{rep}-{me}"), "w").close()
        deadline = time.time() + 120
        while sum(name.startswith(f"{rep}-") for name in os.listdir(barrier)) < n:
            if time.time() > deadline:
                raise SystemExit("barrier timeout")
            time.sleep(0.001)

    x = np.linspace(-1.0, 1.0, 5)
    out = []
    for rep in range(reps):
        p = rep + 2
        ns = {"np": np}
        exec(f"def f(x):\\n    return np.sum(np.sin(x) ** {p}) + np.sum(x * x)\\n", ns)
        wait(rep)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            g = symdiff.grad(ns["f"])(x)
            h = symdiff.hessian(ns["f"])(x)
        s, c = np.sin(x), np.cos(x)
        ok_g = np.allclose(g, p * s ** (p - 1) * c + 2 * x)
        ok_h = np.allclose(h, np.diag(p * (p - 1) * s ** (p - 2) * c ** 2 - p * s ** p + 2))
        warned = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
        out.append({"rep": rep, "ok": bool(ok_g and ok_h), "warnings": warned})
    print(json.dumps(out))
    """
)


def test_concurrent_writers_real_processes(tmp_path):
    """8 processes compile the same functions at the same moment, 4 times over: every result is right,
    no process fails or warns, and the cache ends with exactly one valid entry per compiled module."""
    procs, reps = 8, 4
    d, barrier = tmp_path / "cache", tmp_path / "barrier"
    barrier.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(d), "PYTHONPATH": str(REPO)}
    env.pop("SYMDIFF_CACHE_MAX_MB", None)
    started = time.time()
    running = [
        subprocess.Popen(
            [sys.executable, str(script), str(procs), str(reps), str(i), str(barrier)],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(procs)
    ]
    failures, reports = [], []
    for p in running:
        out, err = p.communicate(timeout=300)
        if p.returncode != 0:
            failures.append(f"exit {p.returncode}: {err[-2000:]}")
        else:
            reports.extend(json.loads(out.splitlines()[-1]))
    wrong = [r for r in reports if not r["ok"] or r["warnings"]]
    print(f"concurrency: {procs} processes x {reps} repetitions in {time.time() - started:.1f}s: "
          f"{len(reports)} runs, {len(failures)} crashed, {len(wrong)} wrong or warned")
    assert not failures, failures
    assert len(reports) == procs * reps and not wrong, wrong
    # one entry per (repetition, transform), each complete and hash-valid; no temporary files left
    found = entries(d)
    assert len(found) == 2 * reps, found
    for path in found:
        assert_valid_entry(path)
    leftovers = [p.name for p in [*d.iterdir(), *(d / "index").iterdir()] if p.name.startswith(".tmp-")]
    assert leftovers == []
    index = list((d / "index").iterdir())
    assert index and all(len(p.read_text()) == 32 and (d / f"{p.read_text()}.py").exists() for p in index)


READER_WRITER = textwrap.dedent(
    """
    import sys
    from symdiff import load
    key, source = sys.argv[1], open(sys.argv[2]).read()
    for i in range(int(sys.argv[3])):
        load._write_disk(key, source + f"# {i}\\n", {"name": "f"})
    """
)


def test_readers_never_see_partial_files(cache, tmp_path):
    """A process rewrites one large entry 150 times while this one keeps reading it: every read is a
    complete, hash-valid file (a non-atomic write would be caught half-written)."""
    key = "ab" * 16
    source = tmp_path / "source.py"
    source.write_text("def f(x):\n    return x\n" + "# padding padding padding padding\n" * 20000)  # ~700 kB
    script = tmp_path / "writer.py"
    script.write_text(READER_WRITER)
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    load._write_disk(key, source.read_text(), {"name": "f"})
    writer = subprocess.Popen([sys.executable, str(script), key, str(source), "150"], env=env)
    reads, bad = 0, []
    try:
        while writer.poll() is None:
            text, _ = load._read_trusted(str(cache / f"{key}.py"), "entry")
            try:
                load._parse(key, text)
            except ValueError as e:
                bad.append(str(e))
            reads += 1
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert reads > 0 and bad == [], (reads, bad[:3])
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp-")] == []


def test_threads_build_once():
    """8 threads asking for one missing key at once: ``build`` runs once and all get the same module."""
    calls = []

    def build():
        calls.append(1)
        time.sleep(0.2)
        return "def f(x):\n    return 2 * x\n", {"name": "f"}

    key = os.urandom(16).hex()
    results = [None] * 8
    barrier = threading.Barrier(8)

    def run(i):
        barrier.wait()
        results[i] = load.lookup(key, build)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(r is results[0] for r in results)
    assert results[0].function("f")(21) == 42


# ---------------------------------------------------------------------------------------------
# corruption
# ---------------------------------------------------------------------------------------------


def corrupt(kind: str, path: Path, marker: Path):
    text = path.read_text(encoding="utf-8")
    if kind == "truncated":
        path.write_text(text[: len(text) // 2], encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "wrong-version":  # a complete, hash-valid file in another format: not imported
        plant(path, marker, version="symdiff-cache-0")
    elif kind == "hash-mismatch":  # code added after the hash was taken: not imported
        plant(path, marker, fix_hash=False)
    elif kind == "other-key":  # a valid entry for another key under this name
        other = "0" * 32
        source, meta = load._parse(path.name[:-3], text)
        path.write_text(load._format(other, source, meta), encoding="utf-8")
    elif kind == "bad-python":  # hash-valid but not Python (a buggy writer): compile() fails, no crash
        source, meta = load._parse(path.name[:-3], text)
        path.write_text(load._format(path.name[:-3], source + "\ndef (:\n", meta), encoding="utf-8")
    elif kind == "bad-meta":
        body = "# meta: {not json\n" + text.split("\n", 2)[2]  # hash-valid, metadata unreadable
        path.write_text(f"# {load.FORMAT} sha256={load._digest(body)} {path.name[:-3]}\n{body}", encoding="utf-8")
    else:
        raise AssertionError(kind)


CORRUPTIONS = ["truncated", "empty", "garbage", "wrong-version", "hash-mismatch", "other-key", "bad-python", "bad-meta"]


@pytest.mark.parametrize("which", sorted(FUNCTIONS))
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_entry_is_discarded_with_one_warning_and_recompiled(cache, tmp_path, kind, which):
    fun, expected = FUNCTIONS[which]
    first, warned = grad_of(fun)
    assert warned == [] and np.allclose(first, expected(X))
    path = only_entry(cache)
    marker = tmp_path / "imported"
    corrupt(kind, path, marker)

    new_process()
    again, warned = grad_of(fun)
    assert np.allclose(again, expected(X))
    assert len(warned) == 1, [str(w.message) for w in warned]
    assert str(path) in str(warned[0].message) and "recompiling" in str(warned[0].message)
    assert warned[0].filename == __file__  # attributed to the user's call, not to symdiff
    assert not marker.exists(), "a rejected cache file was executed"
    assert_valid_entry(only_entry(cache))  # recompiled and rewritten

    new_process()  # and the rewritten entry is used silently
    third, warned = grad_of(fun)
    assert warned == [] and np.allclose(third, expected(X))


def test_index_pointing_at_missing_entry_is_silent(cache):
    grad_of(f_plain)
    only_entry(cache).unlink()  # e.g. evicted by another process
    new_process()
    result, warned = grad_of(f_plain)
    assert warned == [] and np.allclose(result, f_plain_grad(X))
    assert_valid_entry(only_entry(cache))


@pytest.mark.parametrize("content", ["", "zzz", "../../etc/passwd", "0" * 31, "\xff\xfe"])
def test_garbage_index_file_is_discarded_with_one_warning(cache, content):
    grad_of(f_plain)
    (index,) = (cache / "index").iterdir()
    key = only_entry(cache).name[:-3]
    index.write_text(content, encoding="latin-1")
    new_process()
    result, warned = grad_of(f_plain)
    assert np.allclose(result, f_plain_grad(X))
    assert len(warned) == 1 and "index" in str(warned[0].message)
    assert index.read_text() == key  # rewritten


# ---------------------------------------------------------------------------------------------
# no write access
# ---------------------------------------------------------------------------------------------


def calls_on_three_functions():
    """Several compiles (misses) and hits: the fallback must warn once for all of them."""
    out = []
    for fun, expected in [(f_plain, f_plain_grad), (f_const, f_const_grad), (f_plain, f_plain_grad)]:
        out.append(np.allclose(symdiff.grad(fun)(X), expected(X)))
    h = symdiff.hessian(f_plain)(X)
    out.append(np.allclose(np.diag(h), 6 * np.sin(X) * np.cos(X) ** 2 - 3 * np.sin(X) ** 3))
    return out


def test_uncreatable_dir_falls_back_to_memory_with_one_warning(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    d = blocker / "cache"
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(d))
    new_process()
    ok, warned = cache_warnings(calls_on_three_functions)
    assert all(ok)
    assert len(warned) == 1 and "cannot create" in str(warned[0].message) and str(d) in str(warned[0].message)
    assert blocker.read_text() == "not a directory"
    assert load.cache_info()["problem"] is not None and load.cache_info()["in_memory"] >= 2
    new_process()


@pytest.mark.skipif(IS_ROOT or not POSIX, reason="root ignores permission bits, so chmod cannot make a "
                    "directory read-only here; test_read_only_dir_simulated covers the same path")
def test_read_only_dir_real_permissions(cache):
    cache.mkdir(mode=0o700)
    cache.chmod(0o500)
    try:
        new_process()
        ok, warned = cache_warnings(calls_on_three_functions)
        assert all(ok) and len(warned) == 1 and "not writable" in str(warned[0].message)
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(0o700)


def test_read_only_dir_simulated(cache, monkeypatch):
    """os.access says the directory is not writable (what a read-only mount or chmod gives a non-root user)."""
    cache.mkdir(mode=0o700)
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if os.fspath(path) == str(cache) and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    new_process()
    ok, warned = cache_warnings(calls_on_three_functions)
    assert all(ok) and len(warned) == 1 and "not writable" in str(warned[0].message)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_failing_writes_fall_back_with_one_warning(cache, monkeypatch, code):
    """The directory looks fine but writes fail (read-only filesystem, disk full, permission denied)."""

    def mkstemp(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    new_process()
    ok, warned = cache_warnings(calls_on_three_functions)
    assert all(ok) and len(warned) == 1 and str(cache) in str(warned[0].message)
    assert entries(cache) == []


def test_empty_cache_dir_disables_disk_cache_silently(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    new_process()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert all(calls_on_three_functions())
    assert list(tmp_path.iterdir()) == []
    info = load.cache_info()
    assert info["directory"] is None and info["entries"] == 0 and info["in_memory"] >= 2
    new_process()


# ---------------------------------------------------------------------------------------------
# size bound and LRU eviction
# ---------------------------------------------------------------------------------------------


def power_function(k):
    def f(x):
        return np.sum(np.sin(x) ** k)

    return f


def test_lru_eviction_keeps_recently_used_entries(cache, monkeypatch):
    funs = [power_function(k) for k in (2, 3, 4, 5)]
    paths = []
    for f in funs:
        grad_of(f)
        (new,) = set(entries(cache)) - set(paths)
        paths.append(new)
    a, b, c, dd = paths
    sizes = {p: p.stat().st_size for p in paths}
    old = time.time() - 10_000
    for i, p in enumerate((a, b, c)):
        os.utime(p, (old + i, old + i))  # a oldest, then b, then c
    dd.unlink()

    new_process()
    grad_of(funs[0])  # a disk hit makes `a` the most recently used
    assert a.stat().st_atime > old + 100  # refreshed by access time (numba keys its cache on mtime)

    bound = sizes[a] + sizes[c] + sizes[dd]  # room for three of the four entries
    monkeypatch.setenv("SYMDIFF_CACHE_MAX_MB", repr((bound + 0.5) / 2**20))
    assert load.max_bytes() == bound
    new_process()
    result, warned = grad_of(funs[3])  # writes d: over the bound, so the least recently used (b) goes
    assert warned == [] and np.allclose(result, 5 * np.sin(X) ** 4 * np.cos(X))
    assert set(entries(cache)) == {a, c, dd}
    info = load.cache_info()
    assert info["bytes"] <= bound and info["max_bytes"] == bound and info["entries"] == 3


def test_eviction_keeps_the_new_entry_and_prunes_the_index(cache, monkeypatch):
    grad_of(f_plain)
    assert len(list((cache / "index").iterdir())) == 1
    monkeypatch.setenv("SYMDIFF_CACHE_MAX_MB", repr(1 / 2**20))  # 1 byte: smaller than any entry
    new_process()
    grad_of(power_function(7))
    (kept,) = entries(cache)
    assert_valid_entry(kept)
    assert "f_plain" not in kept.read_text()
    # f_plain's index file went with its entry; the only one left is the new function's
    assert [load.recall(p.name) for p in (cache / "index").iterdir()] == [kept.name[:-3]]


def test_stale_temporary_files_are_swept_and_never_counted(cache):
    grad_of(f_plain)
    stale, fresh = cache / ".tmp-dead-writer", cache / ".tmp-live-writer"
    stale.write_text("partial")
    fresh.write_text("partial")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    assert load.cache_info()["entries"] == 1
    new_process()
    grad_of(f_const)  # a write sweeps temporary files of writers that died long ago
    assert not stale.exists() and fresh.exists()


def test_bad_max_mb_warns_once_and_uses_default(cache, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_MAX_MB", "lots")
    new_process()
    sizes, warned = cache_warnings(lambda: [load.max_bytes() for _ in range(3)])
    assert sizes == [load.DEFAULT_MAX_MB * 2**20] * 3 and len(warned) == 1


def test_cache_info_and_clear(cache):
    grad_of(f_plain)
    grad_of(f_const)
    info = load.cache_info()
    assert info["directory"] == str(cache) and info["entries"] == 2
    assert info["bytes"] == sum(p.stat().st_size for p in entries(cache))
    assert info["trusted"] is True and info["problem"] is None and info["in_memory"] >= 2
    assert load.cache_clear() == 2
    assert entries(cache) == [] and list((cache / "index").iterdir()) == []
    assert load.cache_info()["in_memory"] == 0


# ---------------------------------------------------------------------------------------------
# trust
# ---------------------------------------------------------------------------------------------

posix_only = pytest.mark.skipif(not POSIX, reason="POSIX owners and mode bits")


@posix_only
def test_new_cache_dir_is_private_whatever_the_umask(tmp_path, monkeypatch):
    d = tmp_path / "deep" / "er" / "cache"
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(d))
    new_process()
    previous = os.umask(0)
    try:
        grad_of(f_plain)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "index").stat().st_mode) == 0o700
    for p in [*entries(d), *(d / "index").iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    new_process()


def planted_cache(tmp_path, cache, fun=f_plain):
    """A cache dir holding a complete, hash-valid entry (and index file) for ``fun`` that, if imported,
    creates the returned marker: what another user could leave in a directory they can write."""
    grad_of(fun)
    marker = tmp_path / "imported"
    plant(only_entry(cache), marker)
    return marker


@posix_only
def test_control_a_planted_entry_in_a_trusted_dir_does_run(cache, tmp_path):
    """The content hash is integrity, not authenticity: whoever can write the directory can run code.
    This is why the ownership and mode checks below exist, and it shows the planted payload is live."""
    marker = planted_cache(tmp_path, cache)
    new_process()
    grad_of(f_plain)
    assert marker.exists()


@posix_only
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_group_or_world_writable_dir_is_not_trusted(cache, tmp_path, mode):
    marker = planted_cache(tmp_path, cache)
    before = {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()}
    cache.chmod(mode)
    new_process()
    ok, warned = cache_warnings(calls_on_three_functions)
    assert all(ok) and not marker.exists()
    assert len(warned) == 1 and "writable by group or others" in str(warned[0].message)
    assert {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()} == before  # nothing read or written
    assert load.cache_info()["trusted"] is False


@posix_only
def test_dir_owned_by_another_user_is_not_trusted(cache, tmp_path, monkeypatch):
    marker = planted_cache(tmp_path, cache)
    if IS_ROOT:
        os.chown(cache, 65534, 65534)  # really another user ("nobody")
    else:
        uid = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: uid + 1)  # we cannot chown; pretend we are someone else
    new_process()
    ok, warned = cache_warnings(calls_on_three_functions)
    assert all(ok) and not marker.exists()
    assert len(warned) == 1 and "owned by uid" in str(warned[0].message)
    assert len(entries(cache)) == 1


@posix_only
@pytest.mark.parametrize("how", ["group-writable", "world-writable", "other-owner", "symlink"])
def test_untrusted_entry_is_discarded_and_recompiled(cache, tmp_path, how):
    marker = planted_cache(tmp_path, cache)
    path = only_entry(cache)
    if how == "group-writable":
        path.chmod(0o660)
    elif how == "world-writable":
        path.chmod(0o602)
    elif how == "other-owner":
        if not IS_ROOT:
            pytest.skip("only root can give a file to another user")
        os.chown(path, 65534, 65534)
    else:
        target = tmp_path / "elsewhere.py"
        path.rename(target)
        path.symlink_to(target)
    new_process()
    result, warned = grad_of(f_plain)
    assert np.allclose(result, f_plain_grad(X)) and not marker.exists()
    assert len(warned) == 1 and str(path) in str(warned[0].message)
    assert_valid_entry(only_entry(cache))  # replaced by our own, private file
    assert not only_entry(cache).is_symlink()


# ---------------------------------------------------------------------------------------------
# what clear and eviction may delete: only files the cache can prove it wrote
# ---------------------------------------------------------------------------------------------

USER_KEY = "0123456789abcdef" * 2  # looks like an entry name, but the user wrote it


def cli(*argv):
    """``python -m symdiff ARGV`` in a subprocess, with this test's environment."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "symdiff", *argv], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("symdiff: error:")
    for fragment in fragments:
        assert fragment in line, line


def user_files(cache, outside) -> dict[Path, bytes]:
    """Files a user (or another program) keeps in or links into the cache directory; none is symdiff's.
    Returns path -> content of everything that must survive, including the targets of the symlinks."""
    index = cache / "index"
    index.mkdir(parents=True, exist_ok=True)
    outside.mkdir(exist_ok=True)
    entry_text = load._format("ab" * 16, "def f(x):\n    return x\n", {"name": "f"})
    other_key_text = load._format("cd" * 16, "def f(x):\n    return x\n", {"name": "f"})
    files = {
        cache / "analysis.py": b"x = 1\n" * 2000,
        cache / f"{USER_KEY}.py": b"y = 2\n" * 2000,  # an entry's name, no symdiff header
        cache / f"{'ef' * 16}.py": other_key_text.encode(),  # a symdiff header of another key
        cache / f"{USER_KEY.upper()}.py": entry_text.encode(),  # upper-case hex: not an entry name
        cache / "notes.txt": b"notes\n",
        index / "notes": b"hello\n",  # not a hex name
        index / "cafe": b"not a key\n",  # a hex name, but no key inside
        index / "beef": b"ABCDEF0123456789" * 2,  # upper-case: not a key we write
        outside / "entry.py": entry_text.encode(),  # targets of the symlinks below
        outside / "index-file": ("ab" * 16).encode(),
    }
    for path, data in files.items():
        path.write_bytes(data)
        path.chmod(0o600)
    (cache / f"{'ab' * 16}.py").symlink_to(outside / "entry.py")  # a valid entry, but through a symlink
    (index / "abcd").symlink_to(outside / "index-file")
    files[cache / f"{'ab' * 16}.py"] = files[outside / "entry.py"]  # read through the link: both survive
    files[index / "abcd"] = files[outside / "index-file"]
    old = time.time() - 20_000  # older than every entry: least recently used, first in line for eviction
    for path in files:
        os.utime(path, (old, old), follow_symlinks=False)
    return files


def assert_survived(files: dict[Path, bytes]):
    lost = [str(p) for p, data in files.items() if not p.exists() or p.read_bytes() != data]
    assert lost == [], f"the cache deleted or changed files it did not write: {lost}"


def fill_then(how, cache, monkeypatch):
    """Run ``cache_clear()``, or evict everything but one new entry; return the new entry (or None)."""
    if how == "clear":
        assert load.cache_clear() == 2  # the two entries grad_of wrote, nothing else
        return None
    monkeypatch.setenv("SYMDIFF_CACHE_MAX_MB", repr(1 / 2**20))  # 1 byte: evict all but the new entry
    new_process()
    before = set(entries(cache))
    grad_of(power_function(11))
    (new,) = set(entries(cache)) - before
    return new


@posix_only
@pytest.mark.parametrize("how", ["clear", "evict"])
def test_clear_and_eviction_delete_only_files_the_cache_wrote(cache, tmp_path, monkeypatch, how):
    grad_of(f_plain)
    grad_of(f_const)
    ours = {*entries(cache), *(cache / "index").iterdir()}
    files = user_files(cache, tmp_path / "outside")
    assert load.cache_info()["entries"] == 2  # user files are not counted as entries
    kept = fill_then(how, cache, monkeypatch)
    assert_survived(files)
    assert not any(p.exists() for p in ours), "symdiff's own entries and index files must go"
    assert set(entries(cache)) == {p for p in files if p.parent == cache and p.suffix == ".py"} | (
        {kept} if kept else set()
    )


def test_reading_headers_does_not_make_entries_recently_used(cache):
    """Telling our entries from the user's files reads their first line; on a filesystem that records
    access times (relatime, the Linux default), that read must not refresh the time LRU eviction uses.
    (On a noatime filesystem reads never change it, and this test cannot fail.)"""
    grad_of(f_plain)
    grad_of(f_const)
    old = time.time() - 10_000
    for i, p in enumerate(entries(cache)):
        os.utime(p, (old + i, old + i))  # atime == mtime: relatime updates atime on the next read
    before = {p: p.stat().st_atime_ns for p in entries(cache)}
    load.cache_info()
    cache_evict.evict(str(cache))  # under the bound: scans, removes nothing
    assert {p: p.stat().st_atime_ns for p in entries(cache)} == before


@posix_only
@pytest.mark.parametrize("how", ["clear", "evict"])
def test_clear_and_eviction_never_enter_symlinked_folders(cache, tmp_path, monkeypatch, how):
    """``index`` and ``__pycache__`` that are symlinks to directories elsewhere are never listed, so
    nothing outside the cache directory is deleted, even files that look exactly like ours."""
    grad_of(f_plain)
    grad_of(f_const)
    outside = tmp_path / "outside"
    outside.mkdir()
    looks_ours = {
        outside / "index" / "abcdef": b"ab" * 16,  # an index file we could have written, whose entry is gone
        outside / "pycache" / f"{'ab' * 16}.f-1.py311.nbi": b"numba index",
        outside / "pycache" / f"{'ab' * 16}.f-1.py311.1.nbc": b"numba data",
    }
    for path, data in looks_ours.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    for p in (cache / "index").iterdir():
        p.unlink()
    (cache / "index").rmdir()
    (cache / "index").symlink_to(outside / "index")
    (cache / "__pycache__").symlink_to(outside / "pycache")
    fill_then(how, cache, monkeypatch)
    assert_survived(looks_ours)


# -- untrusted directories: clear refuses ------------------------------------------------------


def make_untrusted(how, cache, monkeypatch):
    if how == "not-a-directory":
        cache.write_text("x = 1\n")
        return "not a directory"
    cache.mkdir(mode=0o700, exist_ok=True)
    if how == "group-writable":
        cache.chmod(0o770)
    elif how == "world-writable":
        cache.chmod(0o707)
    else:  # other-owner
        if IS_ROOT:
            os.chown(cache, 65534, 65534)
        else:
            uid = os.geteuid()
            monkeypatch.setattr(os, "geteuid", lambda: uid + 1)
        return "owned by uid"
    return "writable by group or others"


@posix_only
@pytest.mark.parametrize("how", ["group-writable", "world-writable", "other-owner", "not-a-directory"])
def test_clear_refuses_an_untrusted_directory(cache, how, monkeypatch):
    if how != "not-a-directory":
        grad_of(f_plain)
    why = make_untrusted(how, cache, monkeypatch)
    before = {p: p.read_bytes() for p in [cache, *cache.rglob("*")] if p.is_file()}
    with pytest.raises(symdiff.SymdiffError) as raised:
        load.cache_clear()
    message = str(raised.value)
    assert str(cache) in message and why in message and "SYMDIFF_CACHE_DIR" in message
    assert {p: p.read_bytes() for p in [cache, *cache.rglob("*")] if p.is_file()} == before
    info = load.cache_info()
    assert info["trusted"] is False and why in info["problem"]


@posix_only
@pytest.mark.parametrize("how", ["world-writable", "not-a-directory"])
def test_cli_clear_of_an_untrusted_directory_is_one_line_and_exit_2(cache, how, monkeypatch):
    if how != "not-a-directory":
        grad_of(f_plain)
    why = make_untrusted(how, cache, monkeypatch)
    before = {p: p.read_bytes() for p in [cache, *cache.rglob("*")] if p.is_file()}
    assert_one_line_error(cli("cache", "clear"), str(cache), why)
    assert {p: p.read_bytes() for p in [cache, *cache.rglob("*")] if p.is_file()} == before


# -- numba's cache files -----------------------------------------------------------------------


def f_numba(x):
    return np.sin(x) * x


def numba_entry(cache):
    """Compile ``f_numba`` with the numba backend: (entry, [numba's files for it in __pycache__])."""
    pytest.importorskip("numba")
    result, warned = cache_warnings(lambda: symdiff.derivative(f_numba, backend="numba")(X))
    assert warned == [] and np.allclose(result, np.cos(X) * X + np.sin(X))
    entry = only_entry(cache)
    key = entry.name[:-3]
    numba_files = sorted((cache / "__pycache__").glob(f"{key}.*"))
    # what numba 0.6x writes: <module>.<function>-<line>.py3XX.nbi and .py3XX.<n>.nbc
    assert {p.suffix for p in numba_files} == {".nbi", ".nbc"}, numba_files
    return entry, numba_files


def foreign_pycache_files(cache, key) -> dict[Path, bytes]:
    """Files in ``__pycache__`` that are not numba's cache of one of our entries."""
    pycache = cache / "__pycache__"
    files = {
        pycache / "analysis.cpython-311.pyc": b"a user's bytecode",
        pycache / f"{key}.notes.txt": b"starts with our key, but is no numba file",
        pycache / "notakey.f-1.py311.nbi": b"numba index of someone else's module",
        pycache / f"{key.upper()}.f-1.py311.nbc": b"upper-case: not our key",
    }
    for path, data in files.items():
        path.write_bytes(data)
    return files


@posix_only
def test_numba_files_are_counted_and_evicted_with_their_entry(cache, monkeypatch):
    entry, numba_files = numba_entry(cache)
    foreign = foreign_pycache_files(cache, entry.name[:-3])
    numba_bytes = sum(p.stat().st_size for p in numba_files)
    info = load.cache_info()
    assert info["entries"] == 1 and info["bytes"] == entry.stat().st_size + numba_bytes
    assert info["numba_files"] == len(numba_files) and info["numba_bytes"] == numba_bytes
    old = time.time() - 10_000
    for p in [entry, *numba_files]:
        os.utime(p, (old, old))
    # room for this entry's module and a new one, but not for its numba files as well
    bound = entry.stat().st_size + 3000
    assert numba_bytes > 3000
    monkeypatch.setenv("SYMDIFF_CACHE_MAX_MB", repr((bound + 0.5) / 2**20))
    new_process()
    grad_of(f_plain)
    (kept,) = entries(cache)
    assert kept != entry and kept.stat().st_size < 3000
    assert not entry.exists() and [p for p in numba_files if p.exists()] == []
    assert_survived(foreign)
    info = load.cache_info()
    assert info["entries"] == 1 and info["numba_files"] == 0 and info["bytes"] == kept.stat().st_size


@posix_only
def test_clear_removes_numba_files_and_nothing_else_in_pycache(cache):
    entry, numba_files = numba_entry(cache)
    foreign = foreign_pycache_files(cache, entry.name[:-3])
    orphan = cache / "__pycache__" / f"{'9f' * 16}.g-3.py311.nbi"  # its entry was removed earlier
    orphan.write_bytes(b"numba index")
    assert load.cache_clear() == 1
    assert not entry.exists() and [p for p in [*numba_files, orphan] if p.exists()] == []
    assert_survived(foreign)


# -- cache info --------------------------------------------------------------------------------


@posix_only
def test_cli_cache_info_shows_limit_usage_and_trust(cache, monkeypatch):
    grad_of(f_plain)
    grad_of(f_const)
    size = sum(p.stat().st_size for p in entries(cache))
    monkeypatch.setenv("SYMDIFF_CACHE_MAX_MB", "2")
    result = cli("cache", "info")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"directory: {cache}", "entries:   2", f"bytes:     {size}"]
    assert f"limit:     {2 * 2**20} bytes (2 MB, SYMDIFF_CACHE_MAX_MB)" in lines
    assert f"used:      {100 * size / 2**21:.1f}% of the limit" in lines
    assert "trusted:   yes" in lines

    cache.chmod(0o777)
    result = cli("cache", "info")
    assert result.returncode == 0
    (trust,) = [line for line in result.stdout.splitlines() if line.startswith("trusted:")]
    assert trust.startswith("trusted:   no: ") and "writable by group or others" in trust
    cache.chmod(0o700)
