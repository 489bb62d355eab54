"""The world data contract as code (docs/data.md): every table's columns with their Arrow type,
nullability and meaning, and `check_world`, which validates any directory against it.

`check_world` reads only Parquet schemas and footers (row counts, null counts), never the data,
so it is quick on large worlds. A column is a problem when it is missing or of another kind of
type (e.g. string where an integer is expected); an integer or float of another width is a note
(it is widened on read).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool
    meaning: str


def _c(name: str, type_: pa.DataType, meaning: str, nullable: bool = False) -> Column:
    return Column(name, type_, nullable, meaning)


I64, STR, BOOL, STRS = pa.int64(), pa.string(), pa.bool_(), pa.list_(pa.string())

# table -> its columns, in the contract's order
TABLES: dict[str, tuple[Column, ...]] = {
    "posts": (
        _c("event", STR, "`create` or `delete`"),
        _c("event_ms", I64, "when the event happened (ms)"),
        _c("post_id", I64, "snowflake id"),
        _c("author_id", I64, "the posting account", nullable=True),
        _c("created_ms", I64, "creation time (ms)", nullable=True),
        _c("in_reply_to_post_id", I64, "the post replied to", nullable=True),
        _c("in_reply_to_user_id", I64, "the account replied to", nullable=True),
        _c("conversation_id", I64, "root post id of the thread", nullable=True),
        _c("source_post_id", I64, "retweeted post (retweets only)", nullable=True),
        _c("source_user_id", I64, "retweeted account", nullable=True),
        _c("quoted_post_id", I64, "quoted post", nullable=True),
        _c("quoted_user_id", I64, "quoted account", nullable=True),
        _c("video_duration_ms", pa.int32(), "null = no video", nullable=True),
        _c("has_media", BOOL, "has photos or video", nullable=True),
        _c("subscription_only", BOOL, "only for the author's subscribers", nullable=True),
        _c("text", STR, "post text", nullable=True),
        _c("language", STR, "language code", nullable=True),
        _c("topics", STRS, "topic names", nullable=True),
        _c("labels", STRS, "safety labels: spam, violence, gore, nsfw", nullable=True),
    ),
    "users": (
        _c("user_id", I64, "account id"),
        _c("screen_name", STR, "handle", nullable=True),
        _c("created_ms", I64, "account creation (ms)", nullable=True),
        _c("follower_count", I64, "followers (platform-wide)", nullable=True),
        _c("is_nsfw", BOOL, "NSFW account", nullable=True),
        _c("muted_keywords", STRS, "the viewer's muted keywords", nullable=True),
        _c("allow_for_you", BOOL, "false = in-network-only feed", nullable=True),
        _c("country", STR, "country code", nullable=True),
        _c("language", STR, "language code", nullable=True),
    ),
    "edges": (
        _c("src_user_id", I64, "the account that follows/blocks/mutes/subscribes"),
        _c("dst_user_id", I64, "the account it points at"),
        _c("kind", STR, "`follow`, `block`, `mute` or `subscribe`"),
        _c("created_ms", I64, "when the edge was made (ms)"),
    ),
    "engagements": (
        _c("user_id", I64, "who acted"),
        _c("post_id", I64, "on which post"),
        _c("author_id", I64, "the post's author"),
        _c("action", pa.int16(), "proto ActionName value (1 = favorite, …)"),
        _c("event_ms", I64, "when (ms)"),
        _c("dwell_s", pa.float32(), "dwell seconds", nullable=True),
        _c("product_surface", pa.int16(), "product surface (default 1)", nullable=True),
    ),
    "impressions": (
        _c("user_id", I64, "the viewer"),
        _c("post_id", I64, "the post shown"),
        _c("kind", STR, "`seen` (client impression) or `served` (returned by a request)"),
        _c("event_ms", I64, "when (ms)"),
    ),
}
WORLD_JSON_KEYS = {"as_of_ms": "the world's 'now' (ms); the default request time"}


def _kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_kind(t.value_type)}>"
    return str(t)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One result of a check: `problem` (the world cannot be used as is) or `note`."""

    table: str
    column: str | None
    level: str  # "problem" | "note"
    message: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_table(path: Path, table: str) -> list[Finding]:
    """Findings for one Parquet file against the contract's columns of `table`."""
    if not path.exists():
        return [Finding(table, None, "problem", f"{path.name} missing")]
    if not path.is_file():  # a FIFO would block the reader forever; a directory is no table
        return [Finding(table, None, "problem", f"{path.name} is not a regular file")]
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [Finding(table, None, "problem", f"{path.name} unreadable: {msg}")]
    found: list[Finding] = []
    names = set(schema.names)
    for col in TABLES[table]:
        if col.name not in names:
            found.append(Finding(table, col.name, "problem", f"missing (expected {col.type})"))
            continue
        actual = schema.field(col.name).type
        if _kind(actual) != _kind(col.type):
            found.append(Finding(table, col.name, "problem",
                                 f"wrong type {actual} (expected {col.type})"))  # fmt: skip
        elif actual != col.type:
            found.append(Finding(table, col.name, "note",
                                 f"{actual} (contract: {col.type}; widened on read)"))  # fmt: skip
        if not col.nullable:
            nulls = _null_count(pf, schema.get_field_index(col.name))
            if nulls:
                found.append(Finding(table, col.name, "problem", f"{nulls:,} null values"))
    extra = sorted(names - {c.name for c in TABLES[table]})
    if extra:
        found.append(Finding(table, None, "note", f"extra columns (ignored): {', '.join(extra)}"))
    return found


def _null_count(pf: pq.ParquetFile, index: int) -> int:
    """Nulls in one top-level column from the footer statistics (0 when not recorded)."""
    total = 0
    meta = pf.metadata
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(index).statistics
        if stats is not None and stats.has_null_count:
            total += stats.null_count
    return total


def check_world(world: Path | str) -> dict[str, Any]:
    """Validate a world directory: {"world", "ok", "tables": {name: {"rows", "findings"}},
    "findings"} where findings are Finding.to_json() dicts (world.json first)."""
    world = Path(world)
    findings: list[Finding] = []
    meta_path = world / "world.json"
    if not world.is_dir():
        findings.append(Finding("world", None, "problem", f"{world}: not a directory"))
    elif not meta_path.exists():
        findings.append(Finding("world.json", None, "problem", "missing"))
    else:
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            findings.append(Finding("world.json", None, "problem", f"not valid JSON ({exc})"))
        else:
            for key in WORLD_JSON_KEYS:
                value = meta.get(key) if isinstance(meta, dict) else None
                if not isinstance(value, int) or isinstance(value, bool):
                    findings.append(Finding("world.json", key, "problem",
                                            "missing or not an integer"))  # fmt: skip
    tables: dict[str, Any] = {}
    if world.is_dir():
        for name in TABLES:
            path = world / f"{name}.parquet"
            found = check_table(path, name)
            rows = None
            if path.exists() and not any(f.column is None and f.level == "problem"
                                         for f in found):  # fmt: skip
                rows = pq.ParquetFile(path).metadata.num_rows
            tables[name] = {"rows": rows, "findings": [f.to_json() for f in found]}
            findings += found
    return {
        "world": str(world),
        "ok": not any(f.level == "problem" for f in findings),
        "tables": tables,
        "findings": [f.to_json() for f in findings],
    }
