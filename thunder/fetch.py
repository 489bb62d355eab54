"""Serving a viewer: in-network candidates from the store (homemixer_spec.md §10.3).

For each followed author and list kind: scan newest -> oldest, skip excluded ids, look at no more
than `scan_per_author` non-excluded entries, skip retweets of the viewer's own posts, apply the
reply rule (secondary lists), take up to the per-author limit. Then merge, newest first, and
truncate to `max_results`.

Vectorised over authors with a threshold scan: each author's list is read through a window of its
newest entries, sized from the fetch index (thunder.index) so that one pass usually covers the
`max_results` newest posts; once they are chosen, the time of the last one is a threshold, and
only authors whose window ends at or after it (and could still yield posts) are read further,
straight past it. The result equals the full scan.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from thunder.config import DEFAULT_CONFIG, ThunderConfig
from thunder.index import FetchIndex, build_fetch_index, entries_since
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


def fetch_index(store: ThunderStore) -> FetchIndex:
    """The store's fetch index (built with the store or loaded with its snapshot; built here and
    cached for a snapshot written without one)."""
    if store.fetch_index is None:
        store.fetch_index = build_fetch_index(store)
    return store.fetch_index


def _start_scan(store: ThunderStore, plan, authors: np.ndarray, limit: int) -> _Scan:
    """Groups of every (kind, followed author present in that kind's lists), with first windows
    sized from the index counts: the newest time point whose entries (each group capped at its
    kind's limit) reach `limit` posts; groups with nothing that new start closed-but-open (read
    later only if filtering pushes the threshold past that point)."""
    index = fetch_index(store)
    rows = index.rows(authors)  # [F', W·K]
    parts, takes = [], []
    for kind, take in plan:
        cols = FetchIndex.kind_columns(rows, kind)
        cols = cols[cols[:, 1] > 0]
        parts.append(cols)
        takes.append(np.full(len(cols), take, np.int64))
    cols = np.concatenate(parts).astype(np.int64)
    take = np.concatenate(takes)
    start, total, group, counts = cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3:]
    covered = np.minimum(counts, take[:, None]).sum(axis=0)  # [J], growing with j
    j = int(np.argmax(covered >= limit)) if len(covered) and covered[-1] >= limit else -1
    newer = counts[:, j] if len(covered) else np.zeros(len(start), np.int64)
    n, empty = len(start), np.zeros(0, np.int64)
    scan = _Scan(
        store.entries, take, group, start, total,
        np.minimum(np.minimum(newer + 1, total), 2 * take),  # +1: see where the group goes on
        np.zeros(n, bool), np.zeros(n, np.int64), empty, empty,
    )  # fmt: skip
    untouched = newer == 0
    scan.window[untouched] = 0
    scan.open[untouched] = True
    scan.last[untouched] = index.time_points[j] if len(covered) else 0
    return scan


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
    scan = _start_scan(store, plan, authors, limit)
    sel = np.flatnonzero(scan.window > 0)
    threshold, created = None, np.zeros(0, np.int64)
    while len(sel):
        scan.step(sel, request.viewer_id, authors, exclude, config.scan_per_author)
        created = store.entries["created_ms"][scan.chosen]
        # Once `limit` posts are chosen, only groups still read at or after the limit-th newest
        # time can change the answer: read those further, straight past the threshold.
        threshold = np.partition(created, -limit)[-limit] if len(created) >= limit else None
        need = scan.open if threshold is None else scan.open & (scan.last >= threshold)
        sel = np.flatnonzero(need)
        grow = np.maximum(scan.window[sel] * 2, 2)
        if threshold is not None and len(sel):
            since = entries_since(store, scan.group[sel], scan.start[sel], threshold)
            grow = np.maximum(grow, since + 1)
        scan.window[sel] = np.minimum(scan.total[sel], grow)
    rows = store.entries["row"][scan.chosen]
    pids = store.entries["post_id"][scan.chosen]
    if threshold is not None:
        keep = created >= threshold
        rows, pids, created = rows[keep], pids[keep], created[keep]
    order = np.lexsort((-pids, -created))[:limit]
    return rows[order]
