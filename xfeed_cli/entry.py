"""The console script's entry: SIGTERM, SIGHUP and SIGINT are handled before anything else is
imported, so a signal in the first tenth of a second (Typer, the command modules) interrupts like
Ctrl-C (exit 130, nothing written) instead of killing the process. This module imports only
`safeio.signals` (tests/test_startup.py checks)."""

from __future__ import annotations

import ctypes
import os
import sys

from safeio.signals import handle_termination_as_interrupt, raise_pending

M_ARENA_MAX = -8  # glibc mallopt parameter
ARENAS = 2


def limit_malloc_arenas() -> None:
    """At most ARENAS glibc malloc arenas (the default is 8 per core): the population engine's
    batch threads and XLA's threads otherwise each keep freed memory in an arena of their own
    (~200 MB more peak RSS on a 100,000-user run). Not where MALLOC_ARENA_MAX is set or the C
    library is not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, ARENAS)
    except (OSError, AttributeError):
        pass


def run() -> None:
    """`xfeed`: install the signal handlers, then import and run the CLI."""
    handle_termination_as_interrupt()
    limit_malloc_arenas()  # before any thread starts
    try:
        from xfeed_cli.main import run as main_run  # noqa: PLC0415 (after the handlers)

        raise_pending()  # a signal during the imports whose re-delivery has not come yet
    except KeyboardInterrupt:  # re-delivered after the import: nothing has run yet
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    try:
        main_run()
    except SystemExit as done:
        if done.code in (0, None):
            _exit_if_signalled()
        raise
    _exit_if_signalled()


def _exit_if_signalled() -> None:
    """Exit 130 when a signal arrived during a lazy import inside the command and the command
    finished before its re-delivery: it was asked to stop, so it does not report success."""
    try:
        raise_pending()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
