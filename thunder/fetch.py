"""Serving a viewer: in-network candidates from the store (homemixer_spec.md §10.3).

For each followed author and list kind: scan newest -> oldest, skip excluded ids, look at no more
than `scan_per_author` non-excluded entries, skip retweets of the viewer's own posts, apply the
reply rule (secondary lists), take up to the per-author limit. Then merge, newest first, and
truncate to `max_results`. Vectorised over authors: each author's window of entries is gathered
at once and grown (doubled) only for authors whose window was too small to decide.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from thunder.config import DEFAULT_CONFIG, ThunderConfig
from thunder.rules import Kind, ReplyClass
from thunder.store import PostingLists, ThunderStore


@dataclasses.dataclass(frozen=True)
class InNetworkRequest:
    viewer_id: int
    following: np.ndarray  # [F] int64, in list order
    exclude: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    video: bool = False
    max_results: int = 0  # 0 -> the config's default (1200, or 600 for video)


def _in_sorted(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Membership of x in an ascending array."""
    if len(sorted_values) == 0:
        return np.zeros(len(x), bool)
    pos = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
    return sorted_values[pos] == x


def _group_cumcount(mask: np.ndarray, group_starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Per element: number of True in `mask` at or before it within its group (groups laid out
    contiguously with the given starts/lengths)."""
    c = np.cumsum(mask)
    before = np.where(group_starts > 0, c[np.maximum(group_starts - 1, 0)], 0)
    return c - np.repeat(before, lens)


def _take_from_list(
    lists: PostingLists,
    authors: np.ndarray,  # [A] followed authors (deduplicated)
    viewer: int,
    following_sorted: np.ndarray,
    exclude_sorted: np.ndarray,
    take: int,
    scan: int,
) -> np.ndarray:
    """Entry indices (into `lists`) taken for these authors."""
    has = _in_sorted(lists.authors, authors)
    pos = np.searchsorted(lists.authors, authors[has])
    start = lists.offsets[pos]
    total = lists.offsets[pos + 1] - start
    window = np.minimum(total, take)
    taken: list[np.ndarray] = []
    while len(start):
        lens = window
        group_starts = np.r_[0, np.cumsum(lens)[:-1]]
        idx = np.repeat(start - group_starts, lens) + np.arange(int(lens.sum()))
        excluded = _in_sorted(exclude_sorted, lists.post_id[idx])
        scanned_rank = _group_cumcount(~excluded, group_starts, lens)
        scanned = ~excluded & (scanned_rank <= scan)
        cls = lists.reply_class[idx]
        ok = (cls == ReplyClass.PASS) | (cls == ReplyClass.RETWEET)
        ok |= (cls == ReplyClass.IF_FOLLOWS) & _in_sorted(
            following_sorted, lists.in_reply_to_user_id[idx]
        )
        ok &= lists.source_user_id[idx] != viewer
        ok &= scanned
        ok_rank = _group_cumcount(ok, group_starts, lens)
        chosen = ok & (ok_rank <= take)
        got = np.add.reduceat(chosen, group_starts) if len(idx) else np.zeros(0, int)
        n_scanned = np.add.reduceat(scanned, group_starts) if len(idx) else np.zeros(0, int)
        done = (got >= take) | (window >= total) | (n_scanned >= scan)
        done_elems = np.repeat(done, lens)
        taken.append(idx[chosen & done_elems])
        start, total, window = (
            start[~done],
            total[~done],
            np.minimum(total[~done], window[~done] * 2),
        )
    return np.concatenate(taken) if taken else np.zeros(0, np.int64)


def in_network_posts(
    store: ThunderStore, request: InNetworkRequest, config: ThunderConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Rows of `store.posts` for the viewer, newest first (ties: larger post id first).

    Returns:
        [K] int64 rows, K <= max_results.
    """
    following = np.asarray(request.following, np.int64)[: config.max_input_list]
    following = following[~np.isin(following, np.asarray(config.blacklist, np.int64))]
    exclude = np.unique(np.asarray(request.exclude, np.int64)[: config.max_input_list])
    authors = np.unique(following)  # order does not matter: the merge sorts by time
    following_sorted = authors
    if request.video:
        plan = [(Kind.VIDEO, config.max_video)]
        limit = request.max_results or config.max_results_video
    else:
        plan = [(Kind.ORIGINAL, config.max_originals), (Kind.SECONDARY, config.max_secondary)]
        limit = request.max_results or config.max_results
    rows, created, pids = [], [], []
    for kind, take in plan:
        lists = store.lists[kind]
        idx = _take_from_list(
            lists,
            authors,
            request.viewer_id,
            following_sorted,
            exclude,
            take,
            config.scan_per_author,
        )
        rows.append(lists.row[idx])
        created.append(lists.created_ms[idx])
        pids.append(lists.post_id[idx])
    rows, created, pids = np.concatenate(rows), np.concatenate(created), np.concatenate(pids)
    order = np.lexsort((-pids, -created))[:limit]
    return rows[order]
