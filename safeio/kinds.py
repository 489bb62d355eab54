"""Output kinds: what an output is, and how to recognise a previous xfeed output of that kind.

Every directory output carries a marker file (`.xfeed-output`, `{"kind": NAME}`; deterministic, so
same inputs still give the same bytes). Outputs written before markers existed, and file outputs
(which cannot carry one), are recognised by a kind's own test of their content (a manifest, a
header, the first JSON line).
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable
from pathlib import Path

MARKER = ".xfeed-output"
_PEEK = 1 << 16


@dataclasses.dataclass(frozen=True)
class OutputKind:
    """An output kind: its name, whether it is a directory, and a test for existing outputs."""

    name: str
    directory: bool
    recognise: Callable[[Path], bool] | None = None  # True: a previous output of this kind

    def marker_text(self) -> str:
        return json.dumps({"kind": self.name}) + "\n"

    def is_previous_output(self, path: Path) -> bool:
        """Is the existing `path` a previous xfeed output of this kind?"""
        if self.directory and path.is_dir():
            try:
                if json.loads((path / MARKER).read_text())["kind"] == self.name:
                    return True
            except (OSError, ValueError, KeyError, TypeError):
                pass
        try:
            return bool(self.recognise and self.recognise(path))
        except (OSError, ValueError, KeyError, TypeError):
            return False


def read_json_object(path: Path) -> dict:
    """A small JSON object file (≤ 64 KB read), or {} when it is not one."""
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        data = json.loads(f.read(_PEEK))
    return data if isinstance(data, dict) else {}


def first_json_line_has(*keys: str) -> Callable[[Path], bool]:
    """Recogniser: the file's first line is a JSON object with one of `keys`."""

    def recognise(path: Path) -> bool:
        if not path.is_file():
            return False
        with open(path, "rb") as f:
            line = f.readline(_PEEK)
        data = json.loads(line)
        return isinstance(data, dict) and any(k in data for k in keys)

    return recognise


def safetensors_metadata_has(key: str) -> Callable[[Path], bool]:
    """Recogniser: a safetensors file whose header `__metadata__` has `key`."""

    def recognise(path: Path) -> bool:
        if not path.is_file():
            return False
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > _PEEK * 16:
                return False
            header = json.loads(f.read(n))
        return key in (header.get("__metadata__") or {})

    return recognise


def contains_bytes(needle: bytes) -> Callable[[Path], bool]:
    """Recogniser: the file's first 64 KB contain `needle` (e.g. a PNG's Software text chunk)."""

    def recognise(path: Path) -> bool:
        if not path.is_file():
            return False
        with open(path, "rb") as f:
            return needle in f.read(_PEEK)

    return recognise


# Kinds shared by several commands (others are defined next to the code that writes them).
CANDIDATE_STREAM = OutputKind("candidate stream", False, first_json_line_has("query"))
JSON_REPORT = OutputKind("json report", False, first_json_line_has("reports", "xfeed"))
GENERIC_FILE = OutputKind("file", False)
