"""Stage 2, differentiate: derivatives of IR graphs as IR graphs, so they compose to any order.

``reverse`` (VJP) and ``forward`` (JVP) apply each op's rules (``symdiff.ops``); ``taylor``
propagates univariate Taylor coefficients for high-order scalar derivatives; ``scalarize`` derives
small per-point Jacobians and Hessians entry by entry (zeros skipped, symmetric pairs once).
Elementwise bodies get their local derivatives from SymPy (``primitives.local_derivative``).
"""

from __future__ import annotations

from ..ops.base import pad_rank, unbroadcast, zeros  # noqa: F401  (the stage's shared vocabulary)
from .forward import jvp  # noqa: F401
from .reverse import active_nodes, add, vjp  # noqa: F401
