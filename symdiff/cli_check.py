"""``symdiff check``: generated derivatives against central finite differences at random points.

Every derivative is compared with finite differences of the function one order below it: a
gradient with differences of the function, a Hessian with differences of the (also checked)
gradient, an order-K derivative with differences of order K-1. Each step is then accurate to about
1e-10, where differencing the function K times would drown in rounding error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import api

STEP = float(np.cbrt(np.finfo(np.float64).eps))  # optimal central-difference step, relative to max(|x|, 1)
TOLERANCE = {"float64": 1e-6, "float32": 1e-3}


@dataclass
class Step:
    """One comparison: ``generated(args)`` against ``expected(float64 args)``."""

    label: str
    generated: object
    expected: object


def central_difference(fun, args, p):
    """d fun / d args[p] with shape ``out.shape + args[p].shape``, one perturbed element at a time."""
    args = [np.asarray(a, dtype=np.float64) for a in args]
    x = args[p]
    base = np.asarray(fun(*args), dtype=np.float64)
    result = np.empty(base.shape + x.shape)
    for idx in np.ndindex(x.shape):
        h = STEP * max(1.0, abs(float(x[idx])))
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fp = np.asarray(fun(*args[:p], xp, *args[p + 1 :]), dtype=np.float64)
        fm = np.asarray(fun(*args[:p], xm, *args[p + 1 :]), dtype=np.float64)
        result[(Ellipsis,) + idx] = (fp - fm) / (xp[idx] - xm[idx])
    return result


def elementwise_difference(fun, args, p):
    """d fun / d args[p] of an elementwise function, every element perturbed at once."""
    args = [np.asarray(a, dtype=np.float64) for a in args]
    x = args[p]
    h = STEP * np.maximum(1.0, np.abs(x))
    xp, xm = x + h, x - h
    fp = np.asarray(fun(*args[:p], xp, *args[p + 1 :]), dtype=np.float64)
    fm = np.asarray(fun(*args[:p], xm, *args[p + 1 :]), dtype=np.float64)
    return (fp - fm) / (xp - xm)


def _leaf(transform, path):
    def get(args):
        out = transform(*args)
        for i in path:
            out = out[i]
        return np.asarray(out)

    return get


def _differences(fun, p):
    return lambda args: central_difference(fun, args, p)


def build_steps(target) -> list:
    """Every comparison the requested transforms need, each labelled for the report."""
    f, names = target.fun, target.params
    single = not isinstance(target.positions, tuple)
    pos = [target.positions] if single else list(target.positions)
    steps: dict = {}

    def add(step):
        steps.setdefault(step.label, step)

    def gradients(kind, transform, prefix=()):
        for k, p in enumerate(pos):
            path = prefix + (() if single else (k,))
            add(Step(f"{kind} wrt {names[p]}", _leaf(transform, path), _differences(f, p)))

    for kind, order in target.kinds:
        if kind == "derivative":
            for step in _derivative_steps(target, order):
                add(step)
            continue
        t = api.Transform(f, kind, argnums=target.positions, signature=target.signature)
        if kind == "value_and_grad":
            add(Step(f"value of {target.name}", _leaf(t, (0,)), lambda args: f(*args)))
            gradients(kind, t, (1,))
        elif kind == "hessian":
            gradients("grad", api.Transform(f, "grad", argnums=target.positions, signature=target.signature))
            for i, pi in enumerate(pos):
                g = api.Transform(f, "grad", argnums=pi)
                for j, pj in enumerate(pos):
                    path = () if single else (i, j)
                    add(Step(f"hessian wrt {names[pi]}, {names[pj]}", _leaf(t, path), _differences(g, pj)))
        else:
            gradients(kind, t)
    return list(steps.values())


def _derivative_steps(target, order):
    f, names = target.fun, target.params
    if isinstance(target.positions, tuple):
        seq = list(target.positions)
        make = lambda k: target.derivative(k, tuple(seq[:k]))
    else:
        seq = [target.positions] * order
        make = lambda k: target.derivative(k, target.positions)
    if not seq:
        return [Step(f"value of {target.name}", _leaf(make(0), ()), lambda args: f(*args))]
    out = []
    for k in range(1, len(seq) + 1):
        base = f if k == 1 else make(k - 1)
        label = f"derivative of order {k} wrt " + ", ".join(names[p] for p in seq[:k])
        p = seq[k - 1]
        expected = lambda args, base=base, p=p: elementwise_difference(base, args, p)
        out.append(Step(label, _leaf(make(k), ()), expected))
    return out


def _batched(expected, target):
    """``expected`` of one point, evaluated for every batch element of a ``--signature`` call."""
    cores = target.cores

    def run(args):
        leads = [a.shape[: a.ndim - len(c)] for a, c in zip(args, cores)]
        batch = np.broadcast_shapes(*leads)
        parts = {}
        for idx in np.ndindex(batch):
            core_args = []
            for a, lead, c in zip(args, leads, cores):
                core_args.append(np.broadcast_to(a, batch + a.shape[len(lead) :])[idx] if lead else a)
            parts[idx] = np.asarray(expected(core_args))
        first = next(iter(parts.values()))
        out = np.empty(batch + first.shape)
        for idx, v in parts.items():
            out[idx] = v
        return out

    return run


def relative_error(got, expected) -> float:
    """Worst ``|got - expected| / max(|expected|, 1)`` where the finite differences are finite."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return float("inf")
    usable = np.isfinite(expected)
    if not usable.any():
        return float("nan")
    err = np.abs(got[usable] - expected[usable]) / np.maximum(np.abs(expected[usable]), 1.0)
    return float(np.max(np.where(np.isfinite(err), err, np.inf)))


def run(target, points, seed, tol, low, high, progress, out) -> bool:
    """Print one line per step and a verdict; True when every worst error is within ``tol``."""
    steps = build_steps(target)
    rng = np.random.default_rng(seed)
    worst = {s.label: float("nan") for s in steps}
    with np.errstate(all="ignore"):
        for n in range(points):
            progress.say(f"point {n + 1} of {points}")
            args = target.example_args(rng, low, high)
            args64 = [np.asarray(a, dtype=np.float64) for a in args]
            for s in steps:
                expected = _batched(s.expected, target) if target.cores else s.expected
                err = relative_error(s.generated(args), expected(args64))
                if not np.isnan(err):
                    worst[s.label] = err if np.isnan(worst[s.label]) else max(worst[s.label], err)
    width = max(len(label) for label in worst)
    for label, err in worst.items():
        verdict = "no finite point" if np.isnan(err) else ("ok" if err <= tol else "FAILED")
        print(f"  {label:<{width}}  worst relative error {err:.1e}  {verdict}", file=out)
    errors = list(worst.values())
    if all(np.isnan(e) for e in errors):
        print(
            f"FAILED: the finite differences are not finite at any point in [{low:g}, {high:g}); "
            "choose another --range",
            file=out,
        )
        return False
    total = max(e for e in errors if not np.isnan(e))
    ok = total <= tol and not any(np.isnan(e) for e in errors)
    word = "ok" if ok else "FAILED"
    relation = "<=" if total <= tol else ">"
    print(f"{word}: worst relative error {total:.1e} {relation} tolerance {tol:g}", file=out)
    return ok
