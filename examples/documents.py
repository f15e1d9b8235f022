"""Reproduce every gradient and second derivative of the two PyTorch autograd tutorials in
../shared/seeds/ with symdiff's decorator API, printing each result next to the expected value."""

import numpy as np

import symdiff


def show(label, got, expected):
    ok = np.allclose(got, expected, rtol=1e-12, atol=1e-12)
    print(f"{label:<50} got {_text(got)}  expected {_text(expected)}  {'OK' if ok else 'MISMATCH'}")
    return ok


def _text(v):
    v = np.asarray(v, dtype=float)
    shape = f" (shape {v.shape})" if v.ndim > 1 else ""
    return np.array2string(v.ravel(), precision=4, max_line_width=10**6) + shape


def main() -> bool:
    ok = True
    print("== 001: autograd with exercises ==")

    @symdiff.grad
    def sum_3x(x):
        return np.sum(x * 3)

    x = np.random.default_rng(0).random((2, 2))
    ok &= show("d/dx sum(3x) at rand(2, 2)", sum_3x(x), np.full((2, 2), 3.0))
    ok &= show("accumulated with d/dx sum(4x)", sum_3x(x) + symdiff.grad(lambda x: np.sum(x * 4))(x), np.full((2, 2), 7.0))

    def cubic(x):
        return 2 * x**3 + 5 * x**2 + 8

    ok &= show("y = 2x^3 + 5x^2 + 8: dy/dx at 1", symdiff.grad(cubic)(1.0), 16.0)
    ok &= show("y = 2x^3 + 5x^2 + 8: d2y/dx2 at 1", symdiff.grad(symdiff.grad(cubic))(1.0), 22.0)

    @symdiff.derivative(order=1)
    def quartic(x):
        return 9 * x**4 + 2 * x**3 + 3 * x**2 + 6 * x + 1

    ok &= show("y = 9x^4 + 2x^3 + 3x^2 + 6x + 1: dy/dx at 2", quartic(2.0), 330.0)

    def two_vars(x, z):
        return x**2 + z**3

    ok &= show("y = x^2 + z^3: (dy/dx, dy/dz) at (1, 2)", symdiff.grad(two_vars, argnums=(0, 1))(1.0, 2.0), (2.0, 12.0))

    print("== 000: automatic differentiation ==")
    inp = np.eye(5)
    jac = symdiff.jacobian(lambda inp: (inp + 1) ** 2)(inp)
    vjp = np.einsum("ij,ijkl->kl", np.ones_like(inp), jac)
    ok &= show("ones @ d(inp + 1)^2/d inp at eye(5), diagonal", np.diag(vjp), np.full(5, 4.0))
    ok &= show("... off the diagonal", vjp[~np.eye(5, dtype=bool)], np.full(20, 2.0))

    rng = np.random.default_rng(0)
    xs, y = np.ones(5), np.zeros(3)
    w, b = rng.standard_normal((5, 3)), rng.standard_normal(3)

    @symdiff.grad(argnums=(0, 1))
    def bce_with_logits(w, b):
        z = xs @ w + b
        return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))

    gw, gb = bce_with_logits(w, b)
    z = xs @ w + b
    ref_b = (1 / (1 + np.exp(-z)) - y) / 3
    ok &= show("logistic model: b.grad", gb, ref_b)
    ok &= show("logistic model: w.grad", gw, np.outer(xs, ref_b))
    ok &= show("logistic model: every row of w.grad equals b.grad", gw, np.tile(gb, (5, 1)))
    print("all results match" if ok else "SOME RESULTS DIFFER")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
