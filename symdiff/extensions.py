"""What was registered from outside symdiff: ops, numpy functions and array methods of extensions.

Kept apart from the op registry (which imports SymPy) so that compiled code can check, on every
call and in a new process that never traced anything, that no extension changed since it was made.
"""

from __future__ import annotations

import hashlib
import inspect
from functools import lru_cache

# What was registered from outside symdiff (ops, numpy functions, methods), with a digest of each
# one's source. A new tuple whenever one is added: compiled code checks it is still current by
# identity on every call, and the persistent cache key includes it.
EXTENSIONS: tuple = ()


def note_extension(kind: str, name: str, obj) -> None:
    global EXTENSIONS
    if not obj.__module__.startswith("symdiff."):
        EXTENSIONS = (*EXTENSIONS, (kind, name, source_digest(obj)))


@lru_cache(maxsize=None)
def source_digest(obj) -> str:
    """A digest of the source of a class or function (its bytecode where no source is kept)."""
    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError):
        members = vars(obj).values() if isinstance(obj, type) else [obj]
        text = repr([(m.__code__.co_code, m.__code__.co_consts) for m in members if hasattr(m, "__code__")])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
