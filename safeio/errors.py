"""safeio errors: bad input the CLI reports in one line with exit code 2."""

from __future__ import annotations


class SafeIOError(ValueError):
    """An output target or input path that xfeed refuses to use."""


class OutputRefused(SafeIOError):
    """The output target exists and is not something xfeed may replace."""


class InputRefused(SafeIOError):
    """An input path is missing, a directory, a FIFO or otherwise not a readable file."""
