"""The candidate-pipeline framework: typed stage protocols and the runner that owns the policy.

Mirrors upstream's candidate-pipeline crate (homemixer_spec.md §1), run over a batch of requests
with the candidates as columns (`pipeline.columns.Cands`, rows grouped by request): query
hydrators run per request; sources, hydrators, filters and scorers each run once over the whole
batch (on the rows of the requests that enable them). Sources and hydrators may run concurrently
and are applied in declaration order; filters and scorers run in sequence; hydrator/scorer output
must keep the number of rows (a mismatch is an error for that component); removed candidates are
kept with the filter's name and reason; every component is timed. Offline the default policy is
fail-fast (one clear error); `lenient=True` is upstream's fail-open. A single request is a batch
of one.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from filters.base import FilterResult
from filters.base import StageDefaults as StageDefaults  # re-exported for pipeline components
from pipeline.candidates import PostCandidate
from pipeline.columns import Cands, rank_within

logger = logging.getLogger(__name__)

Q = TypeVar("Q")


class PipelineError(RuntimeError):
    """A component failed under the fail-fast policy (names stage and component)."""


@runtime_checkable
class QueryHydrator(Protocol[Q]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def hydrate(self, query: Q) -> dict[str, Any]:
        """The query fields this hydrator owns (applied with dataclasses.replace)."""
        ...


@runtime_checkable
class Source(Protocol[Q]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def get_candidates(self, queries: Sequence[Q], reqs: np.ndarray) -> Cands:
        """Candidates of the requests `reqs` (indices into `queries`), grouped by request."""
        ...


@runtime_checkable
class Hydrator(Protocol[Q]):
    name: str
    fields: tuple[str, ...]

    def enable(self, query: Q) -> bool: ...
    def hydrate(self, queries: Sequence[Q], cands: Cands) -> Mapping[str, Any]:
        """The owned fields as columns over the rows of `cands` (same length and order)."""
        ...


@runtime_checkable
class Filter(Protocol[Q]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def filter(self, queries: Sequence[Q], cands: Cands) -> FilterResult: ...


@runtime_checkable
class Scorer(Protocol[Q]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def score(self, queries: Sequence[Q], cands: Cands) -> Mapping[str, Any]:
        """Score columns over the rows of `cands` (same length and order)."""
        ...


@runtime_checkable
class Selector(Protocol[Q]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def select(self, queries: Sequence[Q], cands: Cands) -> tuple[np.ndarray, np.ndarray]:
        """(selected rows in feed order, non-selected rows), both grouped by request."""
        ...


@runtime_checkable
class SideEffect(Protocol[Q]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def run(self, queries: Sequence[Q], selected: Cands, non_selected: Cands) -> None: ...


@dataclasses.dataclass(frozen=True)
class Removed:
    candidate: PostCandidate
    stage: str  # "filter" or "post_selection_filter"
    component: str
    reason: str


@dataclasses.dataclass
class PipelineResult(Generic[Q]):
    """One request's result as candidate objects (for the table, explain and the JSONL edge).
    Taken from a batch's columns, each list is built on first read (a `rank --user` table
    reads only the served slots)."""

    query: Q
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)  # lenient mode: what failed
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    batch: BatchResult | None = dataclasses.field(default=None, repr=False)
    index: int = 0  # the request's index in `batch`

    def _part(self, name: str) -> list[PostCandidate]:
        cache = self.__dict__.setdefault("_lists", {})
        if name not in cache:
            if self.batch is None:
                cache[name] = []
            elif name == "removed":
                b, i = self.batch, self.index
                rows = np.flatnonzero(b.removed.req == i)
                gone = b.removed.take(rows).to_candidates()
                cache[name] = [Removed(c, *b.removed_info[r])
                               for c, r in zip(gone, rows.tolist(), strict=True)]  # fmt: skip
            else:
                c = getattr(self.batch, name)
                cache[name] = c.take(c.req == self.index).to_candidates()
        return cache[name]

    @property
    def retrieved(self) -> list[PostCandidate]:  # after hydration
        return self._part("retrieved")

    @property
    def removed(self) -> list[Removed]:
        return self._part("removed")

    @property
    def scored(self) -> list[PostCandidate]:  # after scoring
        return self._part("scored")

    @property
    def selected(self) -> list[PostCandidate]:
        return self._part("selected")

    @property
    def non_selected(self) -> list[PostCandidate]:
        return self._part("non_selected")


def _empty() -> Cands:
    return Cands(np.zeros(0, np.int64))


@dataclasses.dataclass
class BatchResult(Generic[Q]):
    """A batch's result as columns. Removed rows carry (stage, component, reason) in
    `removed_info`, row-aligned with `removed`. Timings are the batch's (a request's share is
    timings / len(queries)); counts are per request."""

    queries: list[Q]
    retrieved: Cands = dataclasses.field(default_factory=_empty)
    removed_parts: list[Cands] = dataclasses.field(default_factory=list)  # in removal order
    removed_info: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    scored: Cands = dataclasses.field(default_factory=_empty)
    selected: Cands = dataclasses.field(default_factory=_empty)
    non_selected: Cands = dataclasses.field(default_factory=_empty)
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    counts: list[dict[str, int]] = dataclasses.field(default_factory=list)

    @property
    def removed(self) -> Cands:
        """Every removed row, in removal order (the parts concatenated once, on first read)."""
        if len(self.removed_parts) != 1:
            self.removed_parts = [Cands.concat(self.removed_parts)]
        return self.removed_parts[0]

    def request(self, i: int) -> PipelineResult:
        """Request i as candidate objects (each list built on first read)."""
        return PipelineResult(query=self.queries[i], timings_ms=dict(self.timings_ms),
                              errors=list(self.errors),
                              counts=dict(self.counts[i]) if self.counts else {}, batch=self,
                              index=i)  # fmt: skip


def _enabled(component, queries: Sequence) -> np.ndarray:
    return np.array([bool(component.enable(q)) for q in queries], bool)


def _rows_of(cands: Cands, on: np.ndarray) -> np.ndarray | None:
    """Rows of the enabled requests (None: every row)."""
    if on.all():
        return None
    return np.flatnonzero(on[cands.req]) if len(cands) else np.zeros(0, np.int64)


@dataclasses.dataclass
class CandidatePipeline(Generic[Q]):
    """Runs the stages in upstream's order (homemixer_spec.md §1.3) over a batch of requests."""

    query_hydrators: list = dataclasses.field(default_factory=list)
    sources: list = dataclasses.field(default_factory=list)
    hydrators: list = dataclasses.field(default_factory=list)
    filters: list = dataclasses.field(default_factory=list)
    scorers: list = dataclasses.field(default_factory=list)
    selector: Any = None
    post_selection_hydrators: list = dataclasses.field(default_factory=list)
    post_selection_filters: list = dataclasses.field(default_factory=list)
    side_effects: list = dataclasses.field(default_factory=list)
    result_size: int | None = None
    lenient: bool = False
    max_workers: int = 4

    # ---- policy ------------------------------------------------------------------------
    def _fail(self, result: BatchResult, stage: str, component: str, exc: BaseException) -> None:
        msg = f"stage={stage} component={component} failed: {exc}"
        if not self.lenient:
            raise PipelineError(msg) from exc
        logger.warning(msg)
        result.errors.append(msg)

    def _timed(self, result: BatchResult, key: str, t0: float) -> None:
        result.timings_ms[key] = result.timings_ms.get(key, 0.0) + (time.perf_counter() - t0) * 1e3

    def _parallel(self, fns: list) -> list:
        if len(fns) <= 1 or self.max_workers <= 1:  # in this thread
            return [_call(f) for f in fns]
        return list(_pool(self.max_workers).map(_call, fns))

    def _count(self, result: BatchResult, key: str, req: np.ndarray) -> None:
        if not result.counts:
            result.counts = [{} for _ in result.queries]
        n = np.bincount(req, minlength=len(result.queries)).tolist()
        for d, x in zip(result.counts, n, strict=True):
            d[key] = d.get(key, 0) + x

    def new_result(self, queries: Sequence[Q]) -> BatchResult:
        return BatchResult(list(queries), counts=[{} for _ in queries])

    # ---- stages ------------------------------------------------------------------------
    def hydrate_queries(self, queries: Sequence[Q], result: BatchResult) -> list[Q]:
        """Each request's query hydrators; the hydrators run concurrently (each over the whole
        batch, one request after another) and are applied in declaration order per request."""
        hydrators = list(self.query_hydrators)
        outcomes = self._parallel([lambda h=h: _each(h, queries) for h in hydrators])
        out = list(queries)
        for h, (ok, per_query, took) in zip(hydrators, outcomes, strict=True):
            key = f"query_hydrator:{h.name}"
            result.timings_ms[key] = result.timings_ms.get(key, 0.0) + took
            if not ok:  # _each itself failed: every request failed in this hydrator
                per_query = [(False, per_query)] * len(queries)
            for i, outcome in enumerate(per_query):
                if outcome is None:  # not enabled for this request
                    continue
                good, value = outcome
                if good:
                    out[i] = dataclasses.replace(out[i], **value)
                else:
                    self._fail(result, "query_hydrator", h.name, value)
        result.queries = out
        return out

    def fetch(self, queries: Sequence[Q], result: BatchResult) -> Cands:
        """Every source over the batch; per request, sources in declaration order."""
        work = [(s, np.flatnonzero(_enabled(s, queries))) for s in self.sources]
        work = [(s, reqs) for s, reqs in work if len(reqs)]
        outcomes = self._parallel([lambda s=s, r=r: s.get_candidates(queries, r)
                                   for s, r in work])  # fmt: skip
        parts: list[Cands] = []
        for (s, _), (ok, value, took) in zip(work, outcomes, strict=True):
            result.timings_ms[f"source:{s.name}"] = took
            if ok:
                parts.append(value)
                self._count(result, f"source:{s.name}", value.req)
            else:
                self._fail(result, "source", s.name, value)
        out = Cands.concat(parts)
        order = np.argsort(out.req, kind="stable")  # grouped by request, sources in order
        return out.take(order) if len(out) else out

    def hydrate(
        self, queries: Sequence[Q], cands: Cands, result: BatchResult, hydrators: list | None = None
    ) -> Cands:
        """Hydrators see the same snapshot (may run concurrently); applied in declaration order,
        each owning its fields."""
        hydrators = self.hydrators if hydrators is None else hydrators
        work = []
        for h in hydrators:
            rows = _rows_of(cands, _enabled(h, queries))
            if rows is None or len(rows):
                work.append((h, rows))
        outcomes = self._parallel([
            lambda h=h, rows=rows: h.hydrate(queries, cands if rows is None else cands.take(rows))
            for h, rows in work
        ])  # fmt: skip
        for (h, rows), (ok, value, took) in zip(work, outcomes, strict=True):
            result.timings_ms[f"hydrator:{h.name}"] = took
            if ok:
                try:
                    owned = set(getattr(h, "fields", ()))
                    extra = sorted(set(value) - owned)
                    if extra:
                        raise ValueError(f"returned fields it does not own: {', '.join(extra)}")
                    cands = _assign(cands, rows, value)
                except ValueError as exc:
                    ok, value = False, exc
            if not ok:
                self._fail(result, "hydrator", h.name, value)
        return cands

    def run_filters(
        self, queries: Sequence[Q], cands: Cands, filters: list, stage: str, result: BatchResult
    ) -> Cands:
        for f in filters:
            on = _enabled(f, queries)
            if not on.any():
                continue
            rows = _rows_of(cands, on)
            t0 = time.perf_counter()
            try:
                res = f.filter(queries, cands if rows is None else cands.take(rows))
            except Exception as exc:  # noqa: BLE001 - policy decides
                self._fail(result, stage, f.name, exc)
                continue
            finally:
                self._timed(result, f"{stage}:{f.name}", t0)
            kept, removed = res.kept, res.removed
            if rows is not None:  # rows of requests the filter is off for stay where they were
                kept, removed = rows[kept], rows[removed]
                kept = _merge_kept(cands.req, kept, ~on[cands.req])
            gone = cands.take(removed)
            result.removed_parts.append(gone)
            result.removed_info += [(stage, f.name, why) for why in res.reasons]
            self._count(result, f"{stage}:{f.name}", gone.req)
            cands = cands.take(kept)
        return cands

    def run_scorers(self, queries: Sequence[Q], cands: Cands, result: BatchResult) -> Cands:
        for s in self.scorers:
            on = _enabled(s, queries)
            if not on.any():
                continue
            rows = _rows_of(cands, on)
            t0 = time.perf_counter()
            try:
                value = s.score(queries, cands if rows is None else cands.take(rows))
                cands = _assign(cands, rows, value)
            except Exception as exc:  # noqa: BLE001 - policy decides
                self._fail(result, "scorer", s.name, exc)
            finally:
                self._timed(result, f"scorer:{s.name}", t0)
        return cands

    def select(
        self, queries: Sequence[Q], cands: Cands, result: BatchResult
    ) -> tuple[Cands, Cands]:
        if self.selector is None:
            return cands, cands.take(np.zeros(0, np.int64))
        t0 = time.perf_counter()
        sel, rest = self.selector.select(queries, cands)
        self._timed(result, f"selector:{self.selector.name}", t0)
        return cands.take(sel), cands.take(rest)

    def post_select(
        self, queries: Sequence[Q], selected: Cands, non_selected: Cands, result: BatchResult
    ) -> tuple[Cands, Cands]:
        """Post-selection hydration and filters on the selected, then truncation."""
        final = self.hydrate(queries, selected, result, self.post_selection_hydrators)
        final = self.run_filters(queries, final, self.post_selection_filters,
                                 "post_selection_filter", result)  # fmt: skip
        if self.result_size is not None and len(final):
            pos = rank_within(final.req, np.arange(len(final)))
            over = pos >= self.result_size
            if over.any():
                non_selected = Cands.concat([non_selected, final.take(over)])
                final = final.take(~over)
        return final, non_selected

    def execute(self, queries: Sequence[Q]) -> BatchResult:
        """The whole pipeline over a batch of requests."""
        result = self.new_result(queries)
        t0 = time.perf_counter()
        queries = self.hydrate_queries(queries, result)
        cands = self.hydrate(queries, self.fetch(queries, result), result)
        result.retrieved = cands
        kept = self.run_filters(queries, cands, self.filters, "filter", result)
        kept = self.run_scorers(queries, kept, result)
        result.scored = kept
        sel, rest = self.select(queries, kept, result)
        result.selected, result.non_selected = self.post_select(queries, sel, rest, result)
        for effect in self.side_effects:
            if any(effect.enable(q) for q in queries):
                try:
                    effect.run(queries, result.selected, result.non_selected)
                except Exception as exc:  # noqa: BLE001 - side effects never fail a request
                    logger.warning("side effect %s failed: %s", effect.name, exc)
        result.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
        return result


def _merge_kept(req: np.ndarray, kept: np.ndarray, untouched: np.ndarray) -> np.ndarray:
    """Kept rows of the filtered requests (in the filter's order) and every row of the other
    requests, grouped by request."""
    idx = np.r_[kept, np.flatnonzero(untouched)]
    return idx[np.argsort(req[idx], kind="stable")]


def _assign(cands: Cands, rows: np.ndarray | None, columns: Mapping[str, Any]) -> Cands:
    """`columns` computed over `rows` (None: all rows) written into `cands`."""
    n = len(cands) if rows is None else len(rows)
    for name, value in columns.items():
        got = len(value[1]) if name == "probs" else len(value)
        if got != n:
            raise ValueError(f"length_mismatch expected={n} got={got}")
    if rows is None:
        return cands.with_columns(columns)
    part = cands.take(rows).with_columns(columns)
    full = {}
    for name in columns:
        if name == "probs":
            if cands.has("probs") and cands.heads != part.heads:
                raise ValueError("probs heads differ between requests")
            m = cands.cols.get("probs", np.full((len(cands), len(part.heads)), np.nan)).copy()
            m[rows] = part.cols["probs"]
            null = cands.null("probs").copy()
            null[rows] = False
            full[name] = (part.heads, m)
            continue
        v = cands.get(name).copy()
        v[rows] = part.get(name)
        null = cands.null(name).copy()
        null[rows] = part.null(name)
        full[name] = np.ma.array(v, mask=null) if null.any() else v
    out = cands.with_columns(full)
    if "probs" in columns:
        null = cands.null("probs").copy()
        null[rows] = False
        out.set_null("probs", null)
    return out


@functools.lru_cache(maxsize=4)
def _pool(max_workers: int) -> ThreadPoolExecutor:
    """One long-lived pool per size: starting threads per stage cost ~10 ms a request.
    Components must not call back into a pipeline stage (that could wait on its own pool)."""
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="xfeed-stage")


def _each(hydrator, queries: Sequence) -> list[tuple[bool, Any] | None]:
    """A query hydrator over each request of a batch: (ok, fields or error) per request, None
    where it is not enabled. It reads the unhydrated queries, as concurrent hydrators do."""
    out: list[tuple[bool, Any] | None] = []
    for q in queries:
        if not hydrator.enable(q):
            out.append(None)
            continue
        try:
            out.append((True, hydrator.hydrate(q)))
        except Exception as exc:  # noqa: BLE001 - returned to the policy
            out.append((False, exc))
    return out


def _call(fn) -> tuple[bool, Any, float]:
    t0 = time.perf_counter()
    try:
        return True, fn(), (time.perf_counter() - t0) * 1e3
    except Exception as exc:  # noqa: BLE001 - returned to the policy
        return False, exc, (time.perf_counter() - t0) * 1e3
