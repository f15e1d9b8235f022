"""The recorded-structure cache (issue 15, item 6): a repeated training step runs its compiled
gradient without rebuilding IR, and never with a stale value. Every step's gradients are checked
against real PyTorch (or a closed form), so a value baked into the cached code would fail here."""

import numpy as np
import pytest

import symdiff.torchlike as torch
from symdiff.torchlike import engine, structure


@pytest.fixture
def fresh():
    engine.cache_clear()
    yield engine
    engine.cache_clear()


def _grads(T, step, seed):
    rng = np.random.default_rng(seed)
    w = T.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x = T.tensor(rng.standard_normal((5, 3)))
    loss = step(T, w, x, seed)
    loss.backward()
    return w.grad.numpy().copy()


STEPS = {
    # tensor values change every step: they are arguments of the compiled gradient
    "tensors": lambda T, w, x, s: ((x @ w).tanh() ** 2).mean(),
    # a Python scalar that changes every step: part of the key, so a new gradient each time
    "scalar": lambda T, w, x, s: ((x @ w) * (0.5 + s)).pow(2).sum() + (1.0 / (s + 1)) * w.sum(),
    # integer index tensors with new values each step (same shape): data, same compiled code
    "indices": lambda T, w, x, s: (x @ w)[T.tensor([s % 5, (s + 2) % 5, 1])].pow(2).sum(),
    # a boolean mask (decides the shape): part of the key
    "mask": lambda T, w, x, s: (x @ w)[(x @ w).detach() > 0].pow(3).sum(),
    # class targets that change every step
    "cross_entropy": lambda T, w, x, s: T.nn.functional.cross_entropy(x @ w, T.tensor([s % 2, 1, 0, 1, s % 2])),
    # max with dim: the chosen indices change with the values
    "max": lambda T, w, x, s: T.max(x @ w, dim=1).values.sum() + T.softmax(x @ w, 1)[:, 0].sum(),
    # a clamp whose bounds change every step
    "clamp": lambda T, w, x, s: T.clamp(x @ w, min=-0.1 * s, max=0.2 * s + 0.1).sum(),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_every_step_of_a_repeated_graph_matches_pytorch(fresh, name):
    real = pytest.importorskip("torch")
    previous = None
    for seed in range(6):
        ours, theirs = _grads(torch, STEPS[name], seed), _grads(real, STEPS[name], seed)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=f"step {seed}")
        assert previous is None or not np.allclose(ours, previous)  # the gradient really changed
        previous = ours
    if name in ("tensors", "indices", "cross_entropy", "max"):
        assert fresh.stats["fast"] == 5 and fresh.stats["derived"] == 1


def test_a_changed_python_scalar_is_a_new_graph_not_a_stale_one(fresh):
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    for c in (2.0, 3.0, 2.0, -0.0, 0.0):
        w.grad = None
        (w * c).sum().backward()
        assert w.grad.tolist() == [c, c]
    assert fresh.stats["derived"] == 4 and fresh.stats["fast"] == 1  # 2.0 seen twice; -0.0 is not 0.0


def test_the_fast_path_keeps_pytorchs_errors(fresh):
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(2):
        y = (w.exp() * w).sum()
        y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    x = torch.tensor([1.0, 2.0])
    for i in range(2):
        z = (w * x).sum()
        if i:
            x.add_(1)
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                z.backward()
        else:
            z.backward()


def test_hooks_and_retain_grad_still_run_on_the_fast_path(fresh):
    seen = []
    for k in range(3):
        w = torch.tensor([1.0, 2.0], requires_grad=True)
        y = w * (k + 1.0)
        y.retain_grad()
        w.register_hook(lambda g: seen.append(g.tolist()))
        (y * y).sum().backward()
        assert y.grad.tolist() == [2.0 * (k + 1), 4.0 * (k + 1)]
    assert seen == [[2.0, 4.0], [8.0, 16.0], [18.0, 36.0]]  # 2 c^2 w


def test_freeze_describes_values_and_refuses_unknown_objects():
    assert structure.freeze(0.0) != structure.freeze(-0.0) and structure.freeze(1) != structure.freeze(1.0)
    def take(index):
        return lambda x: x[index]

    a = structure.freeze(take(np.array([1, 2])))
    assert a == structure.freeze(take(np.array([1, 2])))  # same code, same values
    assert a != structure.freeze(take(np.array([1, 3])))
    with pytest.raises(structure.Unfreezable):
        structure.freeze(object())
    with pytest.raises(structure.Unfreezable):
        structure.freeze(torch.ones(2))


def test_the_gradient_reads_saved_forward_values_and_a_shared_node_is_read_once(fresh):
    real = pytest.importorskip("torch")
    grads = []
    for T in (torch, real):
        w = T.tensor([[0.3, -1.2], [0.8, 0.1]], dtype=T.float64, requires_grad=True)
        for _ in range(2):  # the second step replays
            w.grad = None
            h = (w @ w).tanh()
            c = h.clone()
            ((c * h).sum() + c.exp().sum()).backward()
        grads.append(w.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)
    (fn, _, saved), = fresh._recorded.values()
    assert saved and fn.source.count(" @ ") == 2  # the two products of the gradient; w @ w is read, not recomputed
