"""What every filter shares: the result type, upstream's trait defaults, and the vectorised
helpers filters use over a batch of requests.

A filter sees a batch: `queries` (one per request) and `cands`, the candidates as columns (any
object with `req` [N], `get(field)` [N], `null(field)` [N] bool and `is_true(field)` [N] bool,
such as `pipeline.columns.Cands`). It returns which rows it keeps, in output order, and which it
removes with a reason each.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

SNOWFLAKE_EPOCH_MS = 1288834974657


@dataclasses.dataclass(frozen=True)
class FilterResult:
    kept: np.ndarray  # [K] row indices, in output order
    removed: np.ndarray  # [M] row indices
    reasons: list[str]  # [M] why each removed row went


class StageDefaults:
    """Upstream's trait defaults for every pipeline component: enabled, named after the class."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def enable(self, query: Any) -> bool:
        return True


class BaseFilter(StageDefaults):
    """A filter; `partition` applies one vectorised rule."""

    @staticmethod
    def partition(remove: np.ndarray, why: Callable[[np.ndarray], list[str]]) -> FilterResult:
        """Keep rows where `remove` is False (in order); `why(rows)` gives the removed rows'
        reasons."""
        remove = np.asarray(remove, bool)
        gone = np.flatnonzero(remove)
        return FilterResult(np.flatnonzero(~remove), gone, list(why(gone)) if len(gone) else [])


def per_row(queries: Sequence[Any], req: np.ndarray, attr: str, dtype=np.int64) -> np.ndarray:
    """A scalar query attribute for every row: [N]."""
    values = np.array([getattr(q, attr) for q in queries], dtype)
    return values[req] if len(values) else np.zeros(len(req), dtype)


def pair_keys(*arrays: np.ndarray) -> list[np.ndarray]:
    """int64 keys of pairs, comparable across groups: pair_keys(a1, b1, a2, b2, ...) gives one
    key array per (a_i, b_i) group; equal keys <=> equal (a, b) pairs. Both components are
    ranked densely first, so any int64 ids work."""
    firsts, seconds = arrays[0::2], arrays[1::2]
    if len(arrays) == 2 and len(firsts[0]) and firsts[0].min() >= 0:  # (request, value) pairs
        bounds = request_bounds(firsts[0], int(firsts[0].max()) + 1)
        if bounds is not None:  # grouped by request: rank the values request by request
            keys = np.zeros(len(firsts[0]), np.int64)
            base = 0
            for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                if a < b:
                    uniq, inv = np.unique(np.asarray(seconds[0][a:b], np.int64),
                                          return_inverse=True)  # fmt: skip
                    keys[a:b] = base + inv
                    base += len(uniq)
            return [keys]
    lens = [len(x) for x in firsts]
    _, ia = np.unique(np.concatenate([np.asarray(x, np.int64) for x in firsts]),
                      return_inverse=True)  # fmt: skip
    ub, ib = np.unique(np.concatenate([np.asarray(x, np.int64) for x in seconds]),
                       return_inverse=True)  # fmt: skip
    keys = ia.astype(np.int64) * max(len(ub), 1) + ib
    return np.split(keys, np.cumsum(lens)[:-1])


def pair_isin(a: np.ndarray, b: np.ndarray, set_a: np.ndarray, set_b: np.ndarray) -> np.ndarray:
    """[N] bool: is (a[i], b[i]) one of the pairs (set_a[j], set_b[j])?"""
    if not len(a) or not len(set_a):
        return np.zeros(len(a), bool)
    x, y = pair_keys(a, b, set_a, set_b)
    return np.isin(x, y)


def query_pairs(queries: Sequence[Any], attr: str) -> tuple[np.ndarray, np.ndarray]:
    """(request index, id) of every id in each query's `attr` list."""
    lists = [getattr(q, attr) for q in queries]
    lens = [len(x) for x in lists]
    total = sum(lens)
    return (np.repeat(np.arange(len(lists), dtype=np.int64), lens),
            np.fromiter(itertools.chain.from_iterable(lists), np.int64, total))  # fmt: skip


def request_bounds(req: np.ndarray, num_requests: int) -> np.ndarray | None:
    """[R + 1] offsets of each request's rows when rows are grouped by request in ascending
    order (as the pipeline keeps them); None otherwise."""
    if len(req) > 1 and (np.diff(req) < 0).any():
        return None
    return np.searchsorted(req, np.arange(num_requests + 1))


def member(queries: Sequence[Any], attr: str, req: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """[N] bool: is ids[i] in queries[req[i]].<attr>? (One small sorted lookup per request:
    cheaper than ranking the whole batch's ids.)"""
    ids = np.asarray(ids, np.int64)
    bounds = request_bounds(req, len(queries))
    if bounds is None:
        qreq, qids = query_pairs(queries, attr)
        return pair_isin(req, ids, qreq, qids)
    out = np.zeros(len(ids), bool)
    for r, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
        values = getattr(queries[r], attr)
        if a < b and len(values):
            out[a:b] = _isin_sorted(ids[a:b], np.unique(np.asarray(values, np.int64)))
    return out


def _isin_sorted(ids: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(sorted_set, ids), len(sorted_set) - 1)
    return sorted_set[pos] == ids


def first_per_request(req: np.ndarray, key: np.ndarray) -> np.ndarray:
    """[N] bool: the row is the first of its (request, key) pair."""
    if not len(key):
        return np.zeros(0, bool)
    bounds = request_bounds(req, int(req.max()) + 1)
    if bounds is None:
        (k,) = pair_keys(req, key)
        _, first = np.unique(k, return_index=True)  # stable: the first occurrence
        out = np.zeros(len(key), bool)
        out[first] = True
        return out
    out = np.zeros(len(key), bool)
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if a < b:
            _, first = np.unique(key[a:b], return_index=True)
            out[a + first] = True
    return out


def related_hit(cands: Any, queries: Sequence[Any], attr: str) -> np.ndarray:
    """[N] the first of {post, retweeted post, replied-to post} (upstream
    related_post_ids_iter) found in the request's `attr` ids; 0 when none is."""
    hit = np.zeros(len(cands), np.int64)
    for col in ("in_reply_to_post_id", "source_post_id", "post_id"):  # the first wins: last set
        ids = cands.get(col)
        found = (ids != 0) & member(queries, attr, cands.req, ids)
        hit = np.where(found, ids, hit)
    return hit


def related_ids(c: Any) -> tuple[int, ...]:
    """{post, retweeted post, replied-to post} of one candidate object."""
    return tuple(x for x in (c.post_id, c.source_post_id, c.in_reply_to_post_id) if x)
