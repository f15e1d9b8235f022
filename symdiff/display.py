"""Rich display in Jupyter: what a transform (or a torchlike tensor) computes, its formula in LaTeX
once it has been compiled, and its shapes.

Long formulas are shown through SymPy's common subexpressions (named ``tau_0, tau_1, ...``) and cut at
``MAX_LATEX`` characters with a pointer to ``.source()``: a display is never a 10-page expression.
"""

from __future__ import annotations

import types

from .errors import SymdiffError

MAX_LATEX = 1500  # characters of LaTeX shown in one display
CSE_ABOVE = 25  # operations above which a formula is shown through named subexpressions


def latex_block(pairs, more: str = "see `.source()`") -> str:
    """``$$ label = formula $$`` for ``[(latex label, SymPy expr)]``, through CSE when long, capped."""
    import sympy

    exprs = [e for _, e in pairs]
    lines = []
    if sum(_count_ops(e) for e in exprs) > CSE_ABOVE:
        replacements, exprs = sympy.cse(exprs, symbols=sympy.numbered_symbols("tau"))
        lines += [f"{sympy.latex(s)} &= {sympy.latex(v)}" for s, v in replacements]
    lines += [f"{label} &= {sympy.latex(e)}" for (label, _), e in zip(pairs, exprs)]
    shown, used = [], 0
    for line in lines:
        if used + len(line) > MAX_LATEX:
            left = len(lines) - len(shown)
            shown.append(rf"&\text{{… {left} more line{'s' if left > 1 else ''} not shown}}")
            break
        shown.append(line)
        used += len(line)
    text = "$$\n\\begin{aligned}\n" + " \\\\\n".join(shown) + "\n\\end{aligned}\n$$"
    return text + (f"\n\nThe formula is long: {more} for all of it." if len(shown) < len(lines) else "")


def _count_ops(e) -> int:
    import sympy

    if isinstance(e, (sympy.MatrixBase, sympy.NDimArray)):
        return sum(sympy.count_ops(x) for x in e)
    return sympy.count_ops(e)


def _shape_text(shape) -> str:
    return "scalar" if shape == () else "shape (" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def transform_markdown(t) -> str:
    """The markdown Jupyter shows for transform ``t``."""
    from . import emit, ir, views
    from .dispatch import _base, _flatten

    base_name = emit.sanitize(getattr(_base(t), "__name__", "f"), set())
    last = getattr(t, "_last_call", None)
    if last is None:
        positions = t.positions if isinstance(t.positions, tuple) else (t.positions,)
        summary = views._summary(t, base_name, [t._arg_name(p) for p in positions])
        return (f"**{summary}**\n\nNot compiled yet: call it with arrays (or ask `.formula(x)`, "
                "`.graph(x, format='mermaid')`) to see its formula and graph.")
    args, kwargs = last
    _, specs, _, call = t._specs(args, kwargs)
    n_positional = len(specs) - len(call.keywords)
    names = views.sanitized_params(t._traced_names(n_positional, call) + list(call.keywords))
    summary = views._summary(t, base_name, [names[p] for p in t._wrt_list(n_positional, call)])
    in_nodes = [ir.input_node(i, s, d) for i, (s, d) in enumerate(specs)]
    flat, _ = _flatten(t.symbolic(in_nodes, call=call))
    lines = [f"**{summary}**", "",
             "Arguments: " + ", ".join(f"`{n}` {d} {_shape_text(s)}" for n, (s, d) in zip(names, specs)),
             "", "Result: " + ", ".join(f"{o.dtype} {_shape_text(o.shape)}" for o in flat), ""]
    try:
        result = t.formula(*args, **kwargs)
        lines.append(latex_block(_labelled(t, base_name, names, n_positional, call, result)))
    except Exception as e:  # noqa: BLE001 - a display must never break the notebook; say why instead
        reason = str(e) if isinstance(e, SymdiffError) else f"{type(e).__name__}: {e}"
        lines.append(f"Formula not shown ({reason}); read the generated code with `.source(...)`.")
    return "\n".join(lines)


def _labelled(t, base_name, names, n_positional, call, result) -> list:
    """``[(LaTeX label, expr)]`` of a transform's formula, labelled like ``symdiff show --latex``."""
    from .cli import show
    from .dispatch import _base

    if _base(t) is not t.fun:  # a chain (grad of grad): the summary says what; no one-level label fits
        return [(r"\mathrm{result}", result)]
    wrt = [names[p] for p in t._wrt_list(n_positional, call)]
    target = types.SimpleNamespace(positions=t.positions, wrt_names=lambda: wrt)
    try:
        leaves = show.leaves(target, t.kind, t.order, result)
    except (TypeError, ValueError, IndexError):  # an aux output or a pytree: one unlabelled result
        return [(r"\mathrm{result}", result)]
    return [(show.label(base_name, partials, latex=True), expr) for partials, expr in leaves]
