"""``symdiff check``: generated derivatives against finite differences at random points.

Every derivative is compared with finite differences of the function one order below it: a
gradient with differences of the function, a Hessian with differences of the (also checked)
gradient, an order-K derivative with differences of order K-1. Each difference quotient is
extrapolated over a sequence of steps (Ridders' Richardson tableau), which also estimates its own
error: a single step is too coarse or too noisy on stiff functions (a Lennard-Jones wall), and a
check that cannot tell its own error from the code's raises false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import api

FIRST_STEP = 0.1  # the tableau's largest step, relative to max(|x|, 1): extrapolation needs it large
SHRINK = 2.0  # each step is the previous one / SHRINK
STEPS = 14  # the smallest, 0.1 / 2**13, resolves features about 1e-4 * max(|x|, 1) wide
TOLERANCE = {"float64": 1e-6, "float32": 1e-3}


@dataclass
class Step:
    """One comparison: ``generated(args)`` against ``expected(float64 args)``, which returns the
    reference value and an estimate of its own absolute error (same shape)."""

    label: str
    generated: object
    expected: object


def ridders(quotient, h0):
    """Richardson extrapolation of the central difference ``quotient(h)`` to h = 0, elementwise.

    ``quotient(h)`` returns the difference quotient and its rounding noise. With steps h0, h0/2,
    ... each column of the tableau cancels one more even power of h; the entry that agrees best
    with its three neighbours wins, that disagreement (at least the entry's propagated rounding
    noise) being its error estimate. The noise floor matters: where a difference is a few units in
    the last place, the quotients at two steps can agree exactly and fake a converged tableau.
    Returns float64 (value, error); an entry with no finite estimate is nan with error inf."""
    best = err = None
    previous = noise_previous = []
    for i in range(STEPS):
        value, noise = quotient(h0 / SHRINK**i)
        row, noise_row = [value], [noise]
        if best is None:
            best, err = np.full(value.shape, np.nan, dtype=value.dtype), np.full(value.shape, np.inf, dtype=value.dtype)
        factor = SHRINK**2
        for j in range(1, i + 1):
            row.append((row[j - 1] * factor - previous[j - 1]) / (factor - 1))
            noise_row.append((noise_row[j - 1] * factor + noise_previous[j - 1]) / (factor - 1))
            factor *= SHRINK**2
            trial = np.maximum(np.abs(row[j] - row[j - 1]), np.abs(row[j] - previous[j - 1]))
            if j < i:
                trial = np.maximum(trial, np.abs(row[j] - previous[j]))
            trial = np.maximum(trial, noise_row[j])
            better = trial <= err
            best, err = np.where(better, row[j], best), np.where(better, trial, err)
        previous, noise_previous = row, noise_row
        if np.all(np.minimum.reduce(noise_row) >= err):  # smaller steps are only noisier
            break
    best = best.astype(np.float64)
    # the value is rounded to float64 in the end: its error is at least its last bit
    return best, np.maximum(err.astype(np.float64), np.finfo(np.float64).eps * np.abs(best))


def working_dtype(fun, args, p):
    """``np.longdouble`` where ``fun`` computes in it, else float64: differences in extended
    precision carry 2000 times less rounding noise (x86-64), which differencing the huge gradient
    of a stiff function needs. "Computes in it": the value is a long double and notices a change of
    args[p] below float64's resolution, so no step in between rounded to float64."""
    wide = np.dtype(np.longdouble)
    if np.finfo(wide).eps >= np.finfo(np.float64).eps:
        return np.dtype(np.float64)
    args = [np.asarray(a, dtype=wide) for a in args]
    x = args[p]
    nudged = np.asarray(x + np.where(x == 0, 1, np.abs(x)) * (np.finfo(np.float64).eps / 16))
    try:
        before = np.asarray(fun(*args))
        after = np.asarray(fun(*args[:p], nudged, *args[p + 1 :]))
    except Exception:  # noqa: BLE001 - any failure in long double means: difference in float64
        return np.dtype(np.float64)
    if before.dtype != wide or after.shape != before.shape or not np.any(after != before):
        return np.dtype(np.float64)
    return wide


def _scale(x):
    return np.maximum(1.0, np.abs(x))


def _quotient(fp, fm, step, dtype):
    """The central difference quotient and its rounding noise, in the working dtype."""
    fp, fm = np.asarray(fp, dtype=dtype), np.asarray(fm, dtype=dtype)
    noise = 4 * np.finfo(dtype).eps * np.maximum(np.abs(fp), np.abs(fm))  # a few units in the last place
    return (fp - fm) / step, noise / step


def central_difference(fun, args, p):
    """d fun / d args[p] with shape ``out.shape + args[p].shape``, and its error estimate: one
    tableau per element of args[p], with steps scaled to that element's magnitude."""
    dtype = working_dtype(fun, args, p)
    args = [np.asarray(a, dtype=dtype) for a in args]
    x = args[p]
    value = err = None
    for idx in np.ndindex(x.shape):

        def quotient(h, idx=idx):
            xp, xm = x.copy(), x.copy()
            xp[idx] += h
            xm[idx] -= h
            fp, fm = fun(*args[:p], xp, *args[p + 1 :]), fun(*args[:p], xm, *args[p + 1 :])
            return _quotient(fp, fm, xp[idx] - xm[idx], dtype)  # the step actually taken, after rounding

        v, e = ridders(quotient, FIRST_STEP * _scale(x[idx]))
        if value is None:
            value, err = np.empty(v.shape + x.shape), np.empty(v.shape + x.shape)
        value[(Ellipsis,) + idx], err[(Ellipsis,) + idx] = v, e
    return value, err


def elementwise_difference(fun, args, p):
    """d fun / d args[p] of an elementwise function and its error estimate, every element at once."""
    dtype = working_dtype(fun, args, p)
    args = [np.asarray(a, dtype=dtype) for a in args]
    x = args[p]

    def quotient(h):
        xp, xm = np.asarray(x + h), np.asarray(x - h)  # arrays, not numpy scalars: the API's fast path
        fp, fm = fun(*args[:p], xp, *args[p + 1 :]), fun(*args[:p], xm, *args[p + 1 :])
        return _quotient(fp, fm, xp - xm, dtype)

    return ridders(quotient, FIRST_STEP * _scale(x))


def _exact(fun):
    """The reference for a value: the function itself, with no error of its own to report."""

    def run(args):
        value = np.asarray(fun(*args), dtype=np.float64)
        return value, np.zeros(value.shape)

    return run


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
            add(Step(f"value of {target.name}", _leaf(t, (0,)), _exact(f)))
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
        return [Step(f"value of {target.name}", _leaf(make(0), ()), _exact(f))]
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
            parts[idx] = expected(core_args)
        first_value, _ = next(iter(parts.values()))
        value, err = np.empty(batch + np.shape(first_value)), np.empty(batch + np.shape(first_value))
        for idx, (v, e) in parts.items():
            value[idx], err[idx] = v, e
        return value, err

    return run


@dataclass
class Comparison:
    """Worst errors of one step at one point, relative to max(|reference|, 1), and the verdicts of
    its entries: an entry that misses ``tol`` fails only when it misses by more than the
    reference's own estimated error, otherwise it is inconclusive. All nan without a finite reference."""

    worst: float = float("nan")
    reference: float = float("nan")
    failed: bool = False
    inconclusive: bool = False

    def merge(self, other: Comparison) -> Comparison:
        pick = lambda a, b: b if np.isnan(a) else (a if np.isnan(b) else max(a, b))
        return Comparison(
            pick(self.worst, other.worst),
            pick(self.reference, other.reference),
            self.failed or other.failed,
            self.inconclusive or other.inconclusive,
        )


def compare(got, expected, error, tol) -> Comparison:
    """``got`` against the reference ``expected`` whose absolute error is about ``error``."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return Comparison(float("inf"), 0.0, failed=True)
    usable = np.isfinite(expected)
    if not usable.any():
        return Comparison()
    scale = np.maximum(np.abs(expected[usable]), 1.0)
    rel = np.abs(got[usable] - expected[usable]) / scale
    rel = np.where(np.isfinite(rel), rel, np.inf)
    ref = np.asarray(error, dtype=np.float64)[usable] / scale
    missed = rel > tol
    failed = missed & (rel - ref > tol)
    return Comparison(float(rel.max()), float(ref.max()), bool(failed.any()), bool((missed & ~failed).any()))


def run(target, points, seed, tol, low, high, progress, out) -> int:
    """Print one line per step and a verdict; return the exit status: 0 when every entry agrees
    within ``tol``, 1 when one misses it by more than the reference's error, 3 when the reference
    is too uncertain to decide (and nothing failed)."""
    steps = build_steps(target)
    rng = np.random.default_rng(seed)
    found = {s.label: Comparison() for s in steps}
    with np.errstate(all="ignore"):
        for n in range(points):
            progress.say(f"point {n + 1} of {points}")
            args = target.example_args(rng, low, high)
            args64 = [np.asarray(a, dtype=np.float64) for a in args]
            for s in steps:
                expected = _batched(s.expected, target) if target.cores else s.expected
                found[s.label] = found[s.label].merge(compare(s.generated(args), *expected(args64), tol))
    width = max(len(label) for label in found)
    for label, c in found.items():
        if np.isnan(c.worst):
            verdict = "no finite point"
        else:
            verdict = "FAILED" if c.failed else ("inconclusive" if c.inconclusive else "ok")
        print(
            f"  {label:<{width}}  worst relative error {c.worst:.1e}  reference error {c.reference:.1e}  {verdict}",
            file=out,
        )
    results = list(found.values())
    if all(np.isnan(c.worst) for c in results):
        print(
            f"FAILED: the finite differences are not finite at any point in [{low:g}, {high:g}); "
            "choose another --range",
            file=out,
        )
        return 1
    total = max(c.worst for c in results if not np.isnan(c.worst))
    reference = max(c.reference for c in results if not np.isnan(c.reference))
    relation = "<=" if total <= tol else ">"
    if any(c.failed for c in results) or any(np.isnan(c.worst) for c in results):
        print(f"FAILED: worst relative error {total:.1e} {relation} tolerance {tol:g}", file=out)
        return 1
    if any(c.inconclusive for c in results):
        print(
            f"inconclusive: worst relative error {total:.1e} > tolerance {tol:g}, but the finite differences "
            f"are themselves uncertain by up to {reference:.1e}; use a larger --tol, or another --range",
            file=out,
        )
        return 3
    print(f"ok: worst relative error {total:.1e} <= tolerance {tol:g}", file=out)
    return 0
