"""``torch.nn``'s ``Module``, ``Parameter`` and the layers tutorials build models from.

A ``Module`` registers every ``Parameter`` and sub-``Module`` assigned to one of its attributes,
in assignment order, so ``parameters()``, ``named_parameters()`` and ``state_dict()`` list them
as PyTorch does. ``Linear`` initializes like PyTorch (kaiming-uniform with ``a=sqrt(5)``: bounds
``1/sqrt(in_features)``) from torchlike's generator; give explicit weights with ``copy_`` under
``no_grad`` or ``load_state_dict`` to start from PyTorch's exact numbers.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from .. import dtypes, functions, ops
from ..creation import empty
from ..grad_mode import no_grad
from ..tensor import Tensor
from . import functional as F


class Parameter(Tensor):
    """A leaf tensor that a ``Module`` registers; requires grad by default."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        value = np.zeros(0, dtype=dtypes.default_numpy()) if data is None else (
            data._value if isinstance(data, Tensor) else np.asarray(data))
        self._init(value, False)
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of models: ``__call__`` runs ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign to a Module before Module.__init__() call")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif value is None and name in type(self).__dict__.get("_optional", ()):
            self._parameters[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name, param) -> None:
        setattr(self, name, param)

    def add_module(self, name, module) -> None:
        setattr(self, name, module)

    register_module = add_module

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- traversal ------------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix=""):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                yield (f"{mp}.{name}" if mp else name), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        out = collections.OrderedDict() if destination is None else destination
        for name, p in self.named_parameters(prefix=prefix.rstrip("."), remove_duplicate=False):
            out[name] = p if keep_vars else p.detach()
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        with no_grad():
            for name, p in own.items():
                if name in state_dict:
                    value = state_dict[name]
                    value = value._value if isinstance(value, Tensor) else np.asarray(value)
                    if value.shape != p._value.shape:
                        raise RuntimeError(
                            f"size mismatch for {name}: copying a param with shape {list(value.shape)} from "
                            f"checkpoint, the shape in current model is {list(p.shape)}."
                        )
                    p.copy_(Tensor._make(value))
        return collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])(missing, unexpected)

    # -- state ----------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        """Casts parameters in place (``model.double()``); the device can only be the cpu."""
        for p in self.parameters():
            p._value = ops.to(p.detach(), *args, **kwargs)._value.copy()
        return self

    def double(self):
        return self.to(dtypes.float64)

    def float(self):
        return self.to(dtypes.float32)

    def cpu(self):
        return self

    # -- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features)."""

    _optional = ("bias",)

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype))
        self.bias = Parameter(empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        from .init import uniform_

        bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
        uniform_(self.weight, -bound, bound)  # kaiming_uniform_(a=sqrt(5)) has exactly this bound
        if self.bias is not None:
            uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Sequential(Module):
    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*mods[idx])
        return mods[idx]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, idx):
        return list(self._modules.values())[idx]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


def _activation(name, fn, doc):
    def forward(self, input):
        return fn(input)

    return type(name, (Module,), {"forward": forward, "__doc__": doc, "__module__": __name__})


ReLU = _activation("ReLU", ops.relu, "``max(x, 0)``.")
Tanh = _activation("Tanh", ops.tanh, "``tanh(x)``.")
Sigmoid = _activation("Sigmoid", ops.sigmoid, "``1 / (1 + exp(-x))``.")
Identity = _activation("Identity", lambda x: x, "Returns its input.")


SiLU = _activation("SiLU", F.silu, "``x * sigmoid(x)``.")


def _with_options(name, fn, **defaults):
    """An activation module whose options (``LeakyReLU(0.2)``, ``Softmax(dim=1)``) are passed to ``fn``
    after the input; ``inplace`` is accepted and ignored."""
    options = [k for k in defaults if k != "inplace"]

    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        values = dict(defaults, **dict(zip(defaults, args)), **kwargs)
        for k in options:
            setattr(self, k, values[k])

    def forward(self, input):
        return fn(input, *(getattr(self, k) for k in options))

    def extra_repr(self):
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in options)

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr,
                                  "__module__": __name__})


LeakyReLU = _with_options("LeakyReLU", F.leaky_relu, negative_slope=0.01, inplace=False)
ELU = _with_options("ELU", F.elu, alpha=1.0, inplace=False)
GELU = _with_options("GELU", F.gelu, approximate="none")
Softplus = _with_options("Softplus", F.softplus, beta=1.0, threshold=20.0)
Softmax = _with_options("Softmax", functions.softmax, dim=None)
LogSoftmax = _with_options("LogSoftmax", functions.log_softmax, dim=None)


class Dropout(Module):
    """``F.dropout`` while training; the identity after ``eval()``."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = p

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace=False"


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return ops.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _loss(name, fn):
    def __init__(self, reduction="mean", **kwargs):
        Module.__init__(self)
        self.reduction, self.kwargs = reduction, kwargs

    def forward(self, input, target):
        return fn(input, target, reduction=self.reduction, **self.kwargs)

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "__module__": __name__})


MSELoss = _loss("MSELoss", F.mse_loss)
L1Loss = _loss("L1Loss", F.l1_loss)
CrossEntropyLoss = _loss("CrossEntropyLoss", F.cross_entropy)
NLLLoss = _loss("NLLLoss", F.nll_loss)
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits)
BCELoss = _loss("BCELoss", F.binary_cross_entropy)
