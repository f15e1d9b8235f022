"""../shared/seeds/001_b98e1e5691ba5244.txt ("autograd" with exercises) run on symdiff.

The code cells are the document's, verbatim, except `import torch` -> `import symdiff.torchlike as
torch` plus a fixed seed, and two cells the document shows commented out next to their output
(accumulation into 7s, then 4s after zeroing), which run here so that output can be reproduced.
Every gradient, including the second derivative with create_graph=True, is derived by symdiff and
run as generated numpy code. Where a printed value depends on the random x, a reference computed
with numpy on the same x is printed next to it.

Run: python3 examples/torch_autograd_001.py
"""

import numpy as np
from notebook_runner import Cell, run


def _x(ns):
    return ns["x"].detach().numpy().astype(np.float64)


CELLS = [
    Cell("In [1]", "import symdiff.torchlike as torch\ntorch.manual_seed(0);\n"),
    Cell(
        "In [2]",
        "x = torch.rand(2, 2, requires_grad=True)\nprint(x)\n",
        note="random x: the document printed its own",
    ),
    Cell(
        "In [3]",
        "y = torch.sum(x * 3)\nprint(y, y.grad_fn)\n",
        reference=lambda ns: [("3 * x.sum()", 3 * _x(ns).sum())],
    ),
    Cell("In [5]", "print(x.grad)\n"),
    Cell("In [6]", "y.backward() # gradient를 계산한다.\nx.grad\n"),
    Cell(
        "In [6]",
        "y2 = torch.sum(x*4)\ny2.backward()\nx.grad\n",
        note="commented out in the document, which shows this output",
    ),
    Cell(
        "In [7]",
        "y2 = torch.sum(x*4)\nx.grad.zero_()\ny2.backward()\nx.grad\n",
        note="commented out in the document, which shows this output",
    ),
    Cell("In [7]", "y.backward() # 2번째 backward() 호출시 retain_graph=False 로 에러가 난다.\nx.grad\n"),
    Cell(
        "In [8]",
        "x = torch.rand(2, 2, requires_grad=True)\ny = torch.sum(x * 3)\n\ny.backward(retain_graph=True) # retain_graph = True\n",
    ),
    Cell("In [9]", "x.grad\n"),
    Cell("In [10]", "y.backward(retain_graph=True) # grad는 누적된다.\nx.grad\n"),
    Cell("In [11]", "torch.autograd.grad(y, x)\n"),
    Cell(
        "In [12]",
        "y_1 = y.detach()\ntorch.sigmoid(y_1)\n",
        reference=lambda ns: [("1 / (1 + exp(-3 * x.sum()))", 1 / (1 + np.exp(-3 * _x(ns).sum())))],
        note="depends on the random x of In [8]; the document printed tensor(0.9508) for its own",
    ),
    Cell(
        "In [13]",
        """\
x = torch.randn(3, requires_grad=True)

print(x.requires_grad)
print((x ** 2).requires_grad)

with torch.no_grad():
    print((x ** 2).requires_grad)
""",
    ),
    Cell("In [14]", "x = torch.tensor(1., requires_grad = True)\ny = 2*x**3 + 5*x**2 + 8\n"),
    Cell(
        "In [15]",
        """\
first_derivative = torch.autograd.grad(y, x, 
                                       retain_graph=True, 
                                       create_graph=True)
second_derivative = torch. autograd.grad(first_derivative, x)
""",
    ),
    Cell("In [16]", "second_derivative\n"),
    Cell("In [17]", "import symdiff.torchlike as torch\n"),
    Cell("In [20]", "x = torch.tensor(2.0, requires_grad=True)\ny = 9*x**4 + 2*x**3 + 3*x**2 + 6*x +1\n"),
    Cell(
        "In [19]",
        """\
first_derivative = torch.autograd.grad(y, x, 
                                       retain_graph=True, 
                                       create_graph=True)
print(first_derivative)
""",
    ),
    Cell("In [21]", "y.backward()\n"),
    Cell("In [22]", "x.grad\n"),
    Cell(
        "In [23]",
        "x = torch.tensor(1.0, requires_grad=True)\nz = torch.tensor(2.0, requires_grad=True)\ny = x**2 + z**3\n",
    ),
    Cell(
        "In [25]",
        """\
first_derivative_x = torch.autograd.grad(y, x, 
                                       retain_graph=True, 
                                       create_graph=True)
print(first_derivative_x)

first_derivative_z = torch.autograd.grad(y, z, 
                                       retain_graph=True, 
                                       create_graph=True)
print(first_derivative_z)
                                        
""",
    ),
    Cell("In [26]", "x.data\n"),
]


if __name__ == "__main__":
    run(CELLS)
