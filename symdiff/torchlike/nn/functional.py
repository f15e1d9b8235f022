"""``torch.nn.functional``: losses and activations, each one recorded numpy expression."""

from __future__ import annotations

import numpy as np

from ..ops import relu, sigmoid, tanh
from ..tensor import Tensor, apply, to_tensor

__all__ = ["binary_cross_entropy_with_logits", "mse_loss", "relu", "sigmoid", "tanh"]

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


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    target = to_tensor(target)
    _same_shape(input, target)
    red = _reduce(reduction)
    return apply("MseLossBackward0", lambda a, b: red((a - b) ** 2), [input, target])
