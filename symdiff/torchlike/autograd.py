"""``torch.autograd``: ``grad`` and ``backward`` (gradients compiled by symdiff), grad modes."""

from .engine import backward, grad
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .graph import BackwardFunction as Function

__all__ = ["Function", "backward", "enable_grad", "grad", "is_grad_enabled", "no_grad", "set_grad_enabled"]
