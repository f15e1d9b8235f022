"""Chunked evaluation of long elementwise numpy functions (numexpr's trick, in generated code).

numpy evaluates a body one operation at a time over the whole array: with 1e6 points every
temporary is 8 MB and lives in memory, not cache, and a long body (a high derivative) keeps many
alive at once. A function that is elementwise over its arguments gives the same numbers on any
slice of them, so above a size chosen at call time the generated function calls itself on slices
of ``CHUNK`` points and writes each result into the output: the temporaries of one slice stay in
L2 and the extra memory is the output itself. Small arrays run the body directly.
"""

from __future__ import annotations

from . import chunk_buffers

CHUNK = 8192  # points per slice: a long body's live temporaries (tens of 64 KB) stay in a 1 MB L2
MIN_SIZE = 4 * CHUNK  # below this many points the per-slice call overhead is not worth it
MIN_OPS = 12  # shorter bodies gain little: their few temporaries cost less than the slicing


def model(plan, function: dict) -> dict | None:
    """What the template needs for the chunked path of ``function`` (its data model), or None when
    the function is not elementwise over its arguments or too short for chunking to pay."""
    if not plan.elementwise or function["constants"] or function["keyword_params"]:
        return None
    if function["total_ops"] is None or function["total_ops"] < MIN_OPS:
        return None
    if any(str(d) not in ("float64", "float32") for d in plan.output_dtypes):
        return None
    params = list(function["params"])
    taken = set(params)

    def free(name):  # a local name no parameter has
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    for s in function["statements"]:
        taken.add(s.get("target"))
    chunk = {"size": CHUNK, "min_size": MIN_SIZE, "inputs": params, "flat": [free(f"flat_{a}") for a in params],
             "outputs": [{"dtype": str(d), "name": free(f"out{k}"), "flat": free(f"flat_out{k}")}
                         for k, d in enumerate(plan.output_dtypes)],
             "start": free("start"), "stop": free("stop"), "buffers_name": free("buffers"), "body": None}
    # float64 throughout: the buffers hold what the plain body's temporaries would (float32 bodies
    # may compute some values in float64, and integer arguments in integers)
    if all(str(d) == "float64" for d in list(plan.output_dtypes) + [n.dtype for n in plan.inputs]):
        outputs = [f"{o['flat']}[{chunk['start']} : {chunk['stop']}]" for o in chunk["outputs"]]
        chunk["body"] = chunk_buffers.model(function["statements"], function["returned"], outputs, set(params),
                                            lambda k: free(f"buf{k}"))
    return chunk
