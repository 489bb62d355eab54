"""Consoles, the error funnel, and output helpers shared by every command.

Tables and data go to stdout; logs, progress and errors to stderr. Every expected failure (bad
input reported by a library, a file-system error, an unreadable Arrow/Parquet/JSON file) becomes
one line `error: <file>: <problem>` and exit code 2; an interruption (Ctrl-C, SIGTERM, SIGHUP)
one line and exit code 130. Only a real bug reaches a traceback; XFEED_DEBUG=1 shows it always.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from safeio.atomic import atomic_path
from safeio.kinds import GENERIC_FILE, OutputKind

# Pipes and files get a fixed wide layout (upstream's table is 120 columns), terminals their width.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # one message, one line


class InputError(ValueError):
    """Bad command-line input detected by the CLI itself."""


# Known bad-input errors as "module:Class": resolved only from modules already imported (an
# exception of a class can only exist once its module is), so start-up imports none of them.
KNOWN_ERRORS: tuple[str, ...] = (
    "checkpoints.errors:CheckpointError",
    "phoenix.params:ParamMismatchError",
    "phoenix.device:DeviceUnavailableError",
    "phoenix.runtime:NonFiniteOutputError",
    "xfeed_cli.console:InputError",
    "thunder.errors:ThunderError",
    "world.tables:WorldError",
    "pipeline.candidates:CandidateStreamError",
    "pipeline.params:ParamsError",
    "pipeline.framework:PipelineError",
    "audit.runs:AuditError",
    "safeio.errors:SafeIOError",
    "builtins:OSError",  # file-system errors: missing, a directory, read-only, disk full, ...
    "pyarrow.lib:ArrowException",  # unreadable Parquet / Arrow files
    "json.decoder:JSONDecodeError",
    "builtins:UnicodeDecodeError",
    "builtins:RecursionError",  # absurdly nested input (JSON)
    "builtins:MemoryError",  # should not happen (sizes are validated first): still one line
)


def known_error_classes(loaded_only: bool = True) -> tuple[type[BaseException], ...]:
    """The KNOWN_ERRORS classes; with `loaded_only`, those whose module is already imported."""
    out = []
    for spec in KNOWN_ERRORS:
        module, name = spec.split(":")
        mod = sys.modules.get(module) if loaded_only else importlib.import_module(module)
        if mod is not None:
            out.append(getattr(mod, name))
    return tuple(out)


def is_known_error(exc: BaseException) -> bool:
    return isinstance(exc, known_error_classes())


def debug_enabled() -> bool:
    return os.environ.get("XFEED_DEBUG", "").strip() not in ("", "0")


class XFeedGroup(TyperGroup):
    """Every xfeed group: routes known errors through one funnel (one line, exit 2) and rejects a
    single-value option given twice (`--user 1 --user 7` is a usage error, not "last wins")."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None and not hasattr(cmd, "commands"):
            repeated = repeated_option(cmd, rest)
            if repeated:
                ctx.fail(f"{name}: option {repeated} given more than once (give it once)")
        return name, cmd, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if debug_enabled() or not is_known_error(exc) or isinstance(exc, BrokenPipeError):
                raise  # (click ends a closed-pipe write quietly)
            report_error(error_message(exc))
            raise typer.Exit(2) from None
        except (KeyboardInterrupt, click.exceptions.Abort):
            if debug_enabled():
                raise
            report_error("interrupted (the previous output, if any, is left as it was)")
            raise typer.Exit(130) from None


def report_error(message: str) -> None:
    """The one error line (plus the debug hint) on stderr."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    err.print("[dim](set XFEED_DEBUG=1 for a traceback)[/]", highlight=False)


def error_message(exc: BaseException) -> str:
    """One line for an expected failure: `<file>: <problem>` where the file is known."""
    if isinstance(exc, OSError) and not isinstance(exc, ValueError):
        what = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno == errno.ENOSPC:
            what = "no space left on the device"
        where = exc.filename or exc.filename2
        return f"{where}: {what}" if where else what
    if isinstance(exc, RecursionError):
        return "input nested too deeply"
    if isinstance(exc, MemoryError):
        return "not enough memory for this input"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500] + (" …" if len(first) > 500 else "")


def repeated_option(cmd: Any, args: list[str]) -> str | None:
    """The first single-value option (not a flag, counter or list) that `args` give twice."""
    single: dict[str, str] = {}
    for p in getattr(cmd, "params", ()):
        if getattr(p, "param_type_name", "") != "option":
            continue
        if getattr(p, "multiple", False) or getattr(p, "is_flag", False) or p.count:
            continue
        for opt in (*p.opts, *p.secondary_opts):
            single[opt] = p.name
    seen: dict[str, str] = {}
    for token in args:
        if token == "--":
            break
        opt = token.split("=", 1)[0] if token.startswith("--") else token
        if opt in single:
            if single[opt] in seen:
                return opt
            seen[single[opt]] = opt
    return None


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler  # noqa: PLC0415

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )


def _jsonable(value: Any) -> Any:
    import numpy as np  # noqa: PLC0415 (only when something numpy is being written)

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def dumps(obj: Any) -> str:
    """Compact JSON; non-finite floats are an error (they are not JSON)."""
    return json.dumps(obj, default=_jsonable, separators=(",", ":"), allow_nan=False)


def write_lines(
    lines: Iterable[str],
    path: Path | None,
    kind: OutputKind | None = None,
    force: bool = False,
) -> None:
    """Write lines to `path` atomically (guarded by `kind`/`force`, safeio), or to stdout when
    `path` is None."""
    if path is None:
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return
    with atomic_path(path, kind=kind or GENERIC_FILE, force=force) as tmp:
        with open(tmp, "w") as f:
            for line in lines:
                f.write(line + "\n")
