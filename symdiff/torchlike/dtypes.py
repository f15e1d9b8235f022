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


_default = [float32]


def get_default_dtype() -> dtype:
    """The dtype of Python floats and of float constructors (``torch.get_default_dtype``)."""
    return _default[0]


def set_default_dtype(d) -> None:
    """``torch.set_default_dtype``: float32 or float64."""
    d = d if isinstance(d, dtype) else from_numpy_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default[0] = d


def default_numpy() -> np.dtype:
    return _default[0].numpy


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def _strongest(dts):
    """(category, promoted dtype) of numpy dtypes: bool < integer < floating."""
    if not dts:
        return -1, None
    cat = max(_CATEGORY[d.kind] for d in dts)
    best = None
    for d in dts:
        if _CATEGORY[d.kind] == cat:
            best = d if best is None else np.promote_types(best, d)
    return cat, best


def promote(tensor_dtypes, zero_dim, result_kind: str) -> np.dtype:
    """PyTorch's result type: dimensioned tensors win over 0-d tensors of the same category,
    0-d tensors over Python scalars; a category only Python scalars reached (the numpy result's
    kind ``result_kind`` is higher) gives the default float dtype or int64."""
    dims = [d for d, z in zip(tensor_dtypes, zero_dim) if not z]
    zeros = [d for d, z in zip(tensor_dtypes, zero_dim) if z]
    cd, dd = _strongest(dims)
    cz, dz = _strongest(zeros)
    cat, dt = (cd, dd) if cd >= cz else (cz, dz)
    want = _CATEGORY.get(result_kind, 0)
    if want > cat:
        return default_numpy() if want == 2 else np.dtype(np.int64)
    if want < cat:  # comparisons and the like: numpy's own kind
        return {0: np.dtype(np.bool_), 1: np.dtype(np.int64)}[want]
    return dt


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
