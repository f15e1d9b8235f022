"""Tensor constructors and the random number generator (``manual_seed``, ``rand``, ``randn``).

Random values come from numpy's PCG64, so they do not match PyTorch's for the same seed; the
sequence is deterministic for a given seed."""

from __future__ import annotations

import numpy as np

from . import dtypes
from .tensor import Tensor, _default_array, _require_float

DEFAULT_SEED = 67280421310721  # PyTorch's default seed: unseeded programs are deterministic too


class Generator:
    """What ``manual_seed`` returns: the global generator."""

    def __init__(self, seed: int = DEFAULT_SEED):
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self.rng = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def initial_seed(self) -> int:
        return self._seed


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    return default_generator.initial_seed()


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(d) for d in size)


def _float_dtype(dtype) -> np.dtype:
    return dtypes.default_numpy() if dtype is None else dtypes.to_numpy_dtype(dtype)


def _leaf(value: np.ndarray, requires_grad: bool) -> Tensor:
    if requires_grad:
        _require_float(value)
    return Tensor._make(value, requires_grad=requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (Python floats -> float32, ints -> int64)."""
    return _leaf(np.array(_default_array(data, dtype)), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor) and (dtype is None or data.dtype is dtype):
        return data
    return tensor(data, dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """Shares memory with ``array``, like PyTorch."""
    return Tensor._make(array)


def _filled(value, size, dtype, requires_grad) -> Tensor:
    return _leaf(np.full(_size(size), value, dtype=_float_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(1, size, dtype, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(0, size, dtype, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(fill_value, (size,), dtype, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _leaf(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    ints = all(isinstance(v, int) for v in (start, end, step))
    np_dtype = dtypes.to_numpy_dtype(dtype) if dtype is not None else (np.dtype(np.int64) if ints else dtypes.default_numpy())
    return _leaf(np.arange(start, end, step).astype(np_dtype), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    """PyTorch's formula, in the result dtype: the first half counts up from ``start``, the second
    half down from ``end`` (so the ends are exact and the values match PyTorch bit for bit)."""
    dt = _float_dtype(dtype)
    if steps == 1:
        return _leaf(np.array([start], dtype=dt), requires_grad)
    step = float(dt.type((end - start) / (steps - 1)))  # rounded to the dtype, then fused like PyTorch's kernel
    i = np.arange(steps)
    first = float(dt.type(start)) + step * i
    second = float(dt.type(end)) - step * (steps - 1 - i)
    return _leaf(np.where(i < steps // 2, first, second).astype(dt), requires_grad)


def _like(fn, input: Tensor, dtype, requires_grad) -> Tensor:
    return fn(*input.shape, dtype=dtype if dtype is not None else input.dtype, requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(ones, input, dtype, requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(zeros, input, dtype, requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return full(tuple(input.shape), fill_value, dtype=dtype if dtype is not None else input.dtype,
                requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(zeros, input, dtype, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1)."""
    rng = (generator or default_generator).rng
    return _leaf(rng.random(_size(size)).astype(_float_dtype(dtype)), requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal."""
    rng = (generator or default_generator).rng
    return _leaf(rng.standard_normal(_size(size)).astype(_float_dtype(dtype)), requires_grad)


def rand_like(input, dtype=None, requires_grad=False) -> Tensor:
    return _like(rand, input, dtype, requires_grad)


def randn_like(input, dtype=None, requires_grad=False) -> Tensor:
    return _like(randn, input, dtype, requires_grad)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Integers uniform on [low, high) (int64 by default); ``randint(high, size)`` starts at 0."""
    if size is None:
        low, high, size = 0, low, high
    rng = (generator or default_generator).rng
    np_dtype = np.dtype(np.int64) if dtype is None else dtypes.to_numpy_dtype(dtype)
    return _leaf(rng.integers(low, high, _size((size,))).astype(np_dtype), requires_grad)


def randperm(n, *, generator=None, dtype=None, device=None) -> Tensor:
    rng = (generator or default_generator).rng
    return Tensor._make(rng.permutation(n).astype(np.int64 if dtype is None else dtypes.to_numpy_dtype(dtype)))


def _uniform_(self, a=0.0, b=1.0, *, generator=None):
    rng = (generator or default_generator).rng
    return self._inplace(lambda x, _: rng.uniform(a, b, x.shape))


def _normal_(self, mean=0.0, std=1.0, *, generator=None):
    rng = (generator or default_generator).rng
    return self._inplace(lambda x, _: rng.normal(mean, std, x.shape))


Tensor.uniform_ = _uniform_
Tensor.normal_ = _normal_
