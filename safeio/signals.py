"""Signals: SIGTERM handled like SIGINT, and both deferred around the instants that must not be
interrupted (the renames of an atomic swap).

Deferral replaces the Python-level handlers for the duration (a C-level mask would not do: the
kernel hands a process signal to any thread that does not block it, and CPython then runs the
handler in the main thread anyway). A signal that arrives meanwhile is re-delivered on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def handle_termination_as_interrupt() -> None:
    """SIGTERM and SIGHUP raise KeyboardInterrupt like SIGINT, so every cleanup path runs."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _interrupt)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block ends, then deliver the first one that came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in DEFERRED:
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if pending:
            os.kill(os.getpid(), pending[0])
