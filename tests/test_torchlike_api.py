"""symdiff.torchlike's tutorial API against real PyTorch 2.13: values, first derivatives and
second derivatives (create_graph) of every differentiable call to 1e-10 in float64, and the
nn / optim / autograd.functional behaviour tutorials rely on."""

import numpy as np
import pytest

import symdiff.torchlike as torch

real = pytest.importorskip("torch")

# (T, a, b, m, v): a, b of shape (3, 4) in [0.5, 1.5), m (4, 2), v (4,) in [0.2, 1.2); i (3,) int64 in [0, 4)
CASES = {
    "cat_stack": lambda T, a, b, m, v, i: (T.cat([a, b], 0) ** 2).sum() + (T.cat((a, b), dim=1).sin()).sum()
    + (T.stack([a, b]) ** 3).sum() + T.stack([v, v * 2], dim=1).exp().sum(),
    "where": lambda T, a, b, m, v, i: (T.where(a > 1, a * b, b**2)).sum() + T.where(b < 1, a, 0.5).sum(),
    "clamp": lambda T, a, b, m, v, i: (T.clamp(a, 0.7, 1.2) ** 2).sum() + a.clamp(min=0.9).exp().sum()
    + b.clamp(max=1.1).sum() + T.clip(a * b, 0.6, 1.3).pow(3).sum(),
    "maximum": lambda T, a, b, m, v, i: (T.maximum(a, b) ** 2).sum() + T.minimum(a, b * 1.1).exp().sum(),
    "max_dim": lambda T, a, b, m, v, i: (T.max(a * b, dim=1).values ** 2).sum() + a.min(0)[0].exp().sum()
    + (T.max(a, 1, keepdim=True).values * b).sum() + T.min(b, dim=-1, keepdim=False).values.sin().sum(),
    "max_all": lambda T, a, b, m, v, i: T.max(a * b) ** 2 + a.min() * 3 + T.max(a, b).sum(),
    "norm": lambda T, a, b, m, v, i: T.norm(a) ** 3 + a.norm(dim=1).sum() + T.norm(v, p=1) + T.norm(b, p=3, dim=0).sum(),
    "softmax": lambda T, a, b, m, v, i: (T.softmax(a * 3, dim=1) * b).sum() + (T.log_softmax(a, 0) * b).sum()
    + (a.softmax(-1) ** 2).sum() + a.log_softmax(dim=1).sum(),
    "logsumexp": lambda T, a, b, m, v, i: T.logsumexp(a * b, dim=1).sum() + a.logsumexp(0, keepdim=True).pow(2).sum(),
    "einsum": lambda T, a, b, m, v, i: T.einsum("ij,jk->ik", a, m).sin().sum() + T.einsum("ij,ij->", a, b)
    + T.einsum("i,ji->j", v, a).pow(2).sum(),
    "var_std": lambda T, a, b, m, v, i: T.var(a) + a.var(dim=1).sum() + T.std(a * b, dim=0, unbiased=False).sum()
    + a.std(1, keepdim=True, correction=0).sum() + b.var(correction=2) + v.std(),
    "elementwise2": lambda T, a, b, m, v, i: (T.tan(a - 1) + T.sinh(a) * T.cosh(b) + T.log2(a) + T.log10(b)
                                                + T.reciprocal(a + b) + T.rsqrt(a) + a.tan() * b.rsqrt()).sum(),
    "elementwise": lambda T, a, b, m, v, i: (T.log1p(a) + T.expm1(b) + T.atan2(a, b - 1) + T.abs(a - b)
                                               + T.sqrt(a * b) + a.log1p() * b.expm1()).sum(),
    "indexing": lambda T, a, b, m, v, i: (a[T.tensor([1, 2, 0])] ** 2).sum() + (a[:, [0, 2, 2]] * 3).exp().sum() + a[a > 1].sum()
    + (a[[0, 2]] * b[[1, 1]]).sum() + a[T.tensor([2, 0]), 1:].pow(3).sum() + v[i].prod(),
    "functional": lambda T, a, b, m, v, i: T.nn.functional.relu(a - 1).pow(2).sum() + T.nn.functional.softplus(a).sum()
    + T.nn.functional.softplus(a * 10, beta=2, threshold=15).sum() + T.nn.functional.sigmoid(a).sum()
    + T.nn.functional.tanh(b).sum() + (T.nn.functional.softmax(a, dim=1) * b).sum()
    + T.nn.functional.log_softmax(b, dim=0).pow(2).sum(),
    "losses": lambda T, a, b, m, v, i: T.nn.functional.cross_entropy(a * b, i) + T.nn.functional.cross_entropy(
        a, i, reduction="sum") + T.nn.functional.nll_loss(T.log_softmax(b, 1), i, reduction="none").pow(2).sum()
    + T.nn.functional.cross_entropy(a, T.softmax(b, 1)) + T.nn.functional.mse_loss(a, b, reduction="sum")
    + T.nn.functional.l1_loss(a, b) + T.nn.functional.l1_loss(a * 2, b, reduction="none").pow(2).sum()
    + T.nn.functional.cross_entropy(a, i, weight=v[:4].detach()),
    "linear": lambda T, a, b, m, v, i: T.nn.functional.linear(a, b[:2], v[:2]).sin().sum()
    + T.nn.functional.linear(a, b).pow(2).sum(),
    "shapes": lambda T, a, b, m, v, i: (v.expand(3, 4) * a).sum() + (a[:1].expand_as(b) * b).pow(2).sum()
    + a.repeat(2, 1).sin().sum() + a.view_as(b).sum() + T.prod(v) + a.cumsum(1).pow(2).sum(),
    "misc": lambda T, a, b, m, v, i: T.nn.functional.binary_cross_entropy(T.sigmoid(a), b / 2)
    + T.nn.functional.binary_cross_entropy(T.sigmoid(b), a / 2, weight=v.detach(), reduction="sum")
    + T.amax(a * b, dim=1).sum() + a.amin(0).pow(2).sum() + T.outer(v, v[:3]).sin().sum()
    + a.masked_fill(a > 1, 0.5).pow(2).sum() + (T.sign(a - 1) * b).sum() + T.clamp(a, min=b).sum()
    + (a % 0.7).pow(2).sum() + T.remainder(b * 3, 1.1).exp().sum(),
    "activations": lambda T, a, b, m, v, i: (T.nn.functional.leaky_relu(a - 1, 0.2) ** 2).sum()
    + T.nn.functional.elu(a - 1).pow(2).sum() + T.nn.functional.silu(a - b).sum() + T.nn.functional.gelu(a - b).sum()
    + T.nn.functional.gelu(a - b, approximate="tanh").pow(2).sum() + T.nn.LeakyReLU()(b - 1).sum()
    + T.nn.GELU()(a).sum() + T.nn.SiLU()(b).sum() + T.nn.ELU(0.5)(a - 1.2).sum(),
    "pieces": lambda T, a, b, m, v, i: sum((p.sin() * k).sum() for k, p in enumerate(T.split(a, 3, dim=1)))
    + sum((p ** 2).sum() * (k + 1) for k, p in enumerate(b.chunk(2))) + a.split([1, 2])[1].exp().sum()
    + T.gather(a, 1, T.tensor([[0, 0], [3, 1], [2, 2]])).pow(2).sum() + a.gather(0, T.tensor([[2, 1, 0, 0]])).sum()
    + T.index_select(a, 1, T.tensor([3, 0, 3])).exp().sum() + b.index_select(0, i[:2] % 3).pow(3).sum(),
    # ties: max/min over all entries share the gradient equally, maximum/minimum split it in half
    "ties": lambda T, a, b, m, v, i: (T.max(T.cat([a.max().reshape(1), a.reshape(-1)])) * 3
                                      + T.min(T.stack([v.min(), v.min()])) + T.maximum(a, a).sum()
                                      + T.minimum(a * 1, a).pow(2).sum() + T.clamp(a, min=a.detach()).sum()),
}


def _run(T, case, data, index):
    args = [T.tensor(d, dtype=T.float64, requires_grad=True) for d in data]
    out = CASES[case](T, *args, T.tensor(index))
    firsts = T.autograd.grad(out, args, create_graph=True, allow_unused=True)
    total = sum((g * g).sum() for g in firsts if g is not None and g.requires_grad)
    seconds = T.autograd.grad(total, args, allow_unused=True) if not isinstance(total, int) else [None] * 4
    as_np = [None if g is None else g.detach().numpy(force=True) for g in list(firsts) + list(seconds)]
    return out.item(), as_np


@pytest.mark.parametrize("case", sorted(CASES))
def test_first_and_second_derivatives_agree_with_real_pytorch(case):
    rng = np.random.default_rng(3)
    data = [rng.random((3, 4)) + 0.5, rng.random((3, 4)) + 0.5, rng.random((4, 2)), rng.random(4) + 0.2]
    index = np.array([1, 3, 0])
    (v1, g1), (v2, g2) = _run(torch, case, data, index), _run(real, case, data, index)
    assert abs(v1 - v2) < 1e-10 * max(1.0, abs(v2))
    for k, (x, y) in enumerate(zip(g1, g2)):
        if y is None or x is None:
            assert x is None or not np.any(x), k  # unused: torch gives None, ours may be None or zeros
            continue
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-10, err_msg=f"derivative {k}")


def test_integer_and_boolean_operators_match_pytorch():
    outs = []
    for T in (torch, real):
        a, x = T.tensor([5, -7, 3]), T.tensor([5.5, -7.25, 3.0])
        results = [a % 3, a // 2, x % 2, x // 2, 7 % a, (a > 0) & (a < 4), ~(a > 0), (a > 0) | (a < -5), a & 1,
                   T.logical_not(a > 0), T.logical_xor(a > 0, a > 4)]
        outs.append([(str(r.dtype), r.tolist()) for r in results])
    assert outs[0] == outs[1]


def test_device_idioms_pick_the_cpu():
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert str(device) == "cpu" and repr(device) == repr(real.device("cpu"))
    x = torch.ones(2).to(device)
    model = torch.nn.Linear(2, 1).to(device)
    assert model(x).shape == (1,) and x.cpu() is x
    assert torch.full_like(x, 3).tolist() == [3, 3] and torch.empty_like(x).shape == (2,)
    with pytest.raises(RuntimeError, match="cpu only"):
        x.to("cuda")


def test_max_with_dim_returns_values_and_indices():
    for T in (torch, real):
        a = T.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
        r = T.max(a, dim=1)
        assert r.indices.tolist() == [1, 0] and r.values.tolist() == [5.0, 7.0]
        values, indices = a.min(0)
        assert indices.tolist() == [0, 1, 0] and str(indices.dtype) == "torch.int64"
        assert T.argmax(a).item() == 3 and a.argmin(dim=1).tolist() == [0, 1]


def test_creation_and_in_place_fills():
    torch.manual_seed(0)
    x = torch.empty(1000).uniform_(-2, 3)
    assert -2 <= x.min().item() and x.max().item() < 3 and x.dtype is torch.float32
    y = torch.zeros(2000, dtype=torch.float64).normal_(1.0, 0.5)
    assert abs(y.mean().item() - 1) < 0.05 and abs(y.std().item() - 0.5) < 0.05
    assert torch.ones(3).fill_(7).tolist() == [7, 7, 7] and torch.ones(2).zero_().tolist() == [0, 0]
    r = torch.randint(3, 9, (50,))
    assert r.dtype is torch.int64 and r.min().item() >= 3 and r.max().item() < 9
    assert torch.randint(4, (2, 3)).shape == (2, 3)
    for T in (torch, real):
        assert T.arange(5).tolist() == [0, 1, 2, 3, 4] and str(T.arange(0, 1, 0.5).dtype) == "torch.float32"
    for args in ((-1, 1, 7), (0, 10, 6), (2.5, -1, 9)):
        np.testing.assert_array_equal(torch.linspace(*args).numpy(), real.linspace(*args).numpy())


def test_register_hook_on_a_leaf_replaces_and_on_an_intermediate_observes():
    seen = {}
    for T in (torch, real):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        h = x.register_hook(lambda g: g * 10)
        y = x * 3
        y.register_hook(lambda g, T=T: seen.__setitem__(T.__name__, g.tolist()))
        (y * y).sum().backward()
        assert x.grad.tolist() == [180.0, 360.0] and (T is real or y.grad is None)
        h.remove()
        x.grad = None
        (x * 2).sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]
    assert seen["symdiff.torchlike"] == seen["torch"] == [6.0, 12.0]


def test_retain_grad_on_an_intermediate_matches_pytorch():
    grads = []
    for T in (torch, real):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = T.softmax(x, 0)
        y.retain_grad()
        (y * T.tensor([1.0, 5.0, 2.0])).sum().backward()
        grads.append((y.grad.numpy(), x.grad.numpy()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-6)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-6)


# -- nn --------------------------------------------------------------------------------------------
def test_import_paths():
    import symdiff.torchlike.nn as nn
    import symdiff.torchlike.nn.functional as F
    from symdiff.torchlike import nn as nn2, optim

    assert nn is nn2 is torch.nn and F is torch.nn.functional and optim.SGD and optim.Adam
    assert torch.autograd.functional.jacobian


def _twin_models(T, dtype):
    class Net(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = T.nn.Linear(4, 3)
            self.act = T.nn.Tanh()
            self.out = T.nn.Linear(3, 2, bias=False)

        def forward(self, x):
            return self.out(self.act(self.hidden(x)))

    return Net().to(dtype)


def test_module_registration_state_dict_and_zero_grad_like_pytorch():
    ours, theirs = _twin_models(torch, torch.float64), _twin_models(real, real.float64)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["hidden.weight", "hidden.bias", "out.weight"]
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in theirs.modules()]
    assert repr(ours).replace("Net", "N") == repr(theirs).replace("Net", "N")
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).random((5, 4))
    yo, yt = ours(torch.tensor(x)), theirs(real.tensor(x))
    np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    yo.pow(2).sum().backward()
    yt.pow(2).sum().backward()
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, err_msg=n)
    ours.zero_grad()
    assert all(p.grad is None for p in ours.parameters())
    p = torch.nn.Parameter(torch.ones(2))
    assert p.requires_grad and p.is_leaf and repr(p).startswith("Parameter containing:\ntensor([1., 1.], requires_grad=True)")


def test_linear_init_bounds_follow_pytorch():
    torch.manual_seed(1)
    layer = torch.nn.Linear(400, 300)
    bound = 1 / 20
    for t in (layer.weight, layer.bias):
        assert t.dtype is torch.float32 and t.requires_grad
        assert -bound <= t.min().item() and t.max().item() <= bound and t.max().item() > 0.9 * bound
    assert layer.weight.shape == (300, 400) and layer.bias.shape == (300,)


def test_sequential_and_activation_modules_match_pytorch():
    x = np.random.default_rng(2).standard_normal((6, 3))
    outs = []
    for T in (torch, real):
        model = T.nn.Sequential(T.nn.Linear(3, 5), T.nn.ReLU(), T.nn.Linear(5, 4), T.nn.Sigmoid(), T.nn.Linear(4, 2),
                                T.nn.Tanh()).double()
        outs.append(model)
    outs[0].load_state_dict({k: v.numpy() for k, v in outs[1].state_dict().items()})
    a, b = outs[0](torch.tensor(x)), outs[1](real.tensor(x))
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12)
    assert len(outs[0]) == 6 and isinstance(outs[0][1], torch.nn.ReLU)


# -- optim ----------------------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda T, ps: T.optim.SGD(ps, lr=0.1),
    "sgd_momentum_wd": lambda T, ps: T.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": lambda T, ps: T.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
    "sgd_dampening": lambda T, ps: T.optim.SGD(ps, lr=0.05, momentum=0.5, dampening=0.3, maximize=True),
    "adam": lambda T, ps: T.optim.Adam(ps, lr=0.01),
    "adamw": lambda T, ps: T.optim.AdamW(ps, lr=0.02, weight_decay=0.1),
    "adam_wd_amsgrad": lambda T, ps: T.optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_follow_pytorch_update_rules_exactly(name):
    rng = np.random.default_rng(5)
    w0, x, y = rng.standard_normal((3, 2)), rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    trajectories = []
    for T in (torch, real):
        w = T.tensor(w0, requires_grad=True)
        opt = OPTIMIZERS[name](T, [w])
        losses = []
        for _ in range(8):
            opt.zero_grad()
            loss = ((T.tensor(x) @ w - T.tensor(y)) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        trajectories.append((losses, w.detach().numpy().copy()))
    np.testing.assert_allclose(trajectories[0][0], trajectories[1][0], rtol=1e-12)
    np.testing.assert_allclose(trajectories[0][1], trajectories[1][1], rtol=1e-12)


# -- autograd.functional -------------------------------------------------------------------------
def _f(T):
    return lambda x, y: (x.sin() * y[:2].sum() + x**2, (x * y[1:]).exp())


def _g(T):
    return lambda x, y: (x**3).sum() * y.prod() + (x.sin() * y[:2]).sum()


def _functional_calls(T):
    x = T.tensor([0.3, -0.7], dtype=T.float64)
    y = T.tensor([1.1, 0.4, -0.2], dtype=T.float64)
    AF = T.autograd.functional
    vx, vy = T.tensor([1.0, 2.0], dtype=T.float64), T.tensor([0.5, -1.0, 3.0], dtype=T.float64)
    return {
        "jacobian": AF.jacobian(_f(T), (x, y)),
        "jacobian_single": AF.jacobian(lambda a: a.exp() * a.sum(), x),
        "hessian": AF.hessian(_g(T), (x, y)),
        "hessian_single": AF.hessian(lambda a: (a**3).sum() * a.prod(), y),
        "vjp": AF.vjp(_f(T), (x, y), (vx, vx)),
        "jvp": AF.jvp(_f(T), (x, y), (vx, vy)),
        "hvp": AF.hvp(_g(T), (x, y), (vx, vy)),
        "vhp": AF.vhp(lambda a: (a.exp() * a).sum(), y, vy),
    }


def _flatten(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _flatten(t)]
    return [tree.detach().numpy()]


def test_autograd_functional_matches_pytorch():
    ours, theirs = _functional_calls(torch), _functional_calls(real)
    for name in ours:
        a, b = _flatten(ours[name]), _flatten(theirs[name])
        assert len(a) == len(b), name
        for x, y in zip(a, b):
            assert x.shape == y.shape, name
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12, err_msg=name)


def test_jacobian_with_create_graph_is_differentiable():
    results = []
    for T in (torch, real):
        x = T.tensor([0.3, -0.7, 1.2], dtype=T.float64, requires_grad=True)
        jac = T.autograd.functional.jacobian(lambda a: a.sin() * a.sum(), x, create_graph=True)
        (g,) = T.autograd.grad(jac.pow(2).sum(), x)
        results.append(g.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-10)


# -- utils.data, save / load ---------------------------------------------------------------------
def test_dataloader_batches_a_tensor_dataset_and_save_load_round_trips(tmp_path):
    from symdiff.torchlike.utils.data import DataLoader, TensorDataset, random_split

    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = list(DataLoader(TensorDataset(x, y), batch_size=3, shuffle=True, drop_last=True))
    assert len(shuffled) == 3 and sorted(v for b in shuffled for v in b[1].tolist()) != list(range(10))
    assert [len(s) for s in random_split(TensorDataset(x, y), [0.7, 0.3])] == [7, 3]
    model = torch.nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = torch.nn.Linear(3, 2)
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    assert np.array_equal(other.weight.detach().numpy(), model.weight.detach().numpy())


def test_where_with_tensor_branches_replays_without_rebuilding():
    from symdiff.torchlike import engine

    engine.cache_clear()
    for k in range(3):
        a = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
        torch.where(a > k - 1, a * a, a).sum().backward()
        assert a.grad.tolist() == [2 * v if v > k - 1 else 1.0 for v in (1.0, -2.0, 3.0)]  # the mask changes
    assert engine.stats["fast"] == 2


def test_dropout_and_gradient_clipping():
    torch.manual_seed(0)
    layer = torch.nn.Dropout(0.25)
    x = torch.ones(4000, requires_grad=True)
    y = layer(x)
    kept = y.detach().numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.03 and np.allclose(y.detach().numpy()[kept], 1 / 0.75)
    y.sum().backward()
    assert np.array_equal(x.grad.numpy() != 0, kept)
    layer.eval()
    assert layer(x) is x
    norms = []
    for T in (torch, real):
        a = T.tensor([3.0, 4.0], requires_grad=True)
        b = T.tensor([[12.0]], requires_grad=True)
        (a * T.tensor([1.0, 1.0])).sum().backward()
        a.grad = T.tensor([3.0, 4.0])
        b.grad = T.tensor([[12.0]])
        total = T.nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
        norms.append((total.item(), a.grad.tolist(), b.grad.tolist()))
    assert norms[0][0] == pytest.approx(norms[1][0]) and np.allclose(norms[0][1], norms[1][1])
    assert np.allclose(norms[0][2], norms[1][2])


def test_module_reprs_with_options_match_pytorch():
    def build(T):
        return T.nn.Sequential(T.nn.Linear(2, 3), T.nn.LeakyReLU(0.2), T.nn.ELU(), T.nn.GELU(), T.nn.Softplus(beta=2),
                               T.nn.Softmax(dim=1), T.nn.LogSoftmax(1), T.nn.Dropout(0.1), T.nn.SiLU(), T.nn.Flatten())

    assert repr(build(torch)) == repr(build(real))


def test_autograd_grad_runs_hooks_like_pytorch():
    """Reproducer: ``autograd.grad`` ignored hooks, so a leaf hook that scales the gradient gave the
    unscaled one (PyTorch returns the hook's result)."""
    results = {}
    for T in (torch, real):
        seen = []
        x = T.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(lambda g: g * 10)
        (gx,) = T.autograd.grad((x * x).sum(), x)
        w = T.tensor([1.0, 2.0], requires_grad=True)
        h = w * 3
        h.register_hook(lambda g: seen.append(g.tolist()))
        (gw,) = T.autograd.grad((h * h).sin().sum(), w)
        (gh,) = T.autograd.grad((h * h).sum(), h)  # an intermediate as the input: its hook's result is returned
        results[T.__name__] = (gx.tolist(), gw.tolist(), gh.tolist(), seen)
    assert results["symdiff.torchlike"][0] == [20.0, 40.0]
    mine, ref = results["symdiff.torchlike"], results["torch"]
    np.testing.assert_allclose(mine[1], ref[1], rtol=1e-12)
    assert mine[2] == ref[2] and len(mine[3]) == len(ref[3]) == 2
    np.testing.assert_allclose(mine[3], ref[3], rtol=1e-12)


def test_autograd_grad_hook_replacing_an_intermediate_gradient_is_refused():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.register_hook(lambda g: g * 100)
    with pytest.raises(NotImplementedError, match="observe"):
        torch.autograd.grad((h * h).sum(), x)
