"""Groups of accounts for an audit: author groups (`--group-by FIELD`, `--groups FILE.parquet`)
and viewer segments (`--segment-by FIELD|FILE.parquet`), from the run's world or a file.

Fields (the same for authors and viewers, read from the world tables):
- `topic`: the most frequent topic of the account's own posts (ties: the first topic name);
- `interest`: the most frequent topic of the posts the account engaged with;
- `followers`: follower-count bucket (<10, 10-99, 100-999, 1k-9.9k, >=10k);
- `activity`: engagement-count bucket (0, 1-9, 10-99, 100-999, >=1000);
- `country`: the users table's country code.
Accounts without a value are in group `unknown`. A groups file is Parquet with an integer id
column (`author_id`, `user_id` or `account_id`) and a `group` column (any type, as text).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audit.runs import AuditError
from world.tables import WorldError, read_table
from world.tables import post_topics as world_post_topics

FIELDS = ("topic", "interest", "followers", "activity", "country")
UNKNOWN = "unknown"
_FOLLOWER_EDGES = (10, 100, 1_000, 10_000)
_FOLLOWER_NAMES = ("<10", "10-99", "100-999", "1k-9.9k", ">=10k")
_ACTIVITY_EDGES = (1, 10, 100, 1_000)
_ACTIVITY_NAMES = ("0", "1-9", "10-99", "100-999", ">=1000")


class Groups:
    """A mapping account id -> group name; `codes(ids)` [N] int32 into `names` (UNKNOWN for ids
    without a group)."""

    def __init__(self, ids: np.ndarray, groups: np.ndarray, source: str):
        ids = np.asarray(ids, np.int64)
        order = np.argsort(ids, kind="stable")
        self.ids = ids[order]
        if len(self.ids) and np.any(self.ids[1:] == self.ids[:-1]):
            raise AuditError(f"{source}: an account id appears twice")
        names, codes = np.unique(np.asarray(groups).astype(str)[order], return_inverse=True)
        self.names = [*names.tolist(), *([UNKNOWN] if UNKNOWN not in names else [])]
        self._codes = codes.astype(np.int32)
        self._unknown = self.names.index(UNKNOWN)
        self.source = source

    def codes(self, ids: np.ndarray) -> np.ndarray:
        """[N] int32 group codes of account ids [N]."""
        ids = np.asarray(ids, np.int64)
        if not len(self.ids):
            return np.full(len(ids), self._unknown, np.int32)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[at] == ids, self._codes[at], self._unknown).astype(np.int32)


def load_groups(spec: str, world: str) -> Groups:
    """A field of the world's accounts, or a Parquet mapping file."""
    if spec in FIELDS:
        return _field_groups(world, spec)
    path = Path(spec)
    if path.suffix == ".parquet" or path.exists():
        return _file_groups(path)
    raise AuditError(f"{spec!r}: not a field ({', '.join(FIELDS)}) or a Parquet file")


def _file_groups(path: Path) -> Groups:
    if not path.is_file():
        raise AuditError(f"{path}: no such groups file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise AuditError(f"{path}: not a readable Parquet file ({exc})") from None
    id_col = next((c for c in ("author_id", "user_id", "account_id") if c in table.column_names),
                  None)  # fmt: skip
    if id_col is None or "group" not in table.column_names:
        raise AuditError(f"{path}: needs an author_id (or user_id) column and a group column")
    ids = table.column(id_col)
    if not pa.types.is_integer(ids.type) or ids.null_count:
        raise AuditError(f"{path}: {id_col} must be integers without nulls")
    groups = pc.fill_null(table.column("group").cast(pa.string()), UNKNOWN)
    return Groups(ids.to_numpy(), np.asarray(groups.to_pylist(), object), str(path))


def _table(world: str, name: str, columns: list[str]) -> pa.Table:
    """A world table's columns, read and checked as the pipeline reads them (world.tables)."""
    try:
        return read_table(world, name, columns)
    except WorldError as exc:
        raise AuditError(f"{exc} (the groups need the run's world)") from None


@functools.lru_cache(maxsize=8)
def post_topics(world: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(post ids ascending [P], topic codes [P] int32 (-1: none), topic names) of the world's
    created posts; a post's topic is its first listed topic (`world.tables.post_topics`)."""
    try:
        ids, values, offsets = world_post_topics(world)
    except WorldError as exc:
        raise AuditError(f"{exc} (the groups need the run's world)") from None
    listed = offsets[1:] > offsets[:-1]  # [P] posts with at least one topic
    first = np.full(len(ids), "", dtype=values.dtype if len(values) else str)
    first[listed] = values[offsets[:-1][listed]]
    names, codes = np.unique(first, return_inverse=True)
    codes = codes.astype(np.int32)
    if len(names) and names[0] == "":
        codes -= 1  # "" (no topic) -> -1
        names = names[1:]
    order = np.argsort(ids, kind="stable")
    return ids[order], codes[order], [str(n) for n in names]


def topic_codes(world: str, posts: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """[N] topic codes (-1: unknown post or no topic) of post ids [N], and the topic names."""
    ids, codes, names = post_topics(world)
    if not len(ids):
        return np.full(len(posts), -1, np.int32), names
    at = np.minimum(np.searchsorted(ids, posts), len(ids) - 1)
    return np.where(ids[at] == posts, codes[at], -1).astype(np.int32), names


def _mode(owner: np.ndarray, topic: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each owner's most frequent topic (ties: the first name): (owners, topic names)."""
    keep = topic >= 0
    owner, topic = owner[keep], topic[keep]
    if not len(owner):
        return np.zeros(0, np.int64), np.zeros(0, object)
    t = len(names)
    owners, inv = np.unique(owner, return_inverse=True)
    counts = np.bincount(inv * t + topic, minlength=len(owners) * t).reshape(len(owners), t)
    return owners, np.asarray(names, object)[counts.argmax(axis=1)]


def _bucket(values: np.ndarray, edges: tuple, names: tuple) -> np.ndarray:
    return np.asarray(names, object)[np.searchsorted(np.asarray(edges), values, side="right")]


@functools.lru_cache(maxsize=16)
def _field_groups(world: str, field: str) -> Groups:
    src = f"{world} ({field})"
    if field == "topic":
        t = _table(world, "posts", ["event", "post_id", "author_id"])
        t = t.filter(pc.and_(pc.equal(t.column("event"), "create"),
                             pc.is_valid(t.column("author_id"))))  # fmt: skip
        codes, names = topic_codes(world, t.column("post_id").to_numpy())
        return Groups(*_mode(t.column("author_id").to_numpy(), codes, names), src)
    if field == "interest":
        t = _table(world, "engagements", ["user_id", "post_id"])
        codes, names = topic_codes(world, t.column("post_id").to_numpy())
        return Groups(*_mode(t.column("user_id").to_numpy(), codes, names), src)
    if field == "activity":
        users = _table(world, "users", ["user_id"]).column("user_id").to_numpy()
        eng = _table(world, "engagements", ["user_id"]).column("user_id").to_numpy()
        ids, counts = np.unique(eng, return_counts=True)
        n = np.zeros(len(users), np.int64)
        at = np.searchsorted(ids, users)
        hit = (at < len(ids)) & (ids[np.minimum(at, max(len(ids) - 1, 0))] == users)
        n[hit] = counts[at[hit]]
        return Groups(users, _bucket(n, _ACTIVITY_EDGES, _ACTIVITY_NAMES), src)
    column = {"followers": "follower_count", "country": "country"}[field]
    t = _table(world, "users", ["user_id", column])
    col = t.column(column)
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    ids = t.column("user_id").to_numpy()[valid]
    values = col.filter(pc.is_valid(col)).to_numpy(zero_copy_only=False)
    if field == "followers":
        values = _bucket(values, _FOLLOWER_EDGES, _FOLLOWER_NAMES)
    return Groups(ids, values, src)
