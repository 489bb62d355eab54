"""Checkpoint errors: bad input that the CLI reports in one line with exit code 2."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint (or corpus, or sequence file) is missing, unreadable or inconsistent."""
