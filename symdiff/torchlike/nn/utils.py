"""``torch.nn.utils``: gradient clipping and flattening parameters, as PyTorch computes them."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector"]


def _with_grads(parameters):
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients by ``max_norm / (total_norm + 1e-6)`` when that is below 1; returns the
    total norm (of all gradients together)."""
    params = _with_grads(parameters)
    if not params:
        return Tensor._make(np.array(0.0, dtype=np.float32))
    grads = [p.grad._value for p in params]
    if norm_type == float("inf"):
        total = max(np.abs(g).max() for g in grads)
    else:
        total = sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1 / norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite")
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for p in params:
            p.grad._value[...] = p.grad._value * p.grad._value.dtype.type(coef)
    return Tensor._make(np.array(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters, clip_value, foreach=None) -> None:
    for p in _with_grads(parameters):
        np.clip(p.grad._value, -clip_value, clip_value, out=p.grad._value)


def parameters_to_vector(parameters) -> Tensor:
    from ..functions import cat

    return cat([p.reshape(-1) for p in parameters])
