"""``torch.nn.functional``: losses and activations, each one recorded numpy expression."""

from __future__ import annotations

import numpy as np

from ..functions import log_softmax, softmax
from ..ops import _sigmoid as sigmoid_expr
from ..ops import relu, sigmoid, tanh
from ..tensor import Tensor, apply, to_tensor

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dropout", "elu", "gelu", "l1_loss",
    "leaky_relu", "linear", "silu",
    "log_softmax", "mse_loss", "nll_loss", "relu", "sigmoid", "softmax", "softplus", "tanh",
]

_REDUCTIONS = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}


def _reduce(reduction: str):
    try:
        return _REDUCTIONS[reduction]
    except KeyError:
        raise ValueError(f"{reduction} is not a valid value for reduction") from None


def _same_shape(input: Tensor, target: Tensor) -> None:
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross entropy in the stable form ``log(1 + exp(z)) - z*y`` (numpy's
    ``logaddexp(0, z)``, whose derivatives of every order are sigmoids: no overflow)."""
    target = to_tensor(target)
    _same_shape(input, target)
    red = _reduce(reduction)
    for arg, t in (("weight", weight), ("pos_weight", pos_weight)):
        if isinstance(t, Tensor) and t.requires_grad:
            raise RuntimeError(
                f"The function 'binary_cross_entropy_with_logits' is not differentiable with respect to argument "
                f"'{arg}'. This input cannot have requires_grad True."
            )
    extras = [t for t in (weight, pos_weight) if t is not None]
    operands = [input, target] + [to_tensor(t) for t in extras]
    has_w, has_pw = weight is not None, pos_weight is not None

    def loss(z, y, *rest):
        rest = list(rest)
        w = rest.pop(0) if has_w else None
        pw = rest.pop(0) if has_pw else None
        if pw is None:
            out = np.logaddexp(0, z) - z * y
        else:
            out = (1 - y) * z + (1 + (pw - 1) * y) * np.logaddexp(0, -z)
        return red(out if w is None else out * w)

    return apply("BinaryCrossEntropyWithLogitsBackward0", loss, operands)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """PyTorch clamps each log at -100."""
    target = to_tensor(target)
    _same_shape(input, target)
    red = _reduce(reduction)
    operands = [input, target] + ([to_tensor(weight)] if weight is not None else [])

    def loss(p, y, *w):
        out = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))
        return red(out * w[0] if w else out)

    return apply("BinaryCrossEntropyBackward0", loss, operands)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    target = to_tensor(target)
    _same_shape(input, target)
    red = _reduce(reduction)
    return apply("MseLossBackward0", lambda a, b: red((a - b) ** 2), [input, target])


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    target = to_tensor(target)
    _same_shape(input, target)
    red = _reduce(reduction)
    return apply("L1LossBackward0", lambda a, b: red(np.abs(a - b)), [input, target])


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta x)) / beta``, and ``x`` itself where ``beta x > threshold``."""
    return apply("SoftplusBackward0",
                 lambda a: np.where(a * beta > threshold, a, np.logaddexp(0, a * beta) / beta), [input])


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return apply("LeakyReluBackward0", lambda a: np.where(a > 0, a, a * negative_slope), [input])


def elu(input, alpha=1.0, inplace=False):
    return apply("EluBackward0", lambda a: np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0))), [input])


def silu(input, inplace=False):
    return apply("SiluBackward0", lambda a: a * sigmoid_expr(a), [input])


def gelu(input, approximate="none"):
    """``x * Phi(x)`` with the error function (scipy, imported here), or PyTorch's tanh approximation."""
    if approximate == "tanh":
        c = float(np.sqrt(2 / np.pi))
        return apply("GeluBackward0", lambda a: 0.5 * a * (1 + np.tanh(c * (a + 0.044715 * a**3))), [input])
    from scipy.special import erf

    return apply("GeluBackward0", lambda a: 0.5 * a * (1 + erf(a * float(1 / np.sqrt(2)))), [input])


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes entries with probability ``p`` and scales the rest by ``1/(1-p)``; the mask comes from
    torchlike's generator (not PyTorch's numbers) and is an operand, never baked into the gradient."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    from ..creation import default_generator

    keep = default_generator.rng.random(input.shape) >= p
    mask = Tensor._make((keep / (1 - p) if p < 1 else keep * 0.0).astype(input._value.dtype))
    return apply("MulBackward0", np.multiply, [input, mask])


def linear(input, weight, bias=None):
    """``input @ weight.T + bias``."""
    if bias is None:
        return apply("MmBackward0", lambda x, w: x @ np.swapaxes(w, -1, -2), [input, weight])
    return apply("AddmmBackward0", lambda x, w, b: x @ np.swapaxes(w, -1, -2) + b, [input, weight, to_tensor(bias)])


def _class_dim_last(input: Tensor):
    """PyTorch's (N, C, d1, ...) layout with the class axis 1 -> the axis numpy picks along."""
    return 1 if input.dim() > 1 else 0


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Minus the log-probability of each target class; ``weight`` per class; entries whose target is
    ``ignore_index`` count nowhere. The targets are an operand (data), never baked into the gradient."""
    target = to_tensor(target)
    if target.dtype.name not in ("int64", "int32"):
        raise RuntimeError(f"expected scalar type Long but found {target.dtype.name.capitalize()}")
    _reduce(reduction)
    axis = _class_dim_last(input)
    n_classes = input.shape[axis]
    keep = target._value != ignore_index
    if np.any((target._value[keep] < 0) | (target._value[keep] >= n_classes)):
        raise IndexError(f"Target {target._value[keep].max()} is out of bounds.")
    safe = Tensor._make(np.where(keep, target._value, 0).astype(np.int64))
    w = np.ones(n_classes, dtype=input._value.dtype) if weight is None else to_tensor(weight)._value
    per = Tensor._make((w[safe._value] * keep).astype(input._value.dtype))  # weight of each entry

    def loss(z, t, wt):
        picked = np.squeeze(np.take_along_axis(z, np.expand_dims(t, axis), axis=axis), axis)
        out = -picked * wt
        if reduction == "none":
            return out
        if reduction == "sum":
            return np.sum(out)
        return np.sum(out) / np.sum(wt)

    return apply("NllLossBackward0", loss, [input, safe, per])


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """``nll_loss(log_softmax(input, 1), target)``; class-probability targets (a float tensor of the
    input's shape) give ``-sum(target * log_softmax)``."""
    target = to_tensor(target)
    axis = _class_dim_last(input)
    logp = log_softmax(input, axis)
    if target.is_floating_point():
        red = _reduce(reduction)
        return apply("NegBackward0", lambda lp, t: red(-np.sum(lp * t, axis=axis)), [logp, target])
    if label_smoothing:
        raise NotImplementedError("symdiff.torchlike: cross_entropy with label_smoothing is not supported")
    return nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
