"""../shared/seeds/000_cc3d0d106a998bff.txt ("automatic differentiation") run on symdiff.

The code cells are the document's, verbatim, except `import torch` -> `import symdiff.torchlike as
torch` plus a fixed seed. Every gradient is derived by symdiff from the recorded graph and run as
generated numpy code. The document's w and b were random, so where a printed value depends on them
the closed form on the same w and b is printed next to it: b.grad = (sigmoid(z) - y) / 3 and
w.grad = outer(x, b.grad), so every row of w.grad equals b.grad.

Run: python3 examples/torch_autograd_000.py
"""

import numpy as np
from notebook_runner import Cell, run


def logistic_reference(ns):
    x, y = ns["x"].numpy().astype(np.float64), ns["y"].numpy().astype(np.float64)
    w, b = ns["w"].detach().numpy().astype(np.float64), ns["b"].detach().numpy().astype(np.float64)
    b_grad = (1 / (1 + np.exp(-(x @ w + b))) - y) / 3
    return [("closed form outer(x, (sigmoid(z) - y) / 3)", np.outer(x, b_grad)), ("closed form (sigmoid(z) - y) / 3", b_grad)]


CELLS = [
    Cell(
        "In [3]",
        """\
import symdiff.torchlike as torch
torch.manual_seed(0);

x = torch.ones(5)  # input tensor
y = torch.zeros(3)  # output
w = torch.randn(5, 3, requires_grad=True)
b = torch.randn(3, requires_grad=True)  # 네트워크의 가중치와 편향 최적화를 위해 `requires_grade_(True)` 속성을 설정한다.
z = torch.matmul(x, w)+b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
""",
    ),
    Cell(
        "In [4]",
        """\
loss.backward()
print(w.grad)
print(b.grad)
""",
        reference=logistic_reference,
        note="random w, b: the document printed 0.0543, 0.2549, 0.3251 for its own",
    ),
    Cell(
        "In [7]",
        """\
z = torch.matmul(x, w)+b
print(z.requires_grad)

with torch.no_grad():
    z = torch.matmul(x, w)+b
print(z.requires_grad)

z = torch.matmul(x, w)+b
z_det = z.detach()
print(z_det.requires_grad)
""",
    ),
    Cell(
        "In [10]",
        """\
inp = torch.eye(5, requires_grad=True)
out = (inp+1).pow(2)
out.backward(torch.ones_like(inp), retain_graph=True)
print("First call\\n", inp.grad)
out.backward(torch.ones_like(inp), retain_graph=True)
print("\\nSecond call\\n", inp.grad)
inp.grad.zero_()
out.backward(torch.ones_like(inp), retain_graph=True)
print("\\nCall after zeroing gradients\\n", inp.grad)
""",
    ),
]


if __name__ == "__main__":
    run(CELLS)
