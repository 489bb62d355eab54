"""Thunder errors: bad input reported by the CLI in one line with exit code 2."""

from __future__ import annotations


class ThunderError(ValueError):
    """A post log, snapshot, time or id argument is missing, malformed or inconsistent."""
