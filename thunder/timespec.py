"""Parsing request times (`--now`) and durations (`--retention`)."""

from __future__ import annotations

import datetime as dt
import re

from thunder.errors import ThunderError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_time_ms(value: str | int) -> int:
    """Milliseconds since the epoch from an int (ms) or an ISO-8601 string (UTC if no zone)."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ThunderError(f"bad time {value!r}: use milliseconds or ISO-8601") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp() * 1000)


def parse_duration_ms(value: str | int) -> int:
    """Milliseconds from '2d', '48h', '90m', '3600s', '500ms', '1w' or a bare number of ms."""
    if isinstance(value, int):
        ms = value
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*", str(value))
        if not m:
            raise ThunderError(f"bad duration {value!r}: use e.g. 2d, 48h, 90m, 3600s")
        ms = int(float(m.group(1)) * _UNITS_MS[m.group(2) or "ms"])
    if ms <= 0:
        raise ThunderError(f"duration must be positive, got {value!r}")
    return ms


def format_time_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
