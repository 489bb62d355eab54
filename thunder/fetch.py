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
from thunder.store import ThunderStore


@dataclasses.dataclass(frozen=True)
class InNetworkRequest:
    viewer_id: int
    following: np.ndarray  # [F] int64, in list order
    exclude: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    video: bool = False
    max_results: int = 0  # 0 -> the config's default (1200, or 600 for video)


# Which reply classes pass without a per-viewer check, indexed by class value.
_PASSES = np.zeros(max(ReplyClass) + 1, bool)
_PASSES[[ReplyClass.PASS, ReplyClass.RETWEET]] = True
_IF_FOLLOWS = np.int8(ReplyClass.IF_FOLLOWS)


def _in_sorted(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Membership of x in an ascending array."""
    if len(sorted_values) == 0:
        return np.zeros(len(x), bool)
    pos = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
    return sorted_values[pos] == x


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    s = np.sort(x)
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def _group_cumcount(mask: np.ndarray, group_starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Per element: number of True in `mask` at or before it within its (contiguous) group."""
    c = np.cumsum(mask)
    before = np.where(group_starts > 0, c[np.maximum(group_starts - 1, 0)], 0)
    return c - np.repeat(before, lens)


@dataclasses.dataclass
class _Scan:
    """Scan state over (kind, followed author) groups; entries are the store's combined arrays."""

    entries: dict[str, np.ndarray]
    take: np.ndarray  # [G] per-author limit of the group's kind
    group: np.ndarray  # [G] global group index (kinds in Kind order, authors ascending)
    start: np.ndarray  # [G] first entry of each group
    total: np.ndarray  # [G] entries of each group
    window: np.ndarray  # [G] entries read so far
    open: np.ndarray  # [G] bool: reading further could still yield posts
    last: np.ndarray  # [G] created_ms of each group's last read entry
    chosen: np.ndarray  # [K] entry indices chosen so far
    chosen_group: np.ndarray  # [K] the group (0..G-1) of each chosen entry

    def step(
        self, sel: np.ndarray, viewer: int, following: np.ndarray, exclude: np.ndarray, scan: int
    ) -> None:
        """(Re-)evaluate the windows of groups `sel` and replace their results."""
        lens = self.window[sel]
        start = self.start[sel]
        group_starts = np.cumsum(lens) - lens
        idx = np.repeat(start - group_starts, lens) + np.arange(int(lens.sum()))
        e = self.entries
        if len(exclude):
            excluded = _in_sorted(exclude, e["post_id"][idx])
            scanned = ~excluded & (_group_cumcount(~excluded, group_starts, lens) <= scan)
        else:
            scanned = (idx - np.repeat(start, lens)) < scan
        cls = e["reply_class"][idx]
        ok = _PASSES[cls]
        cond = np.flatnonzero(cls == _IF_FOLLOWS)
        if len(cond):
            ok[cond] = _in_sorted(following, e["in_reply_to_user_id"][idx[cond]])
        ok &= scanned & (e["source_user_id"][idx] != viewer)
        take = self.take[sel]
        chosen = ok & (_group_cumcount(ok, group_starts, lens) <= np.repeat(take, lens))
        if len(idx):
            got = np.add.reduceat(chosen, group_starts)
            n_scanned = np.add.reduceat(scanned, group_starts)
        else:
            got = n_scanned = np.zeros(len(lens), np.int64)
        self.open[sel] = (got < take) & (lens < self.total[sel]) & (n_scanned < scan)
        self.last[sel] = e["created_ms"][np.maximum(start + lens - 1, 0)]
        redone = np.zeros(len(self.start), bool)
        redone[sel] = True
        keep = ~redone[self.chosen_group]
        self.chosen = np.concatenate([self.chosen[keep], idx[chosen]])
        self.chosen_group = np.concatenate([self.chosen_group[keep], np.repeat(sel, lens)[chosen]])


def _order_keys(store: ThunderStore) -> tuple[np.ndarray, int, int]:
    """A sorted key over the combined entries (group, then newest first):
    key = group · (span + 1) + (newest − created). Built once per store and cached."""
    cached = getattr(store, "_order_keys", None)
    if cached is None:
        created = store.entries["created_ms"]
        newest = int(created.max()) if len(created) else 0
        span = newest - int(created.min()) + 1 if len(created) else 1
        sizes = np.concatenate([np.diff(store.lists[k].offsets) for k in Kind])
        group = np.repeat(np.arange(len(sizes)), sizes)
        cached = (group * span + (newest - created), newest, span)
        store._order_keys = cached
    return cached


def _entries_since(store: ThunderStore, group: np.ndarray, start: np.ndarray, threshold: int):
    """Per group: how many of its entries were created at or after `threshold`."""
    key, newest, span = _order_keys(store)
    target = group * span + np.clip(newest - threshold, -1, span - 1)
    return np.searchsorted(key, target, side="right") - start


def _start_scan(store: ThunderStore, plan, authors: np.ndarray, window: int) -> _Scan:
    """Groups of every (kind, followed author present in that kind's lists)."""
    group_base = dict(
        zip(Kind, np.cumsum([0] + [len(store.lists[k].authors) for k in Kind]), strict=False)
    )
    takes, groups, starts, totals = [], [], [], []
    for kind, take in plan:
        lists = store.lists[kind]
        if len(lists.authors):
            pos = np.minimum(np.searchsorted(lists.authors, authors), len(lists.authors) - 1)
            pos = pos[lists.authors[pos] == authors]
        else:
            pos = np.zeros(0, np.int64)
        start = lists.offsets[pos]
        starts.append(start + lists.base)
        totals.append(lists.offsets[pos + 1] - start)
        groups.append(pos + group_base[kind])
        takes.append(np.full(len(pos), take))
    start, total = np.concatenate(starts), np.concatenate(totals)
    n, empty = len(start), np.zeros(0, np.int64)
    return _Scan(
        store.entries, np.concatenate(takes), np.concatenate(groups), start, total,
        np.minimum(total, window), np.zeros(n, bool), np.zeros(n, np.int64), empty, empty,
    )  # fmt: skip


def in_network_posts(
    store: ThunderStore, request: InNetworkRequest, config: ThunderConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Rows of `store.posts` for the viewer, newest first (ties: larger post id first).

    Returns:
        [K] int64 rows, K <= max_results.
    """
    following = np.asarray(request.following, np.int64)[: config.max_input_list]
    for blocked in config.blacklist:
        following = following[following != blocked]
    exclude = _sorted_unique(np.asarray(request.exclude, np.int64)[: config.max_input_list])
    authors = _sorted_unique(following)  # list order does not matter: the merge sorts by time
    if request.video:
        plan = [(Kind.VIDEO, config.max_video)]
        limit = request.max_results or config.max_results_video
    else:
        plan = [(Kind.ORIGINAL, config.max_originals), (Kind.SECONDARY, config.max_secondary)]
        limit = request.max_results or config.max_results
    window = max(2, -(-2 * limit // max(len(authors), 1)))
    scan = _start_scan(store, plan, authors, window)
    sel = np.arange(len(scan.start))
    threshold, created = None, np.zeros(0, np.int64)
    while len(sel):
        scan.step(sel, request.viewer_id, authors, exclude, config.scan_per_author)
        created = store.entries["created_ms"][scan.chosen]
        # Once `limit` posts are chosen, only groups still read at or after the limit-th newest
        # time can change the answer: read those further, straight past the threshold.
        threshold = np.partition(created, -limit)[-limit] if len(created) >= limit else None
        need = scan.open if threshold is None else scan.open & (scan.last >= threshold)
        sel = np.flatnonzero(need)
        grow = scan.window[sel] * 2
        if threshold is not None and len(sel):
            since = _entries_since(store, scan.group[sel], scan.start[sel], threshold)
            grow = np.maximum(grow, since + 1)
        scan.window[sel] = np.minimum(scan.total[sel], grow)
    rows = store.entries["row"][scan.chosen]
    pids = store.entries["post_id"][scan.chosen]
    if threshold is not None:
        keep = created >= threshold
        rows, pids, created = rows[keep], pids[keep], created[keep]
    order = np.lexsort((-pids, -created))[:limit]
    return rows[order]
