"""A world's tables loaded once as numpy columns, with the lookups the feed needs."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from world.activity import Activity
from world.lookup import IdIndex, sparse_columns
from world.tables import WorldError, read_table, read_world_json


@dataclasses.dataclass(frozen=True)
class EdgeList:
    """One kind's edges sorted by source (then creation, unknown last, then destination), the
    sources stored once each: src_ids [S] ascending, offsets [S + 1] (source i's edges are
    dst[offsets[i]:offsets[i + 1]]), dst_rows [E] int32 (rows of the world's sorted edge user
    ids `ids` [U], shared by every kind), created [E] (ms, 0 when unknown). Iterating gives the
    per-edge arrays (src [E], dst [E], created [E])."""

    src_ids: np.ndarray
    offsets: np.ndarray
    dst_rows: np.ndarray
    created: np.ndarray
    ids: np.ndarray

    @classmethod
    def from_sorted(
        cls, src: np.ndarray, dst_rows: np.ndarray, created: np.ndarray, ids: np.ndarray
    ) -> EdgeList:
        src = np.asarray(src, np.int64)
        start = np.flatnonzero(np.r_[True, src[1:] != src[:-1]]) if len(src) else src
        return cls(src[start], np.r_[start, len(src)].astype(np.int64),
                   np.asarray(dst_rows, np.int32), np.asarray(created, np.int64), ids)  # fmt: skip

    def bounds(self, user_id: int) -> tuple[int, int]:
        """[lo, hi) of the user's edges."""
        i = int(np.searchsorted(self.src_ids, user_id))
        if i == len(self.src_ids) or self.src_ids[i] != user_id:
            return 0, 0
        return int(self.offsets[i]), int(self.offsets[i + 1])

    def src(self) -> np.ndarray:
        """The source of each edge [E] (built on each call)."""
        return np.repeat(self.src_ids, np.diff(self.offsets))

    @property
    def dst(self) -> np.ndarray:
        """The destination id of each edge [E] (built on each call)."""
        return self.ids[self.dst_rows]

    def __iter__(self):
        return iter((self.src(), self.dst, self.created))

    def __len__(self) -> int:
        return len(self.dst_rows)


class WorldData:
    """A world's tables loaded once, as numpy columns, with the lookups the feed needs.

    Post lookups are by post id (sorted; `posts[name][rows]` gives int64 values, a mostly-zero
    column held as a `SparseColumn`); the social graph by (src, kind).
    """

    POST_COLUMNS = (
        "post_id", "author_id", "created_ms", "in_reply_to_post_id", "in_reply_to_user_id",
        "conversation_id", "source_post_id", "source_user_id", "quoted_post_id", "quoted_user_id",
        "video_duration_ms",
    )  # fmt: skip

    USER_COLUMNS = ("follower_count", "is_nsfw", "muted_keywords", "allow_for_you")

    def __init__(self, world: Path | str):
        self.path = Path(world)
        self.meta = read_world_json(world)
        pool = pa.default_memory_pool()
        # one table at a time, each dropped (when its loader returns) and its memory handed back
        # before the next is read: peak and resident memory stay near the arrays kept
        self._load_posts(world)
        pool.release_unused()
        self._load_users(world)
        self._load_edges(world)
        pool.release_unused()

    def _load_posts(self, world: Path | str) -> None:
        extra = ["event", "event_ms", "text", "has_media", "subscription_only", "labels"]
        posts = read_table(world, "posts", [*self.POST_COLUMNS, *extra])  # only what is used
        event = posts.column("event")
        rows = np.flatnonzero(pc.fill_null(pc.equal(event, "create"), False).to_numpy(
            zero_copy_only=False))  # fmt: skip
        ids = posts.column("post_id").to_numpy()[rows]
        order = np.argsort(ids, kind="stable")  # by post id; the first create of an id wins
        rows, ids = rows[order], ids[order]
        first = np.r_[True, ids[1:] != ids[:-1]] if len(ids) else np.zeros(0, bool)
        take = pa.array(rows[first])

        def column(name: str) -> pa.Array:
            return posts.column(name).take(take)

        # mostly-zero columns (a reply's, repost's or quote's ids) as SparseColumns
        self.posts = sparse_columns({c: pc.fill_null(column(c), 0).to_numpy().astype(np.int64)
                                     for c in self.POST_COLUMNS})  # fmt: skip
        # texts stay in Arrow (one buffer, not a Python string per post); `texts(rows)` gathers
        self._text = pc.fill_null(column("text"), "").combine_chunks()
        self.has_media = pc.fill_null(column("has_media"), False).to_numpy(zero_copy_only=False)
        self.subscription_only = pc.fill_null(column("subscription_only"), False).to_numpy(
            zero_copy_only=False
        )
        labels = column("labels")
        has = np.flatnonzero(pc.fill_null(pc.list_value_length(labels), 0).to_numpy())
        self.labels = [()] * len(labels)  # Python tuples only for the posts that have labels
        for r, x in zip(has.tolist(), labels.take(pa.array(has)).to_pylist(), strict=True):
            self.labels[r] = tuple(x)
        deletes = posts.select(["event", "post_id", "event_ms"]).filter(pc.equal(event, "delete"))
        self.delete_ms = dict(zip(deletes.column("post_id").to_pylist(),
                                  deletes.column("event_ms").to_pylist(), strict=True))  # fmt: skip

    def _load_users(self, world: Path | str) -> None:
        users = read_table(world, "users", ["user_id", *self.USER_COLUMNS])  # only what is used
        self.user_ids = users.column("user_id").to_numpy().astype(np.int64)
        uorder = np.argsort(self.user_ids)
        self.user_ids = self.user_ids[uorder]
        self.users = {
            c: users.column(c).take(pa.array(uorder)).to_pylist() for c in self.USER_COLUMNS
        }

    def _load_edges(self, world: Path | str) -> None:
        """Per kind: (src, dst, created) sorted by src, then created (unknown last), then dst."""
        edges = read_table(world, "edges", ["src_user_id", "dst_user_id", "kind", "created_ms"])
        kind = pc.dictionary_encode(edges.column("kind")).combine_chunks()
        names, codes = kind.dictionary.to_pylist(), kind.indices.to_numpy(zero_copy_only=False)
        src = edges.column("src_user_id").to_numpy()
        dst = edges.column("dst_user_id").to_numpy()
        created_col = edges.column("created_ms")
        known = pc.is_valid(created_col).to_numpy(zero_copy_only=False)
        created = pc.fill_null(created_col, 0).to_numpy().astype(np.int64)
        del edges, kind, created_col
        # every user id in the edges or the users table, ascending; edges keep rows of it
        ids = np.unique(np.concatenate([self.user_ids, src, dst]))
        self._edge_id_index = index = IdIndex(ids)
        dst = index.rows(dst).astype(np.int32)  # order-preserving: the sort below is unchanged
        self.edges: dict[str, EdgeList] = {}
        for name in ("follow", "block", "mute", "subscribe"):
            rows = np.flatnonzero(codes == names.index(name)) if name in names else np.zeros(0, int)
            last = np.where(known[rows], created[rows], np.iinfo(np.int64).max)
            rows = rows[np.lexsort((dst[rows], last, src[rows]))]
            self.edges[name] = EdgeList.from_sorted(src[rows], dst[rows], created[rows], ids)

    @functools.cached_property
    def activity(self) -> Activity:
        """Engagements and impressions, read on first use (world.activity)."""
        return Activity(self.path, self.post_rows, len(self.posts["post_id"]))

    # ---- lookups -----------------------------------------------------------------------
    def user_row(self, user_id: int) -> int:
        i = int(self.user_rows(np.array([user_id]))[0])
        if i < 0:
            raise WorldError(f"unknown user {user_id} in world {self.path}")
        return i

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each user id in `users`, −1 when the world has no such user."""
        return self._user_index.rows(user_ids)

    def post_rows(self, post_ids: np.ndarray) -> np.ndarray:
        """Row of each post id, −1 when the world has no such post. The rows of the last few
        arrays asked for are remembered by identity (the hydrators of a batch ask for the same
        candidates' column; id arrays are never modified in place)."""
        memo = self.__dict__.setdefault("_post_rows_memo", [])
        for arr, rows in memo:
            if arr is post_ids:
                return rows
        rows = self._post_index.rows(post_ids)
        if isinstance(post_ids, np.ndarray):
            memo.insert(0, (post_ids, rows))
            del memo[4:]
        return rows

    def out_edges(self, user_id: int, kind: str, until_ms: int | None = None) -> np.ndarray:
        """dst ids of a user's edges of one kind, oldest first; with `until_ms`, only edges
        created at or before it."""
        e = self.edges[kind]
        lo, hi = e.bounds(user_id)
        rows = e.dst_rows[lo:hi]
        if until_ms is not None:
            rows = rows[e.created[lo:hi] <= until_ms]
        return e.ids[rows]

    def texts(self, rows: np.ndarray) -> np.ndarray:
        """Post texts by post row ("" for none): [N] rows -> [N] object array of str."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return np.empty(0, object)
        return self._text.take(pa.array(rows)).to_numpy(zero_copy_only=False).astype(object)

    def user_column(self, name: str) -> np.ndarray:
        """A users column as a numpy array by user row (nulls as 0 / False)."""
        cache = self.__dict__.setdefault("_user_arrays", {})
        if name not in cache:
            cache[name] = np.array([x or 0 for x in self.users[name]])
        return cache[name]

    def has_edges(
        self,
        src_ids: np.ndarray,
        dst_ids: np.ndarray,
        kind: str,
        until_ms: np.ndarray | None = None,
    ) -> np.ndarray:
        """For each i: does src_ids[i] have an edge of `kind` to dst_ids[i] (created at or
        before until_ms[i] when given)? A binary search among the in-edges of the distinct dst
        ids asked for (a feed batch asks about its few viewers), not among all edges."""
        offsets, sources, first = self._edge_index(kind)
        index = self._edge_id_index
        a = index.rows(src_ids)
        b = index.rows(dst_ids)
        if not len(sources) or not len(a):
            return np.zeros(len(a), bool)
        n = len(index.ids)
        known = (a >= 0) & (b >= 0)
        dst = np.unique(b[known])  # [V] ascending
        lo, hi = offsets[dst], offsets[dst + 1]
        size = hi - lo
        take = np.repeat(lo - (np.cumsum(size) - size), size) + np.arange(int(size.sum()))
        keys = np.repeat(dst, size) * n + sources[take]  # [T] ascending: (dst, src) pairs
        if not len(keys):
            return np.zeros(len(a), bool)
        want = b * n + a
        pos = np.minimum(_search(keys, want), len(keys) - 1)
        hit = known & (keys[pos] == want)
        if until_ms is not None:
            created = self.edges[kind].created[first[take[pos]]]
            hit &= created <= np.asarray(until_ms, np.int64)
        return hit

    @functools.cached_property
    def _post_index(self) -> IdIndex:
        return IdIndex(self.posts["post_id"])

    @functools.cached_property
    def _user_index(self) -> IdIndex:
        return IdIndex(self.user_ids)

    def _edge_index(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A kind's edges by destination (built once), over the edge user id rows: offsets
        [U + 1] (destination d's sources are sources[offsets[d]:offsets[d + 1]]), each
        destination's distinct sources [P] int32 ascending, and for each (src, dst) pair the
        position [P] in the kind's EdgeList of its first creation (an unknown time, 0, counts
        as the first). About 8 bytes a pair: the creation times stay in the EdgeList."""
        cache = self.__dict__.setdefault("_edge_keys", {})
        if kind not in cache:
            e = self.edges[kind]
            index = self._edge_id_index
            n = len(index.ids)
            src = np.repeat(index.rows(e.src_ids), np.diff(e.offsets))  # [E] rows
            keys = e.dst_rows.astype(np.int64) * n + src  # [E] (dst, src) pair keys
            del src
            order = np.lexsort((e.created, keys))  # by pair, the earliest creation first
            keys = keys[order]
            lead = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, bool)
            keys, first = keys[lead], order[lead]
            del order, lead
            dst, src = np.divmod(keys, n)
            offsets = np.searchsorted(dst, np.arange(n + 1))  # [U + 1]
            position = np.int32 if len(e) < np.iinfo(np.int32).max else np.int64
            cache[kind] = (offsets, src.astype(np.int32), first.astype(position))
        return cache[kind]

    def deleted_before(self, post_ids: np.ndarray, now_ms: np.ndarray) -> np.ndarray:
        """For each post: was it deleted at or before now_ms[i]?"""
        if "_delete_index" not in self.__dict__:
            ids = np.array(sorted(self.delete_ms), np.int64)
            self._delete_at = np.array([self.delete_ms[int(x)] for x in ids], np.int64)
            self._delete_index = IdIndex(ids)
        rows = self._delete_index.rows(post_ids)
        at = np.where(rows >= 0, self._delete_at[np.maximum(rows, 0)], np.iinfo(np.int64).max)
        return (rows >= 0) & (at <= np.asarray(now_ms, np.int64))


SEARCH_CACHED_KEYS = 1 << 17  # 1 MiB of int64 keys: about what a core's cache holds


def _search(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """np.searchsorted(sorted_values, x) (left). Many needles in a large key array are searched
    in ascending order: each search then starts from the previous one's place, and the keys are
    walked through the cache instead of jumped across (5x faster for 90 k ids in 5.7 M keys).
    Keys that fit in the cache are searched directly: sorting the needles cost more than it
    saved there (the bundled world's batches: 211 ms instead of 581 per 128 users)."""
    if len(x) < 1024 or len(sorted_values) <= SEARCH_CACHED_KEYS:
        return np.searchsorted(sorted_values, x)
    order = np.argsort(x)
    out = np.empty(len(x), np.intp)
    out[order] = np.searchsorted(sorted_values, x[order])
    return out
