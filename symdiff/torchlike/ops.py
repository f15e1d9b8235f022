"""Tensor operations. Each is one numpy expression: it runs on arrays for the eager value and on
``symdiff.trace.Tracer`` objects when ``backward`` rebuilds the graph as IR, so value and
derivative come from the same definition. Names of the recorded ``grad_fn`` follow PyTorch."""

from __future__ import annotations

import builtins
import numbers

import numpy as np

from .. import ir
from ..primitives import Sigmoid
from ..trace import Tracer
from .tensor import Tensor, apply, as_tensor_operand, no_record


# -- binary arithmetic ---------------------------------------------------------------------------
def _binary(names, fn, a, b, saves=True):
    """``fn(a, b)`` where either side may be a Python number (closed over: it becomes a constant of
    the elementwise body). ``names``: grad_fn name for (tensor, tensor), (tensor, number), (number, tensor)."""
    a, b = (int(v) if isinstance(v, bool) else v for v in (as_tensor_operand(a), as_tensor_operand(b)))
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return apply(names[0], fn, [a, b], saves)
    if isinstance(a, Tensor):
        return apply(names[1], lambda x: fn(x, b), [a], saves)
    return apply(names[2], lambda y: fn(a, y), [b], saves)


def add(input, other, alpha=1):
    if alpha != 1:
        other = mul(other, alpha)
    return _binary(("AddBackward0",) * 3, np.add, input, other, saves=False)


def sub(input, other, alpha=1):
    if builtins.any(isinstance(v, bool) or (isinstance(v, Tensor) and v.dtype.name == "bool") for v in (input, other)):
        raise RuntimeError(_BOOL_SUB)
    if alpha != 1:
        other = mul(other, alpha)
    return _binary(("SubBackward0", "SubBackward0", "RsubBackward1"), np.subtract, input, other, saves=False)


_BOOL_SUB = ("Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to invert a "
             "mask, use the `~` or `logical_not()` operator instead.")


def mul(input, other):
    return _binary(("MulBackward0",) * 3, np.multiply, input, other)


def div(input, other):
    return _binary(("DivBackward0", "DivBackward0", "MulBackward0"), np.true_divide, input, other)


def pow(input, exponent):
    return _binary(("PowBackward1", "PowBackward0", "PowBackward2"), np.power, input, exponent)


def remainder(input, other):
    """Python's sign convention (the result has the divisor's sign), as np.mod and PyTorch."""
    return _binary(("RemainderBackward0", "RemainderBackward0", "RemainderBackward1"), np.mod, input, other)


def floor_divide(input, other):
    return _binary(("FloorDivideBackward0",) * 3, np.floor_divide, input, other)


def _logical(fn):
    def op(input, other=None):
        if other is None:
            return no_record(fn, [input])
        return no_record(fn, [input, as_tensor(other)])

    return op


def as_tensor(x):
    from .tensor import to_tensor

    return to_tensor(x)


logical_and, logical_or, logical_xor = (_logical(f) for f in (np.logical_and, np.logical_or, np.logical_xor))
logical_not = _logical(np.logical_not)


def _bitwise(fn):
    """``&``, ``|``, ``^`` on bool or integer tensors (no gradient)."""
    return lambda a, b: no_record(fn, [a, as_tensor(b)])


def neg(input):
    return apply("NegBackward0", np.negative, [input], saves=False)


def matmul(input, other):
    a, b = as_tensor_operand(input), as_tensor_operand(other)
    kinds = {(1, 1): "DotBackward0", (2, 1): "MvBackward0", (1, 2): "SqueezeBackward4", (2, 2): "MmBackward0"}
    return apply(kinds.get((a.dim(), b.dim()), "UnsafeViewBackward0"), np.matmul, [a, b])


def mm(input, mat2):
    return matmul(input, mat2)


def dot(input, other):
    return matmul(input, other)


# -- elementwise functions -----------------------------------------------------------------------
def _sigmoid(a):
    if isinstance(a, Tracer):
        return Tracer(ir.elementwise(Sigmoid(ir.placeholder(0)), (a.node,)))
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _relu(a):
    return np.where(a > 0, a, 0)  # derivative 0 at 0, as in PyTorch


def _unary(name, fn, saves=True):
    def op(input):
        return apply(name, fn, [input], saves)

    op.__name__ = name[: name.index("Backward")].lower()
    return op


exp = _unary("ExpBackward0", np.exp)
log = _unary("LogBackward0", np.log)
sin = _unary("SinBackward0", np.sin)
cos = _unary("CosBackward0", np.cos)
tanh = _unary("TanhBackward0", np.tanh)
sqrt = _unary("SqrtBackward0", np.sqrt)
abs = _unary("AbsBackward0", np.abs)
sigmoid = _unary("SigmoidBackward0", _sigmoid)
relu = _unary("ReluBackward0", _relu)


def square(input):
    return pow(input, 2)


# -- reductions -----------------------------------------------------------------------------------
def _axis(dim):
    if dim is None:
        return None
    return tuple(dim) if isinstance(dim, (list, tuple)) else int(dim)


def sum(input, dim=None, keepdim=False, dtype=None):
    axis = _axis(dim)
    name = "SumBackward0" if axis is None else "SumBackward1"
    out = apply(name, lambda a: np.sum(a, axis=axis, keepdims=keepdim), [input], saves=False)
    return out if dtype is None else out.to(dtype)


def mean(input, dim=None, keepdim=False, dtype=None):
    if not input.is_floating_point() and dtype is None:
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {input.dtype.legacy[:-6]}"
        )
    axis = _axis(dim)
    name = "MeanBackward0" if axis is None else "MeanBackward1"
    return apply(name, lambda a: np.mean(a, axis=axis, keepdims=keepdim), [input], saves=False)


# -- shapes ---------------------------------------------------------------------------------------
def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(input, *shape):
    shape = _shape_arg(shape)
    return apply("ViewBackward0", lambda a: np.reshape(a, shape), [input], saves=False)


def view(input, *shape):
    return reshape(input, *shape)


def flatten(input, start_dim=0, end_dim=-1):
    s = input.shape
    if not s:
        return reshape(input, 1)
    start, end = start_dim % len(s), end_dim % len(s)
    return reshape(input, *s[:start], -1, *s[end + 1 :])


def unsqueeze(input, dim):
    s = list(input.shape)
    s.insert(dim % (len(s) + 1), 1)
    return apply("UnsqueezeBackward0", lambda a: np.reshape(a, tuple(s)), [input], saves=False)


def squeeze(input, dim=None):
    s = input.shape
    if dim is None:
        new = tuple(d for d in s if d != 1)
    else:
        dim = dim % builtins.max(len(s), 1)
        new = tuple(d for i, d in enumerate(s) if i != dim or d != 1)
    name = "SqueezeBackward0" if dim is None else "SqueezeBackward1"
    return apply(name, lambda a: np.reshape(a, new), [input], saves=False)


def permute(input, *dims):
    dims = _shape_arg(dims)
    return apply("PermuteBackward0", lambda a: np.transpose(a, dims), [input], saves=False)


def transpose(input, dim0, dim1):
    return apply("TransposeBackward0", lambda a: np.swapaxes(a, dim0, dim1), [input], saves=False)


def t(input):
    if input.dim() > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.dim()}D")
    return apply("TBackward0", np.transpose, [input], saves=False)


def clone(input):
    return apply("CloneBackward0", lambda a: a, [input], saves=False)


def _advanced(input, parts):
    """Indexing with integer tensors or lists (operands of the recorded expression: the positions
    are data of the compiled gradient) and boolean masks (constants: they decide the shape)."""
    operands, layout = [input], []
    for k in parts:
        if isinstance(k, (Tensor, list, np.ndarray)):
            arr = k._value if isinstance(k, Tensor) else np.asarray(k)
            if arr.dtype.kind == "b":  # a copy: the mask tensor may change in place before backward
                layout.append(("const", arr.copy() if isinstance(k, Tensor) else arr))
            elif arr.dtype.kind in "iu" or arr.size == 0:
                layout.append(("operand", len(operands)))
                operands.append(Tensor._make(arr.astype(np.int64)))
            else:
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        else:
            layout.append(("const", k))

    def fn(a, *idx):
        key = tuple(idx[v - 1] if kind == "operand" else v for kind, v in layout)
        return a[key]

    return apply("IndexBackward0", fn, operands)


def getitem(input, key):
    parts = key if isinstance(key, tuple) else (key,)
    if builtins.any(isinstance(k, (Tensor, list, np.ndarray)) for k in parts):
        return _advanced(input, parts)
    plain = key
    if builtins.any(isinstance(k, numbers.Integral) for k in parts):
        name = "SelectBackward0"
    elif builtins.any(k is None for k in parts):
        name = "UnsqueezeBackward0"
    else:
        name = "SliceBackward0"
    return apply(name, lambda a: a[plain], [input], saves=False)


# -- comparisons (no derivative) -----------------------------------------------------------------
def _compare(fn):
    def op(input, other):
        other = as_tensor_operand(other)
        if isinstance(other, Tensor):
            return no_record(fn, [input, other])
        return no_record(lambda a: fn(a, other), [input])

    return op


eq, ne, lt, le, gt, ge = (_compare(f) for f in (np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal))


def to(input, *args, dtype=None, **kwargs):
    """``x.to(dtype)``, ``x.to(device[, dtype])``, ``x.to(other_tensor)``: a cast, recorded so that
    gradients flow back (``ToCopyBackward0``), except to integers. Devices other than cpu are refused."""
    from . import dtypes

    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, (dtypes.dtype, np.dtype, type)):
            dtype = a
        elif str(a) not in ("cpu", "cpu:0"):
            raise RuntimeError(f"symdiff.torchlike runs on the cpu only; cannot move a tensor to {a!r}")
    if dtype is None:
        return input
    target = dtypes.to_numpy_dtype(dtype)
    if input._value.dtype == target:
        return input
    return apply("ToCopyBackward0", lambda a: a.astype(target), [input], saves=False, dtype=target)


# -- Tensor methods -------------------------------------------------------------------------------
def _reflected(fn):
    return lambda self, other: fn(other, self)


_METHODS = {
    "__add__": add, "__radd__": _reflected(add), "__sub__": sub, "__rsub__": _reflected(sub),
    "__mul__": mul, "__rmul__": _reflected(mul), "__truediv__": div, "__rtruediv__": _reflected(div),
    "__pow__": pow, "__rpow__": _reflected(pow), "__matmul__": matmul, "__rmatmul__": _reflected(matmul),
    "__mod__": remainder, "__rmod__": _reflected(remainder), "__floordiv__": floor_divide,
    "__rfloordiv__": _reflected(floor_divide), "remainder": remainder, "floor_divide": floor_divide,
    "__and__": _bitwise(np.bitwise_and), "__or__": _bitwise(np.bitwise_or), "__xor__": _bitwise(np.bitwise_xor),
    "__rand__": _bitwise(np.bitwise_and), "__ror__": _bitwise(np.bitwise_or),
    "__invert__": lambda self: no_record(np.invert, [self]), "logical_not": logical_not,
    "logical_and": logical_and, "logical_or": logical_or, "logical_xor": logical_xor,
    "__neg__": neg, "__pos__": lambda self: self, "__abs__": abs, "__getitem__": getitem,
    "__eq__": eq, "__ne__": ne, "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
    "add": add, "sub": sub, "mul": mul, "div": div, "pow": pow, "neg": neg, "matmul": matmul, "mm": mm,
    "dot": dot, "exp": exp, "log": log, "sin": sin, "cos": cos, "tanh": tanh, "sqrt": sqrt, "abs": abs,
    "sigmoid": sigmoid, "relu": relu, "square": square, "sum": sum, "mean": mean, "reshape": reshape,
    "view": view, "flatten": flatten, "unsqueeze": unsqueeze, "squeeze": squeeze, "permute": permute,
    "transpose": transpose, "t": t, "clone": clone, "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt,
    "ge": ge, "to": to,
    "float": lambda self: to(self, np.float32), "double": lambda self: to(self, np.float64),
    "cpu": lambda self: self, "long": lambda self: to(self, np.int64), "int": lambda self: to(self, np.int32),
    "bool": lambda self: to(self, np.bool_), "type_as": lambda self, other: to(self, other.dtype),
    "T": property(lambda self: apply("PermuteBackward0", np.transpose, [self], saves=False)),
    "mT": property(lambda self: transpose(self, -2, -1)),
}
for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
