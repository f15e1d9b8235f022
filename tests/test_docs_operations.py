"""docs/operations.md is generated from the tracer's and the registry's tables: it must be current."""

from pathlib import Path

from symdiff.ops import catalogue

PAGE = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def test_operations_page_is_up_to_date():
    assert PAGE.read_text() == catalogue.render(), (
        "docs/operations.md is out of date: run python3 -m symdiff.ops.catalogue > docs/operations.md"
    )


def test_every_listed_function_is_traced():
    import numpy as np

    import symdiff

    text = PAGE.read_text()
    for name in ("np.sum", "np.linalg.norm", "np.where", "np.absolute", "scipy.special.erf"):
        assert f"`{name}`" in text
    np.testing.assert_allclose(symdiff.grad(lambda x: np.linalg.norm(x))(np.array([3.0, 4.0])), [0.6, 0.8])
