"""``torch.nn``: only ``functional`` (the losses and activations the documents use)."""

from . import functional

__all__ = ["functional"]
