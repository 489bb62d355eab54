"""The fetch index: one row per author with everything the in-network fetch needs to start.

Per author (ascending id) and list kind: where the author's group starts in the combined entry
arrays, its length, its global group number, and how many of its entries were created at or after
each of J fixed time points (newest entry time − 15 min · 2^j, j = 0 … J−1). One row is one
contiguous int32 record, so starting a request costs one binary search and one row gather per
followed author; the counts let the fetch size every author's first read window so that, before
filtering, the `max_results` newest posts are covered in one pass (homemixer_spec.md §10.3 is
unchanged: the scan and its limits are the same, only fewer passes are needed).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from thunder.rules import Kind

if TYPE_CHECKING:
    from thunder.store import ThunderStore

NUM_TIME_POINTS = 10
BASE_STEP_MS = 15 * 60_000
FIELDS = ("start", "length", "group")  # then the J counts
WIDTH = len(FIELDS) + NUM_TIME_POINTS  # int32 columns per kind


@dataclasses.dataclass(frozen=True)
class FetchIndex:
    authors: np.ndarray  # [U] int64 ascending: every author of any kind
    table: np.ndarray  # [U, len(Kind) * WIDTH] int32, kinds in Kind order
    time_points: np.ndarray  # [J] int64 ms, newest first

    def rows(self, authors: np.ndarray) -> np.ndarray:
        """Rows of the given (ascending, unique) author ids that have any list. [F] -> [F', W·K]"""
        at = np.searchsorted(self.authors, authors)
        if len(self.authors):
            at = at[self.authors[np.minimum(at, len(self.authors) - 1)] == authors]
        else:
            at = at[:0]
        return self.table[at]

    @staticmethod
    def kind_columns(rows: np.ndarray, kind: Kind) -> np.ndarray:
        """The WIDTH columns of one kind: start, length, group, counts[J]."""
        k = list(Kind).index(kind)
        return rows[:, k * WIDTH : (k + 1) * WIDTH]


def order_keys(store: ThunderStore) -> tuple[np.ndarray, int, int]:
    """A sorted key over the combined entries (group, then newest first):
    key = group · span + (newest − created). Built once per store and cached on it."""
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


def entries_since(store: ThunderStore, group: np.ndarray, start: np.ndarray, threshold):
    """Per group (global group number, first entry in the combined arrays): how many of its
    entries were created at or after `threshold` (a scalar or one per group)."""
    key, newest, span = order_keys(store)
    target = group * span + np.clip(newest - threshold, -1, span - 1)
    return np.searchsorted(key, target, side="right") - start


def build_fetch_index(store: ThunderStore) -> FetchIndex:
    """The index of a store (vectorised; about half a second for 6 M entries)."""
    created = store.entries["created_ms"]
    newest = int(created.max()) if len(created) else 0
    points = newest - BASE_STEP_MS * (2 ** np.arange(NUM_TIME_POINTS, dtype=np.int64))
    if len(created) >= 2**31:
        raise ValueError("fetch index: more than 2^31 entries")
    union = np.unique(np.concatenate([store.lists[k].authors for k in Kind]))
    table = np.zeros((len(union), len(Kind) * WIDTH), np.int32)
    group_base = 0
    for i, kind in enumerate(Kind):
        lists = store.lists[kind]
        n = len(lists.authors)
        cols = table[:, i * WIDTH : (i + 1) * WIDTH]
        if n:
            pos = np.minimum(np.searchsorted(lists.authors, union), n - 1)
            present = lists.authors[pos] == union
            start = lists.offsets[pos] + lists.base
            group = pos + group_base
            cols[:, 0] = np.where(present, start, 0)
            cols[:, 1] = np.where(present, lists.offsets[pos + 1] - lists.offsets[pos], 0)
            cols[:, 2] = group
            for j, t in enumerate(points):
                cols[:, 3 + j] = np.where(present, entries_since(store, group, start, t), 0)
        group_base += n
    return FetchIndex(union, table, points)
