"""``repr`` of tensors exactly as PyTorch prints them (the rules of ``torch/_tensor_str.py``).

Floats print with 4 decimals, as integers with a trailing dot when every value is whole
(``tensor([[3., 3.],\\n        [3., 3.]])``), or in scientific notation when magnitudes span more
than three decades; rows wrap at 80 columns and tensors of more than 1000 elements are summarized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import dtypes


@dataclass
class PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


OPTIONS = PrintOptions()


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    if profile is not None:
        defaults = {"default": (4, 1000, 3), "short": (2, 1000, 2), "full": (4, math.inf, 3)}[profile]
        OPTIONS.precision, OPTIONS.threshold, OPTIONS.edgeitems = defaults
        OPTIONS.linewidth = 80
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if value is not None:
            setattr(OPTIONS, name, value)
    OPTIONS.sci_mode = sci_mode


class _Formatter:
    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        flat = values.reshape(-1)
        if not self.floating:
            for v in flat.tolist():
                self.max_width = max(self.max_width, len(_plain(v)))
            return
        nonzero = flat[np.isfinite(flat) & (flat != 0)]
        if nonzero.size == 0:
            return
        magnitudes = np.abs(nonzero).astype(np.float64)
        lo, hi = magnitudes.min(), magnitudes.max()
        self.int_mode = bool(np.all(nonzero == np.ceil(nonzero)))
        self.sci_mode = (hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4) if OPTIONS.sci_mode is None else OPTIONS.sci_mode
        for v in nonzero.tolist():
            if self.sci_mode:
                text = f"{v:.{OPTIONS.precision}e}"
            elif self.int_mode:
                text = f"{v:.0f}."
            else:
                text = f"{v:.{OPTIONS.precision}f}"
            self.max_width = max(self.max_width, len(text))

    def format(self, v) -> str:
        if not self.floating:
            text = _plain(v)
        elif self.sci_mode:
            text = f"{v:{self.max_width}.{OPTIONS.precision}e}"
        elif self.int_mode:
            text = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            text = f"{v:.{OPTIONS.precision}f}"
        return " " * (self.max_width - len(text)) + text


def _plain(v) -> str:
    return str(v) if not isinstance(v, bool) else ("True" if v else "False")


def _vector(values, indent, summarize, fmt) -> str:
    per_line = max(1, math.floor((OPTIONS.linewidth - indent) / (fmt.max_width + 2)))
    n = values.shape[0]
    if summarize and not OPTIONS.edgeitems:
        data = ["..."]
    elif summarize and n > 2 * OPTIONS.edgeitems:
        e = OPTIONS.edgeitems
        data = [fmt.format(v) for v in values[:e].tolist()] + [" ..."] + [fmt.format(v) for v in values[-e:].tolist()]
    else:
        data = [fmt.format(v) for v in values.tolist()]
    lines = [", ".join(data[i : i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(values, indent, summarize, fmt) -> str:
    if values.ndim == 0:
        return fmt.format(values.item())
    if values.ndim == 1:
        return _vector(values, indent, summarize, fmt)
    n, e = values.shape[0], OPTIONS.edgeitems
    if summarize and n > 2 * e:
        rows = [_nested(values[i], indent + 1, summarize, fmt) for i in range(e)]
        rows += ["..."] + [_nested(values[i], indent + 1, summarize, fmt) for i in range(n - e, n)]
    else:
        rows = [_nested(values[i], indent + 1, summarize, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (values.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def _summarized(values):
    """Only the values that will be shown (the formatter's width depends on them alone)."""
    e = OPTIONS.edgeitems
    if values.ndim == 0:
        return values
    if values.ndim == 1:
        return np.concatenate([values[:e], values[-e:]]) if values.shape[0] > 2 * e else values
    if not e:
        return values[:0]
    rows = range(values.shape[0])
    if values.shape[0] > 2 * e:
        rows = list(range(e)) + list(range(values.shape[0] - e, values.shape[0]))
    return np.stack([_summarized(values[i]) for i in rows])


def array_str(values: np.ndarray, indent: int) -> str:
    if values.size == 0:
        return "[]"
    summarize = values.size > OPTIONS.threshold
    fmt = _Formatter(_summarized(values) if summarize else values)
    return _nested(values, indent, summarize, fmt)


def _add_suffixes(text: str, suffixes, indent: int) -> str:
    parts = [text]
    last = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > OPTIONS.linewidth:
            parts.append(",\n" + " " * indent + s)
            last = indent + len(s)
        else:
            parts.append(", " + s)
            last += len(s) + 2
    parts.append(")")
    return "".join(parts)


def tensor_repr(values: np.ndarray, dtype, grad_fn, requires_grad: bool) -> str:
    """``tensor(...)`` with the suffixes PyTorch adds: non-default dtype, then grad_fn or requires_grad."""
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if values.size == 0:
        if values.ndim != 1:
            suffixes.append(f"size={tuple(values.shape)}")
        if dtype is not dtypes.get_default_dtype():
            suffixes.append(f"dtype={dtype!r}")
    elif dtype is not dtypes.get_default_dtype() and dtype.name not in ("int64", "bool"):
        suffixes.append(f"dtype={dtype!r}")
    if grad_fn is not None:
        suffixes.append(f"grad_fn=<{type(grad_fn).__name__}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + array_str(values, indent), suffixes, indent)
