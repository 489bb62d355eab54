"""The console script's entry: SIGTERM, SIGHUP and SIGINT are handled before anything else is
imported, so a signal in the first tenth of a second (Typer, the command modules) interrupts like
Ctrl-C (exit 130, nothing written) instead of killing the process. This module imports only
`safeio.signals` (tests/test_startup.py checks)."""

from __future__ import annotations

import sys

from safeio.signals import handle_termination_as_interrupt


def run() -> None:
    """`xfeed`: install the signal handlers, then import and run the CLI."""
    handle_termination_as_interrupt()
    try:
        from xfeed_cli.main import run as main_run  # noqa: PLC0415 (after the handlers)
    except KeyboardInterrupt:  # re-delivered after the import: nothing has run yet
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    main_run()
