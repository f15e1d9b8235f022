"""The ``symdiff`` command line: every command and error path runs the real command in a subprocess.

Subprocess start-up dominates (about a second each), so independent runs are started concurrently
and emitted modules are all executed by one isolated interpreter that can import numpy and nothing
else.
"""

import ast
import json
import os
import pty
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import sympy

import symdiff
from symdiff import cli
from symdiff.cli import check as cli_check

ROOT = Path(__file__).resolve().parent.parent
FUNCS = str(ROOT / "examples" / "cli_functions.py")
LOSS_SHAPES = ["--shape", "w=3", "--shape", "x=6,3", "--shape", "y=6"]


def run(*argv, cwd=None, env=None, stderr=subprocess.PIPE):
    """``python -m symdiff ARGV`` with plain-ASCII, narrow, non-terminal output by default."""
    full_env = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "100", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "symdiff", *argv],
        cwd=cwd or ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
        check=False,
    )


def run_all(commands, env=None):
    """Run several ``run`` argument lists at once; results in the same order."""
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 2) as pool:
        return list(pool.map(lambda argv: run(*argv, env=env), commands))


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("symdiff"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ---------------------------------------------------------------------------------------------
# emit: the generated modules run with numpy alone and compute the right values
# ---------------------------------------------------------------------------------------------

RUNNER = textwrap.dedent(
    """
    import importlib.util, json, sys
    try:
        import symdiff
    except ImportError:
        pass
    else:
        raise SystemExit("symdiff is importable; the isolation is broken")
    import numpy as np

    def load(path):
        spec = importlib.util.spec_from_file_location("m" + str(abs(hash(path))), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def listed(v):
        return [np.asarray(x).tolist() for x in v] if isinstance(v, tuple) else np.asarray(v).tolist()

    jobs = json.loads(sys.argv[1])
    out = {}
    for key, (path, function, args) in jobs.items():
        fn = getattr(load(path), function)
        out[key] = listed(fn(*[np.asarray(a, dtype=float) for a in args]))
    print(json.dumps(out))
    """
)


def run_isolated(tmp_path, jobs):
    """Run ``jobs`` (key -> (module path, function, args)) where only numpy can be imported."""
    isolated = tmp_path / "only-numpy"
    isolated.mkdir()
    site = Path(np.__file__).resolve().parent.parent
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (isolated / name).symlink_to(site / name)
    result = subprocess.run(
        [sys.executable, "-S", "-c", RUNNER, json.dumps(jobs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(isolated)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {k: v for k, v in json.loads(result.stdout).items()}


def loss_data():
    rng = np.random.default_rng(3)
    return rng.normal(size=3), 0.25, rng.normal(size=(6, 3)), rng.random(6)


def test_emit_modules_run_without_symdiff_and_match_closed_forms(tmp_path):
    loss_py, energy_py = tmp_path / "loss_d.py", tmp_path / "energy_h.py"
    loss_run, energy_run, bump_run = run_all(
        [
            [
                "emit",
                f"{FUNCS}:loss",
                "--value-and-grad",
                "--hessian",
                "--wrt",
                "w,b",
                *LOSS_SHAPES,
                "-o",
                str(loss_py),
            ],
            [
                "emit",
                f"{FUNCS}:energy",
                "--hessian",
                "--signature",
                "(n)->()",
                "--shape",
                "p=10,4",
                "-o",
                str(energy_py),
            ],
            ["emit", f"{FUNCS}:bump", "--order", "3"],
        ]
    )
    for r in (loss_run, energy_run, bump_run):
        assert r.returncode == 0 and r.stderr == "", r.stderr  # stderr is not a terminal: no progress
    assert loss_run.stdout == energy_run.stdout == ""
    (tmp_path / "bump_d3.py").write_text(bump_run.stdout)

    w, b, x, y = loss_data()
    points = np.random.default_rng(4).normal(size=(2, 5, 4))  # any batch shape, not only the example's
    grid = np.linspace(-1.5, 1.5, 7)
    got = run_isolated(
        tmp_path,
        {
            "vg": (str(loss_py), "value_and_grad_loss", [w.tolist(), b, x.tolist(), y.tolist()]),
            "h": (str(loss_py), "hessian_loss", [w.tolist(), b, x.tolist(), y.tolist()]),
            "all": (str(loss_py), "all_loss", [w.tolist(), b, x.tolist(), y.tolist()]),
            "energy": (str(energy_py), "hessian_energy", [points.tolist()]),
            "bump": (str(tmp_path / "bump_d3.py"), "derivative_bump", [grid.tolist()]),
        },
    )

    z = x @ w + b
    s = 1 / (1 + np.exp(-z))
    value, dz = np.mean(np.logaddexp(0, z) - z * y), (s - y) / z.size
    c = s * (1 - s) / z.size
    hess = [x.T @ (c[:, None] * x), x.T @ c, x.T @ c, c.sum()]
    np.testing.assert_allclose(got["vg"][0], value, rtol=1e-12)
    np.testing.assert_allclose(got["vg"][1], x.T @ dz, rtol=1e-10)
    np.testing.assert_allclose(got["vg"][2], dz.sum(), rtol=1e-10)
    for g, e in zip(got["h"], hess):
        np.testing.assert_allclose(g, e, rtol=1e-10)
    for g, e in zip(got["all"], [value, x.T @ dz, dz.sum(), *hess]):  # the shared pass agrees
        np.testing.assert_allclose(g, e, rtol=1e-10)

    soft = np.exp(points) / np.exp(points).sum(-1, keepdims=True)
    expected = soft[..., :, None] * np.eye(4) - soft[..., :, None] * soft[..., None, :]
    np.testing.assert_allclose(got["energy"], expected, rtol=1e-10, atol=1e-14)

    t = sympy.Symbol("t")
    third = sympy.lambdify(t, sympy.diff(sympy.sin(sympy.exp(t) * t) / (1 + t**2), t, 3), "numpy")
    np.testing.assert_allclose(got["bump"], third(grid), rtol=1e-10)


def test_emitted_module_header_and_form(tmp_path):
    r = run("emit", f"{FUNCS}:loss", "--grad", "--hessian", "--wrt", "w,b", *LOSS_SHAPES, "--dtype", "float32")
    assert r.returncode == 0, r.stderr
    source = r.stdout
    header = ast.get_docstring(ast.parse(source))
    assert header.splitlines()[0] == "Gradient and Hessian of loss with respect to w, b."
    for line in (
        "w: float32, shape (3,)",
        "b: float32, scalar",
        "x: float32, shape (6, 3)",
        "y: float32, shape (6,)",
        f"symdiff {symdiff.__version__}",
        f"Source: {FUNCS}:loss",
    ):
        assert line in header, line
    regenerate = re.search(r"Regenerate with: (.*)", header).group(1)
    assert shlex.split(regenerate)[1:] == [
        "emit",
        f"{FUNCS}:loss",
        "--grad",
        "--hessian",
        "--wrt",
        "w,b",
        *LOSS_SHAPES,
        "--dtype",
        "float32",
    ]
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [a.name for n in imports for a in n.names] == ["numpy"]
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]
    assert [f.name for f in functions] == ["grad_loss", "hessian_loss", "all_loss"]
    assert all(ast.get_docstring(f) for f in functions[:2])
    assert not [line for line in source.splitlines() if line != line.rstrip()]
    namespace: dict = {}
    exec(compile(source, "emitted", "exec"), namespace)
    w, b, x, y = (np.asarray(a, dtype=np.float32) for a in loss_data())
    gw, _ = namespace["grad_loss"](w, b, x, y)
    assert gw.dtype == np.float32
    np.testing.assert_allclose(
        gw, symdiff.grad(lambda *a: _loss(*a))(*(v.astype(float) for v in (w, b, x, y))), rtol=1e-4
    )


def _loss(w, b, x, y):
    z = x @ w + b
    return np.mean(np.logaddexp(0, z) - z * y)


@pytest.mark.skipif(shutil.which("symdiff") is None, reason="the symdiff script is not installed")
def test_console_script_is_the_same_command():
    r = subprocess.run(
        ["symdiff", "emit", f"{FUNCS}:rosenbrock", "--grad", "--wrt", "x,y"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    namespace: dict = {}
    exec(r.stdout, namespace)
    gx, gy = namespace["grad_rosenbrock"](0.5, 2.0)
    assert gx == pytest.approx(-2 * 0.5 - 400 * 0.5 * (2.0 - 0.25)) and gy == pytest.approx(200 * (2.0 - 0.25))


def test_version_and_help():
    version, help_run = run_all([["--version"], ["--help"]])
    assert version.returncode == 0 and version.stdout.strip() == f"symdiff {symdiff.__version__}"
    assert help_run.returncode == 0
    for command in ("emit", "show", "check", "cache"):
        assert command in help_run.stdout


def test_every_command_help_shows_examples_that_work(tmp_path, monkeypatch, capsys):
    """Each --help has an example section, and every example in it runs (exit status as documented)."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    examples = []
    for command in ("emit", "show", "check", "cache"):
        assert cli.main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "examples" in text and f"symdiff {command}" in text
        lines = text.split("examples", 1)[1].replace("\\\n", " ").splitlines()
        examples += [line.split("#")[0].strip() for line in lines if line.strip().startswith("symdiff ")]
    assert len(examples) >= 8
    for example in examples:
        status = cli.main(shlex.split(example)[1:])
        output = capsys.readouterr()
        assert status == (1 if "staircase" in example else 0), (example, output.err)
    assert (tmp_path / "loss_derivatives.py").exists()


# ---------------------------------------------------------------------------------------------
# show
# ---------------------------------------------------------------------------------------------


def _formulas(text):
    """``{label: formula text}`` from ``show``'s output (one-line formulas)."""
    lines = text.splitlines()
    return {lines[i][:-2]: lines[i + 1] for i in range(len(lines) - 1) if lines[i].endswith(" =")}


def test_show_formulas_are_the_derivatives_and_counts_cse():
    # COLUMNS=1: no 2-D form fits, so every formula is printed on one line that SymPy can parse back
    (narrow,) = run_all([["show", f"{FUNCS}:rosenbrock", "--hessian", "--wrt", "x,y"]], env={"COLUMNS": "1"})
    pretty, latex = run_all(
        [
            ["show", f"{FUNCS}:bump", "--order", "2"],
            ["show", f"{FUNCS}:pendulum", "--jacobian", "--shape", "q=2", "--latex"],
        ]
    )
    assert narrow.returncode == pretty.returncode == latex.returncode == 0

    x, y = sympy.symbols("x y", real=True)
    rosen = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    found = _formulas(narrow.stdout)
    expected = {
        "d^2 rosenbrock/dx^2": sympy.diff(rosen, x, x),
        "d^2 rosenbrock/dx dy": sympy.diff(rosen, x, y),
        "d^2 rosenbrock/dy dx": sympy.diff(rosen, y, x),
        "d^2 rosenbrock/dy^2": sympy.diff(rosen, y, y),
    }
    assert set(found) == set(expected)
    for label, formula in expected.items():
        shown = sympy.sympify(found[label], locals={"x": x, "y": y})
        assert sympy.simplify(shown - formula) == 0, (label, found[label])

    # bump's second derivative does not fit in 100 columns: one line, which must be the derivative
    t = sympy.Symbol("x", real=True)
    d2 = sympy.diff(sympy.sin(sympy.exp(t) * t) / (1 + t**2), t, 2)
    shown = sympy.sympify(_formulas(pretty.stdout)["d^2 bump/dx^2"], locals={"x": t})
    assert all(abs(float((shown - d2).subs(t, v))) < 1e-9 for v in (-1.3, 0.2, 1.7))
    counts = re.search(r"operations: (\d+) as written, (\d+) after common-subexpression elimination", pretty.stdout)
    formula = symdiff.derivative(_bump, order=2).formula(0.0)
    replacements, reduced = sympy.cse([formula])
    assert int(counts.group(1)) == sympy.count_ops(formula)
    assert int(counts.group(2)) == sum(sympy.count_ops(v) for _, v in replacements) + sympy.count_ops(reduced[0])
    assert int(counts.group(2)) < int(counts.group(1))

    assert r"\frac{\partial \mathrm{pendulum}}{\partial q} =" in latex.stdout
    assert r"\left[\begin{matrix}0 & 1\\- \cos{\left(q_{0} \right)} & 0\end{matrix}\right]" in latex.stdout


def _bump(x):
    return np.sin(np.exp(x) * x) / (1 + x**2)


# ---------------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------------


def _worst(text):
    return [float(v) for v in re.findall(r"worst relative error (\S+)", text)]


def test_check_passes_on_right_derivatives_and_fails_on_wrong_ones():
    good, orders, batched, single, staircase, strict = run_all(
        [
            ["check", f"{FUNCS}:loss", "--value-and-grad", "--hessian", "--wrt", "w,b", *LOSS_SHAPES],
            ["check", f"{FUNCS}:bump", "--order", "4", "--points", "20", "--seed", "1"],
            ["check", f"{FUNCS}:energy", "--hessian", "--signature", "(n)->()", "--shape", "p=3,4"],
            ["check", f"{FUNCS}:bump", "--order", "2", "--dtype", "float32"],
            ["check", f"{FUNCS}:staircase"],
            ["check", f"{FUNCS}:rosenbrock", "--hessian", "--wrt", "x,y", "--tol", "1e-14"],
        ]
    )
    for r in (good, orders, batched, single):
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.splitlines()[-1].startswith("ok: worst relative error")
    assert "hessian wrt w, b" in good.stdout and "value of loss" in good.stdout
    assert max(_worst(good.stdout)) < 1e-8
    assert "20 random points" in orders.stdout and "derivative of order 4 wrt x, x, x, x" in orders.stdout
    assert len(_worst(batched.stdout)) == 3 and max(_worst(batched.stdout)) < 1e-8
    assert "float32" in single.stdout and "tolerance 0.001" in single.stdout

    # the staircase's exact derivative is 0; finite differences see slope 1
    assert staircase.returncode == 1, staircase.stdout + staircase.stderr
    assert _worst(staircase.stdout)[0] == pytest.approx(1.0, abs=0.05)
    assert staircase.stdout.splitlines()[-1].startswith("FAILED: worst relative error")
    # right derivatives, but finite differences cannot confirm them to 1e-14: not a failure
    assert strict.returncode in (0, 3) and "FAILED" not in strict.stdout, strict.stdout
    assert staircase.stderr == strict.stderr == ""
    for r in (good, orders, batched, single, staircase, strict):  # every line shows the reference's own error
        lines = [line for line in r.stdout.splitlines() if "worst relative error" in line][:-1]
        assert lines and all(re.search(r"reference error \S+  (ok|FAILED|inconclusive)$", x) for x in lines), r.stdout


LJ = ["check", f"{FUNCS}:lennard_jones", "--shape", "x=4,3", "--range", "0", "1.5"]


def _reference(text):
    return [float(v) for v in re.findall(r"reference error (\S+)", text)]


def test_check_passes_on_a_stiff_lennard_jones_energy():
    """Two of the four atoms come 0.34 apart (energy 2e6, gradient 5e7): plain central differences
    with one step were off by 4e-6 (gradient) and 6e-4 (Hessian) and called right derivatives FAILED."""
    (hessian,) = run_all([[*LJ, "--hessian"]])
    assert hessian.returncode == 0, hessian.stdout + hessian.stderr
    assert "grad wrt x" in hessian.stdout and "hessian wrt x, x" in hessian.stdout
    assert max(_worst(hessian.stdout)) < 1e-7
    assert 0 < max(_reference(hessian.stdout)) < 1e-7
    assert hessian.stdout.splitlines()[-1].startswith("ok: worst relative error")


def test_stiff_check_without_long_double_is_no_false_alarm(monkeypatch, capsys):
    """Where long double is float64 (or the function rounds to it), differences of a gradient
    entry of 5e7 are a few units in the last place; quotients at two steps then agree exactly and
    fake a converged tableau unless the rounding noise bounds the error estimate from below."""
    monkeypatch.setattr(cli_check, "working_dtype", lambda fun, args, p: np.dtype(np.float64))
    for seed, expected in (("0", (0,)), ("2", (0, 3))):  # seed 2: Hessian entries too noisy to decide
        status = cli.main([*LJ, "--hessian", "--seed", seed])
        out = capsys.readouterr().out
        assert status in expected and "FAILED" not in out, out


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="long double is float64 here")
def test_long_double_only_where_the_function_computes_in_it():
    x = np.random.default_rng(0).uniform(0, 1.5, (4, 3))
    funcs = _load_examples()
    assert cli_check.working_dtype(funcs.lennard_jones, [x], 0) == np.longdouble
    assert cli_check.working_dtype(symdiff.grad(funcs.lennard_jones), [x], 0) == np.longdouble
    rounds = lambda x: np.sum(np.asarray(x, dtype=np.float64) ** 3)  # long double in and out, float64 between
    assert cli_check.working_dtype(lambda x: rounds(x) + 0 * x[0, 0], [x], 0) == np.float64
    assert cli_check.working_dtype(lambda x: float(np.sum(x)), [x], 0) == np.float64


def _load_examples():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cli_functions_for_check", FUNCS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scaled_leaf(factor):
    real = cli_check._leaf
    return lambda transform, path: lambda args: real(transform, path)(args) * factor


@pytest.mark.parametrize(
    "argv",
    [
        [*LJ, "--hessian"],
        ["check", f"{FUNCS}:loss", "--grad", "--hessian", "--wrt", "w,b", *LOSS_SHAPES],
        ["check", f"{FUNCS}:bump", "--order", "3"],
    ],
)
def test_check_fails_on_a_subtly_wrong_derivative(monkeypatch, capsys, argv):
    """Every generated derivative off by a factor 1 + 1e-4: the reference is accurate enough to say so."""
    monkeypatch.setattr(cli_check, "_leaf", _scaled_leaf(1 + 1e-4))
    status = cli.main(argv)
    out = capsys.readouterr().out
    assert status == 1, out
    assert out.splitlines()[-1].startswith("FAILED: worst relative error"), out
    assert "ok" not in [line.split()[-1] for line in out.splitlines()[1:-1]], out


def test_check_is_inconclusive_when_the_reference_is_too_noisy(capsys):
    """sin(x) on top of 1e12 keeps 4 digits in float64: the generated cos(x) is right, and the
    finite differences can neither confirm nor refute it to 1e-6, which must not read as FAILED."""
    status = cli.main(["check", f"{FUNCS}:offset_sine"])
    out = capsys.readouterr().out
    assert status == 3, out
    assert "  inconclusive" in out and "FAILED" not in out
    assert out.splitlines()[-1].startswith("inconclusive:") and "--tol" in out.splitlines()[-1]
    assert _worst(out)[0] > 1e-6 and _reference(out)[0] >= _worst(out)[0] - 1e-6


# ---------------------------------------------------------------------------------------------
# bad input: one line on stderr, status 2, no traceback, no output file
# ---------------------------------------------------------------------------------------------

USER_FILE = """\
import numpy as np

A = 3
B = np.arange(600.0).reshape(20, 30) / 600

def reads_global(x):
    return np.sum(np.tanh(B @ x))

def unsupported(x):
    return np.sum(np.unique(x))

def divides(x):
    return 1 / 0 + x
"""


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every bad-input command, run concurrently once; their results keyed by case name."""
    d = tmp_path_factory.mktemp("bad")
    (d / "user.py").write_text(USER_FILE)
    (d / "syntax.py").write_text("def f(x)\n    return x\n")
    (d / "imports.py").write_text("import numpy as np\nimport no_such_module_for_symdiff\n")
    (d / "existing").mkdir()
    (d / "existing" / "OUT.py").write_text("old content\n")
    (d / "fresh").mkdir()
    user = str(d / "user.py")
    cases = {
        "missing file": (["emit", str(d / "nope.py") + ":f"], ["no such file", "nope.py"]),
        "no function": (["emit", user + ":g"], ["has no function 'g'", "divides, reads_global, unsupported"]),
        "syntax error": (["emit", str(d / "syntax.py") + ":f"], ["syntax error in", "line 1"]),
        "import error": (["check", str(d / "imports.py") + ":f"], ["ModuleNotFoundError", "imports.py:2"]),
        "unsupported op": (
            ["emit", user + ":unsupported", "--shape", "x=3"],
            ["np.unique is not supported", "user.py:10"],
        ),
        "control flow": (["emit", f"{FUNCS}:branchy"], ["control flow", "np.where", "cli_functions.py"]),
        "user exception": (["show", user + ":divides"], ["ZeroDivisionError", "user.py:13"]),
        "malformed shape": (["emit", f"{FUNCS}:energy", "--shape", "p=3,x"], ["malformed --shape 'p=3,x'"]),
        "malformed signature": (
            ["emit", f"{FUNCS}:energy", "--hessian", "--signature", "(n->", "--shape", "p=3,4"],
            ["malformed signature"],
        ),
        "not scalar": (["emit", f"{FUNCS}:pendulum", "--shape", "q=2"], ["scalar output", "jacobian"]),
        "unknown flag": (["emit", f"{FUNCS}:bump", "--frobnicate"], ["unrecognized arguments"]),
        "missing dir": (["emit", f"{FUNCS}:bump", "-o", str(d / "no" / "dir" / "OUT.py")], ["cannot write"]),
        "keeps old file": (["emit", f"{FUNCS}:branchy", "-o", str(d / "existing" / "OUT.py")], ["control flow"]),
        "no new file": (["emit", f"{FUNCS}:branchy", "-o", str(d / "fresh" / "OUT.py")], ["control flow"]),
        "overwrite source": (["emit", user + ":divides", "-o", user], ["would overwrite the file"]),
        "constants": (["emit", user + ":reads_global", "--shape", "x=30"], []),
        "not finite": (["check", f"{FUNCS}:energy", "--shape", "p=2", "--range", "1e6", "1e6"], []),
    }
    results = run_all([argv for argv, _ in cases.values()])
    return d, {name: (result, cases[name][1]) for name, result in zip(cases, results)}


BAD_CASES = [
    "missing file",
    "no function",
    "syntax error",
    "import error",
    "unsupported op",
    "control flow",
    "user exception",
    "malformed shape",
    "malformed signature",
    "not scalar",
    "unknown flag",
    "missing dir",
    "keeps old file",
    "no new file",
    "overwrite source",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_and_status_2(bad_runs, case):
    _, runs = bad_runs
    result, fragments = runs[case]
    assert_one_line_error(result, *fragments)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["show", "{user}"], "expected FILE.py:FUNC"),
        (["emit", "{user}:A"], "'A' in"),
        (["emit", f"{FUNCS}:energy", "--shape", "3,4"], "malformed --shape '3,4'"),
        (["emit", f"{FUNCS}:energy", "--shape", "p=0"], "malformed --shape 'p=0'"),
        (["emit", f"{FUNCS}:energy", "--shape", "q=3"], "not a parameter of energy"),
        (["check", f"{FUNCS}:rosenbrock", "--wrt", "z"], "--wrt names z"),
        (["check", f"{FUNCS}:rosenbrock", "--argnums", "0,x"], "malformed --argnums"),
        (["check", f"{FUNCS}:rosenbrock", "--argnums", "2"], "out of range"),
        (["emit", f"{FUNCS}:bump", "--order", "two"], "--order needs a non-negative integer"),
        (["emit", f"{FUNCS}:bump", "--order", "1", "--order", "2"], "--order can be given once"),
        (["emit", f"{FUNCS}:rosenbrock", "--order", "3", "--wrt", "x,y"], "name exactly 3"),
        (["emit", f"{FUNCS}:bump", "--order", "2", "--signature", "()->()"], "--signature does not apply to --order"),
        (["emit", f"{FUNCS}:energy", "--hessian", "--signature", "(n),(n)->()", "--shape", "p=3,4"], "has 2 inputs"),
        (["check", f"{FUNCS}:bump", "--range", "2", "-1"], "LOW <= HIGH"),
        (["check", f"{FUNCS}:bump", "--points", "0"], "positive integer"),
        (["emit", f"{FUNCS}:energy", "--shape", "p=3", "--shape", "p=4"], "shape of p was given twice"),
        (["check", f"{FUNCS}:bump", "--points", "5", "--points", "6"], "--points was given twice"),
        (["check", f"{FUNCS}:bump", "--seed", "1", "--seed", "2"], "--seed was given twice"),
        (["check", f"{FUNCS}:bump", "--tol", "1e-6", "--tol", "1e-3"], "--tol was given twice"),
        (["check", f"{FUNCS}:bump", "--range", "0", "1", "--range", "0", "2"], "--range was given twice"),
    ],
)
def test_more_bad_input_in_process(bad_runs, monkeypatch, capsys, argv, fragment):
    """The same contract for the remaining checks, through ``main`` itself (no process start-up)."""
    d, _ = bad_runs
    monkeypatch.setattr(sys, "path", list(sys.path))
    status = cli.main([a.replace("{user}", str(d / "user.py")) for a in argv])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and len(err.splitlines()) == 1 and fragment in err, err


def test_failed_runs_leave_output_files_alone(bad_runs):
    d, _ = bad_runs
    assert (d / "existing" / "OUT.py").read_text() == "old content\n"
    assert os.listdir(d / "existing") == ["OUT.py"]
    assert os.listdir(d / "fresh") == []  # neither OUT.py nor a temporary file


def test_arrays_read_from_the_module_become_keyword_arguments_with_a_warning(bad_runs):
    _, runs = bad_runs
    result, _ = runs["constants"]
    assert result.returncode == 0
    assert result.stderr.startswith("symdiff: warning: grad_reads_global needs keyword argument(s) B:")
    assert "reads_global reads" in result.stderr and len(result.stderr.splitlines()) == 1
    namespace: dict = {}
    exec(result.stdout, namespace)
    B = np.arange(600.0).reshape(20, 30) / 600
    x = np.linspace(-1, 1, 30)
    expected = B.T @ (1 - np.tanh(B @ x) ** 2)
    np.testing.assert_allclose(namespace["grad_reads_global"](x, B=B), expected, rtol=1e-12)


def test_check_without_finite_points_fails(bad_runs):
    _, runs = bad_runs
    result, _ = runs["not finite"]
    assert result.returncode == 1 and "not finite at any point" in result.stdout


def test_atomic_write_cleans_up_when_writing_fails(tmp_path, monkeypatch):
    out = tmp_path / "OUT.py"
    out.write_text("old\n")

    def broken(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(Exception, match="No space left"):
        cli.write_atomic(str(out), "x = 1\n" * 1000)
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["OUT.py"]
    monkeypatch.undo()
    cli.write_atomic(str(out), "x = 1\n")
    assert out.read_text() == "x = 1\n" and os.listdir(tmp_path) == ["OUT.py"]


def test_debug_shows_the_traceback_and_verbose_the_stages(tmp_path):
    debug, verbose = run_all(
        [
            ["emit", f"{FUNCS}:branchy", "--debug"],
            ["--verbose", "emit", f"{FUNCS}:loss", "--hessian", *LOSS_SHAPES, "-o", str(tmp_path / "h.py")],
        ]
    )
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr and "TraceError" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith("symdiff: error: Python control flow")
    assert verbose.returncode == 0, verbose.stderr
    stages = [re.match(r"symdiff: +[\d.]+ s  (.*)$", line).group(1) for line in verbose.stderr.splitlines()]
    for stage in (
        "trace loss",
        "differentiate (reverse mode)",
        "optimize",
        "emit numpy code",
        f"write {tmp_path / 'h.py'}",
        "done",
    ):
        assert stage in stages, (stage, verbose.stderr)
    assert stages.index("trace loss") < stages.index("emit numpy code") < stages.index("done")


def test_progress_is_on_when_stderr_is_a_terminal():
    controller, terminal = pty.openpty()
    try:
        result = run("emit", f"{FUNCS}:bump", "--order", "2", stderr=terminal)
        os.close(terminal)
        terminal = None
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
        if terminal is not None:
            os.close(terminal)
    assert result.returncode == 0
    text = b"".join(chunks).decode()
    assert "trace bump" in text and "emit numpy code" in text and "done" in text


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------


def test_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(cache))
    symdiff.hessian(_bump)(0.5), symdiff.grad(_bump)(0.5)  # fill the disk cache
    entries = len(list(cache.glob("*.py")))
    size = sum(p.stat().st_size for p in cache.glob("*.py"))
    assert entries >= 2
    info = run("cache", "info")
    assert info.returncode == 0
    assert info.stdout.splitlines()[:3] == [f"directory: {cache}", f"entries:   {entries}", f"bytes:     {size}"]
    cleared = run("cache", "clear")
    assert cleared.returncode == 0 and cleared.stdout == f"removed {entries} cached modules from {cache}\n"
    assert list(cache.glob("*.py")) == []
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", "")
    assert cli.main(["cache", "info"]) == 0 and "disabled" in capsys.readouterr().out


def test_emit_numba_backend_writes_a_fused_module(tmp_path):
    pytest.importorskip("numba")
    out = tmp_path / "bump3.py"
    result = run("emit", f"{FUNCS}:bump", "--order", "3", "--backend", "numba", "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "@numba.njit" in text and "import symdiff" not in text
    import importlib.util

    spec = importlib.util.spec_from_file_location("bump3", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = np.linspace(-1, 1, 7)
    funcs_spec = importlib.util.spec_from_file_location("cli_functions_for_numba", FUNCS)
    funcs = importlib.util.module_from_spec(funcs_spec)
    funcs_spec.loader.exec_module(funcs)
    ref = symdiff.derivative(funcs.bump, 3)(x)
    np.testing.assert_allclose(module.derivative_bump(x), ref, rtol=1e-12)


def test_repeating_an_option_with_the_same_value_is_accepted(capsys):
    argv = ["check", f"{FUNCS}:energy", "--shape", "p=3", "--shape", "p=3", "--points", "2", "--points", "2"]
    assert cli.main(argv) == 0, capsys.readouterr()
