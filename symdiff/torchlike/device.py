"""``torch.device`` and ``torch.cuda``: symdiff.torchlike computes on the cpu (numpy), so tutorials'
``device = "cuda" if torch.cuda.is_available() else "cpu"`` picks the cpu and ``.to(device)`` works."""

from __future__ import annotations


class device:
    """``torch.device("cpu")``; any other device type is refused when a tensor is moved to it."""

    def __init__(self, type="cpu", index=None):
        text = str(type)
        self.type, _, idx = text.partition(":")
        self.index = int(idx) if idx else index

    def __eq__(self, other):
        return str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"


class cuda:
    """``torch.cuda``: no GPU here."""

    @staticmethod
    def is_available() -> bool:
        return False

    @staticmethod
    def device_count() -> int:
        return 0
