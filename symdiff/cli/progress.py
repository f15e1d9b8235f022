"""Progress lines on stderr for the ``symdiff`` command, one per compiler stage.

Large Hessians and high orders can take a while; a user watching a terminal should see which stage
is running. The core has no progress callback, so while a command runs this wraps the stage entry
points of the pipeline modules (trace, differentiate, optimize, emit) and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import time

# (module, attribute, what the line says); the stages are looked up on their modules at call time, so
# wrapping the module attribute works. Imported only when progress is on: they import SymPy.
_STAGES = (
    ("symdiff.trace", "run", "trace"),
    ("symdiff.differentiate", "vjp", "differentiate (reverse mode)"),
    ("symdiff.differentiate", "jvp", "differentiate (forward mode)"),
    ("symdiff.optimize", "optimize", "optimize"),
    ("symdiff.emit", "render", "emit numpy code"),
)


class Progress:
    """Writes ``symdiff: 1.23 s  <stage>`` lines (time since the command started) when enabled."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self._depth = 0
        self.used = False  # whether any line was written (then the command also says "done")

    def say(self, text: str) -> None:
        if self.enabled:
            self.used = True
            print(f"symdiff: {time.perf_counter() - self.start:6.2f} s  {text}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def core_stages(self):
        """Report each outermost call of a pipeline stage while the block runs."""
        if not self.enabled:
            yield
            return
        if any(name not in sys.modules for name, _, _ in _STAGES):
            self.say("import SymPy and the compiler stages")
        saved = []
        try:
            for name, attr, label in _STAGES:
                module = importlib.import_module(name)
                original = getattr(module, attr, None)
                if original is None:
                    continue
                saved.append((module, attr, original))
                setattr(module, attr, self._wrap(original, label))
            yield
        finally:
            for module, attr, original in saved:
                setattr(module, attr, original)

    def _wrap(self, original, label):
        @functools.wraps(original)
        def staged(*args, **kwargs):
            if self._depth == 0:
                name = getattr(args[0], "__name__", "") if label == "trace" and args else ""
                self.say(f"{label} {name}".rstrip())
            self._depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1

        return staged
