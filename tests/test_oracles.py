"""Independent oracles: PyTorch and JAX gradients and Hessians of a handful of functions agree with
symdiff to 1e-10 in float64, at random points; JAX's conventions at kinks (README: maximum,
minimum and clip split ties 0.5/0.5, where routes to the selected branch); and random array
programs built from the supported operations are checked against JAX (a few by default, many with
SYMDIFF_FUZZ_EXAMPLES=1000 and -m slow). Skipped cleanly when an oracle is not installed."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import symdiff

from .stage_helpers import away_from, points

RTOL, ATOL = 1e-10, 1e-12
SETTINGS = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)


@pytest.fixture(scope="module")
def jax_np():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


_JITTED: dict = {}


def jitted(jax, jnp, name, kind):
    """jax.jit of the gradient or Hessian of FUNCTIONS[name], compiled once per session."""
    if (name, kind) not in _JITTED:
        fun = FUNCTIONS[name][0]
        n = len(FUNCTIONS[name][1])

        def f(*a):
            return fun(*a, xp=jnp)

        transform = jax.grad(f, argnums=tuple(range(n))) if kind == "grad" else jax.hessian(f)
        _JITTED[name, kind] = jax.jit(transform)
    return _JITTED[name, kind]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def close(a, b, rtol=RTOL, atol=ATOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, float(np.max(np.abs(b)))))


# ---------------------------------------------------------------------------------------------
# Functions written once against a numpy-like namespace ``xp`` (numpy for symdiff, jax.numpy for
# JAX) and once for PyTorch
# ---------------------------------------------------------------------------------------------

rng = np.random.default_rng(2024)
XD, YD = rng.normal(size=(8, 5)), rng.random((8, 3))
W2 = rng.normal(size=(4, 2))
K = rng.normal(size=(4, 4)) / 2


def logistic(w, b, xp=np):
    z = XD @ w + b
    return xp.mean(xp.maximum(z, 0) - z * YD + xp.log1p(xp.exp(-xp.abs(z))))


def rosenbrock(x, xp=np):
    return xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def mlp(w1, xp=np):
    h = xp.tanh(XD @ w1 + 0.1)
    return xp.sum((h @ W2) ** 2) / 8


def structural(x, xp=np):
    y = xp.concatenate([x[::-1], x[None, 0] ** 2], axis=0)  # (5, 3)
    z = xp.where(y > 0.2, y * x[0], xp.sin(y))
    return xp.sum(xp.transpose(z) @ xp.stack([y[:, 0], y[:, 2]], axis=1)) + xp.prod(xp.cos(x), axis=0).sum()


def special(x, xp=np):
    return xp.sum(
        xp.arctan2(x[0], 1.5 + x[1] ** 2)
        + xp.hypot(x[1], 0.5)
        + xp.arcsinh(x[2]) * xp.expm1(x[0] / 3)
        + xp.log10(1.5 + xp.sinh(x[1]) ** 2)
        + xp.power(1.2 + x[2] ** 2, x[0] / 2)
        + xp.logaddexp(x[0], 2 * x[1])
    )


def _torch_versions(torch):
    t = torch

    def logistic_t(w, b):
        z = t.from_numpy(XD) @ w + b
        return t.mean(t.clamp(z, min=0) - z * t.from_numpy(YD) + t.log1p(t.exp(-t.abs(z))))

    def rosenbrock_t(x):
        return t.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    def mlp_t(w1):
        h = t.tanh(t.from_numpy(XD) @ w1 + 0.1)
        return t.sum((h @ t.from_numpy(W2)) ** 2) / 8

    def structural_t(x):
        y = t.cat([t.flip(x, [0]), x[None, 0] ** 2], dim=0)
        z = t.where(y > 0.2, y * x[0], t.sin(y))
        return t.sum(z.T @ t.stack([y[:, 0], y[:, 2]], dim=1)) + t.prod(t.cos(x), dim=0).sum()

    def special_t(x):
        return t.sum(
            t.atan2(x[0], 1.5 + x[1] ** 2)
            + t.hypot(x[1], t.full_like(x[1], 0.5))
            + t.asinh(x[2]) * t.expm1(x[0] / 3)
            + t.log10(1.5 + t.sinh(x[1]) ** 2)
            + t.pow(1.2 + x[2] ** 2, x[0] / 2)
            + t.logaddexp(x[0], 2 * x[1])
        )

    return {
        "logistic": logistic_t,
        "rosenbrock": rosenbrock_t,
        "mlp": mlp_t,
        "structural": structural_t,
        "special": special_t,
    }


# name: (numpy/jax function, argument shapes)
FUNCTIONS = {
    "logistic": (logistic, [(5, 3), (3,)]),
    "rosenbrock": (rosenbrock, [(6,)]),
    "mlp": (mlp, [(5, 4)]),
    "structural": (structural, [(4, 3)]),
    "special": (special, [(3, 4)]),
}


def draw_args(data, name):
    """Points away from 0, where the logistic loss has kinks (abs, maximum) whose conventions differ."""
    # and from |x| = 0.5, where jax.hessian of jnp.hypot(x, 0.5) is wrong (0 instead of 0.25/0.5**1.5)
    kinks = (0.0, 0.5, -0.5) if name == "special" else (0.0,)
    return [data.draw(points(shape, -1.5, 1.5, away_from(*kinks, margin=0.05))) for shape in FUNCTIONS[name][1]]


def all_grads(fun, args):
    """symdiff's gradient with respect to every argument, as a list."""
    if len(args) == 1:
        return [symdiff.grad(fun)(*args)]
    return list(symdiff.grad(fun, argnums=tuple(range(len(args))))(*args))


# ---------------------------------------------------------------------------------------------
# JAX
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@SETTINGS
@given(data=st.data())
def test_gradients_and_hessians_agree_with_jax(jax_np, name, data):
    jax, jnp = jax_np
    fun = FUNCTIONS[name][0]
    args = draw_args(data, name)
    argnums = tuple(range(len(args)))
    ours = all_grads(fun, args)
    theirs = jitted(jax, jnp, name, "grad")(*args)
    assert len(theirs) == len(argnums)
    for a, b in zip(ours, theirs):
        close(a, b)
    close(symdiff.value_and_grad(fun)(*args)[0], fun(*args))
    close(symdiff.hessian(fun)(*args), jitted(jax, jnp, name, "hessian")(*args))


def wide(x, xp=np):  # 12 inputs -> 24 outputs: symdiff uses forward mode
    return xp.concatenate([xp.tanh(x @ K) * x, xp.sin(x) ** 2], axis=1)


def narrow(x, xp=np):  # 12 inputs -> 3 outputs: reverse mode
    return xp.sum(xp.exp(x / 2) * x[::-1], axis=1)


@pytest.mark.parametrize("f", [wide, narrow], ids=["forward", "reverse"])
@settings(max_examples=3, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(x=points((3, 4), -1.0, 1.0))
def test_jacobians_agree_with_jax_in_both_regimes(jax_np, f, x):
    jax, jnp = jax_np
    key = (f.__name__, "jacobian")
    if key not in _JITTED:
        _JITTED[key] = jax.jit(jax.jacrev(lambda x: f(x, xp=jnp)))
    close(symdiff.jacobian(f)(x), _JITTED[key](x))


@pytest.mark.parametrize(
    "fun, jax_fun",
    [
        (lambda x: np.sum(np.maximum(x, 1.0)), "lambda x: jnp.sum(jnp.maximum(x, 1.0))"),
        (lambda x: np.sum(np.minimum(x, 0.5) * x), "lambda x: jnp.sum(jnp.minimum(x, 0.5) * x)"),
        (lambda x: np.sum(np.clip(x, -1.0, 0.5)), "lambda x: jnp.sum(jnp.clip(x, -1.0, 0.5))"),
        (lambda x: np.sum(np.maximum(x, x[::-1])), "lambda x: jnp.sum(jnp.maximum(x, x[::-1]))"),
        (lambda x: np.sum(np.where(x > 0.5, x**2, -x)), "lambda x: jnp.sum(jnp.where(x > 0.5, x**2, -x))"),
        (lambda x: np.sum(np.floor(x) * x + np.sign(x)), "lambda x: jnp.sum(jnp.floor(x) * x + jnp.sign(x))"),
        (lambda x: np.sum(np.sqrt(x + 1.0)), "lambda x: jnp.sum(jnp.sqrt(x + 1.0))"),
    ],
)
def test_conventions_at_kinks_agree_with_jax(jax_np, fun, jax_fun):
    jax, jnp = jax_np
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 0.5, 0.0, -1.0])
    theirs = np.asarray(jax.grad(eval(jax_fun, {"jnp": jnp}))(x))
    np.testing.assert_array_equal(symdiff.grad(fun)(x), theirs)


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@SETTINGS
@given(data=st.data())
def test_gradients_and_hessians_agree_with_torch(torch, name, data):
    fun = FUNCTIONS[name][0]
    tfun = _torch_versions(torch)[name]
    args = draw_args(data, name)
    targs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
    out = tfun(*targs)
    theirs = torch.autograd.grad(out, targs)
    ours = all_grads(fun, args)
    for a, b in zip(ours, theirs):
        close(a, b.detach().numpy())
    close(float(out.detach()), symdiff.value_and_grad(fun)(*args)[0])
    H = torch.autograd.functional.hessian(lambda first: tfun(first, *targs[1:]), targs[0].detach())
    close(symdiff.hessian(fun)(*args), H.numpy())


def test_torch_autograd_tutorial_numbers(torch):
    # the vector-Jacobian product of (inp + 1)**2 with ones at eye(5): 4 on the diagonal, 2 elsewhere
    inp = np.eye(5)
    J = symdiff.jacobian(lambda a: (a + 1) ** 2)(inp)
    ours = np.einsum("ij,ijkl->kl", np.ones((5, 5)), J)
    t = torch.tensor(inp, requires_grad=True)
    ((t + 1) ** 2).backward(torch.ones(5, 5))
    close(ours, t.grad.numpy())
    np.testing.assert_array_equal(ours, np.where(np.eye(5) == 1, 4.0, 2.0))


# ---------------------------------------------------------------------------------------------
# Random programs against JAX (issue 7): gradients, Hessian-vector products, third derivatives
# ---------------------------------------------------------------------------------------------

SHAPE = (3, 4)

UNARY_OPS = {
    "sin": lambda xp, a: xp.sin(a),
    "tanh": lambda xp, a: xp.tanh(a),
    "arctan": lambda xp, a: xp.arctan(a),
    "softplus": lambda xp, a: xp.logaddexp(a, 0.0),
    "square": lambda xp, a: a * a,
    "exp_tanh": lambda xp, a: xp.exp(xp.tanh(a)),
    "log1p_sq": lambda xp, a: xp.log1p(a**2),
    "matmul": lambda xp, a: a @ K,
    "rotate": lambda xp, a: xp.concatenate([a[:, 1:], a[:, :1]], axis=1),
    "flip": lambda xp, a: a[::-1],
    "center": lambda xp, a: a - xp.mean(a, axis=1, keepdims=True),
    "colsum": lambda xp, a: xp.sum(a, axis=0, keepdims=True) * a,
    "reshape_t": lambda xp, a: xp.reshape(xp.transpose(a), (3, 4)),
}
BINARY_OPS = {
    "add": lambda xp, a, b: a + b,
    "mul": lambda xp, a, b: a * b,
    "sub": lambda xp, a, b: a - 0.5 * b,
    "where": lambda xp, a, b: xp.where(a > b, a, b * 0.5),
    "hypot": lambda xp, a, b: xp.hypot(a, b + 1.0),
    "div": lambda xp, a, b: a / (1.5 + b * b),
}

programs = st.recursive(
    st.just(("x",)),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(sorted(UNARY_OPS)), inner),
        st.tuples(st.sampled_from(sorted(BINARY_OPS)), inner, inner),
    ),
    max_leaves=4,
)


def run_program(tree, x, xp):
    if tree[0] == "x":
        return x
    if tree[0] in UNARY_OPS:
        return UNARY_OPS[tree[0]](xp, run_program(tree[1], x, xp))
    return BINARY_OPS[tree[0]](xp, run_program(tree[1], x, xp), run_program(tree[2], x, xp))


def program_function(tree, xp):
    return lambda x: xp.sum(xp.tanh(run_program(tree, x, xp)) * xp.cos(x))


FUZZ_EXAMPLES = int(os.environ.get("SYMDIFF_FUZZ_EXAMPLES", "0"))


def _check_program(jax, jnp, tree, x, v):
    ours_f, theirs_f = program_function(tree, np), program_function(tree, jnp)
    close(symdiff.grad(ours_f)(x), jax.grad(theirs_f)(x), rtol=1e-9, atol=1e-11)
    hvp = np.asarray(jax.jvp(jax.grad(theirs_f), (x,), (v,))[1])
    ours = np.tensordot(symdiff.hessian(ours_f)(x), v, axes=2)
    try:
        close(ours, hvp, rtol=1e-9, atol=1e-11)
    except AssertionError:
        # JAX builds hypot from max/min, so its second derivatives split 0.5/0.5 where |a| == |b|
        # (e.g. hypot(x, x + 1) at x = -0.5): there central differences of the gradient decide
        eps = 1e-6
        grad = jax.grad(theirs_f)
        fd = (np.asarray(grad(x + eps * v)) - np.asarray(grad(x - eps * v))) / (2 * eps)
        close(ours, fd, rtol=1e-5, atol=1e-6)
        assert tree_has(tree, "hypot"), "JAX and symdiff disagree away from hypot's ties"


def tree_has(tree, op):
    return tree[0] == op or any(isinstance(t, tuple) and tree_has(t, op) for t in tree[1:])


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(tree=programs, x=points(SHAPE, -1.0, 1.0), v=points(SHAPE, -1.0, 1.0))
def test_random_programs_agree_with_jax(jax_np, tree, x, v):
    jax, jnp = jax_np
    _check_program(jax, jnp, tree, x, v)


@pytest.mark.slow
@settings(max_examples=max(FUZZ_EXAMPLES, 200), deadline=None, suppress_health_check=list(HealthCheck))
@given(tree=programs, x=points(SHAPE, -1.0, 1.0), v=points(SHAPE, -1.0, 1.0))
def test_many_random_programs_agree_with_jax(jax_np, tree, x, v):
    jax, jnp = jax_np
    _check_program(jax, jnp, tree, x, v)


SCALAR_OPS = ("sin", "tanh", "arctan", "softplus", "square", "exp_tanh", "log1p_sq")


def run_scalar(tree, z, xp):
    """The program on a scalar: array-only operations are left out."""
    if tree[0] == "x":
        return z
    if tree[0] in SCALAR_OPS:
        return UNARY_OPS[tree[0]](xp, run_scalar(tree[1], z, xp))
    if tree[0] in UNARY_OPS:
        return run_scalar(tree[1], z, xp)
    return BINARY_OPS[tree[0]](xp, run_scalar(tree[1], z, xp), run_scalar(tree[2], z, xp))


def scalar_program(tree, xp):
    def f(z):
        return xp.sin(run_scalar(tree, z, xp)) + 0.5 * z

    return f


@settings(max_examples=3, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(tree=programs, x=st.floats(-1.0, 1.0))
def test_third_derivatives_of_scalar_programs_agree_with_jax(jax_np, tree, x):
    jax, jnp = jax_np
    ours = symdiff.grad(symdiff.grad(symdiff.grad(scalar_program(tree, np))))(x)
    theirs = jax.grad(jax.grad(jax.grad(scalar_program(tree, jnp))))(x)
    close(ours, theirs, rtol=1e-8, atol=1e-10)
