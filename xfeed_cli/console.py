"""Consoles, the error funnel, and output helpers shared by every command.

Tables and data go to stdout; logs, progress and errors to stderr. Known bad-input errors become
one line `error: ...` and exit code 2, with a traceback only when XFEED_DEBUG=1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import numpy as np
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from typer.core import TyperGroup

from checkpoints.errors import CheckpointError
from phoenix.device import DeviceUnavailableError
from phoenix.params import ParamMismatchError
from pipeline.candidates import CandidateStreamError
from pipeline.framework import PipelineError
from pipeline.params import ParamsError
from safeio.atomic import atomic_path
from thunder.errors import ThunderError
from world.tables import WorldError

# Pipes and files get a fixed wide layout (upstream's table is 120 columns), terminals their width.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # one message, one line


class InputError(ValueError):
    """Bad command-line input detected by the CLI itself."""


KNOWN_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointError,
    ParamMismatchError,
    DeviceUnavailableError,
    InputError,
    ThunderError,
    WorldError,
    CandidateStreamError,
    ParamsError,
    PipelineError,
    FileNotFoundError,
)


def debug_enabled() -> bool:
    return os.environ.get("XFEED_DEBUG", "").strip() not in ("", "0")


class XFeedGroup(TyperGroup):
    """The root group: routes known errors through one funnel (one line, exit 2)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KNOWN_ERRORS as exc:
            if debug_enabled():
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
            hint = "(set XFEED_DEBUG=1 for a traceback)"
            err.print(f"[dim]{hint}[/]", highlight=False)
            raise typer.Exit(2) from None


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_jsonable, separators=(",", ":"))


def write_lines(lines: Iterable[str], path: Path | None) -> None:
    """Write lines to `path` atomically, or to stdout when `path` is None."""
    if path is None:
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            for line in lines:
                f.write(line + "\n")
