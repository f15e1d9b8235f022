"""PyTorch's dtype objects and ``torch.Size``, backed by numpy dtypes."""

from __future__ import annotations

import numpy as np


class dtype:
    """A tensor element type: prints as ``torch.float32`` and maps to a numpy dtype."""

    __slots__ = ("legacy", "name", "numpy")

    def __init__(self, name: str, numpy_dtype, legacy: str):
        self.name, self.numpy, self.legacy = name, np.dtype(numpy_dtype), legacy

    @property
    def is_floating_point(self) -> bool:
        return self.numpy.kind == "f"

    def __repr__(self) -> str:
        return f"torch.{self.name}"

    def __reduce__(self):
        return (from_numpy_dtype, (self.numpy.str,))


float32 = dtype("float32", np.float32, "FloatTensor")
float64 = dtype("float64", np.float64, "DoubleTensor")
int64 = dtype("int64", np.int64, "LongTensor")
int32 = dtype("int32", np.int32, "IntTensor")
bool_ = dtype("bool", np.bool_, "BoolTensor")
float = float32
double = float64
long = int64
int = int32

_BY_NUMPY = {d.numpy: d for d in (float32, float64, int64, int32, bool_)}


def from_numpy_dtype(np_dtype) -> dtype:
    np_dtype = np.dtype(np_dtype)
    found = _BY_NUMPY.get(np_dtype)
    if found is None:
        raise TypeError(f"symdiff.torchlike does not support numpy dtype {np_dtype}")
    return found


def to_numpy_dtype(d) -> np.dtype:
    """Accept torch-like dtypes, numpy dtypes and Python types."""
    if isinstance(d, dtype):
        return d.numpy
    return from_numpy_dtype(d).numpy


class Size(tuple):
    """``torch.Size``: a tuple of ints that prints as ``torch.Size([2, 2])``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"

    __str__ = __repr__

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))
