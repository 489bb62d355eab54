"""SHA-256 of files, read in blocks (inputs' and outputs' content hashes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from safeio.inputs import regular_file


def update_with_file(h: hashlib._Hash, path: Path | str) -> None:
    """Feed a file's bytes to a running hash, 4 MiB at a time (InputRefused for a FIFO, device
    or directory: opening a FIFO would block forever)."""
    with open(regular_file(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of one file's bytes."""
    h = hashlib.sha256()
    update_with_file(h, path)
    return h.hexdigest()
