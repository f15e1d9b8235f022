"""``Tensor``: an eager numpy array plus PyTorch's autograd state (``requires_grad``, ``grad``,
``grad_fn``). Operations (``ops.py``) compute their value at once with numpy and, when a gradient
may be wanted, record a ``grad_fn`` (``graph.py``) that ``backward`` turns into symdiff IR."""

from __future__ import annotations

import numbers

import numpy as np

from . import dtypes, graph, printing
from .grad_mode import is_grad_enabled

_SUPPORTED = (np.float32, np.float64, np.int64, np.int32, np.bool_)


def _default_array(data, dtype=None) -> np.ndarray:
    """``data`` as an array with PyTorch's dtype inference (Python floats -> float32, ints -> int64)."""
    if isinstance(data, Tensor):
        data = data._value
    if dtype is not None:
        return np.array(data, dtype=dtypes.to_numpy_dtype(dtype))
    if isinstance(data, (np.ndarray, np.generic)):
        arr = np.array(data)
        if arr.dtype.type not in _SUPPORTED:
            arr = arr.astype(dtypes.default_numpy() if arr.dtype.kind == "f" else np.int64)
        return arr
    arr = np.array(_unwrap_nested(data))
    if arr.dtype.kind == "f":
        return arr.astype(dtypes.default_numpy())
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "b":
        return arr
    raise TypeError(f"Could not infer dtype of {type(data).__name__}")


def _unwrap_nested(data):
    if isinstance(data, Tensor):
        return data._value
    if isinstance(data, (list, tuple)):
        return [_unwrap_nested(d) for d in data]
    return data


def _require_float(arr: np.ndarray) -> None:
    if arr.dtype.kind != "f":
        raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")


class Tensor:
    """A tensor with PyTorch's autograd semantics; its gradients are compiled by symdiff."""

    __slots__ = ("__weakref__", "_grad", "_hooks", "_requires_grad", "_retains_grad", "_value", "_vc", "grad_fn")
    __array_priority__ = 1000
    __array_ufunc__ = None  # numpy defers to our reflected operators

    def __init__(self, *data):
        """``torch.Tensor([1, 2])`` or ``torch.Tensor(2, 3)`` (uninitialized -> zeros), default dtype."""
        if len(data) == 1 and not isinstance(data[0], numbers.Integral):
            value = np.array(_unwrap_nested(data[0]), dtype=dtypes.default_numpy())
        else:
            value = np.zeros(tuple(int(d) for d in data), dtype=dtypes.default_numpy())
        self._init(value)

    def _init(self, value: np.ndarray, requires_grad: bool = False, vc=None):
        self._value = value
        self._requires_grad = requires_grad
        self._grad = None
        self.grad_fn = None
        self._vc = vc if vc is not None else [0]
        self._retains_grad = False
        self._hooks = None

    @classmethod
    def _make(cls, value, requires_grad: bool = False, vc=None) -> Tensor:
        t = object.__new__(cls)
        t._init(np.asarray(value), requires_grad, vc)
        return t

    # -- autograd state -------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self.grad_fn is not None or self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self.grad_fn is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a computed "
                "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach()."
            )
        if value:
            _require_float(self._value)
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type {type(value).__name__}")
        if value is not None and tuple(value.shape) != tuple(self.shape):
            raise RuntimeError(f"assigned grad has data of a different size: {value.shape} vs {self.shape}")
        self._grad = value

    def retain_grad(self) -> None:
        if self.grad_fn is not None:
            self._retains_grad = True
        elif not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")

    def register_hook(self, hook):
        """``hook(grad)`` runs when this tensor's gradient is computed by ``backward``; on a leaf it
        may return a replacement that is accumulated instead."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        self._hooks = (self._hooks or {})
        key = max(self._hooks, default=-1) + 1
        self._hooks[key] = hook
        return _RemovableHandle(self._hooks, key)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Accumulate d self / d leaf into every leaf's ``.grad`` (compiled by symdiff)."""
        from . import engine

        engine.backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def detach(self) -> Tensor:
        """The same data (shared, like PyTorch), cut off from the graph."""
        return Tensor._make(self._value, vc=self._vc)

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    @property
    def data(self) -> Tensor:
        return Tensor._make(self._value)

    @data.setter
    def data(self, value: Tensor) -> None:
        self._value = value._value if isinstance(value, Tensor) else np.asarray(value)

    # -- conversion -----------------------------------------------------------------------------
    def numpy(self, force: bool = False) -> np.ndarray:
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._value

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def item(self):
        if self._value.size != 1:
            raise RuntimeError(f"a Tensor with {self._value.size} elements cannot be converted to Scalar")
        return self._value.reshape(()).item()

    def tolist(self):
        return self._value.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._value.dtype.kind not in "iu":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self._value.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.item())

    def __len__(self):
        if self._value.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._value.shape[0]

    def __iter__(self):
        if self._value.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    __hash__ = object.__hash__

    # -- shape and type -------------------------------------------------------------------------
    @property
    def shape(self) -> dtypes.Size:
        return dtypes.Size(self._value.shape)

    def size(self, dim=None):
        return self.shape if dim is None else self._value.shape[dim]

    def dim(self) -> int:
        return self._value.ndim

    ndim = property(dim)

    def numel(self) -> int:
        return int(self._value.size)

    @property
    def dtype(self) -> dtypes.dtype:
        return dtypes.from_numpy_dtype(self._value.dtype)

    def is_floating_point(self) -> bool:
        return self._value.dtype.kind == "f"

    def type(self) -> str:
        return f"torch.{self.dtype.legacy}"

    @property
    def device(self) -> str:
        return "cpu"

    # -- printing -------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return printing.tensor_repr(self._value, self.dtype, self.grad_fn, self.requires_grad)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if self._value.ndim == 0 and spec:
            return format(self.item(), spec)
        return format(repr(self), spec)

    # -- in place -------------------------------------------------------------------------------
    def _check_inplace(self) -> None:
        if not is_grad_enabled():
            return
        if self.grad_fn is None and self._requires_grad:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        if self.grad_fn is not None:
            raise NotImplementedError(
                "symdiff.torchlike: in-place operations on tensors that are part of a graph are not supported; "
                "use the out-of-place operation"
            )

    def _inplace(self, fn, other=None) -> Tensor:
        self._check_inplace()
        value = fn(self._value, other._value if isinstance(other, Tensor) else other)
        if not self._value.flags.writeable:
            self._value = self._value.copy()
        self._value[...] = value
        self._vc[0] += 1
        return self

    def zero_(self) -> Tensor:
        return self._inplace(lambda a, _: 0)

    def fill_(self, value) -> Tensor:
        return self._inplace(lambda a, v: v, value)

    def add_(self, other, alpha=1) -> Tensor:
        return self._inplace(lambda a, b: a + alpha * b, other)

    def sub_(self, other, alpha=1) -> Tensor:
        return self._inplace(lambda a, b: a - alpha * b, other)

    def mul_(self, other) -> Tensor:
        return self._inplace(lambda a, b: a * b, other)

    def div_(self, other) -> Tensor:
        return self._inplace(lambda a, b: a / b, other)

    def copy_(self, other) -> Tensor:
        return self._inplace(lambda a, b: b, other)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __setitem__(self, key, value) -> None:
        def assign(a, v):
            out = a.copy()
            out[_plain_key(key)] = v
            return out

        self._inplace(assign, value)


class _RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


def _plain_key(key):
    if isinstance(key, Tensor):
        return key._value
    if isinstance(key, tuple):
        return tuple(k._value if isinstance(k, Tensor) else k for k in key)
    return key


def as_tensor_operand(x) -> Tensor | float | int | bool:
    """Tensors stay; Python and numpy scalars become Python numbers (inlined into the graph);
    arrays and lists become constant tensors."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, numbers.Number)) and not isinstance(x, np.ndarray):
        return x.item() if isinstance(x, np.generic) else x
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return x.item()
    return Tensor._make(_default_array(x))


def to_tensor(x) -> Tensor:
    """Any operand as a tensor (numbers become 0-d constant tensors)."""
    return x if isinstance(x, Tensor) else Tensor._make(_default_array(x))


def result_dtype(tensors, value: np.ndarray) -> np.dtype:
    """PyTorch's promotion for a result numpy computed as ``value`` (``dtypes.promote``)."""
    kind = value.dtype.kind
    if kind == "b" or all(t._value.dtype == value.dtype for t in tensors):  # the common case: nothing to promote
        return value.dtype
    return dtypes.promote([t._value.dtype for t in tensors], [t._value.ndim == 0 for t in tensors], kind)


def apply(name: str, fn, tensors, saves: bool = True, dtype=None) -> Tensor:
    """Run the numpy expression ``fn`` on the operands' values now, and record it as ``name`` when
    a gradient may be needed. ``dtype``: the result's dtype when it is not PyTorch's promotion (casts)."""
    arrays = [t._value for t in tensors]
    with np.errstate(all="ignore"):
        value = np.asarray(fn(*arrays))
    dtype = result_dtype(tensors, value) if dtype is None else np.dtype(dtype)
    if value.dtype != dtype or any(np.may_share_memory(value, a) for a in arrays) or not value.flags.writeable:
        value = np.array(value, dtype=dtype)
    out = Tensor._make(value)
    if dtype.kind == "f" and is_grad_enabled() and any(t.requires_grad for t in tensors):
        out.grad_fn = graph.record(name, fn, tensors, dtype, saves)
    return out


def no_record(fn, tensors) -> Tensor:
    """An operation without a derivative (comparisons): value only."""
    with np.errstate(all="ignore"):
        value = np.asarray(fn(*(t._value for t in tensors)))
    return Tensor._make(np.array(value, dtype=result_dtype(tensors, value)))
