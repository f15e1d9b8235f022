"""The public API under one name (kept for code that imports ``symdiff.api``): the transforms
(``symdiff.transforms``), their call path (``symdiff.dispatch``) and the compile path shared with
the command-line tool and torchlike (``symdiff.pipeline``)."""

from __future__ import annotations

from .arguments import Call  # noqa: F401
from .errors import SymdiffError  # noqa: F401
from .pipeline import FRONT_ENDS, compile_graph, emit_module, version  # noqa: F401
from .transforms import (  # noqa: F401
    BACKENDS,
    Transform,
    derivative,
    grad,
    hessian,
    jacobian,
    value_and_grad,
)
