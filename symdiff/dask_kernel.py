"""A compiled generated function that pickles: what each Dask task runs on its numpy chunk.

A generated module lives in one process (``load.Compiled``); a Dask worker in another process or on
another machine cannot import it by name. ``Kernel`` therefore carries the generated source itself
(a few kilobytes) and compiles it once per process on first use, so a ``distributed`` worker needs
symdiff installed but neither the transform, the user's function, SymPy work nor a shared cache.
"""

from __future__ import annotations

import threading

import numpy as np

_loaded: dict = {}  # cache key -> generated function, per process
_lock = threading.Lock()


class Kernel:
    """``kernel(*chunks)`` runs the generated function ``name`` of ``source`` on numpy chunks with
    the keyword arrays and closed-over constants baked in, returning its outputs as a tuple (one
    output bare, as ``dask.array.apply_gufunc`` expects)."""

    __slots__ = ("constants", "key", "keywords", "name", "n_out", "source")

    def __init__(self, key, source, name, keywords, constants, n_out):
        self.key, self.source, self.name = key, source, name
        self.keywords, self.constants, self.n_out = dict(keywords), dict(constants), n_out

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for s, v in state.items():
            setattr(self, s, v)

    def function(self):
        fn = _loaded.get(self.key)
        if fn is None:
            with _lock:
                fn = _loaded.get(self.key)
                if fn is None:
                    from . import load

                    # this process's own entry if it compiled it, else the shipped source (no disk)
                    entry = load._memory.get(self.key) or load.Compiled(self.key, self.source, {})
                    fn = _loaded[self.key] = entry.function(self.name)
        return fn

    def __call__(self, *chunks):
        out = self.function()(*chunks, **self.keywords, **self.constants)
        if not isinstance(out, tuple):
            out = (out,)
        # numpy scalars (a 0-d result) become arrays; chunks of other libraries (CuPy with
        # backend="array_api") stay where they are
        out = tuple(np.asarray(o) if isinstance(o, (np.generic, float, int)) else o for o in out)
        return out[0] if self.n_out == 1 else out

    def __repr__(self):
        return f"<symdiff kernel {self.name} {self.key[:12]}>"
