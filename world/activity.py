"""A world's engagements and impressions, indexed for per-request lookups.

The feed asks three things of these tables on every request: the viewer's engagement sequence up
to now, the viewer's impressions (seen / served) up to now, and each candidate's engagement
counts up to now. Reading the Parquet files with a filter per request costs tens of milliseconds
on a large world; here each table is read once, sorted, and sliced with binary search.

A large table (more than `MAX_LOADED_ROWS` rows) whose row groups are ordered by user (as
`xfeed data synth` and `world import` write them) is not loaded whole: a user's rows are read
with their row group(s), the last few row groups are kept, and the per-post counts are summed
over the row groups one at a time, so memory stays bounded whatever the number of users
(a population run visits users in ascending order, so each row group is read once).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from world.sequences import ENGAGEMENT_COLUMNS, Sequences, engagement_columns, group_items
from world.tables import read_table, table_file

MAX_LOADED_ROWS = 4_000_000  # larger tables ordered by user are read a row group at a time
CACHED_GROUPS = 2  # row-group sets kept per table (users come in ascending order)
IMPRESSION_COLUMNS = ("user_id", "post_id", "kind", "event_ms")


def _impression_columns(imp: pa.Table) -> dict[str, np.ndarray]:
    return {
        "user_id": imp.column("user_id").to_numpy().astype(np.int64),
        "post_id": imp.column("post_id").to_numpy().astype(np.int64),
        "event_ms": imp.column("event_ms").to_numpy().astype(np.int64),
        "seen": pc.equal(imp.column("kind"), "seen").to_numpy(zero_copy_only=False),
        "served": pc.equal(imp.column("kind"), "served").to_numpy(zero_copy_only=False),
    }


@dataclasses.dataclass(frozen=True)
class _Sorted:
    """Rows sorted by user, then time, the user column stored once per user: users [G]
    ascending, offsets [G + 1] (user i's rows are offsets[i]:offsets[i + 1] of every column),
    columns {name: [R]} without user_id."""

    users: np.ndarray
    offsets: np.ndarray
    columns: dict[str, np.ndarray]

    @classmethod
    def of(cls, cols: dict[str, np.ndarray]) -> _Sorted:
        user = cols.pop("user_id")
        order = np.lexsort((cols["event_ms"], user))
        user = user[order]
        start = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if len(user) else user
        return cls(user[start].astype(np.int64), np.r_[start, len(user)].astype(np.int64),
                   {k: v[order] for k, v in cols.items()})  # fmt: skip

    def of_user(self, user_id: int) -> dict[str, np.ndarray]:
        i = int(np.searchsorted(self.users, user_id))
        lo, hi = (0, 0) if i == len(self.users) or self.users[i] != user_id else (
            int(self.offsets[i]), int(self.offsets[i + 1]))  # fmt: skip
        return {"user_id": np.full(hi - lo, user_id, np.int64),
                **{k: v[lo:hi] for k, v in self.columns.items()}}  # fmt: skip


class _UserRows:
    """One table's rows by user: all in memory (sorted by user, then time), or, for a large
    table whose row groups are ordered by user, the row group(s) of the asked user."""

    def __init__(self, world: Path | str, name: str, columns: tuple[str, ...], convert):
        self.world, self.name, self.columns, self.convert = world, name, columns, convert
        self._lock = threading.Lock()
        self.path = table_file(world, name, list(columns))  # checked: file, columns, types
        meta = pq.ParquetFile(self.path).metadata
        self.bounds = _user_bounds(meta) if meta.num_rows > MAX_LOADED_ROWS else None
        self._groups: OrderedDict[tuple[int, ...], _Sorted] = OrderedDict()
        self._all = None if self.bounds is not None else _Sorted.of(
            convert(read_table(world, name, list(columns))))  # fmt: skip

    @property
    def streamed(self) -> bool:
        return self.bounds is not None

    def of_user(self, user_id: int) -> dict[str, np.ndarray]:
        """The user's rows, by time."""
        return (self._all if self._all is not None else self._load(user_id)).of_user(user_id)

    def _load(self, user_id: int) -> _Sorted:
        lo, hi = self.bounds
        groups = tuple(np.flatnonzero((lo <= user_id) & (hi >= user_id)).tolist())
        with self._lock:
            got = self._groups.get(groups)
            if got is not None:
                self._groups.move_to_end(groups)
                return got
        f = pq.ParquetFile(self.path)
        table = f.read_row_groups(list(groups), columns=list(self.columns)) if groups else None
        got = _Sorted.of(self.convert(table) if table is not None else self._empty())
        del table
        pa.default_memory_pool().release_unused()  # the row groups' Arrow memory, now copied
        with self._lock:
            self._groups[groups] = got
            while len(self._groups) > CACHED_GROUPS:
                self._groups.popitem(last=False)
        return got

    def _empty(self) -> dict[str, np.ndarray]:
        f = pq.ParquetFile(self.path)
        return self.convert(f.schema_arrow.empty_table().select(list(self.columns)))

    def chunks(self):
        """Every row, a row group at a time (all at once when loaded)."""
        if self._all is not None:
            yield self._all.columns
            return
        f = pq.ParquetFile(self.path)
        for g in range(f.metadata.num_row_groups):
            yield self.convert(f.read_row_group(g, columns=list(self.columns)))


def _user_bounds(meta: pq.FileMetaData) -> tuple[np.ndarray, np.ndarray] | None:
    """(min, max) user id of each row group when the row groups are ordered by user (each
    group's min ≥ the previous group's max); None otherwise (the table is then loaded)."""
    col = meta.schema.to_arrow_schema().get_field_index("user_id")
    lo, hi = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:
            return None
        lo.append(int(stats.min))
        hi.append(int(stats.max))
    lo_a, hi_a = np.array(lo, np.int64), np.array(hi, np.int64)
    if len(lo_a) < 2 or (lo_a[1:] < hi_a[:-1]).any():
        return None
    return lo_a, hi_a


class Activity:
    """Engagement and impression events of a world, by user and by time.

    `post_rows` maps post ids to rows of the world's post table (−1 when unknown); counts are
    arrays over those rows.
    """

    def __init__(self, world: Path | str, post_rows: Callable[[np.ndarray], np.ndarray],
                 num_posts: int):  # fmt: skip
        self._eng = _UserRows(world, "engagements", ENGAGEMENT_COLUMNS, engagement_columns)
        self._imp = _UserRows(world, "impressions", IMPRESSION_COLUMNS, _impression_columns)
        self._post_rows = post_rows
        self._num_posts = num_posts
        self._counts: dict[int, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    @property
    def streamed(self) -> bool:
        """True when a table is read a row group at a time (a large world)."""
        return self._eng.streamed or self._imp.streamed

    def user_sequence(self, user_id: int, until_ms: int, num_actions: int) -> Sequences:
        """The user's engagement items from events at or before `until_ms` (as load_sequences)."""
        rows = self._eng.of_user(user_id)
        keep = rows["event_ms"] <= until_ms
        return group_items({k: v[keep] for k, v in rows.items()}, num_actions)

    def user_impressions(self, user_id: int, until_ms: int) -> dict[str, np.ndarray]:
        """The user's impressions at or before `until_ms`, oldest first: post_id, event_ms, and
        the seen / served flags."""
        rows = self._imp.of_user(user_id)
        stop = int(np.searchsorted(rows["event_ms"], until_ms, side="right"))
        return {k: v[:stop] for k, v in rows.items() if k != "user_id"}

    def counts(self, now_ms: int, actions: dict[str, int]) -> dict[str, np.ndarray]:
        """Per post row: the number of events of each named action at or before `now_ms`, and
        `views` (impressions of any kind). Cached for the latest few request times."""
        key = int(now_ms)
        with self._lock:
            hit = self._counts.get(key)
        if hit is not None and actions.keys() <= hit.keys():
            return hit
        # int32 per post (events of one post fit it): a million posts × 5 counts is 20 MB, not 40
        out = {name: np.zeros(self._num_posts, np.int32) for name in [*actions, "views"]}
        for c in self._eng.chunks():
            upto = c["event_ms"] <= now_ms
            rows, action = self._post_rows(c["post_id"][upto]), c["action"][upto]
            known = rows >= 0
            for name, a in actions.items():
                out[name] += np.bincount(rows[known & (action == a)], minlength=self._num_posts)
        for c in self._imp.chunks():
            rows = self._post_rows(c["post_id"][c["event_ms"] <= now_ms])
            out["views"] += np.bincount(rows[rows >= 0], minlength=self._num_posts)
        del c
        pa.default_memory_pool().release_unused()  # the row groups read (streamed tables)
        with self._lock:
            if len(self._counts) >= 4:
                self._counts.pop(next(iter(self._counts)))
            self._counts[key] = out
        return out
