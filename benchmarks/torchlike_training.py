"""symdiff.torchlike against PyTorch eager on small training loops (issue 15, item 6), side by side.

    python benchmarks/torchlike_training.py             # 200 epochs each
    python benchmarks/torchlike_training.py --epochs 50 --threads 1   # one thread for numpy's BLAS and PyTorch

Workloads, each written once against a module ``T`` (``torch`` or ``symdiff.torchlike``):
linear regression (100 x 3, manual SGD under ``no_grad``, the tutorial loop) and a 2-layer MLP
(``nn.Sequential`` + ``optim.Adam`` + ``F.mse_loss``) on 256 x 20 (hidden 32: per-step overhead) and
on the tutorial's 10k x 20 (hidden 64, a tenth of the epochs: arithmetic dominates). Each loop runs once as a
warm-up (torchlike derives and compiles its gradient there), then the median of 5 timed runs is
reported per step, with the ratio torchlike / PyTorch. Both get the same data and initial weights,
and the final losses are printed to show they agree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

from threads import threads_from_argv  # noqa: E402

THREADS = threads_from_argv(sys.argv[1:])  # before numpy loads: --threads applies to numpy's BLAS too

import numpy as np  # noqa: E402

import symdiff.torchlike as torchlike  # noqa: E402


def linear_regression(T, data, epochs):
    x, y, w0 = (T.tensor(a) for a in data)
    w = w0.clone().requires_grad_(True)
    b = T.zeros(1, requires_grad=True)
    for _ in range(epochs):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with T.no_grad():
            w -= 0.05 * w.grad
            b -= 0.05 * b.grad
            w.grad.zero_()
            b.grad.zero_()
    return loss.item()


def mlp(T, data, epochs):
    x, y, *weights = (T.tensor(a) for a in data)
    hidden = weights[0].shape[0]
    model = T.nn.Sequential(T.nn.Linear(20, hidden), T.nn.ReLU(), T.nn.Linear(hidden, 1))
    with T.no_grad():
        for p, v in zip(model.parameters(), weights):
            p.copy_(v)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        loss = T.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    return loss.item()


def make_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 3)).astype(np.float32)
    lin = (x, (x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3).astype(np.float32), np.zeros((3, 1), np.float32))
    def mlp_data(n, hidden):
        X = rng.standard_normal((n, 20)).astype(np.float32)
        Y = (np.sin(X[:, :1]) + 0.1 * X[:, 1:2]).astype(np.float32)
        shapes = ((20**-0.5, (hidden, 20)), (20**-0.5, (hidden,)), (hidden**-0.5, (1, hidden)), (hidden**-0.5, (1,)))
        return (X, Y, *[rng.uniform(-b, b, s).astype(np.float32) for b, s in shapes])

    return {"linear regression 100 x 3 (manual SGD)": (linear_regression, lin, 1),
            "2-layer MLP 256 x 20 -> 32 -> 1 (Sequential + Adam)": (mlp, mlp_data(256, 32), 1),
            "2-layer MLP 10k x 20 -> 64 -> 1 (Sequential + Adam)": (mlp, mlp_data(10_000, 64), 0.1)}


def per_step(fn, T, data, epochs, repeats=5):
    fn(T, data, epochs)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss = fn(T, data, epochs)
        times.append((time.perf_counter() - start) / epochs)
    return statistics.median(times), loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"| workload | PyTorch {torch.__version__} per step | symdiff.torchlike per step | ratio | final losses |")
    print("|---|---|---|---|---|")
    for name, (fn, data, share) in make_data().items():
        epochs = max(1, int(args.epochs * share))
        t_ref, l_ref = per_step(fn, torch, data, epochs)
        t_ours, l_ours = per_step(fn, torchlike, data, epochs)
        print(f"| {name}, {epochs} epochs | {t_ref * 1e6:.0f} us | {t_ours * 1e6:.0f} us | "
              f"{t_ours / t_ref:.2f}x | {l_ref:.6g} / {l_ours:.6g} |")


if __name__ == "__main__":
    main()
