"""The names of the two on-disk checkpoint formats; a module of its own so that the CLI can
declare `--to upstream|xfeed` without importing the readers (numpy, JAX)."""

from __future__ import annotations

import enum


class Format(enum.StrEnum):
    UPSTREAM = "upstream"
    XFEED = "xfeed"
