"""Whether operations are recorded: ``no_grad``, ``enable_grad``, ``set_grad_enabled`` (thread-local)."""

from __future__ import annotations

import functools
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def _set(enabled: bool) -> None:
    _state.enabled = bool(enabled)


class _GradMode:
    """A context manager that is also a decorator, like PyTorch's."""

    enabled = True

    def __new__(cls, *args):
        if len(args) == 1 and callable(args[0]):  # bare decorator: @no_grad
            return cls()(args[0])
        return super().__new__(cls)

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self.enabled)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Results of operations inside do not require grad (context manager or decorator)."""

    enabled = False


class enable_grad(_GradMode):
    """Turn recording back on inside a ``no_grad`` block (context manager or decorator)."""

    enabled = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)``: takes effect immediately, or for a ``with`` block."""

    def __init__(self, mode: bool):
        self.enabled = bool(mode)
        self._prev = is_grad_enabled()
        _set(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        _set(self._prev)  # as a decorator it must not change the mode at definition time
        mode = self.enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper
