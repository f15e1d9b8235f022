"""backend="array_api": one generated module runs on numpy, array_api_strict (which rejects any call
outside the standard), PyTorch and JAX arrays, returns arrays of the input's kind, and equals the
numpy backend to 1e-12 on the seeds' functions, batched Hessians and a third derivative."""

import numpy as np
import pytest

import symdiff
from symdiff.errors import CompileError

pytest.importorskip("array_api_compat")

RTOL = ATOL = 1e-12


def logistic(w, b, x, y):  # the seed's BCE-with-logits of sigmoid(x @ w + b) (examples/torch_autograd_000.py)
    z = x @ w + b
    return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def w3(x):
    return np.sin(np.exp(x) * x) / (1 + x**2)


def squared(a):  # examples/torch_autograd_001.py: out = (inp + 1) ** 2, its Jacobian
    return (a + 1) ** 2


def mlp(w1, x):
    return np.sum(np.tanh(x @ w1) ** 2) + np.sum(np.where(w1 > 0, w1, 0.5 * w1) ** 2)


def structural(a, m):  # permutes, einsum lowered to products and sums, cumsum, concat, linalg
    t = np.transpose(a, (2, 0, 1))
    e = np.einsum("ijk,kl->jil", a, m) + np.einsum("kij->ij", t)[None, :, :1]
    s = np.linalg.solve(m @ m.T + 3 * np.eye(3), m[:, 0])
    c = np.cumsum(np.concatenate([a[0, 0], s]))
    return np.sum(e**2) + np.sum(np.sin(c)) + np.log(np.linalg.det(m @ m.T + np.eye(3)))


def strict():
    return pytest.importorskip("array_api_strict")


def torch_ns():
    torch = pytest.importorskip("torch")
    return torch


def jax_ns():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax.numpy


NAMESPACES = {
    "numpy": lambda: (lambda a: a, np.ndarray),
    "array_api_strict": lambda: (lambda a: strict().asarray(a), type(strict().asarray(0.0))),
    "torch": lambda: (lambda a: torch_ns().asarray(a), torch_ns().Tensor),
    "jax": lambda: (lambda a: jax_ns().asarray(a), jax_ns().ndarray),
}


@pytest.fixture(params=list(NAMESPACES))
def kind(request):
    return NAMESPACES[request.param]()


def to_numpy(a):
    return np.asarray(a)


def leaves(tree):
    return [x for t in tree for x in leaves(t)] if isinstance(tree, (tuple, list)) else [tree]


def same(ours, theirs, array_type):
    ours, theirs = leaves(ours), leaves(theirs)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert isinstance(o, array_type), type(o)
        np.testing.assert_allclose(to_numpy(o), t, rtol=RTOL, atol=ATOL)


RNG = np.random.default_rng(0)
W, B, X, Y = RNG.normal(size=(5, 3)), RNG.normal(size=3), RNG.normal(size=(7, 5)), (RNG.random((7, 3)) < 0.5) * 1.0
P = RNG.normal(size=(6, 4))


@pytest.mark.parametrize("make, args", [
    (lambda b: symdiff.grad(logistic, argnums=(0, 1), backend=b), (W, B, X, Y)),
    (lambda b: symdiff.value_and_grad(logistic, argnums=(0, 1), backend=b), (W, B, X, Y)),
    (lambda b: symdiff.hessian(logistic, backend=b), (W, B, X, Y)),
    (lambda b: symdiff.jacobian(squared, backend=b), (np.eye(4, 5),)),
    (lambda b: symdiff.grad(rosen, backend=b), (P[0],)),
    (lambda b: symdiff.hessian(rosen, backend=b), (P[0],)),
    (lambda b: symdiff.hessian(rosen, signature="(n)->()", backend=b), (P,)),
    (lambda b: symdiff.value_and_grad(rosen, signature="(n)->()", backend=b), (P,)),
    (lambda b: symdiff.derivative(w3, 3, backend=b), (np.linspace(-1, 1, 9),)),
    (lambda b: symdiff.grad(mlp, backend=b), (RNG.normal(size=(5, 4)), RNG.normal(size=(3, 5)))),
    (lambda b: symdiff.grad(structural, argnums=(0, 1), backend=b), (RNG.normal(size=(2, 4, 3)), RNG.normal(size=(3, 3)))),
], ids=["grad", "value_and_grad", "hessian", "jacobian", "rosen_grad", "rosen_hessian", "batched_hessian",
        "batched_value_and_grad", "derivative3", "mlp", "structural"])
def test_equals_numpy_backend_and_keeps_the_array_type(kind, make, args):
    convert, array_type = kind
    expected = make("numpy")(*args)
    ours = make("array_api")(*(convert(a) for a in args))
    same(ours, expected if isinstance(expected, tuple) else expected, array_type)


def test_generated_module_imports_only_array_api_compat():
    src = symdiff.hessian(rosen, signature="(n)->()", backend="array_api").source(P)
    assert "import array_api_compat" in src and "import numpy" not in src and "np." not in src
    assert "xp = array_api_compat.array_namespace(x)" in src


def test_seed_logistic_example_under_strict_namespace():
    xs = strict()
    x, y = np.ones(5), np.zeros(3)
    w, b = RNG.normal(size=(5, 3)), RNG.normal(size=3)
    gw, gb = symdiff.grad(logistic, argnums=(0, 1), backend="array_api")(*(xs.asarray(a) for a in (w, b, x, y)))
    closed = (1 / (1 + np.exp(-(x @ w + b))) - y) / 3  # the seed's b.grad = (sigmoid(z) - y) / 3
    np.testing.assert_allclose(np.asarray(gb), closed, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(gw), np.outer(x, closed), rtol=1e-13)


def test_constants_follow_the_input_namespace():
    torch = torch_ns()
    c = np.array([1.0, -2.0, 3.0])

    def f(x):
        return np.sum(np.array([1.0, -2.0, 3.0]) * x**2) + np.sum(c * x)

    g = symdiff.grad(f, backend="array_api")(torch.asarray([0.5, 1.0, 2.0], dtype=torch.float64))
    assert isinstance(g, torch.Tensor)
    np.testing.assert_allclose(g.numpy(), 2 * c * np.array([0.5, 1.0, 2.0]) + c, rtol=1e-13)


def test_op_without_standard_equivalent_is_a_compile_error():
    scipy_special = pytest.importorskip("scipy.special")

    def f(x):
        return np.sum(scipy_special.erf(x))

    with pytest.raises(CompileError, match=r"scipy\.special\.erf has no array API equivalent.*backend='numpy'"):
        symdiff.value_and_grad(f, backend="array_api")(np.linspace(0, 1, 3))


def test_op_without_standard_equivalent_names_the_users_line():
    def f(x):
        return np.sum(np.fmod(x, 0.7) ** 2)

    line = f.__code__.co_firstlineno + 1
    with pytest.raises(CompileError, match=rf"np\.fmod has no array API equivalent.*test_array_api\.py:{line}"):
        symdiff.grad(f, backend="array_api")(np.linspace(0, 1, 3))


def test_integer_array_indexing_on_one_axis_is_take_and_its_gradient_a_compile_error(kind):
    convert, array_type = kind
    idx = np.array([2, 0, 0, 1])

    def f(x, y):
        return np.sum(np.take(x, idx, axis=1) * y) + np.sum(x[:, idx] ** 2)

    x, y = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 4))
    g = symdiff.grad(f, argnums=1, backend="array_api")  # x[idx] itself: the standard's take
    same(g(convert(x), convert(y)), symdiff.grad(f, argnums=1)(x, y), array_type)
    with pytest.raises(CompileError, match=r"np\.add\.at\) has no array API equivalent"):
        symdiff.grad(f, backend="array_api")(convert(x), convert(y))  # its adjoint adds at repeated places
    with pytest.raises(CompileError, match="np.trace.*no array API equivalent"):
        symdiff.grad(lambda a: np.trace(a @ a) ** 2, backend="array_api")(np.eye(3))


def test_unknown_backend_lists_array_api():
    with pytest.raises(symdiff.SymdiffError, match="array_api"):
        symdiff.grad(rosen, backend="cupy")


def _gpu_arrays():
    out = []
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount():
            out.append(("cupy", cupy.asarray, cupy.ndarray))
    except Exception:  # no cupy, or no GPU
        pass
    try:
        import torch

        if torch.cuda.is_available():
            out.append(("torch.cuda", lambda a: torch.asarray(a, device="cuda"), torch.Tensor))
    except ImportError:
        pass
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("gpu", ["cupy", "torch.cuda"])
def test_gpu_batched_hessian_stays_on_the_device(gpu):
    found = {name: (convert, t) for name, convert, t in _gpu_arrays()}
    if gpu not in found:
        pytest.skip(f"{gpu}: no GPU or library")
    convert, array_type = found[gpu]
    H = symdiff.hessian(rosen, signature="(n)->()", backend="array_api")(convert(P))
    assert isinstance(H, array_type)
    import array_api_compat

    assert "cpu" not in str(array_api_compat.device(H)).lower()
    np.testing.assert_allclose(np.asarray(array_api_compat.to_device(H, "cpu")) if gpu == "cupy" else H.cpu().numpy(),
                               symdiff.hessian(rosen, signature="(n)->()")(P), rtol=RTOL, atol=ATOL)


def test_cli_emit_array_api_module_runs_on_torch(tmp_path):
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    torch = torch_ns()
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "loss_grad.py"
    result = subprocess.run([sys.executable, "-m", "symdiff", "emit", f"{root / 'examples' / 'cli_functions.py'}:bump",
                             "--order", "2", "--backend", "array_api", "-o", str(out)],
                            cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "import array_api_compat" in text and "import numpy" not in text and "import symdiff" not in text
    spec = importlib.util.spec_from_file_location("bump2", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    funcs_spec = importlib.util.spec_from_file_location("cli_functions_for_array_api", root / "examples" / "cli_functions.py")
    funcs = importlib.util.module_from_spec(funcs_spec)
    funcs_spec.loader.exec_module(funcs)
    x = np.linspace(-1, 1, 7)
    ours = module.derivative_bump(torch.asarray(x))
    assert isinstance(ours, torch.Tensor)
    np.testing.assert_allclose(ours.numpy(), symdiff.derivative(funcs.bump, 2)(x), rtol=RTOL, atol=ATOL)


def test_generated_code_on_dask_arrays_stays_lazy():
    """The Dask layer (symdiff/dask_*.py) calls this generated code on chunks and on whole Dask arrays."""
    da = pytest.importorskip("dask.array")
    hess = symdiff.hessian(rosen, signature="(n)->()", backend="array_api")
    hess(P)  # compiled on numpy arrays; the same module runs on Dask arrays
    lazy = hess(da.from_array(P, chunks=(2, 4)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), symdiff.hessian(rosen, signature="(n)->()")(P), rtol=RTOL, atol=ATOL)
    g = symdiff.grad(logistic, argnums=(0, 1), backend="array_api")(*(da.from_array(a) for a in (W, B, X, Y)))
    assert all(isinstance(v, da.Array) for v in g)
    same(tuple(v.compute() for v in g), symdiff.grad(logistic, argnums=(0, 1))(W, B, X, Y), np.ndarray)


def test_missing_extra_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "array_api_compat" else real(name, *a))
    with pytest.raises(symdiff.SymdiffError, match=r"symdiff\[array-api\]"):
        symdiff.grad(rosen, backend="array_api")


def test_symdiff_and_the_numpy_backend_never_import_array_api_compat():
    import subprocess
    import sys

    code = ("import sys, numpy as np, symdiff; symdiff.grad(lambda x: np.sum(x**2))(np.ones(3)); "
            "print('array_api_compat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_generated_function_runs_under_jax_jit():
    jnp = jax_ns()
    import jax

    def f(x):
        return np.sum(np.array([1.0, 2.0, 3.0]) * np.sin(x))

    g = symdiff.grad(f, backend="array_api")
    x = np.array([0.1, 0.2, 0.3])
    jitted = jax.jit(g)
    for scale in (1.0, 2.0):  # a second trace must not meet a value cached from the first
        np.testing.assert_allclose(np.asarray(jitted(jnp.asarray(scale * x))), symdiff.grad(f)(scale * x),
                                   rtol=RTOL, atol=ATOL)
