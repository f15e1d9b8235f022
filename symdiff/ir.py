"""The intermediate representation under one name: the graph (``symdiff.graph``: nodes, constants,
placeholders, traversal) and the constructor of every op (each defined with its rules in ``symdiff.ops``).
"""

from __future__ import annotations

from .graph import (  # noqa: F401
    Constant,
    Node,
    bind,
    const_node,
    copy_node,
    format_graph,
    fresh_input,
    input_node,
    lead_shape,
    placeholder,
    result_dtype,
    rewrite,
    structure_key,
    substitute,
    toposort,
)
from .ops.elementwise import cast, elementwise, fill, is_fill  # noqa: F401
from .ops.indexing import gather, gather_key, index, index_shape, pack, scatter, scatter_add  # noqa: F401
from .ops.products import einsum  # noqa: F401
from .ops.reductions import reduce_extreme, reduce_prod, reduce_sum  # noqa: F401
from .ops.shape import broadcast, concat, eye_basis, reshape, transpose  # noqa: F401
