"""Issue 10 item 8: generated modules run on old numpy, not only on the numpy 2 symdiff runs on.

Slow (it makes a virtual environment and installs numpy 1.23.5, the oldest release with wheels for
Python 3.11; numpy 1.22 itself has none): ``python3 -m pytest -q -m slow tests/test_old_numpy.py``.
Set ``SYMDIFF_OLD_NUMPY_PYTHON`` to an interpreter that already has an old numpy to skip the install.
The fast, static half of the guarantee (no numpy-2-only names in generated code) is
``test_trust.py::test_generated_modules_need_only_numpy_1_22``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

import numpy as np
import pytest

import symdiff

OLD_NUMPY = "numpy==1.23.5"

RUN = r"""
import importlib, json, sys
import numpy as np
sys.path.insert(0, ".")
cases = json.load(open("cases.json"))
report = {"numpy": np.__version__}
for name, n_args in cases.items():
    module = importlib.import_module(name)
    fn = getattr(module, name)
    args = [np.load(f"{name}_arg{i}.npy") for i in range(n_args)]
    out = fn(*args)
    out = out if isinstance(out, tuple) else (out,)
    for k, value in enumerate(out):
        np.save(f"{name}_out{k}.npy", np.asarray(value))
    report[name] = len(out)
print(json.dumps(report))
"""


def _old_python(tmp_path):
    given = os.environ.get("SYMDIFF_OLD_NUMPY_PYTHON")
    if given:
        return given
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / ("Scripts" if os.name == "nt" else "bin") / "python")
    r = subprocess.run([python, "-m", "pip", "install", "-q", "--only-binary", ":all:", OLD_NUMPY],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"cannot install {OLD_NUMPY} here: {r.stderr.strip().splitlines()[-1:]}")
    return python


@pytest.mark.slow
def test_generated_modules_run_on_old_numpy(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 3, 4))
    W = rng.normal(size=(4, 3))
    cases = {
        "jac_stacked": (symdiff.jacobian(lambda a: np.swapaxes(a, -1, -2) @ a), (X,)),
        "hess_trig": (symdiff.hessian(lambda a: np.sum(np.arccos(np.tanh(a)) * np.arctan2(a, 2.0))),
                      (rng.normal(size=(2, 2)),)),
        "grad_einsum": (symdiff.grad(lambda a: np.sum(np.einsum("bij,bkj->bik", a, a) ** 2)), (X,)),
        "hess_batched": (symdiff.hessian(lambda p: np.sum(np.arcsinh(p) ** 2) + p[0] * p[1] ** 3,
                                         signature="(n)->()"), (rng.normal(size=(5, 3)),)),
        "vg_loss": (symdiff.value_and_grad(
            lambda w, b: np.mean(np.logaddexp(0, X[0] @ W @ w + b) - np.maximum(w[0], 0.1)), argnums=(0, 1)),
            (rng.normal(size=3), np.float64(0.3))),
        "deriv6": (symdiff.derivative(lambda x: np.sin(np.exp(x) * x) / (1 + x**2), 6), (np.linspace(0, 1, 7),)),
        "constants": (symdiff.grad(lambda a: np.sum(np.tanh(np.eye(3) @ a) * np.array([1.0, 2.0, 3.0]))),
                      (rng.normal(size=3),)),
    }
    expected = {}
    for name, (t, args) in cases.items():
        source = t.source(*args)
        # the public function (private helpers such as the scalar twin _scalar_<name> may follow it)
        generated = [d.split("(")[0] for d in source.split("\ndef ")[1:] if not d.startswith("_")][-1]
        (tmp_path / f"{name}.py").write_text(source + f"\n\n{name} = {generated}\n")
        for i, a in enumerate(args):
            np.save(tmp_path / f"{name}_arg{i}.npy", np.asarray(a))
        out = t(*args)
        flat = []
        for v in out if isinstance(out, tuple) else (out,):
            flat.extend(v if isinstance(v, tuple) else (v,))
        expected[name] = flat
    (tmp_path / "cases.json").write_text(json.dumps({n: len(a) for n, (_, a) in cases.items()}))
    python = _old_python(tmp_path)
    r = subprocess.run([python, "-I", "-c", RUN], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["numpy"].startswith("1."), report
    for name, flat in expected.items():
        assert report[name] == len(flat), name
        for k, want in enumerate(flat):
            got = np.load(tmp_path / f"{name}_out{k}.npy")
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
