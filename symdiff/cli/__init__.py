"""The ``symdiff`` command: derivative code from a function in a file, without writing Python around it.

``symdiff emit`` writes a standalone module (numpy only) to commit and ship, ``show`` prints the
formulas, ``check`` compares the generated code with finite differences, ``cache`` manages the
compile cache. Bad input prints one line on stderr and exits with status 2 (``--debug`` shows the
traceback); ``check`` exits with status 1 when a derivative is off, 3 when the finite differences
are too uncertain to tell.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import shlex
import shutil
import sys
import tempfile
import traceback
import warnings

from .. import __version__, api, load
from .progress import Progress
from .target import UsageError, build_target, user_frame

EXAMPLES = {
    "emit": """examples (run from the repository root):
  symdiff emit examples/cli_functions.py:rosenbrock --grad
  symdiff emit examples/cli_functions.py:loss --value-and-grad --hessian --wrt w,b \\
      --shape w=3 --shape x=6,3 --shape y=6 -o loss_derivatives.py
  symdiff emit examples/cli_functions.py:bump --order 3
  symdiff emit examples/cli_functions.py:energy --hessian --signature "(n)->()" --shape p=100,4""",
    "show": """examples (run from the repository root):
  symdiff show examples/cli_functions.py:rosenbrock --hessian --wrt x,y
  symdiff show examples/cli_functions.py:pendulum --jacobian --shape q=2 --latex""",
    "check": """examples (run from the repository root):
  symdiff check examples/cli_functions.py:loss --grad --hessian --wrt w,b --shape w=3 --shape x=6,3 --shape y=6
  symdiff check examples/cli_functions.py:bump --order 4 --points 20 --seed 1
  symdiff check examples/cli_functions.py:lennard_jones --hessian --shape x=4,3 --range 0 1.5
  symdiff check examples/cli_functions.py:staircase    # exit status 1: the derivative is wrong""",
    "cache": """examples:
  symdiff cache info
  symdiff cache clear""",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and status 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class KindAction(argparse.Action):
    """Collects --grad/--hessian/.../--order K in command-line order, as (kind, order) pairs."""

    def __call__(self, parser, namespace, values, option_string=None):
        kinds = list(getattr(namespace, "kinds", None) or [])
        if self.const == "derivative":
            if any(k == "derivative" for k, _ in kinds):
                parser.error("--order can be given once")
            kinds.append(("derivative", values))
        elif (self.const, None) not in kinds:
            kinds.append((self.const, None))
        namespace.kinds = kinds


class Once(argparse.Action):
    """Stores an option's value but refuses a second, different one: with argparse's default the
    last would silently win, and ``--points 5 ... --points 50`` would check something else than
    the reader of the command line thinks."""

    def __call__(self, parser, namespace, values, option_string=None):
        marker = f"_given_{self.dest}"
        old = getattr(namespace, self.dest, None)
        if getattr(namespace, marker, False) and old != values:
            show = lambda v: " ".join(f"{x:g}" for x in v) if isinstance(v, list) else f"{v:g}"
            parser.error(
                f"{option_string} was given twice with different values ({show(old)} and {show(values)}); give it once"
            )
        setattr(namespace, marker, True)
        setattr(namespace, self.dest, values)


def _order(text):
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--order needs a non-negative integer, got {text!r}") from None
    if k < 0:
        raise argparse.ArgumentTypeError(f"--order needs a non-negative integer, got {text!r}")
    return k


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _common(default):
    """Flags every command accepts: --debug and --verbose (also before the command name, hence
    ``default=SUPPRESS`` on the commands: not giving them there keeps the value given before)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", default=default, help="show the Python traceback of an error")
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=default,
        help="report each compiler stage on stderr (the default when stderr is a terminal)",
    )
    return p


def _selection():
    """FILE.py:FUNC and the flags that say which derivative, of which arguments, at which shapes."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("target", metavar="FILE.py:FUNC", help="the function to differentiate, e.g. model.py:loss")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--wrt", metavar="NAMES", help="differentiate with respect to these parameters, e.g. x,z")
    which.add_argument("--argnums", metavar="N[,N]", help="... or these argument positions, e.g. 0,1 (default 0)")
    kinds = p.add_argument_group("what to compute (several may be given; default --grad)")
    for flag, kind, text in (
        ("--grad", "grad", "gradient of a scalar function"),
        ("--value-and-grad", "value_and_grad", "value and gradient, computed together"),
        ("--jacobian", "jacobian", "Jacobian, shape out.shape + in.shape"),
        ("--hessian", "hessian", "Hessian of a scalar function"),
    ):
        kinds.add_argument(flag, action=KindAction, nargs=0, const=kind, dest="kinds", help=text)
    kinds.add_argument(
        "--order",
        metavar="K",
        action=KindAction,
        const="derivative",
        dest="kinds",
        type=_order,
        help="elementwise K-th derivative of a function of scalars; with --wrt x,x,z the mixed partial d^3/dx dx dz",
    )
    p.add_argument(
        "--shape",
        metavar="NAME=D,D",
        action="append",
        help="shape of an argument, e.g. x=5,3 (repeat per argument; others are scalars)",
    )
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"), help="dtype of every argument")
    p.add_argument(
        "--signature",
        metavar="SIG",
        help='numpy gufunc signature, e.g. "(n)->()": give arguments leading batch axes in --shape',
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="symdiff",
        parents=[_common(False)],
        description="Symbolic derivatives of numpy functions as standalone, readable numpy code.",
        epilog="\n\n".join(EXAMPLES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"symdiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    common, selection = _common(argparse.SUPPRESS), _selection()

    def command(name, help_text, parents):
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=parents,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    emit = command("emit", "write the generated derivative module (numpy only, or the backend chosen)", [selection, common])
    emit.add_argument("-o", "--output", metavar="OUT.py", help="write here (atomically) instead of stdout")
    emit.add_argument(
        "--backend",
        default="numpy",
        choices=("numpy", "numba", "array_api"),
        help="numba: elementwise and per-point work as one fused loop (needs `pip install symdiff[numba]`); "
        "array_api: code on the Python array API standard, for numpy, CuPy, PyTorch, JAX and Dask arrays "
        "(needs `pip install symdiff[array-api]`)",
    )
    emit.set_defaults(run=cmd_emit)
    show = command(
        "show", "print the derivative formulas and their operation counts before and after CSE", [selection, common]
    )
    show.add_argument("--latex", action="store_true", help="print LaTeX instead of SymPy's pretty printing")
    show.add_argument("--graph", action="store_true", help="draw the derivative's graph instead of its formulas")
    show.add_argument("--format", default="dot", choices=("text", "dot", "mermaid", "svg"),
                      help="with --graph: dot (default), mermaid (renders in GitHub markdown), svg (needs Graphviz)")
    show.add_argument("-o", "--output", metavar="OUT", help="with --graph: write the picture here instead of stdout")
    show.add_argument("--program", action="store_true", help="with --graph: draw the function itself, not its derivative")
    show.set_defaults(run=cmd_show)
    check = command("check", "compare the generated derivatives with central finite differences", [selection, common])
    check.add_argument(
        "--points", type=_positive, default=5, metavar="N", action=Once, help="random points (default 5)"
    )
    check.add_argument("--seed", type=int, default=0, metavar="S", action=Once, help="random seed (default 0)")
    check.add_argument(
        "--range",
        action=Once,
        type=float,
        nargs=2,
        default=(-2.0, 2.0),
        metavar=("LOW", "HIGH"),
        help="points are uniform in [LOW, HIGH) (default -2 2)",
    )
    check.add_argument(
        "--tol",
        action=Once,
        type=float,
        metavar="TOL",
        help="largest accepted |generated - fd| / max(|fd|, 1) (default 1e-6, float32 1e-3)",
    )
    check.set_defaults(run=cmd_check)
    cache = command("cache", "show or clear the compile cache ($SYMDIFF_CACHE_DIR)", [common])
    cache.add_argument("action", choices=("info", "clear"))
    cache.set_defaults(run=cmd_cache)
    return parser


# -- commands -----------------------------------------------------------------------------------


def cmd_emit(opts, progress) -> int:
    target = build_target(opts, opts.kinds)
    if opts.output and os.path.realpath(opts.output) == os.path.realpath(target.path):
        raise UsageError(f"-o {opts.output} would overwrite the file that defines {target.name}")
    transforms = target.transforms()
    progress.say(f"compile {', '.join(t.kind for t in transforms)} of {target.name}")
    with progress.core_stages():
        source = api.emit_module(
            transforms, *target.example_args(), title=_title(target, opts), backend=getattr(opts, "backend", None),
            regenerate=_regenerate_hint(opts),
        )
    compile(source, opts.output or "<emitted module>", "exec")  # never ship a module that cannot load
    _warn_constants(source, target)
    if opts.output:
        progress.say(f"write {opts.output}")
        write_atomic(opts.output, source)
    else:
        opts.out.write(source)
    return 0


def _regenerate_hint(opts) -> str:
    """What a generated function says when called with arguments it was not generated for."""
    command = [a for a in opts.argv if a not in ("--debug", "--verbose", "-v")]
    return f"regenerate it for the new shapes with: symdiff {shlex.join(command)} (with the new --shape values)"


def _title(target, opts) -> str:
    """The emitted module's header: what, from which function, at which shapes, how to regenerate."""
    elementwise = all(kind == "derivative" for kind, _ in target.kinds)
    command = [a for a in opts.argv if a not in ("--debug", "--verbose", "-v")]
    lines = [
        f"{target.summary()}.",
        "",
        f"Source: {target.spec}" + (f" (signature {target.signature})" if target.signature else ""),
        "Arguments:",
        *target.argument_lines(elementwise),
        f"Regenerate with: symdiff {shlex.join(command)}",
    ]
    return "\n".join(lines)


def _warn_constants(source, target):
    """Generated functions receive the arrays the user's function reads as keyword arguments of
    the same names: say so, since the emitted module cannot run without them."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and node.args.kwonlyargs:
            names = ", ".join(a.arg for a in node.args.kwonlyargs)
            warnings.warn(
                f"{node.name} needs keyword argument(s) {names}: arrays {target.name} reads (its docstring lists "
                f"their shapes); pass them when calling, or make them parameters of {target.name}"
            )


def write_atomic(path, text) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise UsageError(f"cannot write {path}: {e.strerror}") from e
        raise


def cmd_show(opts, progress) -> int:
    from . import show as cli_show  # SymPy's printers: imported only for this command

    target = build_target(opts, opts.kinds)
    if opts.graph:
        return _show_graph(target, opts, progress)
    if opts.output or opts.format != "dot" or opts.program:
        raise UsageError("-o, --format and --program go with --graph")
    unicode = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") in ("utf8", "utf16")
    width = shutil.get_terminal_size((100, 24)).columns
    args = target.example_args()
    for t, (kind, order) in zip(target.transforms(), sorted(target.kinds, key=lambda k: k[0] == "derivative")):
        print(target.summary([(kind, order)]), file=opts.out)
        progress.say(f"formula: {target.describe(kind, order)}")
        with progress.core_stages():
            result = t.formula(*args)
        exprs = []
        for partials, expr in cli_show.leaves(target, kind, order, result):
            print(f"\n{cli_show.label(target.name, partials, opts.latex)} =", file=opts.out)
            print(cli_show.render(expr, opts.latex, unicode, width), file=opts.out)
            exprs += cli_show.scalars(expr)
        progress.say("common-subexpression elimination")
        before, after = cli_show.operation_counts(exprs)
        print(f"\noperations: {before} as written, {after} after common-subexpression elimination\n", file=opts.out)
    return 0


def _show_graph(target, opts, progress) -> int:
    from ..views import graph

    transforms = target.transforms()[:1] if opts.program else target.transforms()
    if opts.format == "svg" and len(transforms) > 1:
        raise UsageError("--format svg draws one derivative: give one of --grad, --jacobian, --hessian, --order")
    pictures = []
    for t in transforms:
        progress.say(f"graph of {target.name if opts.program else f'{t.kind} of {target.name}'}")
        with progress.core_stages():
            pictures.append(graph(t, target.example_args(), {}, opts.format, program=opts.program))
    text = "\n".join(pictures)
    if opts.output:
        write_atomic(opts.output, text)
    else:
        opts.out.write(text)
    return 0


def cmd_check(opts, progress) -> int:
    from . import check as cli_check

    target = build_target(opts, opts.kinds)
    tol = opts.tol if opts.tol is not None else cli_check.TOLERANCE[target.dtype]
    low, high = opts.range
    if not low <= high:
        raise UsageError(f"--range needs LOW <= HIGH, got {low:g} {high:g}")
    print(
        f"{target.summary()}: {opts.points} random points in [{low:g}, {high:g}), {target.dtype}, seed {opts.seed}",
        file=opts.out,
    )
    with progress.core_stages():
        return cli_check.run(target, opts.points, opts.seed, tol, low, high, progress, opts.out)


def cmd_cache(opts, progress) -> int:
    info = load.cache_info()
    if info["directory"] is None:
        print("the disk cache is disabled (SYMDIFF_CACHE_DIR is set to an empty value)", file=opts.out)
        return 0
    if opts.action == "clear":
        removed = load.cache_clear()
        plural = "s" if removed != 1 else ""
        print(f"removed {removed} cached module{plural} from {info['directory']}", file=opts.out)
    else:
        limit, used = info["max_bytes"], info["bytes"]
        if info["trusted"] is None and not info["problem"]:
            trusted = "n/a (the directory does not exist yet; it is created private on first use)"
        elif info["trusted"] is None:
            trusted = "n/a"
        else:
            trusted = "yes" if info["trusted"] else f"no: {info['problem']}"
        lines = [
            ("directory", info["directory"]),
            ("entries", info["entries"]),
            ("bytes", used),
            ("numba", f"{info['numba_files']} cache files, {info['numba_bytes']} bytes (included in bytes)"),
            ("limit", f"{limit} bytes ({limit / 2**20:g} MB, SYMDIFF_CACHE_MAX_MB)"),
            ("used", f"{100 * used / limit:.1f}% of the limit"),
            ("trusted", trusted),
        ]
        if info["trusted"] is not False and info["problem"]:  # e.g. read-only, or cannot be looked at
            lines.append(("problem", f"{info['problem']}; compiled code is cached in memory only"))
        for key, value in lines:
            print(f"{key + ':':<10} {value}", file=opts.out)
    return 0


# -- entry point --------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    """The error as one line: symdiff's own message, or the exception and where in user code it arose."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (UsageError, api.SymdiffError)):
        return text
    where = user_frame(exc)
    return f"{type(exc).__name__}: {text}" + ("" if where.startswith("<") else f" (at {where})")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"symdiff: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else 2
    opts.argv = argv
    opts.kinds = getattr(opts, "kinds", None) or [("grad", None)]
    progress = Progress(opts.verbose or sys.stderr.isatty())
    opts.out = io.StringIO()  # printed only when the command gets to the end: no partial output
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            status = opts.run(opts, progress)
            sys.stdout.write(opts.out.getvalue())
            sys.stdout.flush()
            if progress.used:
                progress.say("done")
            return status
        except KeyboardInterrupt:
            print("symdiff: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `symdiff show ... | head`: the reader left; Python must not flush again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except Exception as e:  # noqa: BLE001 - every failure becomes one line (or a traceback with --debug)
            if opts.debug:
                traceback.print_exc()
            print(f"symdiff: error: {_one_line(e)}", file=sys.stderr)
            return 2
