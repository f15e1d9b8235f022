"""``backward`` and ``autograd.grad``: rebuild the recorded graph as symdiff IR, derive its gradient
with ``symdiff.differentiate.vjp`` and run it through ``optimize -> emit -> load``
(``symdiff.api.compile_graph``).

Every tensor the graph reads (leaves, constants, explicit output gradients) becomes an input node
``0..n-1`` of a fresh graph, numbered in a deterministic walk, so a graph with the same structure
gives the same IR and the compiled gradient is found in the cache: the gradient of a training
step's graph is derived and compiled once, then only run.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from .. import api, ir
from .. import differentiate as D
from . import graph, structure
from .grad_mode import set_grad_enabled
from .tensor import Tensor

_compiled: dict = {}  # IR structure key -> (input nodes, gradient nodes, compiled function)
_recorded: dict = {}  # recorded structure key (structure.graph_key) -> (compiled function, used)
_SUMMARY = "Gradient of a recorded torchlike graph."
stats = {"derived": 0, "reused": 0, "fast": 0}


def cache_clear() -> None:
    _compiled.clear()
    _recorded.clear()
    stats.update(derived=0, reused=0, fast=0)


class _Rebuilt:
    """The recorded graph below ``roots`` as IR over fresh input nodes."""

    def __init__(self, order, stop):
        self.operands: list = []  # tensors whose values are inputs 0..n-1
        self.in_nodes: list = []
        self.node_of: dict = {}
        self.functions: list = []  # grad_fns visited (freed afterwards unless the graph is retained)
        self.leaves: list = []  # leaves that require grad, in walk order
        self.retained: list = []  # non-leaf tensors that asked for .grad (retain_grad)
        self._input_ids: set = set()
        for t in order:
            fn = t.grad_fn
            if fn is None or id(t) in stop:
                self.node_of[id(t)] = self.add_input(t)
                if fn is None and t.requires_grad:
                    self.leaves.append(t)
                continue
            for x, version in zip(fn._inputs, fn._versions):  # an intermediate too when it may be read saved
                if (fn._saves or id(self.node_of[id(x)]) in self._input_ids) and x._vc[0] != version:
                    raise RuntimeError(_modified_message(x, version))
            self.node_of[id(t)] = fn.node([self.node_of[id(x)] for x in fn._inputs])
            self.functions.append(fn)
            if t._retains_grad or t._hooks:
                self.retained.append(t)

    def add_input(self, t: Tensor) -> ir.Node:
        node = ir.input_node(len(self.in_nodes), t._value.shape, str(t._value.dtype))
        self.in_nodes.append(node)
        self._input_ids.add(id(node))
        self.operands.append(t)
        return node


def _post_order(roots, stop):
    """Tensors below ``roots``, operands before results, in a deterministic order (the order of
    ``ir.toposort`` on the rebuilt graph)."""

    def operands(t):
        fn = t.grad_fn
        return () if fn is None or id(t) in stop else fn._inputs

    return ir.toposort(roots, operands)


def _modified_message(t: Tensor, expected: int) -> str:
    shape = ", ".join(str(d) for d in t.shape)
    return (
        "one of the variables needed for gradient computation has been modified by an inplace operation: "
        f"[torch.{t.dtype.legacy} [{shape}]] is at version {t._vc[0]}; expected version {expected} instead. "
        "Hint: enable anomaly detection to find the operation that failed to compute its gradient, with "
        "torch.autograd.set_detect_anomaly(True, check_nan=False)."
    )


def _check_outputs(outputs, grad_outputs):
    for i, o in enumerate(outputs):
        if not isinstance(o, Tensor):
            raise TypeError(f"expected a Tensor as element {i} of outputs, got {type(o).__name__}")
        if not o.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    checked = []
    for i, (o, g) in enumerate(zip(outputs, grad_outputs)):
        if g is None:
            if o.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if not o.is_floating_point():
                raise RuntimeError(f"grad can be implicitly created only for real scalar outputs but got {o.dtype}")
        else:
            if not isinstance(g, Tensor):
                g = Tensor._make(np.asarray(g, dtype=o._value.dtype))
            if tuple(g.shape) != tuple(o.shape):
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape} and output[{i}] has a shape of {o.shape}."
                )
        checked.append(g)
    return checked


class _Replay:
    """A graph whose structure was seen before: its operands in the order the compiled gradient
    takes them, found without rebuilding IR (the same walk and order as ``_Rebuilt``)."""

    def __init__(self, order, stop, grad_outputs):
        self.operands, self.functions, self.leaves, self.retained = [], [], [], []
        index: dict = {}
        for t in order:
            fn = t.grad_fn
            if fn is None or id(t) in stop:
                index[id(t)] = len(self.operands)
                self.operands.append(t)
                if fn is None and t.requires_grad:
                    self.leaves.append(t)
                continue
            if fn._freed and fn._saves:
                raise RuntimeError(graph.SECOND_BACKWARD)
            for x, version in zip(fn._inputs, fn._versions):
                if (fn._saves or id(x) in index) and x._vc[0] != version:
                    raise RuntimeError(_modified_message(x, version))
            self.functions.append(fn)
            if t._retains_grad or t._hooks:
                self.retained.append(t)
        for c in grad_outputs:
            if c is not None and id(c) not in index:
                self.operands.append(c)


def _is_input(stop):
    return lambda t: t.grad_fn is None or id(t) in stop


def _derive(outputs, grad_outputs, wrt, stop, create_graph):
    """``(wrt, gradients, rebuilt graph)``: one gradient tensor per ``wrt`` tensor (all leaves that
    require grad when ``wrt`` is None), None where it is unused; with ``create_graph`` the gradients'
    grad_fn holds their derivative graph. A graph whose recorded structure was seen before skips
    the rebuild and runs the gradient compiled for it (``structure.graph_key``)."""
    order = _post_order(outputs, stop)
    fast = None if create_graph else structure.graph_key(order, _is_input(stop), outputs, grad_outputs, wrt)
    hit = _recorded.get(fast) if fast is not None else None
    if hit is not None:
        stats["fast"] += 1
        replay = _Replay(order, stop, grad_outputs)
        compiled, used, saved = hit
        wrt = list(wrt) if wrt is not None else replay.leaves + replay.retained
        values = [t._value for t in replay.operands] + [order[i]._value for i in saved]
        arrays = compiled(*values) if compiled is not None else []
        return wrt, _results(wrt, used, arrays, None, replay.operands), replay
    wrt, results, g, (compiled, saved), used = _derive_rebuilt(order, outputs, grad_outputs, wrt, stop, create_graph)
    if fast is not None:
        _recorded[fast] = (compiled, used, saved)
    return wrt, results, g


def _results(wrt, used, arrays, grads, operands):
    """Gradient tensors in the dtypes of ``wrt``; with ``grads`` (create_graph) carrying their graph."""
    results, k = [], 0
    for t, u in zip(wrt, used):
        if not u:
            results.append(None)
            continue
        out = Tensor._make(np.array(arrays[k], dtype=t._value.dtype))
        if grads is not None:
            in_nodes, nodes = grads
            fn = graph.derivative_function(nodes[k], in_nodes, operands)
            if any(op.requires_grad for op in fn._inputs):  # else the derivative is a constant
                out.grad_fn = fn
        results.append(out)
        k += 1
    return results


def _derive_rebuilt(order, outputs, grad_outputs, wrt, stop, create_graph):
    """The full path: rebuild the record as IR and find (or derive and compile) its gradient."""
    g = _Rebuilt(order, stop)
    out_nodes = [g.node_of[id(o)] for o in outputs]
    cot_nodes = []
    for o, c in zip(outputs, grad_outputs):
        if c is None:
            cot_nodes.append(ir.fill(1, o._value.shape, str(o._value.dtype)))
        else:
            known = g.node_of.get(id(c))
            cot_nodes.append(known if known is not None and known.op == "input" else g.add_input(c))
    wrt = list(wrt) if wrt is not None else g.leaves + g.retained
    reachable = {id(n) for n in ir.toposort(out_nodes)}
    wrt_nodes = [g.node_of.get(id(t)) for t in wrt]
    used = [n is not None and id(n) in reachable for n in wrt_nodes]
    wanted = [n for n, u in zip(wrt_nodes, used) if u]
    key = hashlib.sha256(
        json.dumps([ir.structure_key(out_nodes + cot_nodes + wanted), len(g.in_nodes), len(wanted)]).encode()
    ).hexdigest()
    entry = _compiled.get(key)
    fresh = entry is None  # derived now, so its nodes are this graph's
    if fresh:
        stats["derived"] += 1
        grads = [ir.cast(d, n.dtype) for d, n in zip(D.vjp(out_nodes, cot_nodes, wanted), wanted)] if wanted else []
        entry = _compiled[key] = [list(g.in_nodes), grads, None]  # [2]: compiled from the leaves alone
    else:
        stats["reused"] += 1
    in_nodes, grads, compiled = entry
    replay = None, ()
    if grads and fresh and not create_graph:
        replay = _reading_saved_values(order, g, grads)
        values = [t._value for t in g.operands] + [order[i]._value for i in replay[1]]
        arrays = replay[0](*values)
    elif grads:
        if compiled is None:
            compiled = entry[2] = api.compile_graph(in_nodes, grads, name="backward", summary=_SUMMARY)
        arrays = compiled(*(t._value for t in g.operands))
        replay = compiled, ()
    else:
        arrays = []
    results = _results(wrt, used, arrays, (in_nodes, grads) if create_graph else None, g.operands)
    return wrt, results, g, replay, used


def _reading_saved_values(order, g, grads):
    """The gradient compiled to read the forward values the eager pass already computed (like
    PyTorch's saved tensors) instead of recomputing them from the leaves: every recorded
    intermediate the gradient uses becomes an extra input. ``(function, positions in order)``."""
    needed = {id(n) for n in ir.toposort(grads)}
    saved, mapping = [], {}
    for i, t in enumerate(order):
        node = g.node_of[id(t)]
        if node.op != "input" and id(node) in needed and id(node) not in mapping:  # (clone shares its node)
            mapping[id(node)] = ir.input_node(len(g.in_nodes) + len(saved), node.shape, node.dtype)
            saved.append(i)
    inputs = list(g.in_nodes) + [mapping[id(g.node_of[id(order[i])])] for i in saved]
    fn = api.compile_graph(inputs, ir.substitute(grads, mapping), name="backward", summary=_SUMMARY)
    return fn, tuple(saved)


def _free(rebuilt, retain_graph):
    if not retain_graph:
        for fn in rebuilt.functions:
            fn._freed = True


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         is_grads_batched=False, materialize_grads=False):
    """``torch.autograd.grad``: a tuple with d outputs / d input per input; ``.grad`` is untouched."""
    if is_grads_batched:
        raise NotImplementedError("symdiff.torchlike: is_grads_batched is not supported")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    grad_outputs = _check_outputs(outputs, list(grad_outputs))
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    retain_graph = create_graph if retain_graph is None else retain_graph
    allow_unused = materialize_grads if allow_unused is None else allow_unused
    stop = {id(t) for t in inputs}
    hooked = [t for t in _post_order(outputs, stop) if t._hooks and t.grad_fn is not None and id(t) not in stop]
    with set_grad_enabled(create_graph):
        _, results, rebuilt = _derive(outputs, grad_outputs, inputs + hooked, stop, create_graph)
        for t, g in zip(hooked, results[len(inputs):]):
            if g is not None:
                _run_hooks(t, g)  # hooks between outputs and inputs see their gradient, as in PyTorch
        results = [_run_hooks(t, r, terminal=True) if r is not None and t._hooks else r
                   for t, r in zip(inputs, results[:len(inputs)])]
    for i, r in enumerate(results):
        if r is None and not allow_unused:
            raise RuntimeError(
                f"The differentiated Tensor at index {i} appears to not have been used in the graph. "
                "Set allow_unused=True if this is the desired behavior."
            )
        if r is None and materialize_grads:
            results[i] = Tensor._make(np.zeros_like(inputs[i]._value))
    _free(rebuilt, retain_graph)
    return tuple(results)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """``torch.autograd.backward``: accumulate gradients into ``.grad`` of the leaves (or ``inputs``)."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    grad_tensors = _check_outputs(tensors, list(grad_tensors))
    retain_graph = create_graph if retain_graph is None else retain_graph
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
    stop = {id(t) for t in inputs} if inputs is not None else set()
    with set_grad_enabled(create_graph):
        wrt, results, rebuilt = _derive(tensors, grad_tensors, inputs, stop, create_graph)
        for t, g in zip(wrt, results):
            if g is not None and t._hooks:
                g = _run_hooks(t, g, terminal=id(t) in stop)
            if g is not None and (t.grad_fn is None or t._retains_grad or id(t) in stop):
                _accumulate(t, g, create_graph)
    _free(rebuilt, retain_graph)


def _run_hooks(t: Tensor, g: Tensor, terminal: bool = False) -> Tensor:
    """Run ``t``'s hooks on its gradient ``g``; a hook may replace the gradient where nothing is
    derived from it any more (a leaf, or a ``terminal`` tensor: an input of ``autograd.grad``)."""
    for hook in list(t._hooks.values()):
        new = hook(g)
        if new is not None:
            if t.grad_fn is not None and not terminal:
                raise NotImplementedError(
                    "symdiff.torchlike: a hook on a non-leaf tensor may observe its gradient but not replace it "
                    "(the whole gradient is one compiled function); register the hook on a leaf instead"
                )
            g = new
    return g


def _accumulate(t: Tensor, g: Tensor, create_graph: bool) -> None:
    if t._grad is None:
        t._grad = g
    elif create_graph or t._grad.requires_grad:
        t._grad = t._grad + g
    else:
        np.add(t._grad._value, g._value, out=t._grad._value, casting="unsafe")
