"""Snapshot integrity: the manifest's schema, the content hash of the data files, and bounds
checks of every offset and row index, all at load time, so a damaged or tampered snapshot is an
error (ThunderError, one line) and never an out-of-bounds read or a silently wrong fetch.

The content hash is SHA-256 per data file, recorded in the manifest when the snapshot is written
(snapshots written before it existed load with the bounds checks alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from safeio.digest import file_sha256
from safeio.errors import InputRefused
from thunder.errors import ThunderError

MAX_TIME_MS = 32_503_680_000_000  # year 3000
POST_COLUMNS_REQUIRED = ("post_id", "author_id", "created_ms", "is_reply", "is_retweet",
                         "has_video")  # fmt: skip
AUTHOR_COLUMNS = ("author_id", "start", "end")
OPTIONAL_FILE = "fetch_index.arrow"  # rebuilt on first fetch when absent


def content_hashes(directory: Path) -> dict[str, str]:
    """SHA-256 of every data file (`*.arrow`) of a snapshot directory, by name."""
    return {p.name: file_sha256(p) for p in sorted(directory.glob("*.arrow"))}


def _int(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def check_manifest(path: Path, manifest: Any) -> None:
    """The keys and value types load_snapshot relies on."""
    where = f"{path}/manifest.json"
    if not isinstance(manifest, dict):
        raise ThunderError(f"{where}: expected a JSON object")
    for key in ("as_of_ms", "retention_ms", "counts"):
        if key not in manifest:
            raise ThunderError(f"{where}: lacks {key!r}")
    if not _int(manifest["as_of_ms"], 0, MAX_TIME_MS):
        raise ThunderError(f"{where}: as_of_ms must be an integer time in ms")
    if not _int(manifest["retention_ms"], 1, MAX_TIME_MS):
        raise ThunderError(f"{where}: retention_ms must be a positive integer")
    counts = manifest["counts"]
    if not isinstance(counts, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in counts.values()
    ):
        raise ThunderError(f"{where}: counts must map names to numbers")
    points = manifest.get("fetch_index_time_points", [])
    if not isinstance(points, list) or not all(_int(t, -MAX_TIME_MS, MAX_TIME_MS) for t in points):
        raise ThunderError(f"{where}: fetch_index_time_points must be a list of times")
    hashes = manifest.get("content_sha256", {})
    if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
        raise ThunderError(f"{where}: content_sha256 must map file names to hashes")


def verify_content(path: Path, manifest: dict) -> None:
    """Every data file's SHA-256 equals the manifest's (when the manifest records them)."""
    recorded = manifest.get("content_sha256")
    if not recorded:
        return
    present = {p.name for p in path.glob("*.arrow")}
    missing = set(recorded) - present - {OPTIONAL_FILE}
    if present - set(recorded) or missing:
        raise ThunderError(f"{path}: data files differ from the manifest's list (tampered?)")
    for name, digest in sorted(recorded.items()):
        if name not in present:
            continue
        try:
            actual = file_sha256(path / name)
        except InputRefused as exc:  # a FIFO would block the hash forever
            raise ThunderError(str(exc)) from None
        if actual != digest:
            raise ThunderError(f"{path / name}: content hash differs from the manifest (tampered?)")


def check_columns(path: Path, columns: dict[str, np.ndarray], required: tuple[str, ...]) -> None:
    """Required columns present, integer (or bool) typed, of one length."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise ThunderError(f"{path}: missing column(s) {', '.join(missing)}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ThunderError(f"{path}: columns of different lengths")
    for name, col in columns.items():
        if col.dtype.kind not in "iub":
            raise ThunderError(f"{path}: column {name!r} must be integer, got {col.dtype}")


def check_lists(path: Path, authors: dict[str, np.ndarray], available: int) -> int:
    """A kind's author offsets: contiguous groups from 0, within the `available` entries.
    Returns the kind's entry count."""
    start, end = authors["start"].astype(np.int64), authors["end"].astype(np.int64)
    if len(start) == 0:
        return 0
    if (
        start[0] != 0
        or (end < start).any()
        or (start[1:] != end[:-1]).any()
        or end[-1] > available
        or (np.diff(authors["author_id"]) <= 0).any()
    ):
        raise ThunderError(f"{path}: author offsets out of order or out of range (damaged?)")
    return int(end[-1])


def check_entries(path: Path, entries: dict[str, np.ndarray], used: int, num_posts: int) -> None:
    """Entry rows point into the posts table; every entry belongs to a kind."""
    if used != len(entries["row"]):
        raise ThunderError(f"{path}: {len(entries['row'])} entries but the lists hold {used}")
    rows = entries["row"]
    if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= num_posts):
        raise ThunderError(f"{path}: entry rows outside the posts table (damaged?)")


def check_fetch_index(path: Path, table: np.ndarray, width: int, kinds: list[int]) -> None:
    """Per kind: start ≥ 0 and start + length within that kind's entries."""
    for k, (base, size) in enumerate(zip(kinds[:-1], np.diff(kinds), strict=True)):
        start = table[:, k * width].astype(np.int64)
        length = table[:, k * width + 1].astype(np.int64)
        if len(start) and (
            (length < 0).any()
            or ((length > 0) & ((start < base) | (start + length > base + size))).any()
        ):
            raise ThunderError(f"{path}: fetch index points outside the entries (damaged?)")
