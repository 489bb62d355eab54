"""Serving a viewer: in-network candidates from the store (homemixer_spec.md §10.3).

For each followed author and list kind: scan newest -> oldest, skip excluded ids, look at no more
than `scan_per_author` non-excluded entries, skip retweets of the viewer's own posts, apply the
reply rule (secondary lists), take up to the per-author limit. Then merge, newest first, and
truncate to `max_results`.

Vectorised over authors with a threshold scan: each author's list is read through a small window
of its newest entries; once `max_results` posts are chosen, the time of the last one is a
threshold, and only authors whose window ends at or after it (and could still yield posts) are
read further, with doubled windows. The result equals the full scan.
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
    """Per element: number of True in `mask` at or before it within its (contiguous) group."""
    c = np.cumsum(mask)
    before = np.where(group_starts > 0, c[np.maximum(group_starts - 1, 0)], 0)
    return c - np.repeat(before, lens)


@dataclasses.dataclass
class _Scan:
    """One list kind's scan state over the followed authors present in it."""

    lists: PostingLists
    take: int
    pos: np.ndarray  # [A] each author's position in `lists.authors`
    start: np.ndarray  # [A] first entry of each author
    total: np.ndarray  # [A] entries of each author
    window: np.ndarray  # [A] entries read so far
    open: np.ndarray  # [A] bool: reading further could still yield posts
    last: np.ndarray  # [A] created_ms of each author's last read entry
    chosen: np.ndarray  # [K] entry indices chosen so far
    chosen_author: np.ndarray  # [K] the author (0..A-1) of each chosen entry

    def step(
        self, sel: np.ndarray, viewer: int, following: np.ndarray, exclude: np.ndarray, scan: int
    ) -> None:
        """(Re-)evaluate the windows of authors `sel` and replace their results."""
        lens = self.window[sel]
        start = self.start[sel]
        group_starts = np.cumsum(lens) - lens
        idx = np.repeat(start - group_starts, lens) + np.arange(int(lens.sum()))
        lst = self.lists
        if len(exclude):
            excluded = _in_sorted(exclude, lst.post_id[idx])
            scanned = ~excluded & (_group_cumcount(~excluded, group_starts, lens) <= scan)
        else:
            scanned = (idx - np.repeat(start, lens)) < scan
        cls = lst.reply_class[idx]
        ok = (cls == ReplyClass.PASS) | (cls == ReplyClass.RETWEET)
        cond = np.flatnonzero(cls == ReplyClass.IF_FOLLOWS)
        ok[cond] = _in_sorted(following, lst.in_reply_to_user_id[idx[cond]])
        ok &= scanned & (lst.source_user_id[idx] != viewer)
        chosen = ok & (_group_cumcount(ok, group_starts, lens) <= self.take)
        if len(idx):
            got = np.add.reduceat(chosen, group_starts)
            n_scanned = np.add.reduceat(scanned, group_starts)
        else:
            got = n_scanned = np.zeros(len(lens), np.int64)
        self.open[sel] = (got < self.take) & (lens < self.total[sel]) & (n_scanned < scan)
        self.last[sel] = lst.created_ms[np.maximum(start + lens - 1, 0)]
        keep = ~np.isin(self.chosen_author, sel)
        self.chosen = np.concatenate([self.chosen[keep], idx[chosen]])
        self.chosen_author = np.concatenate(
            [self.chosen_author[keep], np.repeat(sel, lens)[chosen]]
        )


def _entries_since(lists: PostingLists, pos: np.ndarray, threshold: int) -> np.ndarray:
    """Per author (position in `lists.authors`): entries created at or after `threshold`.

    One searchsorted over a key that orders entries as the lists do (author ascending, newest
    first): key = author_pos · (span + 1) + (newest − created). Built once per list and cached.
    """
    keys = getattr(lists, "_order_keys", None)
    if keys is None:
        created = lists.created_ms
        newest = int(created.max()) if len(created) else 0
        span = newest - int(created.min()) + 1 if len(created) else 1
        author_pos = np.repeat(np.arange(len(lists.authors)), np.diff(lists.offsets))
        keys = (author_pos * span + (newest - created), newest, span)
        lists._order_keys = keys
    key, newest, span = keys
    target = pos * span + np.clip(newest - threshold, -1, span - 1)
    return np.searchsorted(key, target, side="right") - lists.offsets[pos]


def _start_scan(lists: PostingLists, authors: np.ndarray, take: int, window: int) -> _Scan:
    has = _in_sorted(lists.authors, authors)
    pos = np.searchsorted(lists.authors, authors[has])
    start = lists.offsets[pos]
    total = lists.offsets[pos + 1] - start
    n, empty = len(start), np.zeros(0, np.int64)
    return _Scan(
        lists, take, pos, start, total, np.minimum(total, window), np.zeros(n, bool),
        np.zeros(n, np.int64), empty, empty,
    )  # fmt: skip


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
    authors = np.unique(following)  # list order does not matter: the merge sorts by time
    if request.video:
        plan = [(Kind.VIDEO, config.max_video)]
        limit = request.max_results or config.max_results_video
    else:
        plan = [(Kind.ORIGINAL, config.max_originals), (Kind.SECONDARY, config.max_secondary)]
        limit = request.max_results or config.max_results
    first_window = max(2, -(-2 * limit // max(len(authors), 1)))
    scans = [
        _start_scan(store.lists[k], authors, take, min(take, first_window)) for k, take in plan
    ]
    todo = [np.arange(len(s.start)) for s in scans]
    threshold, created = None, np.zeros(0, np.int64)
    while any(len(sel) for sel in todo):
        for s, sel in zip(scans, todo, strict=True):
            if len(sel):
                s.step(sel, request.viewer_id, authors, exclude, config.scan_per_author)
        created = np.concatenate([s.lists.created_ms[s.chosen] for s in scans])
        # Once `limit` posts are chosen, only authors still read at or after the limit-th
        # newest time can change the answer; read those further.
        threshold = np.partition(created, -limit)[-limit] if len(created) >= limit else None
        todo = []
        for s in scans:
            need = s.open if threshold is None else s.open & (s.last >= threshold)
            sel = np.flatnonzero(need)
            grow = s.window[sel] * 2
            if threshold is not None:  # jump to the first entry older than the threshold
                grow = np.maximum(grow, _entries_since(s.lists, s.pos[sel], threshold) + 1)
            s.window[sel] = np.minimum(s.total[sel], grow)
            todo.append(sel)
    rows = np.concatenate([s.lists.row[s.chosen] for s in scans])
    pids = np.concatenate([s.lists.post_id[s.chosen] for s in scans])
    if threshold is not None:
        keep = created >= threshold
        rows, pids, created = rows[keep], pids[keep], created[keep]
    order = np.lexsort((-pids, -created))[:limit]
    return rows[order]
