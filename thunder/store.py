"""Building Thunder's in-network store from post logs, vectorised.

Semantics (homemixer_spec.md §10.1–10.2), applied to events in event order (stable by event_ms,
then file and row order) up to the request time `now`:
- a create is kept if created in [now − retention, now), not a duplicate of an earlier kept
  create, and its id is never deleted (deleted ids never come back, before or after the create);
- per-author posting lists, newest first: originals, secondary (replies + retweets), video; each
  capped at `max_posting_list` (oldest evicted).
The store is a set of flat arrays: `posts` sorted by post id, and one CSR structure per list kind.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from thunder import rules
from thunder.config import DEFAULT_CONFIG, ThunderConfig
from thunder.errors import ThunderError
from thunder.index import FetchIndex, build_fetch_index
from thunder.log import PostLog, Progress
from thunder.rules import Kind

POST_COLUMNS = (
    "post_id", "author_id", "created_ms", "in_reply_to_post_id", "in_reply_to_user_id",
    "conversation_id", "source_post_id", "source_user_id", "quoted_post_id", "quoted_user_id",
    "video_duration_ms",
)  # fmt: skip


@dataclasses.dataclass
class PostingLists:
    """One list kind: entries grouped by author (authors ascending), newest first within one.

    authors [U] int64, offsets [U + 1] int64 into the entry arrays; entries [N]: row (index into
    `ThunderStore.posts`), post_id, created_ms, reply_class (int8), in_reply_to_user_id,
    source_user_id.
    """

    authors: np.ndarray
    offsets: np.ndarray
    row: np.ndarray
    post_id: np.ndarray
    created_ms: np.ndarray
    reply_class: np.ndarray
    in_reply_to_user_id: np.ndarray
    source_user_id: np.ndarray

    base: int = 0  # where these entries start in `ThunderStore.entries` (all kinds, combined)

    ENTRY_FIELDS = ("row", "post_id", "created_ms", "reply_class", "in_reply_to_user_id",
                    "source_user_id")  # fmt: skip

    def __len__(self) -> int:
        return int(len(self.row))


@dataclasses.dataclass
class ThunderStore:
    posts: dict[str, np.ndarray]  # POST_COLUMNS + is_reply/is_retweet/has_video, by post_id
    lists: dict[Kind, PostingLists]  # each kind's entries are views of `entries`
    as_of_ms: int
    retention_ms: int
    counts: dict[str, int]
    entries: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    fetch_index: FetchIndex | None = None  # thunder.index; built with the store

    @property
    def num_posts(self) -> int:
        return int(len(self.posts["post_id"]))

    def rows_of(self, post_ids: np.ndarray) -> np.ndarray:
        """Row of each post id in `posts`, −1 when absent. [K] -> [K] int64."""
        found, pos = _lookup(self.posts["post_id"], np.asarray(post_ids, np.int64))
        return np.where(found, pos, -1).astype(np.int64)


def _lookup(store_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, position) of wanted ids in sorted store_ids; 0 is never found. Only the
    non-zero wanted ids are searched (most reply/source fields are empty)."""
    found = np.zeros(len(wanted), bool)
    pos = np.zeros(len(wanted), np.int64)
    nz = np.flatnonzero(wanted)
    if len(store_ids) and len(nz):
        p = np.minimum(np.searchsorted(store_ids, wanted[nz]), len(store_ids) - 1)
        found[nz] = store_ids[p] == wanted[nz]
        pos[nz] = p
    return found, pos


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique via a value sort (numpy's hash-based unique is slow on many distinct ids)."""
    s = np.sort(x)
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def _author_time_order(posts: dict[str, np.ndarray]) -> np.ndarray:
    """Rows grouped by author (ascending), newest first within an author (ties: larger post id
    first). Posts are sorted by post id, so (created, row) orders by (created, post id): one
    value sort of a packed key, then one stable argsort by author."""
    author, created = posts["author_id"], posts["created_ms"]
    n = len(author)
    if n == 0:
        return np.zeros(0, np.int64)
    bits = int(n).bit_length()
    span = int(created.max()) - int(created.min())
    if span.bit_length() + bits > 62:  # an enormous retention window: plain lexsort
        return rules.newest_first(author, created, posts["post_id"])
    key = ((created - created.min()) << bits) | np.arange(n)
    newest_first = (np.sort(key) & ((1 << bits) - 1))[::-1]
    return newest_first[np.argsort(author[newest_first], kind="stable")]


def _posting_lists(
    posts: dict[str, np.ndarray], order: np.ndarray, member: np.ndarray, cls: np.ndarray, cap: int
) -> tuple[PostingLists, int]:
    """One CSR list of the posts flagged `member`, in author/time `order`; (lists, evicted)."""
    rows = order[member[order]]
    author = posts["author_id"][rows]
    keep = rules.cap_per_author(author, cap)
    evicted = int(len(keep) - keep.sum())
    rows, author = rows[keep], author[keep]
    starts = (
        np.flatnonzero(np.r_[True, author[1:] != author[:-1]])
        if len(author)
        else np.zeros(0, np.int64)
    )
    return PostingLists(
        authors=author[starts].astype(np.int64),
        offsets=np.r_[starts, len(rows)].astype(np.int64),
        row=rows.astype(np.int64),
        post_id=posts["post_id"][rows],
        created_ms=posts["created_ms"][rows],
        reply_class=cls[rows].astype(np.int8),
        in_reply_to_user_id=posts["in_reply_to_user_id"][rows],
        source_user_id=posts["source_user_id"][rows],
    ), evicted


def _first_creates(post_id: np.ndarray, event_ms: np.ndarray, creates: np.ndarray):
    """Creates sorted by post id, keeping each id's first create in event order (earliest
    event_ms, then file/row order). Returns (kept creates by id, number of duplicates)."""
    order = creates[np.argsort(post_id[creates], kind="stable")]
    ids = post_id[order]
    run_start = np.r_[True, ids[1:] != ids[:-1]] if len(ids) else np.zeros(0, bool)
    dup_runs = np.flatnonzero(~run_start)
    if len(dup_runs):  # rare: re-order each duplicated id's events by time, then index
        in_dup = np.zeros(len(ids), bool)
        in_dup[dup_runs] = True
        in_dup[dup_runs - 1] = True
        sel = np.flatnonzero(in_dup)
        sub = order[sel]
        order[sel] = sub[np.lexsort((sub, event_ms[sub], post_id[sub]))]
    return order[run_start], len(dup_runs)


def build_store(
    log: PostLog,
    now_ms: int | None = None,
    config: ThunderConfig = DEFAULT_CONFIG,
    progress: Progress | None = None,
) -> ThunderStore:
    """The store as of `now_ms` (default: the newest event) from a post log."""
    t0 = time.perf_counter()
    if len(log) == 0:
        raise ThunderError("the post log has no events")
    now = int(log.event_ms.max()) if now_ms is None else int(now_ms)
    happened = rules.applied(log.event_ms, now)
    is_delete = log.is_delete & happened
    deleted = sorted_unique(log.post_id[is_delete])
    creates = np.flatnonzero(~log.is_delete & happened)
    if progress:
        progress("sort", 1, 4)

    counts: dict[str, Any] = {
        "events": len(log),
        "events_after_now": int(len(log) - happened.sum()),
        "creates": int(len(creates)),
        "deletes": int(is_delete.sum()),
        "deleted_ids": int(len(deleted)),
    }
    created = log.created_ms[creates]
    counts["dropped_future"] = int((created >= now).sum())
    counts["dropped_expired"] = int((created < now - config.retention_ms).sum())
    creates = creates[rules.within_retention(created, now, config.retention_ms)]
    by_id, counts["dropped_duplicate"] = _first_creates(log.post_id, log.event_ms, creates)
    found, _ = _lookup(deleted, log.post_id[by_id])  # deleted ids never come back
    counts["dropped_deleted"] = int(found.sum())
    by_id = by_id[~found]
    if progress:
        progress("filter", 2, 4)

    posts = {name: getattr(log, name)[by_id] for name in POST_COLUMNS}
    reply = rules.is_reply(posts["in_reply_to_post_id"], posts["in_reply_to_user_id"])
    retweet = rules.is_retweet(posts["source_post_id"])
    original = rules.is_original(reply, retweet)
    video = rules.has_video(posts["video_duration_ms"], config.min_video_ms)
    posts.update(is_reply=reply, is_retweet=retweet, has_video=video)

    ids = posts["post_id"]
    src_found, src_pos = _lookup(ids, posts["source_post_id"])
    par_found, par_pos = _lookup(ids, posts["in_reply_to_post_id"])
    cls = rules.reply_class(
        reply,
        retweet,
        par_found,
        par_found & original[par_pos],
        np.where(par_found, posts["in_reply_to_post_id"][par_pos], 0),
        posts["conversation_id"],
    )
    video_ok = rules.video_eligible(
        original, reply, retweet, video, src_found, src_found & video[src_pos]
    )
    if progress:
        progress("classify", 3, 4)

    order = _author_time_order(posts)
    lists, evicted = {}, {}
    for kind, member in (
        (Kind.ORIGINAL, original),
        (Kind.SECONDARY, reply | retweet),
        (Kind.VIDEO, video_ok),
    ):
        lists[kind], evicted[kind] = _posting_lists(
            posts, order, member, cls, config.max_posting_list
        )
    counts.update(
        posts=len(ids),
        authors=int(len(sorted_unique(np.concatenate([v.authors for v in lists.values()])))),
        originals=int(original.sum()),
        replies=int(reply.sum()),
        retweets=int((retweet & ~reply).sum()),
        quotes=int((original & (posts["quoted_post_id"] != 0)).sum()),
        video_eligible=int(video_ok.sum()),
        **{f"list_{k.name.lower()}": len(v) for k, v in lists.items()},
        **{f"evicted_{k.name.lower()}": v for k, v in evicted.items()},
        build_ms=round((time.perf_counter() - t0) * 1e3, 1),
    )
    if progress:
        progress("lists", 4, 4)
    store = combine_lists(ThunderStore(posts, lists, now, config.retention_ms, counts))
    store.fetch_index = build_fetch_index(store)
    return store


def combine_lists(store: ThunderStore) -> ThunderStore:
    """Lay every kind's entries out in one set of arrays (kinds in Kind order), so a fetch over
    several kinds gathers once; each kind's PostingLists keeps views into them."""
    kinds = list(Kind)
    entries = {
        f: np.concatenate([getattr(store.lists[k], f) for k in kinds])
        for f in PostingLists.ENTRY_FIELDS
    }
    base = 0
    for k in kinds:
        n = len(store.lists[k])
        views = {f: entries[f][base : base + n] for f in PostingLists.ENTRY_FIELDS}
        store.lists[k] = PostingLists(
            store.lists[k].authors, store.lists[k].offsets, **views, base=base
        )
        base += n
    store.entries = entries
    return store
