"""scipy's solvers with symdiff's sparse derivatives (issue 13).

    python examples/sparse_solvers.py          # 2-D Brusselator 32x32 with solve_ivp(BDF); Rosenbrock with trust-constr

The Brusselator right-hand side (periodic, written with np.roll) is integrated with the sparse
symdiff Jacobian and with scipy's finite differences given symdiff's pattern as ``jac_sparsity``;
Rosenbrock is minimized with ``minimize(method="trust-constr")`` given the sparse Hessian.
``brusselator`` is also used by tests/test_sparse.py and benchmarks/sparse.py.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def brusselator(n, a=1.0, b=3.0, d=(0.02, 0.01)):
    """(right-hand side of the 2-D Brusselator on an n x n periodic grid, an initial state)."""
    h2 = (1.0 / n) ** 2

    def lap(w):
        return (np.roll(w, 1, 0) + np.roll(w, -1, 0) + np.roll(w, 1, 1) + np.roll(w, -1, 1) - 4 * w) / h2

    def rhs(y):
        u, v = y[: n * n].reshape(n, n), y[n * n :].reshape(n, n)
        du = a + u * u * v - (b + 1) * u + d[0] * lap(u)
        dv = b * u - u * u * v + d[1] * lap(v)
        return np.concatenate([du.reshape(-1), dv.reshape(-1)])

    grid = np.linspace(0, 1, n, endpoint=False)
    u0 = 1 + 0.5 * np.sin(2 * np.pi * grid)[:, None] * np.ones(n)
    v0 = 3 + 0.1 * np.cos(2 * np.pi * grid)[None, :] * np.ones((n, 1))
    return rhs, np.concatenate([u0.reshape(-1), v0.reshape(-1)])


def rosen(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def main(n=32):
    from scipy.integrate import solve_ivp
    from scipy.optimize import minimize

    import symdiff

    rhs, y0 = brusselator(n)
    jac = symdiff.jacobian(rhs, sparse=True)
    pattern = symdiff.jacobian_sparsity(rhs)(y0)
    print(jac.compiled(y0).summary)
    finals = []
    for name, kw in [("symdiff jac", {"jac": lambda t, y: jac(y)}), ("fd + jac_sparsity", {"jac_sparsity": pattern})]:
        start = time.perf_counter()
        sol = solve_ivp(lambda t, y: rhs(y), (0, 1.0), y0, method="BDF", rtol=1e-8, atol=1e-10, **kw)
        print(f"{name}: {time.perf_counter() - start:.2f} s, {sol.njev} Jacobians, {sol.nfev} rhs evaluations")
        finals.append(sol.y[:, -1])
    print(f"largest difference of the final states: {np.abs(finals[0] - finals[1]).max():.1e}")
    x0 = np.full(200, -0.5)
    result = minimize(rosen, x0, method="trust-constr", jac=symdiff.grad(rosen),
                      hess=symdiff.hessian(rosen, sparse=True), options={"gtol": 1e-10})
    print(f"trust-constr with the sparse Hessian: {result.nit} iterations, max |x - 1| = {np.abs(result.x - 1).max():.1e}")
    return 0 if np.abs(finals[0] - finals[1]).max() < 1e-5 and np.abs(result.x - 1).max() < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:])))
