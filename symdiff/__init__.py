"""symdiff: source-to-source symbolic differentiation of numpy functions.

Trace a function into an array IR, differentiate it with SymPy to any order, and run generated,
readable, vectorized numpy code.
"""

__version__ = "0.1.0"

from .custom import custom_jvp, custom_vjp
from .errors import CompileError, DtypeError, NotScalarError, ShapeError, SymdiffError, TraceError
from .transforms import (
    Transform,
    derivative,
    grad,
    hessian,
    hessian_sparsity,
    jacobian,
    jacobian_sparsity,
    value_and_grad,
)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) without overflow, on numpy arrays and inside traced functions alike."""
    from .ops.reductions import logsumexp as impl

    return impl(x, axis, keepdims)


__all__ = [
    "CompileError",
    "DtypeError",
    "NotScalarError",
    "ShapeError",
    "SymdiffError",
    "TraceError",
    "Transform",
    "custom_jvp",
    "custom_vjp",
    "derivative",
    "grad",
    "hessian",
    "hessian_sparsity",
    "jacobian",
    "jacobian_sparsity",
    "logsumexp",
    "value_and_grad",
]
