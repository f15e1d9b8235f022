"""The op registry: every IR operation defined once, by family, with all its rules (see ``base``)."""

from . import assembly, custom, elementwise, indexing, linalg, reductions, shape, sorting  # noqa: F401  (each registers its ops)
from .base import REGISTRY, Op, align_batches, batch_carriers, lookup, lower, of, register  # noqa: F401
