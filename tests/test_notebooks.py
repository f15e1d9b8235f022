"""The example notebooks execute (nbclient, a real Jupyter kernel) and print the gradients the seed
documents give. Only the cell tagged ``raises-exception`` (the document's second backward without
``retain_graph``) may error, and it must raise PyTorch's message."""

import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "examples" / "notebooks"

EXPECTED = {
    "autograd_000.ipynb": {
        "gradients-check": ["True True"],
        "accumulate": ["First call\n tensor([[4., 2., 2., 2., 2.],", "Second call\n tensor([[8., 4., 4., 4., 4.],",
                       "Call after zeroing gradients\n tensor([[4., 2., 2., 2., 2.],"],
        "decorator-gradients": ["True True"],
        "decorator-accumulate": ["[[4. 2. 2. 2. 2.]\n [2. 4. 2. 2. 2.]"],
        "decorator-formula": [r"\frac{\partial \mathrm{bce\_loss}}{\partial w}"],
        "decorator-program": ["```mermaid\nflowchart TD", "LogAddExp(0, n4)"],
        "decorator-graph": ["```mermaid\nflowchart TD", "einsum", "d/d(w, b) rule"],
        "make-dot": ["```mermaid\nflowchart TD", "BinaryCrossEntropyWithLogitsBackward0"],
    },
    "autograd_001.ipynb": {
        "sum-display": ["3 t_{0 0 0} + 3 t_{0 0 1}", "```mermaid", "SumBackward0"],
        "grad-3": ["tensor([[3., 3.],\n        [3., 3.]])"],
        "grad-7": ["tensor([[7., 7.],\n        [7., 7.]])"],
        "grad-4": ["tensor([[4., 4.],\n        [4., 4.]])"],
        "retain-3": ["tensor([[3., 3.],\n        [3., 3.]])"],
        "retain-6": ["tensor([[6., 6.],\n        [6., 6.]])"],
        "autograd-grad": ["(tensor([[3., 3.],\n         [3., 3.]]),)"],
        "no-grad": ["True\nTrue\nFalse"],
        "second-derivative": ["(tensor(22.),)"],
        "first-derivative-display": ["tensor(16., grad_fn=<AddBackward0>)", "6 t_{0}^{2} + 10 t_{0}"],
        "exercise-330": ["(tensor(330., grad_fn=<AddBackward0>),)"],
        "exercise-330-backward": ["tensor(330.)"],
        "exercise-partials": ["(tensor(2., grad_fn=<MulBackward0>),)\n(tensor(12., grad_fn=<MulBackward0>),)"],
        "exercise-data": ["tensor(1.)"],
        "decorator-second": ["16.0 22.0"],
        "decorator-second-formula": ["12 x + 10"],
        "decorator-exercises": ["330.0\n(2.0, 12.0)"],
    },
}


def _text(cell) -> str:
    """A cell's outputs as text; stream outputs are concatenated as printed (the kernel splits one
    cell's prints into several stream outputs depending on timing)."""
    text = ""
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            text += out.text
        elif out.output_type in ("execute_result", "display_data"):
            text += "\n" + out.data.get("text/markdown", "") + "\n" + out.data.get("text/plain", "") + "\n"
        elif out.output_type == "error":
            text += f"\n{out.ename}: {out.evalue}\n"
    return text


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_executes_and_prints_the_documents_gradients(name, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:  # run from scratch: stored outputs must not satisfy the checks
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    cells = {c.id: c for c in nb.cells if c.cell_type == "code"}
    for cell in cells.values():
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if "raises-exception" in cell.metadata.get("tags", []):
            assert errors and "backward through the graph a second time" in errors[0].evalue
        else:
            assert not errors, f"cell {cell.id} errored: {_text(cell)}"
    for cell_id, wanted in EXPECTED[name].items():
        text = _text(cells[cell_id])
        for w in wanted:
            assert w in text, f"cell {cell_id}: {w!r} not in\n{text}"
