"""What is in a world, for people picking ids: counts, the as-of time, id and time ranges
(`world_info`), and per-user activity counts with filters (`world_users`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from world.schema import TABLES
from world.tables import WorldError, read_table, read_world_json, table_file

USER_SORT_KEYS = ("engagements", "follows", "followers", "posts", "seen", "user_id")
COUNT_BATCH_ROWS = 1 << 20  # rows read at a time for the per-user counts


def _counts(table: pa.Table, key: str, name: str) -> pa.Table:
    """[key, name] rows: how many rows of `table` each `key` has."""
    if table.num_rows == 0:
        return pa.table({key: pa.array([], pa.int64()), name: pa.array([], pa.int64())})
    out = table.group_by(key).aggregate([(key, "count")])
    return out.rename_columns([name if c.endswith("_count") else c for c in out.column_names])


def _counts_streamed(world: Path | str, name: str, key: str,
                     where: tuple[str, str] | None = None) -> pa.Table:  # fmt: skip
    """[key, n]: how many rows of table `name` (those whose `where` column equals its value) each
    `key` has, read a batch at a time: a large world's tables are never all in memory."""
    cols = [key] + ([where[0]] if where else [])
    path = table_file(world, name, cols)
    parts = []
    try:
        for batch in pq.ParquetFile(path).iter_batches(COUNT_BATCH_ROWS, columns=cols):
            t = pa.Table.from_batches([batch])
            if where:
                t = t.filter(pc.equal(t.column(where[0]), where[1]))
            parts.append(_counts(t.select([key]), key, "n"))
    except (pa.ArrowException, OSError) as exc:
        raise WorldError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
    if not parts:
        return _counts(pa.table({key: pa.array([], pa.int64())}), key, "n")
    total = pa.concat_tables(parts).group_by(key).aggregate([("n", "sum")])
    return total.rename_columns([key if c == key else "n" for c in total.column_names]).select(
        [key, "n"]
    )


def user_activity(world: Path | str) -> dict[str, np.ndarray]:
    """Per user (sorted by id): follows, followers, posts, engagements and seen impressions."""
    users = read_table(world, "users", ["user_id", "screen_name"])
    ids = users.column("user_id").to_numpy().astype(np.int64)
    order = np.argsort(ids, kind="stable")
    out: dict[str, np.ndarray] = {
        "user_id": ids[order],
        "screen_name": np.array(users.column("screen_name").to_pylist(), dtype=object)[order],
    }
    counted = {
        "follows": _counts_streamed(world, "edges", "src_user_id", ("kind", "follow")),
        "followers": _counts_streamed(world, "edges", "dst_user_id", ("kind", "follow")),
        "posts": _counts_streamed(world, "posts", "author_id", ("event", "create")),
        "engagements": _counts_streamed(world, "engagements", "user_id"),
        "seen": _counts_streamed(world, "impressions", "user_id", ("kind", "seen")),
    }
    for name, t in counted.items():
        keys = t.column(0).to_numpy().astype(np.int64)
        n = t.column(1).to_numpy().astype(np.int64)
        col = np.zeros(len(out["user_id"]), np.int64)
        pos = np.searchsorted(out["user_id"], keys)
        ok = (pos < len(col)) & (out["user_id"][np.minimum(pos, len(col) - 1)] == keys)
        col[pos[ok]] = n[ok]
        out[name] = col
    return out


def world_users(
    world: Path | str,
    min_engagements: int = 0,
    min_follows: int = 0,
    limit: int | None = 20,
    sort: str = "engagements",
) -> list[dict[str, Any]]:
    """Users with at least the given activity, most active first (`sort`), at most `limit`."""
    if sort not in USER_SORT_KEYS:
        raise WorldError(f"sort by one of {', '.join(USER_SORT_KEYS)}, not {sort!r}")
    a = user_activity(world)
    keep = (a["engagements"] >= min_engagements) & (a["follows"] >= min_follows)
    rows = np.flatnonzero(keep)
    key = a[sort][rows]
    order = np.lexsort((a["user_id"][rows], key if sort == "user_id" else -key))
    rows = rows[order][:limit] if limit else rows[order]
    cols = ("user_id", "screen_name", "follows", "followers", "posts", "engagements", "seen")
    return [{c: (a[c][r].item() if c != "screen_name" else a[c][r]) for c in cols} for r in rows]


def _range(world: Path, table: str, column: str, where: tuple[str, str] | None = None) -> Any:
    t = read_table(world, table, [column] + ([where[0]] if where else []))
    if where:
        t = t.filter(pc.equal(t.column(where[0]), where[1]))
    mm = pc.min_max(t.column(column))
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    return None if lo is None else [lo, hi]


def world_info(world: Path | str, sample: int = 5) -> dict[str, Any]:
    """Counts, as-of time, id and time ranges, and the `sample` most active users."""
    world = Path(world)
    meta = read_world_json(world)
    rows = {}
    for name in TABLES:
        path = table_file(world, name, [])  # a regular Parquet file (not a FIFO: no hang)
        try:
            rows[name] = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise WorldError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
    return {
        "world": str(world),
        "as_of_ms": meta.get("as_of_ms"),
        "generator": meta.get("generator"),
        "seed": meta.get("seed"),
        "rows": rows,
        "user_ids": _range(world, "users", "user_id"),
        "post_ids": _range(world, "posts", "post_id", ("event", "create")),
        "post_created_ms": _range(world, "posts", "created_ms", ("event", "create")),
        "engagement_ms": _range(world, "engagements", "event_ms"),
        "has_corpus": (world / "corpus.safetensors").exists(),
        "has_snapshot": (world / "thunder").is_dir(),
        "sample_users": world_users(world, limit=sample),
    }
