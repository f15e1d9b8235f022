"""Part of emission: the jinja2 environments of generated code and how one statement renders.

numpy code renders each statement by its op's own ``template`` or a macro of statements.j2; code on
the Python array API standard (``backend="array_api"``) by the op's ``array_api_template`` or a
macro of array_api_statements.j2, and a statement the standard cannot express is a CompileError
naming the operation as the user's program spells it (``Op.spelled``).
"""

from __future__ import annotations

from functools import lru_cache

import jinja2

from . import ops
from .errors import CompileError
from .printing import libm_text as _libm_text
from .resources import template_dir


@lru_cache(maxsize=2)
def environment(array_api: bool = False) -> jinja2.Environment:
    """The templates of numpy code, or of code on the array API standard (``array_api``): the same
    function template over another set of statement macros."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.globals["statement"] = _render_array_api_statement if array_api else _render_statement
    env.filters["libm"] = lambda text, libm: _libm_text(text) if libm else text  # numba_module.py.j2's rerun
    env.globals["statements_template"] = "array_api_statements.j2" if array_api else "statements.j2"
    return env


def _render_statement(s: dict) -> str:
    """One statement: by the op's own template (``Op.template``, written beside its rules), else by
    the macro of statements.j2 that its kind names."""
    macros = _statement_macros()
    own = getattr(ops.REGISTRY.get(s["op"]), "template", None)
    return getattr(macros, s["op"])(s) if own is None else _op_template(own).render(s=s, st=macros)


def _render_array_api_statement(s: dict) -> str:
    """One statement on the array API standard: by the op's ``array_api_template``, else by the macro
    of array_api_statements.j2 its kind names; an op the standard cannot express is a CompileError."""
    macros = _statement_macros(True)
    op = ops.REGISTRY.get(s.get("of", s["op"]))
    own = getattr(op, "array_api_template", None)
    unknown = own is None and (op is not None and op.template is not None or not hasattr(macros, s["op"]))
    if own is False or unknown or s.get("standard") is False:  # standard: False, a form of the op it lacks
        spelled = getattr(op, "spelled", "") or f"the operation {s['op']!r}"
        where = f" (at {s['origin']})" if s.get("origin") else ""
        raise CompileError(f"{spelled} has no array API equivalent{where}; use backend='numpy'")
    return getattr(macros, s["op"])(s) if own is None else _op_template(own, True).render(s=s, st=macros)


@lru_cache(maxsize=2)
def _statement_macros(array_api: bool = False):
    """The statement macros rendered once (``get_template`` checks the file on disk at every call)."""
    return environment(array_api).get_template("array_api_statements.j2" if array_api else "statements.j2").module


@lru_cache(maxsize=None)
def _op_template(text: str, array_api: bool = False) -> jinja2.Template:
    return environment(array_api).from_string(text)
