"""``torch.optim``: ``SGD`` and ``Adam`` with PyTorch's exact update rules (the single-tensor
implementations PyTorch uses on the cpu), applied in place to the parameters under ``no_grad``."""

from __future__ import annotations

import math

import numpy as np

from .grad_mode import no_grad
from .tensor import Tensor

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]


class Optimizer:
    """Parameter groups (dicts with ``params`` and the hyperparameters), per-parameter ``state``."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state: dict = {}
        self.param_groups: list = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, group) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.zero_()

    def step(self, closure=None):
        loss = None
        if closure is not None:
            from .grad_mode import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad._value, group, self.state.setdefault(p, {}))
        return loss

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _write(p: Tensor, value: np.ndarray) -> None:
    p._value[...] = value
    p._vc[0] += 1


class SGD(Optimizer):
    """``d = g + wd*p``; with momentum ``buf = momentum*buf + (1 - dampening)*d`` (``buf = d`` at
    the first step), ``d = d + momentum*buf`` (Nesterov) or ``buf``; ``p -= lr*d``."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _update(self, p, g, group, state):
        d = -g if group["maximize"] else g
        if group["weight_decay"]:
            d = d + group["weight_decay"] * p._value
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = np.array(d, dtype=p._value.dtype)
            else:
                buf = buf * momentum + (1 - group["dampening"]) * d
            state["momentum_buffer"] = buf
            d = d + momentum * buf if group["nesterov"] else buf
        _write(p, p._value + (-group["lr"]) * d)


class Adam(Optimizer):
    """``m = m + (1-b1)(g - m)``, ``v = b2 v + (1-b2) g^2``,
    ``p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``; ``weight_decay`` adds ``wd*p``
    to ``g`` (L2, not AdamW); ``amsgrad`` uses the running maximum of ``v``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _update(self, p, g, group, state):
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p._value), exp_avg_sq=np.zeros_like(p._value))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p._value)
        beta1, beta2 = group["betas"]
        g = -g if group["maximize"] else g
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p._value
        state["step"] += 1
        step = state["step"]
        m = state["exp_avg"] = state["exp_avg"] + (1 - beta1) * (g - state["exp_avg"])
        v = state["exp_avg_sq"] = state["exp_avg_sq"] * beta2 + (1 - beta2) * (g * g)
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
        step_size = group["lr"] / (1 - beta1**step)
        denom = np.sqrt(v) / math.sqrt(1 - beta2**step) + group["eps"]
        _write(p, p._value + (-step_size) * (m / denom))


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr*wd`` before the Adam step (default wd 0.01)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)

    def _update(self, p, g, group, state):
        _write(p, p._value * (1 - group["lr"] * group["weight_decay"]))
        super()._update(p, g, dict(group, weight_decay=0), state)
