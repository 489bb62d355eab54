"""Candidates as columns: the form in which a batch of requests flows through the pipeline.

`Cands` holds one numpy array per `PostCandidate` field plus `req`, the index of each row's
request in the batch. Fields that may be None carry a null mask beside their values; tuple and
text fields are object arrays; `probs` is a [N, H] float64 matrix over `heads` (NaN = that head
is absent for that row). A single request is a batch of one; `PostCandidate` objects exist only
at the edges (the JSONL stage streams, explain, the table of `rank`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.candidates import PostCandidate

# field -> (numpy dtype, nullable, default)
FIELDS: dict[str, tuple[Any, bool, Any]] = {}
for _f in dataclasses.fields(PostCandidate):
    _t = str(_f.type)
    _null = "None" in _t
    if _f.name == "probs":
        continue
    if _t.startswith(("tuple", "str")):
        _dt = object
    elif _t.startswith("bool"):
        _dt = np.bool_
    elif _t.startswith("int"):
        _dt = np.int64
    elif _t.startswith("float"):
        _dt = np.float64
    else:  # pragma: no cover - a new field type must be mapped here
        raise TypeError(f"no column type for PostCandidate.{_f.name}: {_t}")
    FIELDS[_f.name] = (_dt, _null, _f.default)
NAMES = (*FIELDS, "probs")  # PostCandidate field order, probs last of the scored ones


def _fill(dtype, default, n: int) -> np.ndarray:
    if dtype is object:
        out = np.empty(n, object)
        out.fill(default)
        return out
    return np.full(n, 0 if default is None else default, dtype)


def object_array(values: Sequence) -> np.ndarray:
    """A 1-D object array of arbitrary Python values (tuples stay whole)."""
    out = np.empty(len(values), object)
    out[:] = list(values)
    return out


def nonzero_tuples(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N] object array: per row the tuple of the non-zero values of (a[i], b[i]), in that
    order (e.g. a candidate's ancestors: parent, root). Built without a Python loop per row."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    out = np.empty(len(a), object)
    out.fill(())
    for mask, cols in (((a != 0) & (b != 0), (a, b)), ((a != 0) & (b == 0), (a,)),
                       ((a == 0) & (b != 0), (b,))):  # fmt: skip
        k = int(mask.sum())
        if k:
            out[mask] = np.fromiter(zip(*(c[mask].tolist() for c in cols), strict=True), object, k)
    return out


def tuple_lengths(values: np.ndarray) -> np.ndarray:
    """[N] int64 lengths of an object column of tuples."""
    return np.fromiter(map(len, values), np.int64, len(values))


class _Lazy(Mapping):
    """A read-only view of a Cands' columns (or nulls): each gathered on first access."""

    __slots__ = ("_c", "_nulls")

    def __init__(self, c: Cands, nulls: bool):
        self._c, self._nulls = c, nulls

    def _store(self) -> dict:
        return self._c._nulls if self._nulls else self._c._cols

    def __getitem__(self, name: str) -> np.ndarray:
        return self._c._column(name, self._nulls)

    def __contains__(self, name: object) -> bool:
        return name in self._store()

    def __iter__(self):
        return iter(self._store())

    def __len__(self) -> int:
        return len(self._store())


class Cands:
    """Columns of N candidates of a batch of requests (rows grouped by request, in order).

    `take` is lazy: a derived Cands shares its parent's arrays with a row index, and a column
    is gathered only when read (a filter reads a few of ~40 columns)."""

    __slots__ = ("req", "_cols", "_nulls", "_cache", "heads")

    def __init__(
        self,
        req: np.ndarray,  # [N] int64 request index within the batch
        cols: Mapping[str, np.ndarray] | None = None,  # field -> [N] (probs: [N, H])
        nulls: Mapping[str, np.ndarray] | None = None,  # nullable field -> [N] bool (True = None)
        heads: tuple[str, ...] = (),
    ):
        self.req = np.asarray(req, np.int64)
        # name -> (base array, row index into it or None); gathered columns cached
        self._cols = {k: (v, None) for k, v in (cols or {}).items()}
        self._nulls = {k: (v, None) for k, v in (nulls or {}).items()}
        self._cache: dict[tuple[bool, str], np.ndarray] = {}
        self.heads = tuple(heads)

    def __len__(self) -> int:
        return len(self.req)

    @property
    def cols(self) -> Mapping[str, np.ndarray]:
        """field -> [N] values (probs: [N, H]); read-only, gathered on access."""
        return _Lazy(self, False)

    @property
    def nulls(self) -> Mapping[str, np.ndarray]:
        """nullable field -> [N] bool; read-only, gathered on access."""
        return _Lazy(self, True)

    def _column(self, name: str, null: bool) -> np.ndarray:
        base, idx = (self._nulls if null else self._cols)[name]
        if idx is None:
            return base
        key = (null, name)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = base[idx]
        return out

    def set_null(self, name: str, mask: np.ndarray) -> None:
        """Replace a field's null mask [N] (in place)."""
        self._nulls[name] = (np.asarray(mask, bool), None)
        self._cache.pop((True, name), None)

    # ---- reading ------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self._cols

    def get(self, name: str) -> np.ndarray:
        """Values [N] of a field (the default where never set; 0 / False / NaN under nulls)."""
        if name in self._cols:
            return self._column(name, False)
        dtype, _, default = FIELDS[name]
        if dtype is np.float64 and default is None:
            return np.full(len(self), np.nan)
        return _fill(dtype, default, len(self))

    def null(self, name: str) -> np.ndarray:
        """[N] bool: True where the field is None."""
        if name == "probs":
            if "probs" in self._nulls:
                return self._column("probs", True)
            return np.ones(len(self), bool)
        _, nullable, default = FIELDS[name]
        if not nullable:
            return np.zeros(len(self), bool)
        if name in self._nulls:
            return self._column(name, True)
        if name in self._cols and default is None and FIELDS[name][0] is object:
            return np.fromiter((x is None for x in self.get(name)), bool, len(self))
        return np.full(len(self), default is None and name not in self._cols)

    def is_true(self, name: str) -> np.ndarray:
        """[N] bool: the field is True (not None, not False)."""
        return self.get(name).astype(bool) & ~self.null(name)

    def probs(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(heads, [N, H] float64; NaN where a row lacks a head or has no probs)."""
        if "probs" not in self._cols:
            return self.heads, np.full((len(self), 0), np.nan)
        return self.heads, self._column("probs", False)

    def prob(self, head: str) -> np.ndarray:
        """[N] probability of one head, 0.0 where absent."""
        if head not in self.heads:
            return np.zeros(len(self))
        col = self._column("probs", False)[:, self.heads.index(head)]
        return np.where(np.isnan(col), 0.0, col)

    # ---- deriving -----------------------------------------------------------------------
    def take(self, idx: np.ndarray) -> Cands:
        """Rows `idx` (an index array or a bool mask), in that order (columns gathered lazily)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out = Cands(self.req[idx], heads=self.heads)
        composed: dict[int, np.ndarray] = {}  # one composition per shared row index

        def rows(old: np.ndarray | None) -> np.ndarray:
            if old is None:
                return idx
            got = composed.get(id(old))
            if got is None:
                got = composed[id(old)] = old[idx]
            return got

        out._cols = {k: (b, rows(i)) for k, (b, i) in self._cols.items()}
        out._nulls = {k: (b, rows(i)) for k, (b, i) in self._nulls.items()}
        return out

    def with_columns(self, columns: Mapping[str, Any]) -> Cands:
        """A copy with columns replaced: an ndarray (no nulls), a list (None = null), a numpy
        masked array (masked = null), or for `probs` a (heads, [N, H] matrix) pair."""
        out = Cands(self.req, heads=self.heads)
        out._cols, out._nulls = dict(self._cols), dict(self._nulls)
        out._cache = {k: v for k, v in self._cache.items() if k[1] not in columns}
        n = len(self)
        for name, value in columns.items():
            if name == "probs":
                heads, matrix = value
                out.heads = tuple(heads)
                out._cols["probs"] = (np.asarray(matrix, np.float64).reshape(n, -1), None)
                out._nulls["probs"] = (np.zeros(n, bool), None)
                continue
            values, mask = column_values(name, value, n)
            out._cols[name] = (values, None)
            if FIELDS[name][1]:
                out._nulls[name] = (mask, None)
        return out

    @staticmethod
    def concat(parts: Sequence[Cands]) -> Cands:
        """Rows of all parts, in order (columns a part lacks take their defaults). A column
        every part takes from the same array stays lazy (its row indices are concatenated)."""
        parts = [p for p in parts if len(p)] or list(parts[:1])
        if not parts:
            return Cands(np.zeros(0, np.int64))
        if len(parts) == 1:
            return parts[0]
        names = [n for n in NAMES if any(p.has(n) for p in parts)]
        heads = tuple(dict.fromkeys(h for p in parts for h in p.heads))
        out = Cands(np.concatenate([p.req for p in parts]), heads=heads)
        joined: dict[tuple[int, ...], np.ndarray] = {}  # one concatenation per index tuple

        def shared(entries: list) -> tuple[np.ndarray, np.ndarray] | None:
            if any(e is None or e[0] is not entries[0][0] for e in entries):
                return None
            key = tuple(id(e[1]) for e in entries)
            idx = joined.get(key)
            if idx is None:
                idx = joined[key] = np.concatenate(
                    [e[1] if e[1] is not None else np.arange(len(e[0])) for e in entries]
                )
            return entries[0][0], idx

        for name in names:
            same_heads = all(p.heads == heads for p in parts)
            lazy = shared([p._cols.get(name) for p in parts])
            if lazy is not None and (name != "probs" or same_heads):
                out._cols[name] = lazy
            elif name == "probs":
                mats = []
                for p in parts:
                    m = np.full((len(p), len(heads)), np.nan)
                    if p.has("probs"):
                        pm = p.cols["probs"]
                        for j, h in enumerate(p.heads):
                            m[:, heads.index(h)] = pm[:, j]
                    mats.append(m)
                out._cols[name] = (np.concatenate(mats), None)
            else:
                out._cols[name] = (np.concatenate([p.get(name) for p in parts]), None)
            if name == "probs" or FIELDS[name][1]:
                lazy = shared([p._nulls.get(name) for p in parts])
                out._nulls[name] = lazy if lazy is not None else (
                    np.concatenate([p.null(name) for p in parts]), None)  # fmt: skip
        return out

    # ---- PostCandidate edges ------------------------------------------------------------
    @staticmethod
    def from_candidates(cands: Sequence[PostCandidate], req: int = 0) -> Cands:
        """Columns of candidate objects, all of request `req`."""
        n = len(cands)
        out = Cands(np.full(n, req, np.int64))
        if not n:
            return out
        columns: dict[str, Any] = {}
        defaults = {f: spec[2] for f, spec in FIELDS.items()}
        for name in FIELDS:
            values = [getattr(c, name) for c in cands]
            if name in ("post_id", "author_id") or any(
                v != defaults[name] or type(v) is not type(defaults[name]) for v in values
            ):
                columns[name] = values
        probs = [c.probs for c in cands]
        if any(p is not None for p in probs):
            heads = tuple(dict.fromkeys(h for p in probs if p for h in p))
            m = np.array([[p.get(h, np.nan) if p is not None else np.nan for h in heads]
                          for p in probs], np.float64).reshape(n, len(heads))  # fmt: skip
            columns["probs"] = (heads, m)
        out = out.with_columns(columns)
        if probs and out.has("probs"):
            out.set_null("probs", np.array([p is None for p in probs]))
        return out

    def to_candidates(self) -> list[PostCandidate]:
        """One PostCandidate per row (exact Python types, None where null)."""
        n = len(self)
        kw: dict[str, list] = {}
        for name in self._cols:
            if name == "probs":
                continue
            vals = self.get(name).tolist()
            if FIELDS[name][1] and name in self._nulls:
                vals = [None if z else v for v, z in zip(vals, self.null(name).tolist(),
                                                           strict=True)]  # fmt: skip
            kw[name] = vals
        if self.has("probs"):
            heads = self.heads
            null = self.null("probs").tolist()
            matrix = self.probs()[1].tolist()
            kw["probs"] = [
                None if z else {h: x for h, x in zip(heads, row, strict=True) if x == x}
                for row, z in zip(matrix, null, strict=True)
            ]  # NaN = head absent
        names = list(kw)
        rows = zip(*(kw[k] for k in names), strict=True) if names else iter([()] * n)
        return [PostCandidate(**dict(zip(names, r, strict=True))) for r in rows]


def column_values(name: str, value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values [N], null mask [N]) of one field from an array, masked array or list."""
    dtype, nullable, default = FIELDS[name]
    if isinstance(value, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(value)
        values = np.asarray(value.filled(0 if dtype is not object else None))
    elif isinstance(value, np.ndarray) and value.dtype != object:
        values, mask = value, np.zeros(len(value), bool)
    elif isinstance(value, np.ndarray) and dtype is object and value.ndim == 1:
        values = value
        mask = np.equal(value, None) if nullable else np.zeros(len(value), bool)
    else:
        seq = list(value)
        mask = np.fromiter((v is None for v in seq), bool, len(seq))
        if dtype is object:
            values = object_array(seq)
        elif mask.any():
            fill = 0 if dtype is not np.float64 else np.nan
            values = np.array([fill if v is None else v for v in seq], dtype)
        else:
            values = np.array(seq, dtype) if seq else np.zeros(0, dtype)
    if len(values) != n:
        raise ValueError(f"length_mismatch expected={n} got={len(values)}")
    if dtype is not object:
        values = values.astype(dtype, copy=False)
    elif values.dtype != object:
        values = object_array(values.tolist())
    if not nullable and mask.any():
        values = values.copy()
        values[mask] = default
        mask = np.zeros(n, bool)
    return values, mask


def request_slices(req: np.ndarray, num_requests: int) -> np.ndarray:
    """[R + 1] offsets: rows of request r are [out[r], out[r + 1]) (rows sorted by request)."""
    return np.searchsorted(req, np.arange(num_requests + 1))


def rank_within(req: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per row: its 0-based position within its request when rows are visited in `order`
    (`order` visits each request's rows contiguously)."""
    r = req[order]
    starts = np.r_[0, np.flatnonzero(r[1:] != r[:-1]) + 1] if len(r) else np.zeros(0, np.int64)
    lens = np.diff(np.r_[starts, len(r)])
    pos = np.empty(len(r), np.int64)
    pos[order] = np.arange(len(r)) - np.repeat(starts, lens)
    return pos
