"""What a ``symdiff`` command works on: the user's function, its example arguments and the transforms.

The command line names a function as ``FILE.py:FUNC`` and its arguments only by shape and dtype, so
this module turns that text into the objects the Python API takes, with one clear message per kind
of bad input (raised as ``UsageError``, which the CLI prints as one line).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
import traceback
from dataclasses import dataclass, field

import numpy as np

from .. import api

DTYPES = ("float64", "float32")
_KIND_WORDS = {
    "grad": "gradient",
    "value_and_grad": "value and gradient",
    "jacobian": "Jacobian",
    "hessian": "Hessian",
}


class UsageError(Exception):
    """Bad command-line input: the CLI prints the message as one line and exits with status 2."""


@dataclass
class Target:
    """The user's function with everything the command line said about its arguments."""

    spec: str  # FILE.py:FUNC as typed
    fun: object
    params: list  # names of the arguments symdiff passes, in order
    shapes: list  # one shape per argument
    dtype: str
    kinds: list  # ("grad", None) ... ("derivative", K), in the order given
    positions: object  # int or tuple of argument positions
    signature: str | None = None
    cores: list = field(default_factory=list)  # core shape per argument under a signature

    @property
    def path(self) -> str:
        return self.spec.rpartition(":")[0]

    @property
    def name(self) -> str:
        return getattr(self.fun, "__name__", "f")

    def wrt_names(self) -> list:
        pos = self.positions if isinstance(self.positions, tuple) else (self.positions,)
        return [self.params[p] for p in pos]

    def example_args(self, rng=None, low=-2.0, high=2.0, dtype=None, lead=()):
        """Arguments of the declared shapes: zeros, or uniform in [low, high) when ``rng`` is given.

        Scalars are Python floats for float64 (as the API's users pass them), 0-d arrays otherwise."""
        dtype = np.dtype(dtype or self.dtype)
        out = []
        for shape in self.shapes:
            shape = tuple(lead) + tuple(shape)
            value = np.zeros(shape) if rng is None else rng.uniform(low, high, size=shape)
            value = value.astype(dtype)
            out.append(float(value) if shape == () and dtype == np.float64 else value)
        return out

    def transforms(self):
        """One ``symdiff.api.Transform`` per requested kind; elementwise derivatives go last because
        ``emit_module`` takes the argument shapes from its first transform."""
        made = []
        for kind, order in self.kinds:
            if kind == "derivative":
                made.append(self.derivative(order))
            else:
                made.append(api.Transform(self.fun, kind, argnums=self.positions, signature=self.signature))
        return sorted(made, key=lambda t: t.kind == "derivative")

    def derivative(self, order, positions=None):
        """The elementwise derivative: ``order`` times in one argument, or in a sequence of them."""
        positions = self.positions if positions is None else positions
        if isinstance(positions, tuple):
            return api.Transform(self.fun, "derivative", argnums=positions)
        return api.Transform(self.fun, "derivative", argnums=positions, order=order)

    def describe(self, kind, order=None) -> str:
        """``gradient``, ``Hessian``, ``derivative of order 3``: what one transform computes."""
        if kind != "derivative":
            return _KIND_WORDS[kind]
        if isinstance(self.positions, tuple):
            return "mixed partial derivative d^{}/{}".format(
                len(self.positions), " ".join(f"d{n}" for n in self.wrt_names())
            )
        return f"derivative of order {order}"

    def summary(self, kinds=None) -> str:
        """``Value and gradient, and Hessian of loss with respect to w, b`` (default: every kind)."""
        words = [self.describe(kind, order) for kind, order in (kinds or self.kinds)]
        joiner = ", and " if len(words) > 2 or any(" and " in w for w in words) else " and "
        what = words[0] if len(words) == 1 else ", ".join(words[:-1]) + joiner + words[-1]
        return f"{what[0].upper()}{what[1:]} of {self.name} with respect to {', '.join(self.wrt_names())}"

    def argument_lines(self, elementwise: bool) -> list:
        """One line per argument: its name, dtype and shape (the header of an emitted module)."""
        lines = []
        for i, (name, shape) in enumerate(zip(self.params, self.shapes)):
            if elementwise:
                where = "any shape (elementwise, broadcast)"
            elif self.cores:
                core = self.cores[i]
                lead = len(shape) - len(core)
                where = f"core shape {tuple(shape[lead:])}" + (", with leading batch axes" if lead > 0 else "")
            else:
                where = "scalar" if shape == () else f"shape {tuple(shape)}"
            lines.append(f"    {name}: {self.dtype}, {where}")
        return lines


# -- loading the function ----------------------------------------------------------------------


def load_function(spec: str):
    """The object named by ``FILE.py:FUNC`` (FUNC may be dotted), importing FILE as a script would."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"expected FILE.py:FUNC, for example examples/cli_functions.py:loss, got {spec!r}")
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory; expected FILE.py:FUNC")
    module = _import_file(path)
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            defined = sorted(
                k
                for k, v in vars(module).items()
                if inspect.isfunction(v) and getattr(v, "__module__", None) == module.__name__
            )
            listing = ", ".join(defined) if defined else "none"
            raise UsageError(f"{path} has no function {name!r} (functions defined there: {listing})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{name!r} in {path} is not a function (its type is {type(obj).__name__})")
    return obj


def _import_file(path: str):
    """Run the user's file as a module (not as ``__main__``), with its directory importable."""
    full = os.path.abspath(path)
    directory = os.path.dirname(full)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name = "symdiff_cli_target"
    spec = importlib.util.spec_from_file_location(module_name, full)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with open(full, encoding="utf-8") as fh:
            code = compile(fh.read(), path, "exec")
    except SyntaxError as e:
        raise UsageError(f"syntax error in {path} line {e.lineno}: {e.msg}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from e
    try:
        exec(code, module.__dict__)  # noqa: S102 - running the user's file is the point
    except Exception as e:
        raise UsageError(f"importing {path} failed at {user_frame(e)}: {type(e).__name__}: {e}") from e
    return module


def user_frame(exc: BaseException) -> str:
    """``file:line`` of the innermost traceback frame outside symdiff and numpy."""
    package = os.path.dirname(os.path.abspath(__file__))
    found = "<unknown location>"
    for frame, line in traceback.walk_tb(exc.__traceback__):
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(package) and f"{os.sep}numpy{os.sep}" not in path and "<frozen" not in path:
            found = f"{frame.f_code.co_filename}:{line}"
    return found


# -- the selection flags -----------------------------------------------------------------------

_DIMS = re.compile(r"^\(?\s*(\d+\s*(,\s*\d+\s*)*)?,?\s*\)?$")


def parse_shape(text: str) -> tuple:
    """``NAME=5,3`` -> ``("NAME", (5, 3))``; ``NAME=`` or ``NAME=()`` is a scalar."""
    name, sep, dims = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise UsageError(f"malformed --shape {text!r}: use NAME=DIM,DIM, for example --shape x=5,3")
    if not _DIMS.match(dims.strip()):
        raise UsageError(f"malformed --shape {text!r}: dimensions must be positive integers, e.g. x=5,3")
    shape = tuple(int(d) for d in re.findall(r"\d+", dims))
    if any(d < 1 for d in shape):
        raise UsageError(f"malformed --shape {text!r}: dimensions must be positive integers, e.g. x=5,3")
    return name, shape


def _param_list(fun):
    """(names, required count) of the positional parameters of ``fun`` (or of the function it wraps)."""
    base = fun
    while isinstance(base, api.Transform):
        base = base.fun
    try:
        params = list(inspect.signature(base).parameters.values())
    except (TypeError, ValueError) as e:
        raise UsageError(f"cannot read the parameters of {getattr(fun, '__name__', fun)!r}: {e}") from e
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        raise UsageError(f"{base.__name__} takes *args; symdiff needs named parameters, e.g. def f(x, y)")
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [i for i, p in enumerate(positional) if p.default is p.empty]
    return [p.name for p in positional], (required[-1] + 1 if required else 0)


def _split(text: str, flag: str) -> list:
    items = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in items):
        raise UsageError(
            f"malformed {flag} {text!r}: use a comma-separated list, e.g. {flag} "
            + ("x,z" if flag == "--wrt" else "0,1")
        )
    return items


def _known(flag, given, names, fname):
    unknown = [n for n in given if n not in names]
    if unknown:
        raise UsageError(
            f"{flag} names {', '.join(unknown)}, which is not a parameter of {fname} "
            f"(its parameters are {', '.join(names)})"
        )


def build_target(opts, kinds) -> Target:
    """Resolve FILE.py:FUNC and the selection flags of ``opts`` into a ``Target``."""
    if opts.dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {opts.dtype!r}")
    shapes: dict = {}
    for text in opts.shape or []:
        name, shape = parse_shape(text)
        if shapes.setdefault(name, shape) != shape:
            given = " and ".join(f"--shape {name}={','.join(map(str, s)) or '()'}" for s in (shapes[name], shape))
            raise UsageError(f"the shape of {name} was given twice with different values ({given}); give it once")
    fun = load_function(opts.target)
    names, n_required = _param_list(fun)
    fname = getattr(fun, "__name__", opts.target)
    if not names:
        raise UsageError(f"{fname} takes no arguments; there is nothing to differentiate")
    _known("--shape", shapes, names, fname)
    if opts.wrt is not None:
        wrt = _split(opts.wrt, "--wrt")
        _known("--wrt", wrt, names, fname)
        pos = [names.index(n) for n in wrt]
    elif opts.argnums is not None:
        items = _split(opts.argnums, "--argnums")
        if not all(re.fullmatch(r"\d+", s) for s in items):
            raise UsageError(f"malformed --argnums {opts.argnums!r}: use argument positions, e.g. --argnums 0,1")
        pos = [int(s) for s in items]
        if max(pos) >= len(names):
            raise UsageError(f"--argnums {max(pos)} is out of range: the parameters of {fname} are {', '.join(names)}")
    else:
        pos = [0]
    n_args = max([n_required, max(pos) + 1] + [names.index(n) + 1 for n in shapes])
    orders = [k for kind, k in kinds if kind == "derivative"]
    if orders and len(pos) > 1 and len(pos) != orders[0]:
        raise UsageError(
            f"--order {orders[0]} with {len(pos)} arguments: name exactly {orders[0]} "
            "(--wrt x,x,z takes the mixed partial d^3/dx dx dz), or one argument"
        )
    if orders and opts.signature:
        raise UsageError("--signature does not apply to --order: elementwise derivatives broadcast already")
    positions = tuple(pos) if len(pos) > 1 else pos[0]
    target = Target(
        spec=opts.target,
        fun=fun,
        params=names[:n_args],
        shapes=[shapes.get(n, ()) for n in names[:n_args]],
        dtype=opts.dtype,
        kinds=kinds,
        positions=positions,
        signature=opts.signature,
    )
    if opts.signature:
        cores = api.Transform(fun, "grad", signature=opts.signature).signature[0]
        if len(cores) != n_args:
            raise UsageError(
                f"--signature {opts.signature!r} has {len(cores)} inputs but {fname} takes "
                f"{n_args} arguments ({', '.join(target.params)})"
            )
        target.cores = cores
    return target
