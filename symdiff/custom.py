"""User-defined derivative rules, with JAX's contract: ``custom_jvp`` and ``custom_vjp``.

A function wrapped by either runs as plain numpy when called on arrays. Called inside a traced
function, it becomes one node of the IR whose value is the function and whose derivatives come only
from the user's rule (``symdiff.ops.custom``); the rule is traced like any numpy code, so every
transform composes with it to any order where the rule itself is differentiable.

This module imports neither SymPy nor the compiler (``import symdiff`` stays fast).
"""

from __future__ import annotations

import functools
import sys

from .errors import SymdiffError


def _traced(args) -> bool:
    trace = sys.modules.get("symdiff.trace")
    return trace is not None and any(isinstance(a, trace.Tracer) for a in args)


class custom_jvp:  # noqa: N801 - JAX's name
    """``f = custom_jvp(fun)``; ``@f.defjvp`` then defines ``rule(primals, tangents) -> (primal_out,
    tangent_out)``, linear in the tangents. Every derivative of ``f`` in a traced function uses the rule."""

    def __init__(self, fun):
        if not callable(fun):
            raise SymdiffError(f"custom_jvp expects a function, got {type(fun).__name__}")
        self.fun, self.jvp = fun, None
        functools.update_wrapper(self, fun)

    def defjvp(self, rule):
        """Set the forward-mode rule (usable as a decorator); returns the rule."""
        if not callable(rule):
            raise SymdiffError(f"defjvp expects a function, got {type(rule).__name__}")
        self.jvp = rule
        return rule

    def __call__(self, *args, **kwargs):
        if _traced(args):
            from .ops.custom import call_custom_jvp

            return call_custom_jvp(self, args, kwargs)
        return self.fun(*args, **kwargs)

    def __symdiff_reads__(self):
        """What a trace through this object reads (symdiff.environment checks these attributes)."""
        return (("fun", self.fun), ("jvp", self.jvp))


class custom_vjp:  # noqa: N801 - JAX's name
    """``f = custom_vjp(fun)``; ``f.defvjp(fwd, bwd)`` then defines ``fwd(*args) -> (out, residuals)``
    and ``bwd(residuals, g) -> tuple of cotangents`` (one per argument; None for zero), linear in ``g``.
    Every derivative of ``f`` in a traced function uses them (forward mode by transposing ``bwd``)."""

    def __init__(self, fun):
        if not callable(fun):
            raise SymdiffError(f"custom_vjp expects a function, got {type(fun).__name__}")
        self.fun, self.fwd, self.bwd = fun, None, None
        functools.update_wrapper(self, fun)

    def defvjp(self, fwd, bwd):
        """Set the forward pass (with residuals) and the backward rule."""
        if not callable(fwd) or not callable(bwd):
            raise SymdiffError("defvjp expects two functions: fwd(*args) -> (out, residuals), bwd(residuals, g)")
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args, **kwargs):
        if _traced(args):
            from .ops.custom import call_custom_vjp

            return call_custom_vjp(self, args, kwargs)
        return self.fun(*args, **kwargs)

    def __symdiff_reads__(self):
        """What a trace through this object reads (symdiff.environment checks these attributes)."""
        return (("fun", self.fun), ("fwd", self.fwd), ("bwd", self.bwd))
