"""``torch.autograd``: ``grad`` and ``backward`` (gradients compiled by symdiff), grad modes, and ``functional`` (jacobian, hessian, vjp, jvp, hvp)."""

from ..engine import backward, grad
from ..grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from ..graph import BackwardFunction as Function
from . import functional

__all__ = ["Function", "functional", "backward", "enable_grad", "grad", "is_grad_enabled", "no_grad", "set_grad_enabled"]
