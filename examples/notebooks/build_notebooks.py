"""Write the two seed documents as Jupyter notebooks (autograd_000.ipynb, autograd_001.ipynb).

Each notebook is English markdown, the document's code cells with ``import symdiff.torchlike as
torch`` (taken from the example scripts, so their comments are the document's Korean), a look at
the formulas and graph pictures symdiff can show, and the same computations with the decorator
API. Cells carry ids so tests/test_notebooks.py can find the ones whose printed gradients the
documents give.

Run: python3 examples/notebooks/build_notebooks.py [--execute]   (--execute: with their outputs)
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from torch_autograd_000 import CELLS as DOC_000
from torch_autograd_001 import CELLS as DOC_001


def md(text):
    cell = new_markdown_cell(text.strip())
    cell.id = ""  # numbered by build()
    return cell


def doc(cell, cell_id=None, raises=False):
    """A code cell of the document (``examples/torch_autograd_00*.py`` holds them verbatim)."""
    return code(cell.code, cell_id, raises)


def code(text, cell_id=None, raises=False):
    cell = new_code_cell(text.strip("\n"))
    cell.id = cell_id or ""  # unnamed cells are numbered by build()
    if raises:  # the document shows this error; nbclient carries on after it
        cell.metadata["tags"] = ["raises-exception"]
    return cell


NOTEBOOK_000 = [
    md("""
# Automatic differentiation with `torch.autograd` — run by symdiff

*From the source document `000_cc3d0d106a998bff` (a Korean tutorial), translated.*

The algorithm most used to train neural networks is **backpropagation**: parameters are adjusted
according to the **gradient** of the loss function with respect to each parameter. PyTorch computes
these gradients with `torch.autograd`.

Here the document's code runs unchanged except for one line: `import symdiff.torchlike as torch`.
symdiff records what the tensors do, derives the gradient **symbolically** and runs generated numpy
code — so it can also show you the exact formula and the graph behind each gradient.
"""),
    md("""
A one-layer logistic model: input `x`, target `y`, weights `w` and bias `b` that require gradients
(the cell's Korean comment: `requires_grad` is set so that the weights and bias can be optimized).
"""),
    doc(DOC_000[0], "model"),
    md("""
### What did autograd record?

A tensor with a `grad_fn` displays its formula (written out over the tensors it was computed
from, long ones through named common subexpressions) and its `grad_fn` chain as a picture.
`torch.make_dot` draws the chain (torchviz's function): each box is a backward function with its
result shape; elementwise steps show their formula.
"""),
    code("loss", "loss-display"),
    code('torch.make_dot(loss, params={"w": w, "b": b, "x": x, "y": y})', "make-dot"),
    md("""
### Computing gradients

To optimize the weights we need the derivatives of the loss with respect to the parameters.
Call `loss.backward()`, then read `w.grad` and `b.grad`. The document's `w` and `b` were random,
so its printed numbers are its own; the closed form `b.grad = (sigmoid(z) - y) / 3`,
`w.grad = outer(x, b.grad)` checks ours (every row of `w.grad` equals `b.grad` since `x` is all ones).
"""),
    doc(DOC_000[1], "gradients"),
    code("""
import numpy as np
b_ref = (torch.sigmoid(z).detach().numpy() - y.numpy()) / 3
print(np.allclose(b.grad.numpy(), b_ref), np.allclose(w.grad.numpy(), np.outer(x.numpy(), b_ref)))
""", "gradients-check"),
    md("""
### Turning gradient tracking off

Every result of tensors with `requires_grad=True` tracks its history; `torch.no_grad()` or
`detach()` stop it — to freeze some parameters, or to compute faster when no gradient is needed.
"""),
    doc(DOC_000[2], "tracking"),
    md("""
### More on the computational graph

Autograd keeps every operation in a DAG whose leaves are the input tensors and whose roots are
the outputs. The forward pass computes the results and records each operation's gradient function;
the backward pass, started from the root, computes the gradients (`.grad_fn`), accumulates them
into each leaf's `.grad` and propagates them by the chain rule. For a non-scalar output,
`backward` takes the output gradient explicitly.
"""),
    doc(DOC_000[3], "accumulate"),
    md("""
The same arguments gave different gradients: backward **accumulates** into `.grad`. Zero it before
computing a fresh gradient.

## The same with symdiff's decorator API

symdiff's own API differentiates a plain numpy function. `symdiff.grad` returns the gradient as a
function; displayed in Jupyter it says what it computes and, once called, shows the formula.
"""),
    code("""
import numpy as np
import symdiff

def bce_loss(w, b, x, y):
    z = x @ w + b
    return np.mean(np.logaddexp(0.0, z) - y * z)  # binary_cross_entropy_with_logits, mean reduction

grad_loss = symdiff.grad(bce_loss, argnums=(0, 1))
grad_loss
""", "decorator-before"),
    code("""
W, B = w.detach().numpy().astype(np.float64), b.detach().numpy().astype(np.float64)
X, Y = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
gw, gb = grad_loss(W, B, X, Y)
print(gb)
print(np.allclose(gw, w.grad.numpy(), atol=1e-6), np.allclose(gb, b.grad.numpy(), atol=1e-6))
""", "decorator-gradients"),
    code("grad_loss", "decorator-formula"),
    md("The function's own traced program, as symdiff sees it (elementwise steps fused into one formula):"),
    code("""
from symdiff import pictures
pictures.program(bce_loss, W, B, X, Y, format="mermaid")
""", "decorator-program"),
    md("""
The derivative's graph (Mermaid renders in Jupyter and on GitHub; `format='dot'` or `'svg'` too).
Filled boxes came from a derivative rule, and say which:
"""),
    code('grad_loss.graph(W, B, X, Y, format="mermaid")', "decorator-graph"),
    md("And the generated code that runs — plain numpy:"),
    code("print(grad_loss.source(W, B, X, Y))", "decorator-source"),
    md("The non-scalar example: the gradient of `sum((inp + 1) ** 2)` is `2 (inp + 1)`: 4 on the diagonal, 2 elsewhere."),
    code("""
grad_out = symdiff.grad(lambda inp: np.sum((inp + 1) ** 2))
print(grad_out(np.eye(5)))
""", "decorator-accumulate"),
]


NOTEBOOK_001 = [
    md("""
# Autograd, with exercises — run by symdiff

*From the source document `001_b98e1e5691ba5244` (a Korean tutorial), translated.*

The `autograd` package differentiates every operation on tensors automatically. It is
define-by-run: backpropagation is defined by the code as it runs, and can differ at every step.

* Create a tensor with `requires_grad=True` (or call `.requires_grad_(True)`) and every operation
  on it is differentiated; `.detach()` stops that.

The document's code runs here with `import symdiff.torchlike as torch` (its comments are the
original Korean; this text explains them): symdiff derives each gradient symbolically and runs
generated numpy code.
"""),
    doc(DOC_001[0]),
    doc(DOC_001[1]),
    md("`y` is the result of an operation on `x`, so it has a gradient function: print `grad_fn`."),
    doc(DOC_001[2], "sum"),
    md(r"""
In Jupyter, `y` itself shows its formula and its graph:

$$ y = \sum_{i=1}^4 3 x_i, \qquad \frac{\partial y}{\partial x_i} = 3 $$
"""),
    code("y", "sum-display"),
    md("`y.backward()` fills `x.grad`. Before it, `x.grad` is `None`."),
    doc(DOC_001[3]),
    doc(DOC_001[4], "grad-3"),
    md("Gradients **accumulate**: a further backward of `sum(x * 4)` adds 4s (the document shows these two cells commented out, with their output)."),
    doc(DOC_001[5], "grad-7"),
    doc(DOC_001[6], "grad-4"),
    md("""
### `retain_graph`

* `retain_graph=False` is the default: `backward()` frees the intermediate values it used, so a
  second `backward()` through the same graph raises an error asking for `retain_graph=True`.
* With `retain_graph=True` the graph is kept and backward can run again (gradients accumulate).
"""),
    doc(DOC_001[7], "second-backward", raises=True),
    doc(DOC_001[8]),
    doc(DOC_001[9], "retain-3"),
    doc(DOC_001[10], "retain-6"),
    md("""
* `torch.autograd.grad(outputs, inputs)` returns the gradients instead of accumulating them into `.grad`.
* `.detach()` gives a tensor that is not tracked; `with torch.no_grad():` stops tracking in a block.
"""),
    doc(DOC_001[11], "autograd-grad"),
    doc(DOC_001[12]),
    doc(DOC_001[13], "no-grad"),
    md("### Second derivative\n\n$y = 2x^3 + 5x^2 + 8$: $y' = 6x^2 + 10x$ (16 at $x = 1$), $y'' = 12x + 10$ (22)."),
    doc(DOC_001[14]),
    doc(DOC_001[15]),
    doc(DOC_001[16], "second-derivative"),
    md("""
A gradient made with `create_graph=True` has a `grad_fn`: its graph is the symbolic derivative,
which is what the second `autograd.grad` differentiated (and then freed). A fresh one shows it:
"""),
    code("""
(d1,) = torch.autograd.grad(2*x**3 + 5*x**2 + 8, x, create_graph=True)
d1
""", "first-derivative-display"),
    md("# Autograd exercises\n\n1. Create `x = 2` and `y = 9x^4 + 2x^3 + 3x^2 + 6x + 1`."),
    doc(DOC_001[17]),
    doc(DOC_001[18]),
    md("2. Differentiate `y` with respect to `x` and print it; `.backward()` computes it too."),
    doc(DOC_001[19], "exercise-330"),
    doc(DOC_001[20]),
    doc(DOC_001[21], "exercise-330-backward"),
    md("3. Create `x = 1`, `z = 2`, `y = x^2 + z^3`.  4. Print the partial derivatives of `y` with respect to `x` and `z`."),
    doc(DOC_001[22]),
    doc(DOC_001[23], "exercise-partials"),
    doc(DOC_001[24], "exercise-data"),
    md("""
## The same with symdiff's decorator API

`symdiff.grad` and `symdiff.derivative` differentiate plain Python/numpy functions; displayed in
Jupyter they show their formula once compiled, and `.graph(..., format="mermaid")` draws the
derivative's graph (each box says which rule made it).
"""),
    code("""
import numpy as np
import symdiff

print(symdiff.grad(lambda x: np.sum(x * 3))(np.ones((2, 2))))

def f(x):
    return 2*x**3 + 5*x**2 + 8

df = symdiff.derivative(f)
d2f = symdiff.derivative(f, order=2)
print(df(1.0), d2f(1.0))
""", "decorator-second"),
    code("d2f", "decorator-second-formula"),
    code('df.graph(1.0, format="mermaid")', "decorator-graph"),
    code("""
def g(x):
    return 9*x**4 + 2*x**3 + 3*x**2 + 6*x + 1

def h(x, z):
    return x**2 + z**3

print(symdiff.grad(g)(2.0))
print(symdiff.grad(h, argnums=(0, 1))(1.0, 2.0))
""", "decorator-exercises"),
]


def build(execute: bool = False) -> list:
    """Write the notebooks (with their outputs when ``execute``: needs nbclient and ipykernel)."""
    paths = []
    for name, cells in (("autograd_000.ipynb", NOTEBOOK_000), ("autograd_001.ipynb", NOTEBOOK_001)):
        for k, cell in enumerate(cells):  # stable ids: rebuilding changes nothing that did not change
            if not cell.id:
                cell.id = f"cell-{k}"
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.validate(nb)
        if execute:
            from nbclient import NotebookClient

            NotebookClient(nb, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(HERE.parent.parent)}}).execute()
        path = HERE / name
        nbformat.write(nb, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    for p in build(execute="--execute" in sys.argv):
        print(f"wrote {p}")
