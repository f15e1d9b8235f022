"""``symdiff.torchlike``: PyTorch's eager autograd API on top of symdiff's compiler.

``import symdiff.torchlike as torch`` runs autograd code written for PyTorch: tensors compute
eagerly with numpy and record what they did; ``backward()`` and ``torch.autograd.grad`` rebuild
that record as symdiff IR, differentiate it symbolically (``symdiff.differentiate``) and run the
generated, cached numpy code. ``create_graph=True`` returns gradients whose graph is the symbolic
derivative, so they can be differentiated again.
"""

from . import autograd, nn, optim, utils
from .creation import (
    Generator,
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    initial_seed,
    is_tensor,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randint,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .device import cuda, device
from .dtypes import Size, get_default_dtype, set_default_dtype, double, dtype, float, float32, float64, int, int32, int64, long
from .dtypes import bool_ as bool
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .ops import (
    abs,
    add,
    clone,
    cos,
    div,
    dot,
    eq,
    exp,
    flatten,
    floor_divide,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    remainder,
    ge,
    gt,
    le,
    log,
    lt,
    matmul,
    mean,
    mm,
    mul,
    ne,
    neg,
    permute,
    pow,
    relu,
    reshape,
    sigmoid,
    sin,
    sqrt,
    square,
    squeeze,
    sub,
    sum,
    t,
    tanh,
    transpose,
    unsqueeze,
)
from .functions import (
    allclose,
    amax,
    amin,
    arctan2,
    argmax,
    argmin,
    atan2,
    cat,
    chunk,
    cosh,
    clamp,
    clamp_max,
    clamp_min,
    clip,
    concat,
    concatenate,
    cumsum,
    einsum,
    expm1,
    gather,
    index_select,
    isclose,
    log1p,
    log2,
    log10,
    log_softmax,
    logsumexp,
    max,
    maximum,
    min,
    minimum,
    norm,
    numel,
    outer,
    prod,
    reciprocal,
    rsqrt,
    sign,
    sinh,
    softmax,
    split,
    stack,
    std,
    tan,
    var,
    where,
)
from .pictures import make_dot as make_dot  # also gives Tensor its Jupyter display
from .printing import set_printoptions
from .serialization import load, save
from .tensor import Tensor

_PUBLIC_MODULES = ("autograd", "nn", "optim", "utils")
__all__ = sorted(
    name for name, value in dict(globals()).items()
    if not name.startswith("_") and (not isinstance(value, type(autograd)) or name in _PUBLIC_MODULES)
)
