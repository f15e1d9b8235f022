"""The op registry: every IR operation defined once, by family, with all its rules (see ``base``)."""

from . import (  # noqa: F401  (each registers its ops)
    advanced,
    assembly,
    custom,
    elementwise,
    indexing,
    linalg,
    linalg_factor,
    products,
    reductions,
    shape,
    sorting,
)
from .base import REGISTRY, Op, align_batches, batch_carriers, lookup, lower, of, register  # noqa: F401
