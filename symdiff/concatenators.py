"""``np.r_[...]`` and ``np.c_[...]`` with traced items. numpy's AxisConcatenator turns every item into
an array with ``np.array``, which a tracer refuses; the control-flow rewrite therefore reads
``X[...]`` for ``X`` named ``r_``/``c_`` through ``concatenator(X)``, which follows numpy's rules (slices
become aranges, scalars and arrays get ``ndmin`` axes placed by ``trans1d``, one result dtype, string
directives ``'axis,ndmin,trans1d'``) and ends in ``np.concatenate``, which tracers support. Without a
traced item numpy itself runs.
"""

from __future__ import annotations

import sys

import numpy as np

from .errors import TraceError, user_location

_AXIS_CONCATENATOR = next(t for t in type(np.r_).__mro__ if t.__name__ == "AxisConcatenator")


def _is_traced(v) -> bool:
    from .trace import Tracer

    return isinstance(v, Tracer)


def concatenator(obj):
    """``obj`` itself, or for numpy's ``r_``/``c_`` (or another AxisConcatenator) one that takes tracers."""
    return _Concatenator(obj) if isinstance(obj, _AXIS_CONCATENATOR) else obj


class _Concatenator:
    __slots__ = ("base",)

    def __init__(self, base):
        self.base = base

    def __getattr__(self, name):
        return getattr(self.base, name)

    def __getitem__(self, key):
        if isinstance(key, str):  # the np.matrix builder reads names in the caller's frame
            frame = sys._getframe(1)
            return np.bmat(key, frame.f_globals, frame.f_locals)
        items = key if isinstance(key, tuple) else (key,)
        if not any(_is_traced(i) or isinstance(i, slice) and _slice_traced(i) for i in items):
            return self.base[key]
        return _concatenate(self.base, items)


def _slice_traced(s: slice) -> bool:
    return any(_is_traced(v) for v in (s.start, s.stop, s.step))


def _refuse(what: str):
    raise TraceError(
        f"{what} in np.r_/np.c_ with traced items at {user_location()}; write "
        "np.concatenate([...], axis=...) (np.stack or np.column_stack to make new axes) instead"
    )


def _concatenate(base, items):
    """numpy's ``AxisConcatenator.__getitem__`` for items some of which are traced."""
    axis, ndmin, trans1d = base.axis, base.ndmin, base.trans1d
    if base.matrix:
        _refuse("np.matrix output (np.r_ with 'r'/'c' or np.mat-style concatenators)")
    objs, kinds = [], []
    for k, item in enumerate(items):
        if isinstance(item, str):
            if k != 0:
                raise TraceError(f"special directives must be the first entry of np.r_[...] at {user_location()}")
            if item in ("r", "c"):
                _refuse(f"the directive {item!r} (an np.matrix result)")
            try:
                numbers = [int(v) for v in item.split(",")]
            except ValueError:
                _refuse(f"the unknown directive {item!r}")
            if len(numbers) == 1:
                axis = numbers[0]
            elif len(numbers) in (2, 3):
                axis, ndmin, *rest = numbers
                trans1d = rest[0] if rest else trans1d
            else:
                _refuse(f"the unknown directive {item!r}")
            continue
        if isinstance(item, slice):
            if _slice_traced(item):
                _refuse("a slice with a traced bound (its length would depend on the data)")
            new = _arange(item)
            if ndmin > 1:
                new = np.array(new, ndmin=ndmin)
                if trans1d != -1:
                    new = new.swapaxes(-1, trans1d)
            objs.append(new)
            kinds.append(new.dtype)
        elif type(item) in np.ScalarType:
            objs.append(item)
            kinds.append(item)
        else:
            ndim = item.ndim if _is_traced(item) else np.ndim(item)
            new = _with_ndmin(item, ndmin)
            if trans1d != -1 and ndim < ndmin:
                k2, k1 = ndmin - ndim, trans1d
                if k1 < 0:
                    k1 += k2 + 1
                axes = list(range(ndmin))
                new = new.transpose(axes[:k1] + axes[k2:] + axes[k1:k2])
            objs.append(new)
            kinds.append(new.dtype)
    if not objs:
        return np.array([])
    dtype = np.result_type(*kinds)
    objs = [_with_ndmin(o, ndmin).astype(dtype, copy=False) for o in objs]
    return np.concatenate(tuple(objs), axis=axis)


def _arange(s: slice):
    start = 0 if s.start is None else s.start
    step = 1 if s.step is None else s.step
    if isinstance(step, (complex, np.complexfloating)):
        return np.linspace(start, s.stop, num=int(abs(step)))
    return np.arange(start, s.stop, step)


def _with_ndmin(item, ndmin: int):
    """``np.array(item, ndmin=ndmin)`` for tracers too: leading axes of length one."""
    if not _is_traced(item):
        return np.array(item, copy=None, subok=True, ndmin=ndmin)
    return item.reshape((1,) * (ndmin - item.ndim) + item.shape) if item.ndim < ndmin else item
