"""Reading a world directory (data.md): world.json, its Parquet tables, per-user edge lookups."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from safeio.errors import InputRefused
from safeio.inputs import read_parquet, regular_file
from safeio.kinds import OutputKind, read_json_object
from world.schema import TABLES
from world.schema import _kind as column_kind


class WorldError(ValueError):
    """A world directory or table is missing or malformed, or a user is unknown."""


def _is_xfeed_world(path: Path) -> bool:
    """A world written by xfeed (synth or import) before output markers existed."""
    return str(read_json_object(path / "world.json").get("generator", "")).startswith("xfeed")


WORLD_OUTPUT = OutputKind("world", True, _is_xfeed_world)


MAX_TIME_MS = 32_503_680_000_000  # year 3000
MAX_WORLD_JSON_BYTES = 16 << 20


def read_world_json(world: Path | str) -> dict[str, Any]:
    """world.json: an object whose `as_of_ms` is an integer time (0 … year 3000)."""
    path = Path(world) / "world.json"
    if not path.exists():
        raise WorldError(f"{world}: not a world directory (no world.json)")
    try:
        path = regular_file(path, "world.json")
        if path.stat().st_size > MAX_WORLD_JSON_BYTES:
            raise WorldError(f"{path}: too large for a world.json")
        data = json.loads(path.read_bytes())
    except InputRefused as exc:
        raise WorldError(str(exc)) from None
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, huge numbers, deep nesting
        raise WorldError(f"{path}: not valid JSON") from exc
    if not isinstance(data, dict):
        raise WorldError(f"{path}: expected a JSON object")
    as_of = data.get("as_of_ms")
    if "as_of_ms" in data and (
        not isinstance(as_of, int) or isinstance(as_of, bool) or not 0 <= as_of <= MAX_TIME_MS
    ):
        raise WorldError(f"{path}: as_of_ms must be an integer time in ms (0 … year 3000)")
    return data


def read_table(
    world: Path | str, name: str, columns: list[str] | None = None, filters: Any = None
) -> pa.Table:
    """Only `columns` (all when None) of a world table, after checking they exist and have the
    contract's kind of type (world.schema); errors name the file and the column."""
    path = table_file(world, name, columns)
    try:
        if filters is None:
            return read_parquet(path, columns)
        return pq.read_table(path, columns=columns, filters=filters)
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise WorldError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None


def table_file(world: Path | str, name: str, columns: list[str] | None = None) -> Path:
    """The path of a world table, after checking it is a Parquet file whose `columns` exist
    with the contract's kind of type (errors name the file and the column)."""
    path = Path(world) / f"{name}.parquet"
    if not path.exists():
        raise WorldError(f"{path}: table not found")
    try:
        regular_file(path, "Parquet table")
        schema = pq.read_schema(path)
    except InputRefused as exc:
        raise WorldError(str(exc)) from None
    except (pa.ArrowException, OSError) as exc:
        raise WorldError(f"{path}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    _check_columns(path, name, schema, columns)
    return path


def _check_columns(path: Path, name: str, schema: pa.Schema, columns: list[str] | None) -> None:
    wanted = list(columns) if columns is not None else list(schema.names)
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise WorldError(f"{path}: missing column(s) {', '.join(missing)}")
    contract = {c.name: c for c in TABLES.get(name, ())}
    for c in wanted:
        if c not in contract:
            continue
        got = schema.field(c).type
        if pa.types.is_dictionary(got):
            got = got.value_type
        if pa.types.is_null(got) and contract[c].nullable:
            continue
        if column_kind(got) != column_kind(contract[c].type):
            raise WorldError(
                f"{path}: column {c!r} must be {column_kind(contract[c].type)}, got {got}"
            )


def require_user(world: Path | str, user_id: int) -> None:
    """Raise WorldError('unknown user') unless users.parquet has the user."""
    users = read_table(world, "users", ["user_id"], filters=[("user_id", "=", int(user_id))])
    if users.num_rows == 0:
        raise WorldError(f"unknown user {user_id} in world {world}")


def edges_of(world: Path | str, user_id: int, kind: str) -> np.ndarray:
    """dst ids of the user's edges of one kind (follow, block, mute, subscribe), oldest first."""
    edges = read_table(
        world,
        "edges",
        ["src_user_id", "dst_user_id", "kind", "created_ms"],
        filters=[("src_user_id", "=", int(user_id)), ("kind", "=", kind)],
    )
    edges = edges.sort_by([("created_ms", "ascending"), ("dst_user_id", "ascending")])
    return pc.fill_null(edges.column("dst_user_id"), 0).to_numpy().astype(np.int64)


def post_topics(world: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every created post's topics: (post ids [P] int64, topic values [V] str, offsets [P + 1]),
    post p's topics = values[offsets[p]:offsets[p + 1]] in the table's order (null = none)."""
    t = read_table(world, "posts", ["event", "post_id", "topics"])
    t = t.filter(pc.equal(t.column("event"), "create"))
    topics = pc.fill_null(t.column("topics"), pa.scalar([], t.schema.field("topics").type))
    topics = topics.combine_chunks() if t.num_rows else pa.array([], topics.type)
    # one Python string per distinct topic, not per post (a world has ~1 M posts, few topics)
    flat = pc.dictionary_encode(topics.flatten(), null_encoding="encode")
    names = flat.dictionary.to_numpy(zero_copy_only=False).astype(str)
    values = names[flat.indices.to_numpy()] if len(flat) else np.zeros(0, names.dtype)
    offsets = (topics.offsets.to_numpy() - topics.offsets[0].as_py()).astype(np.int64)
    return t.column("post_id").to_numpy().astype(np.int64), values, offsets


def table_bytes_hash(paths: list[Path]) -> str:
    """SHA-256 over the tables' names and bytes: a world's `content_hash`."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()
