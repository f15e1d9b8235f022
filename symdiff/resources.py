"""Where symdiff's package data lives (a module of its own so that finding it imports nothing heavy)."""

from __future__ import annotations

import os


def template_dir() -> str:
    """The templates shipped inside the package, or the checkout's top-level templates/ folder."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, "templates"), os.path.join(os.path.dirname(here), "templates")):
        if os.path.isfile(os.path.join(path, "module.py.j2")):
            return path
    raise FileNotFoundError("symdiff's templates are missing: reinstall symdiff")
