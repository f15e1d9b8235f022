"""Stage 5, load: the memory cache, the disk cache and what happens when the disk misbehaves.

A second call hits memory; a new process with the same SYMDIFF_CACHE_DIR loads from disk without
differentiating; corrupted entries are detected, warned about and recompiled, never executed;
unusable directories fall back to memory with one warning; SYMDIFF_CACHE_DIR='' disables the disk
cache; functions with the same source but different closures or globals never share an entry; and
writes are atomic."""

import glob
import hashlib
import json
import os
import stat
import sys
import textwrap
import warnings

import numpy as np
import pytest

import symdiff
from symdiff import differentiate as D
from symdiff import emit, load
from symdiff.errors import CacheWarning

from .stage_helpers import REPO, run_python

X = np.linspace(0.1, 0.9, 20)


def f_main(x):
    return np.sum(np.sin(x) * np.exp(x))


def df_main(x):
    return np.exp(x) * (np.cos(x) + np.sin(x))


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A fresh, private disk cache directory and an empty memory cache."""
    d = tmp_path / "cache"
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(d))
    load.clear_memory()
    yield str(d)
    load.clear_memory()


def entries(d):
    return sorted(glob.glob(os.path.join(d, "*.py")))


def leftovers(d):
    return [p for p in glob.glob(os.path.join(d, "**", ".*"), recursive=True) if os.path.basename(p).startswith(".tmp-")]


@pytest.fixture
def no_compiling(monkeypatch):
    """After this fixture is requested, differentiating or emitting raises."""

    def forbid(*args, **kwargs):
        raise AssertionError("symdiff compiled although the entry was cached")

    def activate():
        monkeypatch.setattr(D, "vjp", forbid)
        monkeypatch.setattr(D, "jvp", forbid)
        monkeypatch.setattr(emit, "render", forbid)

    return activate


def cache_warnings(record):
    return [w for w in record if issubclass(w.category, CacheWarning)]


# ---------------------------------------------------------------------------------------------
# Hits
# ---------------------------------------------------------------------------------------------


def test_second_call_hits_the_memory_cache(cache, no_compiling):
    np.testing.assert_allclose(symdiff.grad(f_main)(X), df_main(X), rtol=1e-13)
    assert len(entries(cache)) == 1
    no_compiling()
    # a new Transform object: no per-object dispatch shortcut, so the lookup goes through load
    np.testing.assert_allclose(symdiff.grad(f_main)(X), df_main(X), rtol=1e-13)
    os.unlink(entries(cache)[0])  # not even the disk is needed
    np.testing.assert_allclose(symdiff.grad(f_main)(X), df_main(X), rtol=1e-13)


def test_disk_hit_after_the_memory_is_cleared(cache, no_compiling):
    symdiff.grad(f_main)(X)
    load.clear_memory()
    no_compiling()
    np.testing.assert_allclose(symdiff.grad(f_main)(X), df_main(X), rtol=1e-13)
    with pytest.raises(Exception, match="compiled although"):  # the patch does bite on a miss
        symdiff.grad(f_main)(X[:7])


CHILD = r"""
import json, os, sys
import numpy as np
import symdiff
from symdiff import differentiate, emit

def forbid(*args, **kwargs):
    raise RuntimeError("differentiated in the new process")

differentiate.vjp = differentiate.jvp = emit.render = forbid

def f_main(x):
    return np.sum(np.sin(x) * np.exp(x))

x = np.linspace(0.1, 0.9, 20)
out = {"grad": symdiff.grad(f_main)(x).tolist()}
try:
    symdiff.grad(f_main)(x[:7])  # not in the cache: must need the forbidden functions
except Exception as e:
    out["miss"] = str(e)
print(json.dumps(out))
"""


def test_a_new_process_loads_from_disk_without_differentiating(cache):
    symdiff.grad(f_main)(X)
    out = run_python(CHILD, cache, env={"SYMDIFF_CACHE_DIR": cache, "PYTHONPATH": REPO, "PYTHONHASHSEED": "7"})
    result = json.loads(out.stdout)
    np.testing.assert_allclose(result["grad"], df_main(X), rtol=1e-13)
    assert "differentiated in the new process" in result["miss"]
    assert "CacheWarning" not in out.stderr


def test_a_new_process_with_a_warm_cache_does_not_import_sympy(cache):
    symdiff.grad(f_main)(X)
    code = (
        "import sys, json\nsys.modules['sympy'] = None\nimport numpy as np, symdiff\n"
        + "def f_main(x):\n    return np.sum(np.sin(x) * np.exp(x))\n"
        + "print(json.dumps(symdiff.grad(f_main)(np.linspace(0.1, 0.9, 20)).tolist()))\n"
    )
    out = run_python(code, cache, env={"SYMDIFF_CACHE_DIR": cache, "PYTHONPATH": REPO})
    np.testing.assert_allclose(json.loads(out.stdout), df_main(X), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# Damaged entries
# ---------------------------------------------------------------------------------------------


def _rehash(text):
    """Recompute the header of an entry file after editing its body (a 'valid-looking' file)."""
    header, body = text.split("\n", 1)
    parts = header.split(" ")
    parts[2] = "sha256=" + hashlib.sha256(body.encode()).hexdigest()
    return " ".join(parts) + "\n" + body


def _other_key(text):
    """The same entry claiming to be another key's (as if copied or renamed): hash still valid."""
    header, body = text.split("\n", 1)
    parts = header.split(" ")
    parts[3] = "0" * len(parts[3])
    return " ".join(parts) + "\n" + body


def _inject(text, marker):
    header, body = text.split("\n", 1)
    meta, source = body.split("\n", 1)
    evil = f"open({marker!r}, 'w').write('ran')\n"
    return header + "\n" + meta + "\n" + evil + source


DAMAGE = {
    "empty": lambda text, marker: "",
    "truncated": lambda text, marker: text[: len(text) // 2],
    "truncated_header": lambda text, marker: text[:20],
    "garbage": lambda text, marker: None,  # random bytes, written below
    "flipped_character": lambda text, marker: text[:-40] + ("0" if text[-40] != "0" else "1") + text[-39:],
    "injected_code_stale_hash": _inject,
    "other_format_version": lambda text, marker: _rehash(text.replace("symdiff-cache-1", "symdiff-cache-0", 1)),
    "syntax_error_valid_hash": lambda text, marker: _rehash(text + "\ndef broken(:\n"),
    "other_key_valid_hash": lambda text, marker: _other_key(text),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_entry_is_detected_warned_about_and_recompiled(cache, tmp_path, damage):
    symdiff.grad(f_main)(X)
    (path,) = entries(cache)
    with open(path, encoding="utf-8") as fh:
        original = fh.read()
    marker = str(tmp_path / "executed")
    damaged = DAMAGE[damage](original, marker)
    if damaged is None:
        with open(path, "wb") as fh:
            fh.write(np.random.default_rng(0).bytes(len(original)))
    else:
        assert damaged != original
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(damaged)
    load.clear_memory()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = symdiff.grad(f_main)(X)
    np.testing.assert_allclose(got, df_main(X), rtol=1e-13)
    found = cache_warnings(record)
    assert len(found) == 1, [str(w.message) for w in record]
    assert os.path.basename(path) in str(found[0].message)
    assert not os.path.exists(marker), "a damaged entry was executed"
    (rewritten,) = entries(cache)
    with open(rewritten, encoding="utf-8") as fh:
        assert fh.read() == original  # recompiled and written again, whole
    load.clear_memory()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        np.testing.assert_allclose(symdiff.grad(f_main)(X), df_main(X), rtol=1e-13)


def test_damaged_index_file_is_discarded(cache):
    symdiff.grad(f_main)(X)
    index = [p for p in glob.glob(os.path.join(cache, "index", "*")) if not os.path.basename(p).startswith(".")]
    if not index:
        pytest.skip("this symdiff keeps no index of aliases")
    for p in index:
        with open(p, "w") as fh:
            fh.write("\x00garbage\x00")
    load.clear_memory()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        np.testing.assert_allclose(symdiff.grad(f_main)(X), df_main(X), rtol=1e-13)
    assert len(cache_warnings(record)) == 1


# ---------------------------------------------------------------------------------------------
# Directories that cannot or must not be used
# ---------------------------------------------------------------------------------------------


def _compile_three_functions():
    xs = np.linspace(0.2, 0.8, 20)
    results = [
        symdiff.grad(f_main)(xs),
        symdiff.grad(lambda x: np.sum(x**3))(xs),
        symdiff.hessian(lambda x: np.sum(np.cos(x)))(xs[:4]),
    ]
    np.testing.assert_allclose(results[0], df_main(xs), rtol=1e-13)
    np.testing.assert_allclose(results[1], 3 * xs**2, rtol=1e-13)
    np.testing.assert_allclose(results[2], np.diag(-np.cos(xs[:4])), rtol=1e-13, atol=1e-15)


def _expect_memory_only(cache_path):
    load.clear_memory()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _compile_three_functions()
        _compile_three_functions()  # memory hits
    found = cache_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    assert cache_path in str(found[0].message)


def test_uncreatable_directory_falls_back_to_memory_with_one_warning(monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    d = str(blocker / "cache")
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", d)
    _expect_memory_only(d)
    assert blocker.read_text() == "not a directory"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write to read-only directories")
def test_read_only_directory_falls_back_to_memory_with_one_warning(monkeypatch, tmp_path):
    d = tmp_path / "ro"
    d.mkdir(mode=0o700)
    d.chmod(0o500)
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(d))
    try:
        _expect_memory_only(str(d))
        assert not os.listdir(d)
    finally:
        d.chmod(0o700)


def test_failing_writes_fall_back_to_memory_with_one_warning(monkeypatch, cache):
    import tempfile as tempfile_module

    def no_space(*args, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(cache, ".tmp-simulated"))

    os.makedirs(cache, mode=0o700)
    monkeypatch.setattr(tempfile_module, "mkstemp", no_space)
    _expect_memory_only(cache)
    assert entries(cache) == [] and leftovers(cache) == []


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_directory_writable_by_others_is_not_trusted(monkeypatch, tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o777)
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(d))
    _expect_memory_only(str(d))
    assert not entries(str(d))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_directory_owned_by_another_user_is_not_trusted(monkeypatch, tmp_path):
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(d))
    _expect_memory_only(str(d))
    assert not entries(str(d))


def test_new_cache_directory_is_private(cache):
    symdiff.grad(f_main)(X)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    for path in entries(cache):
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0


def test_empty_cache_dir_variable_disables_the_disk_cache(monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", "")
    load.clear_memory()
    assert load.cache_dir() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        _compile_three_functions()
    assert list(home.rglob("*")) == []
    load.clear_memory()


# ---------------------------------------------------------------------------------------------
# Same source, different closures or globals: never one entry
# ---------------------------------------------------------------------------------------------


def _make_scaled(c):
    def scaled(x):
        return np.sum(x * c)

    return scaled


def test_same_source_different_closures_never_share_an_entry(cache):
    base = np.linspace(0, 1, 10_000)
    tweaked = base.copy()
    tweaked[5_000] += 1e-9  # invisible in repr, which elides the middle of large arrays
    for closures in [(2.0, 3.0), (0.1, np.nextafter(0.1, 1.0)), (np.float32(0.1), 0.1), (base, tweaked)]:
        grads = []
        for c in closures:
            load.clear_memory()
            grads.append(symdiff.grad(_make_scaled(c))(np.ones(base.shape if np.ndim(c) else 20)))
        for c, g in zip(closures, grads):
            np.testing.assert_array_equal(g, np.broadcast_to(np.asarray(c, dtype=np.float64), g.shape))
        assert not np.array_equal(grads[0], grads[1])


PROGRAM = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import symdiff
    import settings_module

    SCALE = float(os.environ["VARIANT"])          # a global of the script
    OFFSET = np.full(30, float(os.environ["VARIANT"]))  # a global array

    def make(c):
        def closed(x):
            return np.sum(x * c)
        return closed

    def uses_global(x):
        return np.sum(x * SCALE)

    def uses_global_array(x):
        return np.sum(x * OFFSET)

    def uses_module_attribute(x):
        return np.sum(x * settings_module.FACTOR)

    x = np.ones(30)
    out = {
        "closure": symdiff.grad(make(float(os.environ["VARIANT"])))(x).tolist(),
        "global": symdiff.grad(uses_global)(x).tolist(),
        "global_array": symdiff.grad(uses_global_array)(x).tolist(),
        "module_attribute": symdiff.grad(uses_module_attribute)(x).tolist(),
    }
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def variant_results(tmp_path_factory):
    """Two new processes, one after the other, sharing a disk cache: VARIANT=2, then VARIANT=3."""
    folder = tmp_path_factory.mktemp("variants")
    cache = str(folder / "cache")
    (folder / "settings_module.py").write_text("import os\nFACTOR = float(os.environ['VARIANT']) * 10\n")
    results = {}
    for v in ("2", "3"):
        env = {"SYMDIFF_CACHE_DIR": cache, "PYTHONPATH": os.pathsep.join([REPO, str(folder)]), "VARIANT": v}
        results[float(v)] = json.loads(run_python(PROGRAM, str(folder), env=env).stdout)
    return results


def test_new_processes_with_different_closures_and_globals_get_their_own_results(variant_results):
    for value, result in variant_results.items():
        for what in ("closure", "global", "global_array"):
            np.testing.assert_array_equal(result[what], np.full(30, value), err_msg=what)


def test_new_process_sees_a_changed_module_attribute(variant_results):
    for value, result in variant_results.items():
        np.testing.assert_array_equal(result["module_attribute"], np.full(30, 10 * value))


# ---------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------


def test_writes_leave_no_temporary_files(cache):
    _compile_three_functions()
    assert len(entries(cache)) == 3
    assert leftovers(cache) == []
    for path in entries(cache):
        with open(path, encoding="utf-8") as fh:
            header, body = fh.read().split("\n", 1)
        assert header.split(" ")[2] == "sha256=" + hashlib.sha256(body.encode()).hexdigest()


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_write_that_fails_midway_leaves_nothing_behind(monkeypatch, cache, failing):
    os.makedirs(cache, mode=0o700)

    def fail(*args, **kwargs):
        raise OSError(5, "Input/output error (simulated)")

    with monkeypatch.context() as patched, warnings.catch_warnings(record=True) as record:
        patched.setattr(os, failing, fail)
        warnings.simplefilter("always")
        np.testing.assert_allclose(symdiff.grad(f_main)(X), df_main(X), rtol=1e-13)
    assert len(cache_warnings(record)) == 1
    assert entries(cache) == [] and leftovers(cache) == []


CONCURRENT = r"""
import json, sys, time
import numpy as np
import symdiff
start = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
def f(x):
    return np.sum(np.tanh(x) ** 3 * np.log1p(x ** 2))
while time.time() < start:
    time.sleep(0.001)
print(json.dumps(symdiff.hessian(f)(np.linspace(0.1, 0.9, 12)).tolist()))
"""


@pytest.mark.slow
def test_eight_processes_compiling_at_once(cache):
    import subprocess
    import time

    os.makedirs(cache, mode=0o700)
    start = time.time() + 4.0
    env = {**os.environ, "SYMDIFF_CACHE_DIR": cache, "PYTHONPATH": REPO}
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(start)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    results = [np.array(json.loads(o)) for o, _ in outs]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert len(entries(cache)) == 1 and leftovers(cache) == []
    assert not any("CacheWarning" in e for _, e in outs)


def test_the_compiler_version_covers_every_module_but_the_front_ends():
    """A module added to the package (e.g. by splitting one) keys cache entries without being named."""
    from symdiff import pipeline

    package = os.path.dirname(os.path.abspath(symdiff.__file__))
    expected = sorted(
        os.path.relpath(p, package).replace(os.sep, "/")
        for p in glob.glob(os.path.join(package, "**", "*.py"), recursive=True)
        if not os.path.relpath(p, package).startswith(pipeline.FRONT_ENDS)
    )
    covered = sorted(rel for rel, _ in pipeline._package_sources(package, ""))
    assert covered == expected and "load.py" in covered and "dispatch.py" in covered
