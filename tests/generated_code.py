"""Checks every test can apply to a generated module: it compiles, and ruff finds no E/F errors.

``ruff check --select E,F`` runs with the project's line length (120, pyproject.toml) on a copy of
the source in a temporary directory; when the ``ruff`` executable is not installed the ruff half is
skipped (``RUFF is None``) and only ``compile()`` runs.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import subprocess
import tempfile
import tokenize

RUFF = shutil.which("ruff")
LINE_LENGTH = 120

# ruff codes symdiff is known to emit today. Each has its own strict-xfail test in test_hostile.py
# (test_generated_lines_fit_the_line_length); the fuzz run counts them instead of failing on them,
# so that every other ruff error still fails it.
KNOWN_RUFF_CODES = {
    "E501": "long elementwise expressions are emitted on one line",
}

_LINE = re.compile(r":(\d+):(\d+): ([A-Z]+\d+) (.*)$")


def compile_source(source: str):
    """compile() the module; a SyntaxError names the line."""
    return compile(source, "<symdiff generated>", "exec")


def ruff_problems(sources, ignore=()):
    """[(module index, code, message), ...] from one `ruff check --select E,F` over all sources."""
    if RUFF is None or not sources:
        return []
    with tempfile.TemporaryDirectory() as d:
        for k, s in enumerate(sources):
            with open(os.path.join(d, f"gen_{k}.py"), "w", encoding="utf-8") as fh:
                fh.write(s)
        cmd = [RUFF, "check", "--no-cache", "--isolated", "--select", "E,F", "--line-length", str(LINE_LENGTH),
               "--output-format", "concise", "--quiet"]
        if ignore:
            cmd += ["--ignore", ",".join(ignore)]
        proc = subprocess.run(cmd + [d], capture_output=True, text=True, check=False)
    problems = []
    for line in proc.stdout.splitlines():
        m = _LINE.search(line)
        name = os.path.basename(line.split(":", 1)[0])
        if m and name.startswith("gen_"):
            problems.append((int(name[4:-3]), m.group(3), f"line {m.group(1)}: {m.group(4)}"))
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not problems):
        problems.append((-1, "ruff", proc.stdout + proc.stderr))
    return problems


def generated_functions(source):
    """The generated functions of a module (not its private helpers such as ``_argument``)."""
    return [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]


def is_argument_check(assign) -> bool:
    """``x = _argument(...)``: the entry check converting (or refusing) a parameter, not a temporary."""
    value = assign.value
    return isinstance(value, ast.Call) and getattr(value.func, "id", "") == "_argument"


def module_names(source):
    """Names a module defines at its top level: functions, helpers and constants."""
    names = set()
    for n in ast.parse(source).body:
        if isinstance(n, ast.FunctionDef):
            names.add(n.name)
        elif isinstance(n, ast.Assign):
            names.update(t.id for t in n.targets if isinstance(t, ast.Name))
    return names


def without_comments(source: str) -> str:
    """The module's code without its comments: generated comments quote the user's source line
    (``# from: ...``), so checks that count calls in the code must not count them there."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type != tokenize.COMMENT]
    return tokenize.untokenize(tokens)
