"""Reading post logs (`posts.parquet`, data.md) into flat numpy columns, validated.

Only the columns Thunder needs are read. Nullable id columns become 0 where null (ids are
positive, so 0 means "none"). Bad input raises ThunderError with one line naming the problem.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from safeio.digest import file_sha256
from safeio.errors import InputRefused
from safeio.inputs import read_parquet, regular_file
from thunder.errors import ThunderError

Progress = Callable[[str, int, int], None]  # (stage, done, total)

REQUIRED = ("event", "event_ms", "post_id", "author_id", "created_ms")
NULLABLE_IDS = (
    "in_reply_to_post_id",
    "in_reply_to_user_id",
    "conversation_id",
    "source_post_id",
    "source_user_id",
    "quoted_post_id",
    "quoted_user_id",
)
OPTIONAL = (*NULLABLE_IDS, "video_duration_ms")


@dataclasses.dataclass
class PostLog:
    """Events of one or more logs, in file order then row order. All arrays have length E."""

    is_delete: np.ndarray  # [E] bool
    event_ms: np.ndarray  # [E] int64
    post_id: np.ndarray  # [E] int64
    author_id: np.ndarray  # [E] int64 (0 on deletes)
    created_ms: np.ndarray  # [E] int64 (0 on deletes)
    in_reply_to_post_id: np.ndarray  # [E] int64, 0 = none
    in_reply_to_user_id: np.ndarray
    conversation_id: np.ndarray
    source_post_id: np.ndarray
    source_user_id: np.ndarray
    quoted_post_id: np.ndarray
    quoted_user_id: np.ndarray
    video_duration_ms: np.ndarray  # [E] int64, 0 = no video
    sources: list[dict]  # per file: path, rows, sha256

    def __len__(self) -> int:
        return int(len(self.post_id))

    @property
    def source_hash(self) -> str:
        h = hashlib.sha256()
        for s in self.sources:
            h.update(s["sha256"].encode())
        return h.hexdigest()


def _int_column(table: pa.Table, name: str, path: Path, nullable: bool) -> np.ndarray:
    col = table.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
        raise ThunderError(f"{path}: column {name!r} must be an integer, got {col.type}")
    if pa.types.is_null(col.type):
        return np.zeros(len(col), np.int64)
    if not nullable and col.null_count:
        raise ThunderError(f"{path}: column {name!r} has {col.null_count} null values")
    return pc.fill_null(col, 0).to_numpy().astype(np.int64, copy=False)


def read_log(path: Path | str) -> dict[str, np.ndarray]:
    """One log file's Thunder columns as numpy arrays (validated types)."""
    path = Path(path)
    if not path.exists():
        raise ThunderError(f"{path}: post log not found")
    try:
        regular_file(path, "post log")  # not a FIFO or a directory
    except InputRefused as exc:
        raise ThunderError(str(exc)) from None
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ThunderError(f"{path}: not a Parquet file ({str(exc).splitlines()[0]})") from exc
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise ThunderError(f"{path}: missing column(s) {', '.join(missing)}")
    columns = [c for c in (*REQUIRED, *OPTIONAL) if c in schema.names]
    try:
        table = read_parquet(path, columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ThunderError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from exc
    event = table.column("event")
    if not (
        pa.types.is_string(event.type)
        or pa.types.is_large_string(event.type)
        or pa.types.is_dictionary(event.type)
    ):
        raise ThunderError(f"{path}: column 'event' must be a string, got {event.type}")
    event = event.cast(pa.string()) if pa.types.is_dictionary(event.type) else event
    is_create = pc.fill_null(pc.equal(event, "create"), False).to_numpy(zero_copy_only=False)
    is_delete = pc.fill_null(pc.equal(event, "delete"), False).to_numpy(zero_copy_only=False)
    bad = ~(is_create | is_delete)
    if bad.any():
        first = event[int(np.argmax(bad))].as_py()
        raise ThunderError(
            f"{path}: {int(bad.sum())} event(s) neither 'create' nor 'delete' (first: {first!r})"
        )
    out = {"is_delete": is_delete}
    for name in ("event_ms", "post_id"):
        out[name] = _int_column(table, name, path, nullable=False)
    for name in ("author_id", "created_ms"):
        nulls = pc.is_null(table.column(name)).to_numpy(zero_copy_only=False)
        if (nulls & ~is_delete).any():
            raise ThunderError(f"{path}: column {name!r} is null on create events")
        out[name] = _int_column(table, name, path, nullable=True)
    for name in OPTIONAL:
        out[name] = (
            _int_column(table, name, path, nullable=True)
            if name in table.column_names
            else np.zeros(table.num_rows, np.int64)
        )
    bad_ids = out["post_id"] <= 0
    if bad_ids.any():
        raise ThunderError(f"{path}: {int(bad_ids.sum())} event(s) with post_id <= 0")
    bad_authors = (out["author_id"] <= 0) & ~is_delete
    if bad_authors.any():
        raise ThunderError(f"{path}: {int(bad_authors.sum())} create(s) with author_id <= 0")
    for name in NULLABLE_IDS:
        if (out[name] < 0).any():
            raise ThunderError(f"{path}: negative ids in column {name!r}")
    return out


def read_logs(paths: Sequence[Path | str], progress: Progress | None = None) -> PostLog:
    """Read and concatenate logs (file order, then row order)."""
    if not paths:
        raise ThunderError("no post log given")
    parts, sources = [], []
    for i, p in enumerate(paths):
        cols = read_log(p)
        parts.append(cols)
        sources.append(
            {"path": str(p), "rows": int(len(cols["post_id"])), "sha256": file_sha256(Path(p))}
        )
        if progress:
            progress("read", i + 1, len(paths))
    if len(parts) == 1:
        merged = parts[0]
    else:
        merged = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    return PostLog(sources=sources, **merged)
