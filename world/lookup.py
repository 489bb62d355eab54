"""Row lookups: the row of each id in a sorted id array, through a hash table (`IdIndex`), and
the values of a mostly-zero column by row (`SparseColumn`).

A feed batch asks for the rows of ~70,000 candidate ids at a time; in a large world's id
arrays (a million posts) a binary search costs ~20 cache-missing steps per id, a hash probe
about one. `IdIndex` is an open-addressing table (linear probing, load ≤ 1/2) of the rows of
the sorted ids, built once with vectorised inserts; it stores rows only (int32: 4 bytes a
slot, 8 MB for a million ids) and compares the ids themselves in the sorted array.
"""

from __future__ import annotations

import numpy as np

_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits of id · 2^64/φ
_EMPTY = np.int32(-1)
PROBES = 3  # probe rounds before the ids still unresolved are binary-searched


class IdIndex:
    """The rows of a sorted int64 id array [N], looked up by id (the first row of an id)."""

    def __init__(self, sorted_ids: np.ndarray):
        ids = np.asarray(sorted_ids, np.int64)
        if len(ids) >= np.iinfo(np.int32).max // 2:
            raise ValueError(f"IdIndex: {len(ids)} ids is more than int32 rows address")
        self.ids = ids  # [N]
        self._bits = max(4, int(2 * max(len(ids), 1) - 1).bit_length())  # 2^bits >= 2N
        self._mask = (1 << self._bits) - 1
        self._table = np.full(1 << self._bits, _EMPTY, np.int32)  # [2^bits] row or -1
        # rows still to place: the first of each id (a repeated id answers its first row, as
        # a left binary search does)
        pending = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]] if len(ids) else ids)
        slot = self._home(ids)  # [N]
        while len(pending):
            s = slot[pending]
            free = self._table[s] == _EMPTY
            # of several rows probing one free slot, the first takes it; the rest move on
            cand, at = pending[free], s[free]
            _, first = np.unique(at, return_index=True)
            self._table[at[first]] = cand[first].astype(np.int32)
            placed = np.zeros(len(pending), bool)
            placed[np.flatnonzero(free)[first]] = True
            pending = pending[~placed]
            slot[pending] = (slot[pending] + 1) & self._mask

    def _home(self, ids: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            h = ids.astype(np.uint64) * _MULT
        return (h >> np.uint64(64 - self._bits)).astype(np.int64)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id [M] in the sorted ids, −1 when absent -> [M] int64."""
        ids = np.asarray(ids, np.int64)
        out = np.full(len(ids), -1, np.int64)
        if not len(ids) or not len(self.ids):
            return out
        pending = np.arange(len(ids), dtype=np.int64)
        slot = self._home(ids)  # [M]
        for _ in range(PROBES):
            r = np.take(self._table, slot).astype(np.int64)  # [P]
            hit = r >= 0
            same = np.zeros(len(pending), bool)
            same[hit] = np.take(self.ids, r[hit]) == ids[pending[hit]]
            out[pending[same]] = r[same]
            more = hit & ~same  # an occupied slot of another id: probe the next one
            pending, slot = pending[more], (slot[more] + 1) & self._mask
            if not len(pending):
                return out
        # the few ids displaced further (a probe round costs as much for them as for all):
        # a binary search in the sorted ids
        pos = np.minimum(np.searchsorted(self.ids, ids[pending]), len(self.ids) - 1)
        out[pending] = np.where(self.ids[pos] == ids[pending], pos, -1)
        return out

    @property
    def nbytes(self) -> int:
        return int(self._table.nbytes)


class SparseColumn:
    """A mostly-zero int64 column [N] read by row: the nonzero values [Z] (and a trailing 0)
    and, per row, the slot of its value [N] int32 (−1: the trailing 0). Columns nonzero on the
    same rows share one slot array (a reply's parent post, parent user and conversation ids).
    `column[rows]` gives the dense values [M] int64, as the dense column's indexing would."""

    def __init__(self, slots: np.ndarray, values: np.ndarray):
        self.slots = slots  # [N] int32
        self.values = np.r_[np.asarray(values, np.int64), np.int64(0)]  # [Z + 1]
        self.dtype = self.values.dtype

    def __len__(self) -> int:
        return len(self.slots)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.values[self.slots[rows]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.values[self.slots].astype(dtype or self.dtype, copy=False)


def sparse_columns(
    columns: dict[str, np.ndarray], max_fill: float = 0.25
) -> dict[str, np.ndarray | SparseColumn]:
    """The int64 columns [N] with at most `max_fill` of their rows nonzero as SparseColumns
    (12 bytes a nonzero row and 4 a row, shared by columns nonzero on the same rows, instead of
    8 a row); the others as they are."""
    out: dict[str, np.ndarray | SparseColumn] = {}
    shared: list[tuple[np.ndarray, np.ndarray]] = []  # (nonzero rows [Z], slots [N])
    for name, col in columns.items():
        rows = np.flatnonzero(col)
        if len(col) >= np.iinfo(np.int32).max or len(rows) > max_fill * len(col):
            out[name] = col
            continue
        slots = next((s for r, s in shared if np.array_equal(r, rows)), None)
        if slots is None:
            slots = np.full(len(col), -1, np.int32)
            slots[rows] = np.arange(len(rows), dtype=np.int32)
            shared.append((rows, slots))
        out[name] = SparseColumn(slots, col[rows])
    return out
