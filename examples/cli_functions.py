"""Functions the README's "Command-line tool" section runs through the ``symdiff`` command.

Each is an ordinary numpy function; the docstring names the command that demonstrates it. Run the
commands from the repository root, e.g. ``symdiff show examples/cli_functions.py:rosenbrock --hessian``.
"""

import numpy as np


def loss(w, b, x, y):
    """Logistic-regression loss of weights ``w`` and bias ``b`` on data ``x``, labels ``y``:
    ``symdiff emit --value-and-grad --hessian --wrt w,b`` and ``symdiff check``."""
    z = x @ w + b
    return np.mean(np.logaddexp(0, z) - z * y)


def rosenbrock(x, y):
    """The banana function of two scalars: ``symdiff emit --grad`` and ``symdiff show --hessian``."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def bump(x):
    """A smooth function of one scalar: ``symdiff emit --order 3`` and ``symdiff check --order 4``."""
    return np.sin(np.exp(x) * x) / (1 + x**2)


def energy(p):
    """Log-sum-exp of one point ``p``: ``symdiff emit --hessian --signature "(n)->()"`` for a batch."""
    return np.log(np.sum(np.exp(p)))


def pendulum(q):
    """The pendulum's vector field at state ``q = (angle, velocity)``: ``symdiff show --jacobian``."""
    return np.stack([q[1], -np.sin(q[0])])


def staircase(x):
    """Steps of 1e-6: finite differences see slope 1, the exact derivative is 0 almost everywhere,
    so ``symdiff check`` reports the mismatch and exits with status 1."""
    return np.floor(x * 1e6) / 1e6


def branchy(x):
    """Python ``while`` on a traced value: ``symdiff emit`` explains the problem on one line (status 2).
    (An ``if`` on a traced value is traced as a select of both branches.)"""
    while x > 1:
        x = x / 2
    return x


def lennard_jones(x):
    """Lennard-Jones energy of four atoms at positions ``x`` (4, 3): stiff where two come close.
    ``symdiff check --shape x=4,3 --range 0 1.5`` (mean distance about 1.1, the equilibrium's)."""
    energy = 0.0
    for i in range(4):
        for j in range(i + 1, 4):
            r = np.sqrt(np.sum((x[i] - x[j]) ** 2))
            energy = energy + 4 * ((1 / r) ** 12 - (1 / r) ** 6)
    return energy


def offset_sine(x):
    """sin(x) on top of 1e12, which float64 keeps to about 1e-4: no finite difference can confirm
    the derivative cos(x) to 1e-6, so ``symdiff check`` says inconclusive (status 3), not FAILED."""
    return 1e12 + np.sin(x)
