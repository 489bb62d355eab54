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

    ENTRY_FIELDS = ("row", "post_id", "created_ms", "reply_class", "in_reply_to_user_id",
                    "source_user_id")  # fmt: skip

    def __len__(self) -> int:
        return int(len(self.row))


@dataclasses.dataclass
class ThunderStore:
    posts: dict[str, np.ndarray]  # POST_COLUMNS + is_reply/is_retweet/has_video, by post_id
    lists: dict[Kind, PostingLists]
    as_of_ms: int
    retention_ms: int
    counts: dict[str, int]

    @property
    def num_posts(self) -> int:
        return int(len(self.posts["post_id"]))

    def rows_of(self, post_ids: np.ndarray) -> np.ndarray:
        """Row of each post id in `posts`, −1 when absent. [K] -> [K] int64."""
        found, pos = _lookup(self.posts["post_id"], np.asarray(post_ids, np.int64))
        return np.where(found, pos, -1).astype(np.int64)


def _lookup(store_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, position) of wanted ids in sorted store_ids."""
    if len(store_ids) == 0:
        return np.zeros(len(wanted), bool), np.zeros(len(wanted), np.int64)
    pos = np.minimum(np.searchsorted(store_ids, wanted), len(store_ids) - 1)
    return (store_ids[pos] == wanted) & (wanted != 0), pos


def _posting_lists(
    posts: dict[str, np.ndarray], member: np.ndarray, cls: np.ndarray, cap: int
) -> tuple[PostingLists, int]:
    """Build one CSR list from the posts flagged `member`; returns (lists, evicted count)."""
    rows = np.flatnonzero(member)
    author, created, pid = (
        posts["author_id"][rows],
        posts["created_ms"][rows],
        posts["post_id"][rows],
    )
    order = rules.newest_first(author, created, pid)
    rows, author = rows[order], author[order]
    keep = rules.cap_per_author(author, cap)
    evicted = int((~keep).sum())
    rows, author = rows[keep], author[keep]
    authors, starts = np.unique(author, return_index=True)
    offsets = np.r_[starts, len(rows)].astype(np.int64)
    return PostingLists(
        authors=authors.astype(np.int64),
        offsets=offsets,
        row=rows.astype(np.int64),
        post_id=posts["post_id"][rows],
        created_ms=posts["created_ms"][rows],
        reply_class=cls[rows].astype(np.int8),
        in_reply_to_user_id=posts["in_reply_to_user_id"][rows],
        source_user_id=posts["source_user_id"][rows],
    ), evicted


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
    order = np.argsort(log.event_ms, kind="stable")
    happened = rules.applied(log.event_ms[order], now)
    order = order[happened]
    is_delete = log.is_delete[order]
    deleted = np.unique(log.post_id[order][is_delete])
    creates = order[~is_delete]
    if progress:
        progress("sort", 1, 4)

    counts: dict[str, Any] = {
        "events": len(log),
        "events_after_now": int((~happened).sum()),
        "creates": int(len(creates)),
        "deletes": int(is_delete.sum()),
        "deleted_ids": int(len(deleted)),
    }
    created = log.created_ms[creates]
    fresh = rules.within_retention(created, now, config.retention_ms)
    counts["dropped_future"] = int((created >= now).sum())
    counts["dropped_expired"] = int((created < now - config.retention_ms).sum())
    creates = creates[fresh]
    dup_free = rules.first_occurrence(log.post_id[creates])
    counts["dropped_duplicate"] = int((~dup_free).sum())
    creates = creates[dup_free]
    alive = ~np.isin(log.post_id[creates], deleted)
    counts["dropped_deleted"] = int((~alive).sum())
    creates = creates[alive]
    if progress:
        progress("filter", 2, 4)

    by_id = creates[np.argsort(log.post_id[creates], kind="stable")]
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

    lists, evicted = {}, {}
    for kind, member in (
        (Kind.ORIGINAL, original),
        (Kind.SECONDARY, reply | retweet),
        (Kind.VIDEO, video_ok),
    ):
        lists[kind], evicted[kind] = _posting_lists(posts, member, cls, config.max_posting_list)
    counts.update(
        posts=len(ids),
        authors=int(len(np.unique(posts["author_id"]))),
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
    return ThunderStore(posts, lists, now, config.retention_ms, counts)
