"""Signals: SIGTERM handled like SIGINT, and both deferred around the instants that must not be
interrupted (the renames of an atomic swap).

A KeyboardInterrupt is only raised where Python code can take it. Two places cannot: a module
being imported (an extension such as jaxlib's interrupted in its initialisation fails the import
or crashes the process) and a garbage-collector callback (JAX registers one; an exception there is
printed and dropped, so the command would run on as if never signalled). A signal that arrives in
either is delivered again a few milliseconds later, until it lands in ordinary code.

Deferral replaces the Python-level handlers for the duration (a C-level mask would not do: the
kernel hands a process signal to any thread that does not block it, and CPython then runs the
handler in the main thread anyway). A signal that arrives meanwhile is re-delivered on exit.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RETRY_S = 0.02  # re-delivery delay for a signal that arrived where it cannot be raised
MAX_FRAMES = 500  # frames walked to decide


def _cannot_raise_here(frame: FrameType | None) -> bool:
    """Whether `frame` (the interrupted one) is inside an import or a gc callback."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    for _ in range(MAX_FRAMES):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_filename.startswith("<frozen importlib") or code in callbacks:
            return True
        frame = frame.f_back
    return False


_pending: dict[int, threading.Timer] = {}  # signals waiting for their re-delivery
_pending_lock = threading.Lock()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if _cannot_raise_here(frame):
        with _pending_lock:
            if signum not in _pending:
                later = threading.Timer(RETRY_S, _redeliver, (signum,))
                later.daemon = True
                _pending[signum] = later
                later.start()
        return
    with _pending_lock:
        waiting = _pending.pop(signum, None)
    if waiting is not None:
        waiting.cancel()
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _redeliver(signum: int) -> None:
    with _pending_lock:
        if _pending.pop(signum, None) is None:  # raised meanwhile by `raise_pending`
            return
    os.kill(os.getpid(), signum)


def raise_pending() -> None:
    """Raise now the KeyboardInterrupt of a signal that arrived where it could not be raised and
    still waits for its re-delivery: a short command could otherwise end before the re-delivery
    (a daemon timer) runs and exit 0 as if never signalled. Call it where Python code can take
    an exception (the console script, right after importing the CLI)."""
    with _pending_lock:
        waiting = dict(_pending)
        _pending.clear()
    for timer in waiting.values():
        timer.cancel()
    if waiting:
        raise KeyboardInterrupt(f"signal {signal.Signals(min(waiting)).name}")


def handle_termination_as_interrupt() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt (where Python code can take it), so
    every cleanup path runs."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in DEFERRED:
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler, None):
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
        if pending:  # to this (the main) thread: handled before the next line runs, whatever the
            signal.raise_signal(pending[0])  # other threads (os.kill may reach one of them)
