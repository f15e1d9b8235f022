"""Exceptions raised by symdiff: one base class, so callers can catch everything we raise."""

from __future__ import annotations

import os
import sys


class SymdiffError(Exception):
    """Base class of every error symdiff raises on purpose."""


class TraceError(SymdiffError):
    """The user's function did something the tracer cannot record (unsupported op, data-dependent control flow)."""


class ShapeError(SymdiffError):
    """Arguments or operations whose shapes do not fit together."""


class DtypeError(SymdiffError):
    """An argument's dtype cannot be differentiated (integers, booleans, complex)."""


class NotScalarError(SymdiffError):
    """A transform that needs a scalar output got an array."""


class CompileError(SymdiffError):
    """Differentiating, optimizing or emitting failed inside SymPy or jinja2."""


class CacheWarning(UserWarning):
    """The on-disk cache could not be used; symdiff fell back to memory."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_location() -> str:
    """Return 'file:line' of the innermost stack frame that is not symdiff's or numpy's own code."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        internal = path.startswith(_PACKAGE_DIR) or f"{os.sep}numpy{os.sep}" in path
        if not internal:
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown location>"
