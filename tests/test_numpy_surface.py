"""The numpy surface stated by the ops: numpy's own parameter names and order, for every function
and array method symdiff traces, checked against numpy's signatures and numpy's values."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import symdiff
from symdiff import trace  # noqa: F401  (attaches the array methods)
from symdiff.ops.surface import FUNCTIONS, METHODS, numpy_name
from tests.stage_helpers import registry_restored

_NAMED = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _names(fn) -> tuple[list, bool]:
    params = inspect.signature(fn).parameters.values()
    named = [p.name for p in params if p.kind in _NAMED]
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _signature_or_skip(fn):
    try:
        return _names(fn)
    except (TypeError, ValueError):
        pytest.skip(f"{fn!r} has no signature in this numpy")


@pytest.mark.parametrize("numpy_fn", list(FUNCTIONS), ids=numpy_name)
def test_every_traced_numpy_function_takes_numpys_parameters_in_numpys_order(numpy_fn):
    theirs, _ = _signature_or_skip(numpy_fn)
    ours, catch_all = _names(FUNCTIONS[numpy_fn])
    if theirs and theirs[0] == "operands":  # np.einsum(*operands, ...): subscripts come first
        theirs = theirs[1:]
    if set(ours) >= set(theirs):
        assert [n for n in ours if n in theirs] == theirs, (ours, theirs)
    else:  # parameters we do not name must reach a **kwargs that refuses them
        assert ours == theirs[: len(ours)] and catch_all, (ours, theirs)


@pytest.mark.parametrize("name", sorted(n for n, (_, attribute) in METHODS.items() if not attribute and not n.startswith("__")))
def test_every_array_method_takes_ndarrays_parameters(name):
    theirs, _ = _signature_or_skip(getattr(np.ndarray, name))
    ours, catch_all = _names(METHODS[name][0])
    theirs, ours = theirs[1:], ours[1:]  # self / the array
    assert [n for n in ours if n in theirs] == theirs[: len([n for n in ours if n in theirs])], (ours, theirs)
    assert set(theirs) <= set(ours) or catch_all, (ours, theirs)


X = np.arange(1.0, 7.0).reshape(2, 3)


@pytest.mark.parametrize(
    "fun",
    [
        lambda x: np.swapaxes(x, axis1=0, axis2=1),
        lambda x: np.sum(x, 0, None, None, True),
        lambda x: np.var(x, 1, None, None, 1),
        lambda x: np.std(x, axis=0, ddof=1, keepdims=True),
        lambda x: np.max(x, 1, None, True),
        lambda x: np.cumsum(x, axis=1),
        lambda x: np.moveaxis(x, source=0, destination=-1),
        lambda x: np.diagonal(x, offset=1, axis1=1, axis2=0),
        lambda x: np.trace(x, offset=1),
        lambda x: np.clip(x, a_min=2.0, a_max=5.0),
        lambda x: x.clip(min=2.0),
        lambda x: x.sum(axis=1, keepdims=True),
        lambda x: x.reshape(3, 2, order="C"),
        lambda x: np.reshape(x, shape=(3, 2)),
        lambda x: np.ones_like(x, shape=(4,)) * x.sum(),
        lambda x: np.full_like(x, fill_value=2.5) * x,
        lambda x: np.tensordot(x, x, axes=([1], [1])),
        lambda x: np.concatenate([x, x], axis=None),
        lambda x: np.stack([x, x], axis=-1),
        lambda x: np.expand_dims(x, axis=(0, 2)),
        lambda x: np.split(x, indices_or_sections=3, axis=1)[1],
        lambda x: x.mT @ x,
        lambda x: np.linalg.norm(x, ord=1, axis=0),
    ],
)
def test_numpys_keywords_and_positions_mean_what_they_mean_in_numpy(fun):
    """The traced value equals numpy's on the same call (value_and_grad of a weighted sum of it)."""
    weights = lambda shape: np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape)
    expected = fun(X)
    value, gradient = symdiff.value_and_grad(lambda x: np.sum(fun(x) * weights(np.shape(expected))))(X)
    np.testing.assert_allclose(value, np.sum(expected * weights(np.shape(expected))), rtol=1e-12)
    eps, step = np.zeros_like(X), 1e-6
    eps[0, 1] = step
    central = (np.sum(fun(X + eps) * weights(np.shape(expected))) - np.sum(fun(X - eps) * weights(np.shape(expected))))
    np.testing.assert_allclose(gradient[0, 1], central / (2 * step), rtol=1e-6, atol=1e-8)


def test_unsupported_arguments_are_refused_by_name_not_ignored():
    with pytest.raises(symdiff.TraceError, match="sum with where="):
        symdiff.grad(lambda x: np.sum(x, where=x > 0))(X)
    with pytest.raises(symdiff.TraceError, match="clip with dtype="):
        symdiff.grad(lambda x: np.clip(x, 0, 1, dtype=np.float32).sum())(X)


def test_errors_name_numpy_functions_as_the_user_writes_them():
    with pytest.raises(symdiff.TraceError, match=r"np\.linalg\.eig is not supported .*test_numpy_surface\.py"):
        symdiff.grad(lambda x: np.linalg.eig(np.diag(x))[0].real.sum())(np.ones(3))
    with pytest.raises(symdiff.TraceError, match=r"np\.fft\.fft is not supported"):
        symdiff.grad(lambda x: np.fft.fft(x).real.sum())(np.ones(3))


EXTENSION = '''
import numpy as np
from symdiff.graph import Node, placeholder
from symdiff.ops.base import Op, register
from symdiff.ops.elementwise import elementwise
from symdiff.ops.surface import as_node, numpy_function


def scaled(x):
    return Node("test_scaled_extension", (x,), x.shape, x.dtype)


@register
class Scaled(Op):
    name = "test_scaled_extension"
    linear = True
    template = "{{ s.target }} = SCALE * {{ s.x }}"

    def vjp(self, node, g, wanted, n_lead):
        yield 0, elementwise(SCALE * placeholder(0), (g,))

    def jvp(self, node, tangents, lead):
        return elementwise(SCALE * placeholder(0), (tangents[0],))

    def evaluate(self, node, xs, symbolic):
        return SCALE * xs[0]


@numpy_function(np.fix)
def np_fix(x):
    return scaled(as_node(x))
'''


def test_an_extension_edited_and_registered_again_compiles_again():
    """An op and numpy function registered from outside symdiff, then edited (a re-run notebook
    cell): the same transform object, and a new one, use the edited rules and template."""
    fun = lambda x: np.sum(np.fix(x) * x)  # noqa: E731
    transform = symdiff.value_and_grad(fun)
    x = np.array([1.0, 2.0])
    with registry_restored():
        for scale in (2, 3):
            exec(EXTENSION.replace("SCALE", str(scale)), {"__name__": "extension_under_test"})
            for t in (transform, symdiff.value_and_grad(fun)):
                value, gradient = t(x)
                assert value == scale * 5.0
                np.testing.assert_array_equal(gradient, 2 * scale * x)
                assert f"{scale} * " in t.source(x)
    with pytest.raises(symdiff.TraceError, match="np.fix is not supported"):
        transform(x)  # the extension is gone: compiled code for it is not used any more
