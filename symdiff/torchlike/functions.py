"""The tensor functions tutorials use beyond arithmetic: joining (``cat``, ``stack``, ``where``),
clamping and extrema (``clamp``, ``maximum``, ``max`` with indices), reductions (``norm``, ``var``,
``std``, ``logsumexp``), ``softmax``/``log_softmax``, ``einsum`` and a few elementwise functions.

Like ``ops.py``, each is one numpy expression recorded as-is; symdiff derives it. Where PyTorch's
gradient is a choice rather than calculus (``max(dim)`` sends it to the returned index, ``clamp``
passes it at the bounds) the expression makes the same choice explicitly. Data that is not
differentiated (indices, masks, the shift of a stable softmax) is passed as a tensor operand, so
it is an argument of the compiled gradient and never baked into it.
"""

from __future__ import annotations

import builtins
import collections

import numpy as np

from .ops import _axis, _unary

builtins_min = builtins.min  # ``min`` is torch.min below
from .tensor import Tensor, apply, as_tensor_operand, no_record, to_tensor

log1p = _unary("Log1PBackward0", np.log1p)
expm1 = _unary("Expm1Backward0", np.expm1)
tan = _unary("TanBackward0", np.tan)
sinh = _unary("SinhBackward0", np.sinh)
cosh = _unary("CoshBackward0", np.cosh)
log2 = _unary("Log2Backward0", np.log2)
log10 = _unary("Log10Backward0", np.log10)
reciprocal = _unary("ReciprocalBackward0", lambda a: 1 / a)
rsqrt = _unary("RsqrtBackward0", lambda a: 1 / np.sqrt(a))


def atan2(input, other):
    a, b = to_tensor(input), to_tensor(other)
    return apply("Atan2Backward0", np.arctan2, [a, b])


arctan2 = atan2


def _tensors(tensors):
    tensors = [to_tensor(t) for t in tensors]
    if not tensors:
        raise RuntimeError("expected a non-empty list of Tensors")
    return tensors


def cat(tensors, dim=0):
    """``torch.cat``: operands of mixed dtypes are promoted like arithmetic."""
    tensors = _tensors(tensors)
    return apply("CatBackward0", lambda *a: np.concatenate(a, axis=dim), tensors, saves=False)


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = _tensors(tensors)
    return apply("StackBackward0", lambda *a: np.stack(a, axis=dim), tensors, saves=False)


def where(condition, input=None, other=None):
    """``torch.where(cond, x, y)``; ``torch.where(cond)`` gives the index tensors of the true entries."""
    cond = to_tensor(condition)
    if input is None and other is None:
        return tuple(Tensor._make(i) for i in np.nonzero(cond._value))
    x, y = as_tensor_operand(input), as_tensor_operand(other)
    operands = [t for t in (x, y) if isinstance(t, Tensor)]
    # closures hold numbers and flags, never tensors: tensor values are operands (see structure.py)
    sides = tuple("operand" if isinstance(t, Tensor) else t for t in (x, y))

    def fn(c, *rest):
        rest = list(rest)
        a, b = (rest.pop(0) if isinstance(k, str) else k for k in sides)
        return np.where(c, a, b)

    return apply("WhereBackward0", fn, [cond.bool() if cond.dtype.name != "bool" else cond] + operands)


def clamp(input, min=None, max=None):
    """Gradient 1 where ``min <= x <= max`` (bounds included) and 0 outside, as in PyTorch."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    lo, hi = (None if b is None else as_tensor_operand(b) for b in (min, max))
    bounds = [t for t in (lo, hi) if isinstance(t, Tensor)]
    # which bound is given, and how: "operand" (a tensor, read from the operands) or the number itself
    kinds = tuple(None if t is None else "operand" if isinstance(t, Tensor) else t for t in (lo, hi))

    def fn(a, *rest):
        rest = list(rest)
        low, high = (rest.pop(0) if isinstance(k, str) else k for k in kinds)
        out = a
        if low is not None:
            out = np.where(a < low, low, out)
        if high is not None:
            out = np.where(a > high, high, out)
        return out

    return apply("ClampBackward1", fn, [input] + bounds)


clip = clamp


def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


def _tie_split(pick):
    """``maximum``/``minimum`` with PyTorch's gradient: half to each side where they are equal."""

    def fn(a, b):
        return np.where(a == b, (a + b) / 2, pick(a, b))

    return fn


def maximum(input, other):
    return apply("MaximumBackward0", _tie_split(lambda a, b: np.where(a > b, a, b)), [to_tensor(input), to_tensor(other)])


def minimum(input, other):
    return apply("MinimumBackward0", _tie_split(lambda a, b: np.where(a < b, a, b)), [to_tensor(input), to_tensor(other)])


_values_indices = collections.namedtuple("return_types", ["values", "indices"])


def _extremum(name, reduce, arg, pick):
    def op(input, dim=None, keepdim=False, *, out=None):
        if isinstance(dim, Tensor):  # torch.max(a, b): elementwise
            return pick(input, dim)
        if dim is None:  # all ties share the gradient equally, as in PyTorch
            return apply(f"{name}Backward1", reduce, [input])
        idx = np.expand_dims(arg(input._value, axis=dim), dim)
        index = Tensor._make(idx.astype(np.int64))
        values = apply(
            f"{name}Backward0",
            lambda a, i: np.take_along_axis(a, i, axis=dim) if keepdim else np.squeeze(np.take_along_axis(a, i, axis=dim), dim),
            [input, index],
        )
        return _values_indices(values, index if keepdim else Tensor._make(np.squeeze(idx, dim).astype(np.int64)))

    op.__name__ = name.lower()
    return op


max = _extremum("Max", np.max, np.argmax, maximum)
min = _extremum("Min", np.min, np.argmin, minimum)


def amax(input, dim=None, keepdim=False):
    return apply("AmaxBackward0", lambda a: np.max(a, axis=_axis(dim), keepdims=keepdim), [input])


def amin(input, dim=None, keepdim=False):
    return apply("AminBackward0", lambda a: np.min(a, axis=_axis(dim), keepdims=keepdim), [input])


def argmax(input, dim=None, keepdim=False):
    if dim is None:
        return Tensor._make(np.array(np.argmax(input._value), dtype=np.int64))
    return no_record(lambda a: np.argmax(a, axis=dim, keepdims=keepdim).astype(np.int64), [input.detach()])


def argmin(input, dim=None, keepdim=False):
    if dim is None:
        return Tensor._make(np.array(np.argmin(input._value), dtype=np.int64))
    return no_record(lambda a: np.argmin(a, axis=dim, keepdims=keepdim).astype(np.int64), [input.detach()])


def _correction(correction, unbiased):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``correction`` (or ``unbiased``): the divisor is ``N - correction``, 1 by default."""
    if isinstance(dim, bool):  # torch.var(x, False): the old positional ``unbiased``
        dim, unbiased = None, dim
    ddof = _correction(correction, unbiased)
    return apply("VarBackward0", lambda a: np.var(a, axis=_axis(dim), ddof=ddof, keepdims=keepdim), [input])


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    ddof = _correction(correction, unbiased)
    return apply("StdBackward0", lambda a: np.sqrt(np.var(a, axis=_axis(dim), ddof=ddof, keepdims=keepdim)), [input])


def _shift(input, dim):
    """The per-slice maximum as a constant operand: ``exp(x - m)`` cannot overflow and ``m``
    carries no gradient (it cancels mathematically)."""
    with np.errstate(all="ignore"):
        m = np.max(input._value, axis=dim, keepdims=True)
    return Tensor._make(np.where(np.isfinite(m), m, 0).astype(input._value.dtype))


def logsumexp(input, dim, keepdim=False):
    axis = _axis(dim)

    def fn(a, m):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
        return out if keepdim else np.squeeze(out, axis)

    return apply("LogsumexpBackward0", fn, [input, _shift(input, axis)])


def _softmax_dim(input, dim):
    if dim is None:  # PyTorch's legacy implicit choice
        return 0 if input.dim() in (0, 1, 3) else 1
    return dim


def softmax(input, dim=None, dtype=None):
    input = input if dtype is None else input.to(dtype)
    dim = _softmax_dim(input, dim)

    def fn(a, m):
        e = np.exp(a - m)
        return e / np.sum(e, axis=dim, keepdims=True)

    return apply("SoftmaxBackward0", fn, [input, _shift(input, dim)])


def log_softmax(input, dim=None, dtype=None):
    input = input if dtype is None else input.to(dtype)
    dim = _softmax_dim(input, dim)

    def fn(a, m):
        return a - m - np.log(np.sum(np.exp(a - m), axis=dim, keepdims=True))

    return apply("LogSoftmaxBackward0", fn, [input, _shift(input, dim)])


def _safe_sqrt(s):
    """sqrt whose gradient is 0 at 0, PyTorch's choice for the norm of a zero vector (not 0/0)."""
    positive = s > 0
    return np.where(positive, np.sqrt(np.where(positive, s, 1)), 0)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """``torch.norm``: p = 2/'fro' (default), 1, inf, -inf or any other real p."""
    axis = _axis(dim)
    if p in ("fro", 2, 2.0):
        return apply("NormBackward1", lambda a: _safe_sqrt(np.sum(a * a, axis=axis, keepdims=keepdim)), [input])
    if p in (np.inf, float("inf")):
        return apply("NormBackward1", lambda a: np.max(np.abs(a), axis=axis, keepdims=keepdim), [input])
    if p in (-np.inf, float("-inf")):
        return apply("NormBackward1", lambda a: np.min(np.abs(a), axis=axis, keepdims=keepdim), [input])
    if p == 1:
        return apply("NormBackward1", lambda a: np.sum(np.abs(a), axis=axis, keepdims=keepdim), [input])
    if isinstance(p, str):
        raise RuntimeError(f"symdiff.torchlike: norm with p={p!r} is not supported; use p='fro', 1, 2 or inf")
    return apply("NormBackward1", lambda a: np.sum(np.abs(a) ** p, axis=axis, keepdims=keepdim) ** (1 / p), [input])


def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    return apply("EinsumBackward0", lambda *a: np.einsum(equation, *a), [to_tensor(t) for t in operands])


def sign(input):
    return apply("SignBackward0", np.sign, [input])


def outer(input, vec2):
    return apply("OuterBackward0", np.outer, [input, vec2])


def prod(input, dim=None, keepdim=False):
    return apply("ProdBackward0", lambda a: np.prod(a, axis=_axis(dim), keepdims=keepdim), [input])


def cumsum(input, dim):
    return apply("CumsumBackward0", lambda a: np.cumsum(a, axis=dim), [input])


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(np.allclose(input._value, to_tensor(other)._value, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return Tensor._make(np.isclose(input._value, to_tensor(other)._value, rtol=rtol, atol=atol, equal_nan=equal_nan))


def numel(input):
    return input.numel()



def expand(input, *sizes):
    sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    lead = len(sizes) - input.dim()
    shape = tuple(s if s != -1 else input.shape[i - lead] for i, s in enumerate(sizes))
    return apply("ExpandBackward0", lambda a: np.broadcast_to(a, shape), [input], saves=False)


def repeat(input, *sizes):
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    return apply("RepeatBackward0", lambda a: np.tile(a, sizes), [input], saves=False)


def split(tensor, split_size_or_sections, dim=0):
    """Pieces of ``split_size`` along ``dim`` (the last may be shorter), or of the given sizes."""
    n = tensor.shape[dim]
    sizes = (split_size_or_sections if isinstance(split_size_or_sections, (list, tuple))
             else [split_size_or_sections] * (-(-n // split_size_or_sections)))
    pieces, start = [], 0
    for k in sizes:
        stop = builtins_min(start + k, n)
        key = (slice(None),) * (dim % tensor.dim()) + (slice(start, stop),)
        pieces.append(tensor[key])
        start = stop
    return tuple(pieces)


def chunk(input, chunks, dim=0):
    return split(input, -(-input.shape[dim] // chunks), dim)


def gather(input, dim, index):
    """``out[i][j] = input[index[i][j]][j]`` (dim 0) and so on; ``index`` is an operand."""
    return apply("GatherBackward0", lambda a, i: np.take_along_axis(a, i, axis=dim), [input, to_tensor(index)])


def index_select(input, dim, index):
    idx = to_tensor(index)
    return apply("IndexSelectBackward0", lambda a, i: np.take(a, i, axis=dim), [input, idx])


def masked_fill(input, mask, value):
    return where(to_tensor(mask), value, input)


_METHODS = {
    "log1p": log1p, "expm1": expm1, "tan": tan, "sinh": sinh, "cosh": cosh, "log2": log2, "log10": log10,
    "reciprocal": reciprocal, "rsqrt": rsqrt, "atan2": atan2, "clamp": clamp, "clip": clamp, "clamp_min": clamp_min,
    "clamp_max": clamp_max, "maximum": maximum, "minimum": minimum, "max": max, "min": min, "amax": amax,
    "amin": amin, "argmax": argmax, "argmin": argmin, "var": var, "std": std, "logsumexp": logsumexp,
    "softmax": softmax, "log_softmax": log_softmax, "norm": norm, "sign": sign, "prod": prod, "cumsum": cumsum,
    "outer": outer, "expand": expand, "repeat": repeat, "masked_fill": masked_fill,
    "expand_as": lambda self, other: expand(self, tuple(other.shape)),
    "view_as": lambda self, other: self.reshape(tuple(other.shape)),
    "reshape_as": lambda self, other: self.reshape(tuple(other.shape)),
    "where": lambda self, condition, other: where(condition, self, other),
    "allclose": allclose, "isclose": isclose, "split": split, "chunk": chunk, "gather": gather,
    "index_select": index_select,
}
for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
