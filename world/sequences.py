"""Users' engagement sequences from a world, and the time split used by training and eval.

An item is one (user, post) impression with everything the user did to it: the multi-hot of
ActionName values (width `num_actions`), dwell seconds, product surface, and the first event time.
Items of a user are ordered by time. The split holds out the last `test_fraction` of each user's
items (by time): nothing held out is ever used for training.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phoenix.config import PhoenixConfig
from phoenix.sids import PostSids, build_vocab, topic_codes
from world.tables import post_topics, read_table, table_file


@dataclasses.dataclass
class Sequences:
    """All users' items, grouped by user (users ascending), time-ordered within a user.

    Arrays have one entry per item; `offsets` [U + 1] delimit each user's items.
    """

    user_ids: np.ndarray  # [U]
    offsets: np.ndarray  # [U + 1]
    post_id: np.ndarray  # [N] int64
    author_id: np.ndarray  # [N] int64
    time_ms: np.ndarray  # [N] int64 (first event on the item)
    actions: np.ndarray  # [N, A] uint8 multi-hot by ActionName (0/1)
    dwell_s: np.ndarray  # [N] float32 (0 when unknown)
    surface: np.ndarray  # [N] int32 product surface
    # What model inputs read of the world's posts (`attach_post_inputs`): post id -> semantic-id
    # codes, and retweet id -> (source post id, source author id), each sorted by the first id.
    sids: PostSids | None = None
    sources: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def user_slice(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def as_served(self, post_ids: np.ndarray, author_ids: np.ndarray) -> tuple[np.ndarray, ...]:
        """(post ids, author ids) [N] as serving scores them (`PhoenixScorer`, as upstream keys
        a retweet by its original): a retweet as its source post by the source's author."""
        posts, authors = np.asarray(post_ids, np.int64), np.asarray(author_ids, np.int64)
        if self.sources is None or not len(self.sources[0]) or not len(posts):
            return posts, authors
        ids, src, src_author = self.sources
        at = np.minimum(np.searchsorted(ids, posts), len(ids) - 1)
        rt = ids[at] == posts  # as the scorer: a missing source author keeps the retweeter
        return (np.where(rt & (src[at] != 0), src[at], posts),
                np.where(rt & (src_author[at] != 0), src_author[at], authors))  # fmt: skip

    def index_of(self, user_id: int) -> int:
        i = int(np.searchsorted(self.user_ids, user_id))
        if i >= len(self.user_ids) or self.user_ids[i] != user_id:
            return -1
        return i


def load_sequences(
    world: Path | str, num_actions: int, until_ms: int | None = None, user_id: int | None = None
) -> Sequences:
    """Group engagements.parquet into items (actions >= num_actions are dropped); optionally only
    events up to `until_ms`, or of one user."""
    cols = list(ENGAGEMENT_COLUMNS)
    filters = [("user_id", "=", int(user_id))] if user_id is not None else None
    t = read_table(world, "engagements", cols, filters=filters)
    if until_ms is not None:
        t = t.filter(pc.less_equal(t.column("event_ms"), until_ms))
    columns = engagement_columns(t)
    del t  # the Arrow table is not needed while grouping
    return group_items(columns, num_actions)


ENGAGEMENT_COLUMNS = ("user_id", "post_id", "author_id", "action", "event_ms", "dwell_s",
                      "product_surface")  # fmt: skip


def engagement_columns(t: pa.Table) -> dict[str, np.ndarray]:
    """engagements.parquet columns as numpy (dwell null -> 0, surface null -> 1)."""
    return {
        "user_id": t.column("user_id").to_numpy().astype(np.int64),
        "post_id": t.column("post_id").to_numpy().astype(np.int64),
        "author_id": t.column("author_id").to_numpy().astype(np.int64),
        "action": t.column("action").to_numpy().astype(np.int32),
        "event_ms": t.column("event_ms").to_numpy().astype(np.int64),
        "dwell_s": pc.fill_null(t.column("dwell_s"), 0.0).to_numpy().astype(np.float32),
        "product_surface": pc.fill_null(t.column("product_surface"), 1).to_numpy(),
    }


def group_items(cols: dict[str, np.ndarray], num_actions: int) -> Sequences:
    """Engagement events (`engagement_columns`, any order) -> items grouped by user and time.
    Consumes `cols`: each event column is released once reordered (the peak stays near one copy
    of the events)."""
    # one item per (user, post): order by user, post, time, then collapse
    order = np.lexsort((cols["event_ms"], cols["post_id"], cols["user_id"]))
    user, post, event = (cols.pop(k)[order] for k in ("user_id", "post_id", "event_ms"))
    action, dwell = cols.pop("action")[order], cols.pop("dwell_s")[order]
    author, surface = cols.pop("author_id")[order], cols.pop("product_surface")[order]
    del order
    new_item = (
        np.r_[True, (user[1:] != user[:-1]) | (post[1:] != post[:-1])]
        if len(user)
        else (np.zeros(0, bool))
    )
    item = np.cumsum(new_item) - 1
    n = int(item[-1]) + 1 if len(item) else 0
    first = np.flatnonzero(new_item)
    item_dwell = np.zeros(n, np.float32)
    np.maximum.at(item_dwell, item, dwell)
    i_user, i_post, i_time = user[first], post[first], event[first]
    # regroup items by user and time; the multi-hot (the one [N, A] array: 1 byte per cell) is
    # written straight into that order, never copied
    by_time = np.lexsort((i_post, i_time, i_user))
    place = np.empty(n, np.int64)
    place[by_time] = np.arange(n)
    actions = np.zeros((n, num_actions), np.uint8)
    ok = action < num_actions
    actions[place[item[ok]], action[ok]] = 1
    i_user = i_user[by_time]
    users, starts = np.unique(i_user, return_index=True)
    return Sequences(
        user_ids=users.astype(np.int64),
        offsets=np.r_[starts, n].astype(np.int64),
        post_id=i_post[by_time].astype(np.int64),
        author_id=author[first][by_time].astype(np.int64),
        time_ms=i_time[by_time].astype(np.int64),
        actions=actions,
        dwell_s=item_dwell[by_time],
        surface=surface[first][by_time].astype(np.int32),
    )


def split_points(seq: Sequences, test_fraction: float = 0.2) -> np.ndarray:
    """Per user, the index (absolute, into the item arrays) where held-out items start:
    the last ceil(test_fraction · n) items of each user with >= 5 items are held out."""
    n = np.diff(seq.offsets)
    held = np.where(n >= 5, np.ceil(n * test_fraction).astype(np.int64), 0)
    return seq.offsets[1:] - held


def loo_points(seq: Sequences, relevant: int | None = None) -> np.ndarray:
    """Per user, the index (absolute) of the held-out item of the leave-one-out protocol: the
    user's last item (the last with action `relevant` when given) that has an earlier item;
    `offsets[u + 1]` (nothing held out) when there is none. Training uses the items before it."""
    out = seq.offsets[1:].copy()
    for u in range(len(seq.user_ids)):
        lo, hi = int(seq.offsets[u]), int(seq.offsets[u + 1])
        ok = np.arange(lo + 1, hi)
        if relevant is not None:
            ok = ok[seq.actions[lo + 1 : hi, int(relevant)] > 0]
        if len(ok):
            out[u] = ok[-1]
    return out


def sid_vocab(world: Path | str, codebook: int) -> tuple[str, ...]:
    """The topic vocabulary of a world's posts (phoenix.sids.build_vocab): what a model trained
    on it saves as `sid_topics`. Topics are post metadata, not engagement: every post counts."""
    return build_vocab(post_topics(world)[1], codebook)


def load_post_sids(world: Path | str, cfg: PhoenixConfig) -> PostSids | None:
    """Post id -> SID codes of every post of the world under the model's vocabulary (None when
    the model reads no semantic ids). The one source of codes for training, `xfeed eval` and
    serving."""
    if not cfg.sid_levels:
        return None
    stat = table_file(world, "posts", ["event", "post_id", "topics"]).stat()
    return _post_sids(str(Path(world).absolute()), stat.st_mtime_ns, stat.st_size,
                      cfg.sid_levels, cfg.sid_topics)  # fmt: skip


@functools.lru_cache(maxsize=4)
def _post_sids(world: str, mtime_ns: int, size: int, levels: int,
               topics: tuple[str, ...]) -> PostSids:  # fmt: skip
    """One read of a world's posts per vocabulary, keyed by the posts file's size and time too
    (a rewritten file is read again): a ranker and a retrieval model trained on one world, and
    the corpus built with the latter, share one table."""
    ids, values, offsets = post_topics(world)
    sids = PostSids.of(ids, topic_codes(values, offsets, topics, levels))
    sids.post_ids.setflags(write=False)  # shared by every caller
    sids.codes.setflags(write=False)
    return sids


def retweet_sources(world: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(retweet post ids [R] sorted, their source post ids [R], source author ids [R])."""
    t = read_table(world, "posts", ["event", "post_id", "source_post_id", "source_user_id"])
    t = t.filter(pc.and_(pc.equal(t.column("event"), "create"),
                         pc.is_valid(t.column("source_post_id"))))  # fmt: skip
    ids = t.column("post_id").to_numpy().astype(np.int64)
    src = t.column("source_post_id").to_numpy().astype(np.int64)
    author = pc.fill_null(t.column("source_user_id"), 0).to_numpy().astype(np.int64)
    order = np.argsort(ids, kind="stable")
    return ids[order], src[order], author[order]


def attach_post_inputs(seq: Sequences, world: Path | str, cfg: PhoenixConfig) -> Sequences:
    """`seq` with what the ranker's inputs read of the world's posts: the SID codes under the
    model's vocabulary (`load_post_sids`) and the retweet sources (`Sequences.as_served`)."""
    seq.sids = load_post_sids(world, cfg)
    seq.sources = retweet_sources(world)
    return seq
