"""symdiff.torchlike: the two documents' cells print what the documents print, and every PyTorch
autograd semantic they use (plus the errors) behaves as in PyTorch, with gradients from symdiff."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import symdiff.torchlike as torch
from symdiff import api
from symdiff import differentiate as D
from symdiff.torchlike import engine

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

# The scripts' output with the fixed seed; object addresses normalized to 0x... . Everything that
# does not depend on random numbers is the documents' printed output verbatim.
EXPECTED_000 = """\
In [3]:
In [4]:  # random w, b: the document printed 0.0543, 0.2549, 0.3251 for its own
tensor([[0.0193, 0.0828, 0.0758],
        [0.0193, 0.0828, 0.0758],
        [0.0193, 0.0828, 0.0758],
        [0.0193, 0.0828, 0.0758],
        [0.0193, 0.0828, 0.0758]])
tensor([0.0193, 0.0828, 0.0758])
# reference, closed form outer(x, (sigmoid(z) - y) / 3):
tensor([[0.0193, 0.0828, 0.0758],
        [0.0193, 0.0828, 0.0758],
        [0.0193, 0.0828, 0.0758],
        [0.0193, 0.0828, 0.0758],
        [0.0193, 0.0828, 0.0758]])
# reference, closed form (sigmoid(z) - y) / 3:
tensor([0.0193, 0.0828, 0.0758])
In [7]:
True
False
False
In [10]:
First call
 tensor([[4., 2., 2., 2., 2.],
        [2., 4., 2., 2., 2.],
        [2., 2., 4., 2., 2.],
        [2., 2., 2., 4., 2.],
        [2., 2., 2., 2., 4.]])

Second call
 tensor([[8., 4., 4., 4., 4.],
        [4., 8., 4., 4., 4.],
        [4., 4., 8., 4., 4.],
        [4., 4., 4., 8., 4.],
        [4., 4., 4., 4., 8.]])

Call after zeroing gradients
 tensor([[4., 2., 2., 2., 2.],
        [2., 4., 2., 2., 2.],
        [2., 2., 4., 2., 2.],
        [2., 2., 2., 4., 2.],
        [2., 2., 2., 2., 4.]])
"""

EXPECTED_001 = """\
In [1]:
In [2]:  # random x: the document printed its own
tensor([[0.6370, 0.2698],
        [0.0410, 0.0165]], requires_grad=True)
In [3]:
tensor(2.8927, grad_fn=<SumBackward0>) <SumBackward0 object at 0x...>
# reference, 3 * x.sum():
tensor(2.8927)
In [5]:
None
In [6]:
tensor([[3., 3.],
        [3., 3.]])
In [6]:  # commented out in the document, which shows this output
tensor([[7., 7.],
        [7., 7.]])
In [7]:  # commented out in the document, which shows this output
tensor([[4., 4.],
        [4., 4.]])
In [7]:
RuntimeError: Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if you need to access saved tensors after calling backward.
In [8]:
In [9]:
tensor([[3., 3.],
        [3., 3.]])
In [10]:
tensor([[6., 6.],
        [6., 6.]])
In [11]:
(tensor([[3., 3.],
         [3., 3.]]),)
In [12]:  # depends on the random x of In [8]; the document printed tensor(0.9508) for its own
tensor(0.9999)
# reference, 1 / (1 + exp(-3 * x.sum())):
tensor(0.9999)
In [13]:
True
True
False
In [14]:
In [15]:
In [16]:
(tensor(22.),)
In [17]:
In [20]:
In [19]:
(tensor(330., grad_fn=<AddBackward0>),)
In [21]:
In [22]:
tensor(330.)
In [23]:
In [25]:
(tensor(2., grad_fn=<MulBackward0>),)
(tensor(12., grad_fn=<MulBackward0>),)
In [26]:
tensor(1.)
"""

SECOND_BACKWARD = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed). Saved intermediate values of the graph are freed when you call .backward() or "
    "autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or "
    "if you need to access saved tensors after calling backward."
)
NOT_SCALAR = "grad can be implicitly created only for scalar outputs"
NO_GRAD_FN = "element 0 of tensors does not require grad and does not have a grad_fn"


def _normalized(text):
    return re.sub(r"0x[0-9a-f]+", "0x...", text)


def _run_script(name):
    done = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _notebook():
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    import notebook_runner as notebook
    import torch_autograd_000
    import torch_autograd_001

    return notebook, (torch_autograd_000, torch_autograd_001)


@pytest.fixture
def fresh_engine():
    engine.cache_clear()
    yield engine
    engine.cache_clear()


# ---------------------------------------------------------------------------------------------
# The documents
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["torch_autograd_000.py", "torch_autograd_001.py"])
def test_document_script_prints_the_documents_output(name):
    expected = {"torch_autograd_000.py": EXPECTED_000, "torch_autograd_001.py": EXPECTED_001}[name]
    assert _normalized(_run_script(name)) == expected


@pytest.mark.parametrize("seed", [1, 2])
def test_document_000_gradients_match_the_closed_form_for_any_weights(seed):
    torch.manual_seed(seed)
    x, y = torch.ones(5), torch.zeros(3)
    w = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(torch.matmul(x, w) + b, y)
    loss.backward()
    z = x.numpy() @ w.detach().numpy().astype(np.float64) + b.detach().numpy()
    ref = (1 / (1 + np.exp(-z)) - 0) / 3
    np.testing.assert_allclose(b.grad.numpy(), ref, rtol=1e-5)
    for row in w.grad.numpy():
        np.testing.assert_array_equal(row, b.grad.numpy())
    assert w.grad.dtype is torch.float32 and w.grad.shape == torch.Size([5, 3])


# ---------------------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------------------


def test_printing_like_pytorch():
    assert repr(torch.tensor(22.0)) == "tensor(22.)"
    assert repr(torch.ones(2, 2) * 3) == "tensor([[3., 3.],\n        [3., 3.]])"
    assert repr(torch.tensor([0.05432, 1.5])) == "tensor([0.0543, 1.5000])"
    assert repr(torch.tensor([1e-5, 1.0])) == "tensor([1.0000e-05, 1.0000e+00])"
    assert repr(torch.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(torch.tensor([1.0, 2.0], dtype=torch.float64)) == "tensor([1., 2.], dtype=torch.float64)"
    assert repr(torch.tensor(1.0, requires_grad=True)) == "tensor(1., requires_grad=True)"
    x = torch.tensor(2.0, requires_grad=True)
    assert repr(9 * x**4 + 1) == "tensor(145., grad_fn=<AddBackward0>)"
    assert str(torch.zeros(2, 1, 2)) == "tensor([[[0., 0.]],\n\n        [[0., 0.]]])"
    wide = repr(torch.ones(20) * 1.5)
    assert wide.splitlines()[1].startswith("        1.5000") and all(len(line) <= 80 for line in wide.splitlines())
    assert "..." in repr(torch.zeros(2000))
    assert repr(torch.ones(2).shape) == "torch.Size([2])" and repr(torch.float32) == "torch.float32"
    assert f"{torch.tensor(0.5):.2f}" == "0.50"


def test_printing_matches_real_pytorch_on_many_arrays():
    real = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays = [
        np.float32(1.5), np.zeros(3, np.float32), np.array([0.0, 1e9], np.float32),
        rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(30).astype(np.float32) * 100,
        rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal(2000).astype(np.float32),
        rng.standard_normal((40, 40)).astype(np.float32), np.arange(12).reshape(3, 4), rng.standard_normal((3, 3)),
        np.array([np.inf, -np.inf, np.nan, 1.0], np.float32), np.zeros((2, 0), np.float32),
        rng.standard_normal((3, 30)).astype(np.float32),
    ]
    for a in arrays:
        for requires_grad in (False, True) if a.dtype.kind == "f" else (False,):
            assert repr(torch.tensor(a, requires_grad=requires_grad)) == repr(real.tensor(a, requires_grad=requires_grad))


# ---------------------------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------------------------


def test_dtypes_default_to_float32_and_float64_on_request():
    assert torch.tensor(1.0).dtype is torch.float32 and torch.tensor(1).dtype is torch.int64
    assert torch.ones(2).dtype is torch.float32 and torch.rand(2).dtype is torch.float32
    assert torch.tensor(np.zeros(2)).dtype is torch.float64  # numpy arrays keep their dtype, as in PyTorch
    assert (torch.ones(2, dtype=torch.float64) * 2.5).dtype is torch.float64
    assert (torch.ones(2) * 2.5).dtype is torch.float32 and (torch.ones(2) + torch.ones(2, dtype=torch.double)).dtype is torch.float64
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (x**2).sum().backward()
    assert x.grad.dtype is torch.float64


def test_manual_seed_makes_rand_and_randn_reproducible():
    torch.manual_seed(3)
    a, b = torch.rand(2, 2), torch.randn(3)
    torch.manual_seed(3)
    np.testing.assert_array_equal(torch.rand(2, 2).numpy(), a.numpy())
    np.testing.assert_array_equal(torch.randn(3).numpy(), b.numpy())
    assert 0 <= a.numpy().min() and a.numpy().max() < 1


def test_leaves_grad_fn_and_is_leaf():
    x = torch.rand(2, 2, requires_grad=True)
    assert x.is_leaf and x.grad_fn is None and x.grad is None
    y = torch.sum(x * 3)
    assert not y.is_leaf and y.requires_grad
    assert re.fullmatch(r"<SumBackward0 object at 0x[0-9a-f]+>", repr(y.grad_fn))
    assert y.grad_fn.name() == "SumBackward0" and type(y.grad_fn).__name__ == "SumBackward0"
    assert y.grad_fn.next_functions[0][0].name() == "MulBackward0"
    names = {
        "AddBackward0": x + 1, "SubBackward0": x - x, "MulBackward0": x * x, "DivBackward0": x / 2,
        "PowBackward0": x.pow(2), "NegBackward0": -x, "MmBackward0": x @ x, "MeanBackward0": x.mean(),
        "ExpBackward0": torch.exp(x), "SigmoidBackward0": torch.sigmoid(x), "SelectBackward0": x[0],
        "ViewBackward0": x.reshape(4), "PermuteBackward0": x.T,
    }
    for name, t in names.items():
        assert t.grad_fn.name() == name
    assert torch.ones(2).requires_grad is False and (torch.ones(2) + 1).grad_fn is None


def test_requires_grad_flag_rules():
    x = torch.ones(2)
    assert x.requires_grad_() is x and x.requires_grad
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        (x * 2).requires_grad_(False)
    with pytest.raises(RuntimeError, match="Only Tensors of floating point and complex dtype can require gradients"):
        torch.tensor([1, 2], requires_grad=True)


def test_detach_data_item_numpy():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert repr(x.data) == "tensor([1., 2.])" and not x.data.requires_grad
    x.data.mul_(2)  # .data shares memory
    np.testing.assert_array_equal(x.detach().numpy(), [2.0, 4.0])
    assert torch.tensor(2.5).item() == 2.5 and isinstance(torch.tensor(2.5).item(), float)
    with pytest.raises(RuntimeError, match=re.escape("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")):
        x.numpy()
    assert not (x * 2).detach().requires_grad
    assert not torch.sigmoid((x * 2).detach()).requires_grad


# ---------------------------------------------------------------------------------------------
# backward, accumulation, retain_graph
# ---------------------------------------------------------------------------------------------


def test_backward_accumulates_and_zero_resets():
    x = torch.rand(2, 2, requires_grad=True)
    torch.sum(x * 3).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 3.0))
    torch.sum(x * 4).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 7.0))
    g = x.grad
    x.grad.zero_()
    torch.sum(x * 4).backward()
    assert x.grad is g  # accumulated in place, like PyTorch
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 4.0))


def test_backward_with_explicit_gradient_on_non_scalar_output():
    inp = torch.eye(3, requires_grad=True)
    out = (inp + 1).pow(2)
    out.backward(torch.ones_like(inp) * 0.5)
    np.testing.assert_array_equal(inp.grad.numpy(), (np.eye(3) + 1))


def test_second_backward_without_retain_graph_raises():
    x = torch.rand(2, 2, requires_grad=True)
    y = torch.sum(x * 3)
    y.backward()
    with pytest.raises(RuntimeError) as e:
        y.backward()
    assert str(e.value) == SECOND_BACKWARD
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 3.0))


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = torch.rand(2, 2, requires_grad=True)
    y = torch.sum(x * 3)
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 9.0))


def test_graph_without_saved_tensors_can_be_backwarded_twice_as_in_pytorch():
    x = torch.ones(3, requires_grad=True)
    y = (x + 1).sum()  # AddBackward0 and SumBackward0 save no tensors
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_error_non_scalar_backward_without_gradient():
    x = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError) as e:
        (x * 2).backward()
    assert str(e.value) == NOT_SCALAR


def test_error_backward_on_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError) as e:
        torch.ones(2).sum().backward()
    assert str(e.value) == NO_GRAD_FN
    with pytest.raises(RuntimeError) as e:
        torch.autograd.grad(torch.ones(2).sum(), torch.ones(2, requires_grad=True))
    assert str(e.value) == NO_GRAD_FN


def test_error_gradient_shape_mismatch():
    x = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=re.escape("Mismatch in shape: grad_output[0] has a shape of torch.Size([2]) and output[0] has a shape of torch.Size([3]).")):
        (x * 2).backward(torch.ones(2))


def test_error_inplace_on_leaf_and_modified_saved_tensor():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation."):
        w.add_(1)
    q = (w * w).sum()
    with torch.no_grad():
        w.add_(1)  # allowed (an optimizer step), but q's graph is now stale
    with pytest.raises(RuntimeError, match=re.escape("[torch.FloatTensor [3]] is at version 1; expected version 0")):
        q.backward()


def test_retain_grad_on_an_intermediate():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h**2).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), 18 * x.detach().numpy())


# ---------------------------------------------------------------------------------------------
# autograd.grad and higher derivatives
# ---------------------------------------------------------------------------------------------


def test_autograd_grad_returns_a_tuple_and_leaves_grad_alone():
    x = torch.rand(2, 2, requires_grad=True)
    y = torch.sum(x * 3)
    (g,) = result = torch.autograd.grad(y, x)
    assert isinstance(result, tuple) and x.grad is None and g.grad_fn is None and not g.requires_grad
    assert _normalized(repr(result)) == "(tensor([[3., 3.],\n        [3., 3.]]),)"


def test_autograd_grad_unused_inputs():
    x, z = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=re.escape("The differentiated Tensor at index 1 appears to not have been used in the graph. Set allow_unused=True if this is the desired behavior.")):
        torch.autograd.grad((x * 2).sum(), [x, z])
    gx, gz = torch.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None and gx.tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors does not require grad"):
        torch.autograd.grad((x * 2).sum(), torch.ones(3))


def test_autograd_grad_with_respect_to_an_intermediate():
    x = torch.tensor(3.0, requires_grad=True)
    h = x * x
    y = h * x  # dy/dh holding x fixed = x
    assert torch.autograd.grad(y, h)[0].item() == 3.0


def test_second_derivative_with_create_graph():
    x = torch.tensor(1.0, requires_grad=True)
    y = 2 * x**3 + 5 * x**2 + 8
    (first,) = torch.autograd.grad(y, x, retain_graph=True, create_graph=True)
    assert first.item() == 16.0 and first.requires_grad and first.grad_fn is not None
    second = torch.autograd.grad(first, x, create_graph=True)
    assert second[0].item() == 22.0
    assert torch.autograd.grad(second[0], x)[0].item() == 12.0  # third derivative
    assert repr(torch.autograd.grad((2 * x**3).sum(), x, create_graph=False)) == "(tensor(6.),)"


def test_create_graph_grad_fn_names_follow_pytorch():
    x = torch.tensor(2.0, requires_grad=True)
    y = 9 * x**4 + 2 * x**3 + 3 * x**2 + 6 * x + 1
    assert repr(torch.autograd.grad(y, x, create_graph=True)) == "(tensor(330., grad_fn=<AddBackward0>),)"
    x, z = torch.tensor(1.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    y = x**2 + z**3
    assert repr(torch.autograd.grad(y, x, create_graph=True)) == "(tensor(2., grad_fn=<MulBackward0>),)"
    assert repr(torch.autograd.grad(y, z, create_graph=True)) == "(tensor(12., grad_fn=<MulBackward0>),)"


def test_backward_with_create_graph_and_hessian_vector_product():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    v = torch.tensor([1.0, 0.0, 2.0])
    (hv,) = torch.autograd.grad((x.grad * v).sum(), x)
    np.testing.assert_allclose(hv.numpy(), 6 * np.array([1.0, 2.0, 3.0]) * v.numpy())


# ---------------------------------------------------------------------------------------------
# Grad modes
# ---------------------------------------------------------------------------------------------


def test_no_grad_context_manager():
    x = torch.randn(3, requires_grad=True)
    assert (x**2).requires_grad
    with torch.no_grad():
        assert not (x**2).requires_grad and not torch.is_grad_enabled()
        with torch.enable_grad():
            assert (x**2).requires_grad
    assert torch.is_grad_enabled()


def test_no_grad_as_decorator_and_set_grad_enabled():
    x = torch.ones(2, requires_grad=True)

    @torch.no_grad()
    def double(t):
        return t * 2

    @torch.no_grad
    def triple(t):
        return t * 3

    assert not double(x).requires_grad and not triple(x).requires_grad and (x * 2).requires_grad
    torch.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        torch.set_grad_enabled(True)
    with torch.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


# ---------------------------------------------------------------------------------------------
# nn.functional
# ---------------------------------------------------------------------------------------------


def test_nn_functional_both_import_paths():
    import symdiff.torchlike.nn.functional as F

    assert torch.nn.functional is F
    z = torch.tensor([0.5, -1.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, torch.tensor([1.0, 0.0]))
    assert re.fullmatch(r"<BinaryCrossEntropyWithLogitsBackward0 object at 0x[0-9a-f]+>", repr(loss.grad_fn))


def test_binary_cross_entropy_with_logits_is_stable_and_exact():
    z = torch.tensor([100.0, -100.0, 0.0, 3.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0, 0.5], dtype=torch.float64)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    zz, yy = z.detach().numpy(), y.numpy()
    ref = np.mean(np.logaddexp(0, zz) - zz * yy)
    assert abs(loss.item() - ref) < 1e-12 and np.isfinite(loss.item())
    (g,) = torch.autograd.grad(loss, z, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), (1 / (1 + np.exp(-zz)) - yy) / 4, rtol=1e-12, atol=1e-300)
    (h,) = torch.autograd.grad(g.sum(), z)
    s = 1 / (1 + np.exp(-zz))
    np.testing.assert_allclose(h.numpy(), s * (1 - s) / 4, rtol=1e-9, atol=1e-15)  # 1/16 at z = 0


def test_mse_loss():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = torch.nn.functional.mse_loss(a, torch.tensor([0.0, 0.0]))
    assert loss.item() == 2.5 and loss.grad_fn.name() == "MseLossBackward0"
    loss.backward()
    assert a.grad.tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------------------------------
# Built on the compiler
# ---------------------------------------------------------------------------------------------


def _logistic_step(seed):
    torch.manual_seed(seed)
    w = torch.randn(5, 3, requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(torch.ones(5) @ w, torch.zeros(3))
    loss.backward()
    return w.grad


def test_gradients_come_from_symdiff_vjp_and_compile_graph(fresh_engine, monkeypatch):
    calls = {"vjp": 0, "compile": 0}
    vjp, compile_graph = D.vjp, api.compile_graph

    def counting_vjp(*a, **k):
        calls["vjp"] += 1
        return vjp(*a, **k)

    def counting_compile(*a, **k):
        calls["compile"] += 1
        return compile_graph(*a, **k)

    monkeypatch.setattr(D, "vjp", counting_vjp)
    monkeypatch.setattr(api, "compile_graph", counting_compile)
    _logistic_step(0)
    assert calls == {"vjp": 1, "compile": 1}
    (fn, _, _), = fresh_engine._recorded.values()
    assert "def backward(" in fn.source and "import numpy as np" in fn.source


def test_gradient_is_compiled_once_per_graph_structure(fresh_engine):
    g0, g1 = _logistic_step(0), _logistic_step(1)
    assert fresh_engine.stats == {"derived": 1, "reused": 0, "fast": 1}  # the second skips the IR rebuild
    assert not np.allclose(g0.numpy(), g1.numpy())  # same structure, different values
    x = torch.ones(5, requires_grad=True)
    (x * 2).sum().backward()
    assert fresh_engine.stats["derived"] == 2


def test_without_symdiff_there_is_no_gradient(fresh_engine, monkeypatch):
    def broken(*a, **k):
        raise AssertionError("symdiff.differentiate.vjp was called")

    monkeypatch.setattr(D, "vjp", broken)
    with pytest.raises(AssertionError, match="vjp was called"):
        _logistic_step(0)


# ---------------------------------------------------------------------------------------------
# Against real PyTorch (skipped when it is not installed)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def real_torch_on_our_random_numbers(monkeypatch):
    """Real PyTorch whose manual_seed/rand/randn draw from torchlike's generator: same inputs."""
    real = pytest.importorskip("torch")

    def draw(fn):
        return lambda *size, requires_grad=False, **kw: real.tensor(fn(*size).numpy(), requires_grad=requires_grad)

    monkeypatch.setattr(real, "manual_seed", torch.manual_seed)
    monkeypatch.setattr(real, "rand", draw(torch.rand))
    monkeypatch.setattr(real, "randn", draw(torch.randn))
    return real


def test_documents_agree_with_real_pytorch(real_torch_on_our_random_numbers):
    notebook, scripts = _notebook()
    for script in scripts:
        ours = notebook.run(script.CELLS, show=False, references=False)
        theirs = notebook.run(script.CELLS, torch_module="torch", show=False, references=False)
        assert [r.label for r in ours] == [r.label for r in theirs]
        checked = 0
        for a, b in zip(ours, theirs):
            assert _normalized(a.output) == _normalized(b.output), a.label
            assert a.tensors.keys() == b.tensors.keys(), a.label
            for name, (value, grad, requires_grad) in a.tensors.items():
                value_b, grad_b, requires_grad_b = b.tensors[name]
                assert requires_grad == requires_grad_b, (a.label, name)
                np.testing.assert_allclose(value, value_b, rtol=0, atol=1e-6, err_msg=f"{a.label} {name}")
                assert (grad is None) == (grad_b is None), (a.label, name)
                if grad is not None:
                    np.testing.assert_allclose(grad, grad_b, rtol=0, atol=1e-6, err_msg=f"{a.label} {name}.grad")
                    checked += 1
        assert checked >= 3


OP_CASES = {
    "arithmetic": lambda T, a, b, m, v: (a + b * 2 - 1).sum() + (a / b + 2 / a).mean() + (-a * b).mean(),
    "pow": lambda T, a, b, m, v: (a**3 + 2**a + a**b).sum(),
    "matmul": lambda T, a, b, m, v: (a @ m).sum() + T.matmul(a, v).sum() + T.matmul(v, m).sum() + v @ v,
    "unary": lambda T, a, b, m, v: (
        T.exp(a) + T.log(a) + T.sin(a) + T.cos(a) + T.tanh(a) + T.sigmoid(a) + T.sqrt(a) + T.relu(a - 1) + T.abs(a - 1)
    ).sum(),
    "reductions": lambda T, a, b, m, v: a.sum(0).pow(2).sum() + a.sum(dim=1, keepdim=True).pow(2).sum() + a.mean(1).pow(2).sum(),
    "indexing": lambda T, a, b, m, v: (a[0] * 2).sum() + a[:, 1:3].pow(2).sum() + a[1, 2] + a[None, 0].sum(),
    "shapes": lambda T, a, b, m, v: (a.T @ b).sum() + a.reshape(2, 6)[1].pow(2).sum() + a.view(-1)[3]
    + a.unsqueeze(0).squeeze(0).sum() + a.transpose(0, 1)[0].sum() + a.t().sum() + a.permute(1, 0)[1, 1],
    "losses": lambda T, a, b, m, v: T.nn.functional.binary_cross_entropy_with_logits(a * 40 - 60, b / 2)
    + T.nn.functional.binary_cross_entropy_with_logits(a, b / 2, weight=b.detach(), reduction="sum")
    + T.nn.functional.mse_loss(a, b),
}


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_operations_first_and_second_derivatives_agree_with_real_pytorch(case):
    real = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    data = [rng.random((3, 4)) + 0.5, rng.random((3, 4)) + 0.5, rng.random((4, 2)), rng.random(4) + 0.2]
    results = []
    for T in (torch, real):
        args = [T.tensor(d, dtype=T.float64, requires_grad=True) for d in data]
        out = OP_CASES[case](T, *args)
        firsts = T.autograd.grad(out, args, create_graph=True, allow_unused=True)
        total = sum((g * g).sum() for g in firsts if g is not None and g.requires_grad)
        seconds = T.autograd.grad(total, args, allow_unused=True)
        results.append((out.item(), out.grad_fn.name(), [None if g is None else g.detach().numpy() for g in firsts],
                        [None if g is None else g.numpy() for g in seconds]))
    (v1, n1, f1, s1), (v2, n2, f2, s2) = results
    assert n1 == n2 and abs(v1 - v2) < 1e-9 * max(1.0, abs(v2))
    for x, y in zip(f1 + s1, f2 + s2):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)
