"""docs/extending.md: every Python block on the page runs and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.stage_helpers import registry_restored

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index):
    with registry_restored():  # the page's example op is not left registered for other tests
        _run(index)


def _run(index):
    exec(compile(BLOCKS[index], f"{DOC.name} block {index + 1}", "exec"), {"__name__": "docs_example"})
