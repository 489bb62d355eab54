"""Parsing request times (`--now`) and durations (`--retention`)."""

from __future__ import annotations

import datetime as dt
import re

from thunder.errors import ThunderError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


MAX_TIME_MS = 32_503_680_000_000  # year 3000
MAX_DURATION_MS = 100 * 365 * 86_400_000  # a century


def _in_range(ms: int, value: object) -> int:
    if not 0 <= ms <= MAX_TIME_MS:
        raise ThunderError(f"time {value!r:.40} is out of range (0 … {MAX_TIME_MS} ms: year 3000)")
    return ms


def parse_time_ms(value: str | int) -> int:
    """Milliseconds since the epoch (0 … year 3000) from an int (ms) or an ISO-8601 string (UTC
    if no zone)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _in_range(value, value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d{1,30}", text):
        return _in_range(int(text), value)
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ThunderError(f"bad time {value!r:.60}: use milliseconds or ISO-8601") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return _in_range(int(stamp.timestamp() * 1000), value)


def parse_duration_ms(value: str | int) -> int:
    """Milliseconds from '2d', '48h', '90m', '3600s', '500ms', '1w' or a bare number of ms."""
    if isinstance(value, int):
        ms = value
    else:
        m = re.fullmatch(r"\s*(\d{1,20}(?:\.\d{1,20})?)\s*(ms|s|m|h|d|w)?\s*", str(value))
        if not m:
            raise ThunderError(f"bad duration {value!r}: use e.g. 2d, 48h, 90m, 3600s")
        ms = int(float(m.group(1)) * _UNITS_MS[m.group(2) or "ms"])
    if not 0 < ms <= MAX_DURATION_MS:
        raise ThunderError(f"duration must be positive and at most a century, got {value!r:.40}")
    return ms


def format_time_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
