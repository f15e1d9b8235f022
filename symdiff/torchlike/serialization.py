"""``torch.save`` / ``torch.load`` with pickle (tensors pickle as their values; not PyTorch's zip format)."""

from __future__ import annotations

import pickle


def save(obj, f, **ignored) -> None:
    if hasattr(f, "write"):
        pickle.dump(obj, f)
    else:
        with open(f, "wb") as fh:
            pickle.dump(obj, fh)


def load(f, map_location=None, weights_only=None, **ignored):
    if hasattr(f, "read"):
        return pickle.load(f)
    with open(f, "rb") as fh:
        return pickle.load(fh)
