"""symdiff.torchlike dtypes: casts change the dtype and promotion follows PyTorch 2.13's rules,
checked case by case against real PyTorch."""

import numpy as np
import pytest

import symdiff.torchlike as torch

# each case builds its operands from the module T (ours or real torch)
CASES = {
    "f32+f64": lambda T: T.ones(2) + T.ones(2, dtype=T.float64),
    "f64+f32": lambda T: T.ones(2, dtype=T.float64) * T.ones(2),
    "i64+float": lambda T: T.arange(3) + 0.5,
    "i64*int": lambda T: T.arange(3) * 2,
    "i32+i64": lambda T: T.arange(3, dtype=T.int32) + T.arange(3),
    "i32+int": lambda T: T.arange(3, dtype=T.int32) + 7,
    "f32+float": lambda T: T.ones(2) + 0.1,
    "f64+float": lambda T: T.ones(2, dtype=T.float64) + 0.1,
    "i64/i64": lambda T: T.arange(1, 4) / T.arange(1, 4),
    "i64+f32": lambda T: T.arange(3) + T.ones(3),
    "f32+0d f64": lambda T: T.ones(2) + T.tensor(1.0, dtype=T.float64),
    "i64+0d f64": lambda T: T.arange(2) + T.tensor(1.0, dtype=T.float64),
    "0d f32+0d f64": lambda T: T.tensor(1.0) + T.tensor(1.0, dtype=T.float64),
    "i64+0d i32": lambda T: T.arange(2) + T.tensor(1, dtype=T.int32),
    "i32+0d i64": lambda T: T.arange(2, dtype=T.int32) + T.tensor(1),
    "bool+bool": lambda T: T.tensor([True, False]) + T.tensor([True, True]),
    "bool+int": lambda T: T.tensor([True, False]) + 1,
    "bool+float": lambda T: T.tensor([True, False]) * 1.5,
    "bool.sum": lambda T: T.tensor([True, False]).sum(),
    "compare": lambda T: T.ones(2) < 2,
    "x.double()": lambda T: T.ones(2).double(),
    "x.float()": lambda T: T.ones(2, dtype=T.float64).float(),
    "x.to(float64)": lambda T: T.ones(2).to(T.float64),
    "x.to(cpu, float64)": lambda T: T.ones(2).to("cpu", T.float64),
    "x.to(other)": lambda T: T.ones(2).to(T.ones(1, dtype=T.float64)),
    "x.to(dtype=)": lambda T: T.ones(2).to(dtype=T.float64),
    "int.double()": lambda T: T.arange(2).double(),
    "float.long()": lambda T: T.tensor([1.7, -2.5]).long(),
    "x.int()": lambda T: T.tensor([1.7, -2.5]).int(),
    "x.bool()": lambda T: T.tensor([1.7, 0.0]).bool(),
    "tensor(float list)": lambda T: T.tensor([1.5, 2.0]),
    "tensor(np f64)": lambda T: T.tensor(np.ones(2)),
    "float ** int tensor": lambda T: 2.0 ** T.arange(3),
    "int tensor ** float": lambda T: T.arange(3) ** 0.5,
    "where mixed": lambda T: T.where(T.tensor([True, False]), T.ones(2), T.zeros(2, dtype=T.float64)),
    "cat mixed": lambda T: T.cat([T.ones(2), T.zeros(2, dtype=T.float64)]),
    "arange float": lambda T: T.arange(0, 1, 0.25),
    "linspace": lambda T: T.linspace(0, 1, 5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_result_dtype_and_value_match_pytorch(case):
    real = pytest.importorskip("torch")
    ours, theirs = CASES[case](torch), CASES[case](real)
    assert str(ours.dtype) == str(theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_result_dtype_with_default_float64(case):
    real = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    real.set_default_dtype(real.float64)
    try:
        ours, theirs = CASES[case](torch), CASES[case](real)
        assert str(ours.dtype) == str(theirs.dtype)
        assert torch.get_default_dtype() is torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
        real.set_default_dtype(real.float32)


def test_casts_change_the_dtype_and_gradients_flow_back_in_the_leaf_dtype():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype is torch.float64 and y.grad_fn.name() == "ToCopyBackward0"
    (y * 1e-20 + 1).sum().backward()
    assert x.grad.dtype is torch.float32
    assert x.to(torch.float32) is x


def test_default_dtype_rejects_integers_and_changes_printing():
    with pytest.raises(TypeError, match="floating"):
        torch.set_default_dtype(torch.int64)
    torch.set_default_dtype(torch.float64)
    try:
        assert repr(torch.tensor([1.5])) == "tensor([1.5000])"
        assert repr(torch.tensor([1.5], dtype=torch.float32)) == "tensor([1.5000], dtype=torch.float32)"
    finally:
        torch.set_default_dtype(torch.float32)
