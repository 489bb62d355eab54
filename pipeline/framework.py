"""The candidate-pipeline framework: typed stage protocols and the runner that owns the policy.

Mirrors upstream's candidate-pipeline crate (homemixer_spec.md §1): query hydrators, sources and
hydrators may run concurrently and are applied in declaration order; filters and scorers run in
sequence; hydrator/scorer output must keep length and order (a mismatch is an error for that
component); removed candidates are kept with the filter's name and reason; every stage is timed.
Offline the default policy is fail-fast (one clear error); `lenient=True` is upstream's fail-open.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from filters.base import FilterResult
from filters.base import StageDefaults as StageDefaults  # re-exported for pipeline components

logger = logging.getLogger(__name__)

Q = TypeVar("Q")
C = TypeVar("C")


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
class Source(Protocol[Q, C]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def get_candidates(self, query: Q) -> list[C]: ...


@runtime_checkable
class Hydrator(Protocol[Q, C]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def hydrate(self, query: Q, candidates: Sequence[C]) -> list[C] | dict[str, list]:
        """Same length and order as the input; may only fill fields this hydrator owns.

        Either the hydrated candidates, or (cheaper for thousands of candidates) the owned
        fields as columns: {field: [value per candidate]}."""
        ...


@runtime_checkable
class Filter(Protocol[Q, C]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]: ...


@runtime_checkable
class Scorer(Protocol[Q, C]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def score(self, query: Q, candidates: Sequence[C]) -> list[C]: ...


@runtime_checkable
class Selector(Protocol[Q, C]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def select(self, query: Q, candidates: list[C]) -> SelectResult[C]: ...


@runtime_checkable
class SideEffect(Protocol[Q, C]):
    name: str

    def enable(self, query: Q) -> bool: ...
    def run(self, query: Q, selected: list[C], non_selected: list[C]) -> None: ...


@dataclasses.dataclass(frozen=True)
class Removed(Generic[C]):
    candidate: C
    stage: str  # "filter" or "post_selection_filter"
    component: str
    reason: str


@dataclasses.dataclass(frozen=True)
class SelectResult(Generic[C]):
    selected: list[C]
    non_selected: list[C]


@dataclasses.dataclass
class PipelineResult(Generic[Q, C]):
    query: Q
    retrieved: list[C] = dataclasses.field(default_factory=list)  # after hydration
    removed: list[Removed[C]] = dataclasses.field(default_factory=list)
    scored: list[C] = dataclasses.field(default_factory=list)  # after scoring, all kept
    selected: list[C] = dataclasses.field(default_factory=list)
    non_selected: list[C] = dataclasses.field(default_factory=list)
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)  # lenient mode: what failed
    counts: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class CandidatePipeline(Generic[Q, C]):
    """Runs the stages in upstream's order (homemixer_spec.md §1.3)."""

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
    def _fail(self, result: PipelineResult, stage: str, component: str, exc: BaseException) -> None:
        msg = f"stage={stage} component={component} failed: {exc}"
        if not self.lenient:
            raise PipelineError(msg) from exc
        logger.warning(msg)
        result.errors.append(msg)

    def _timed(self, result: PipelineResult, key: str, t0: float) -> None:
        result.timings_ms[key] = result.timings_ms.get(key, 0.0) + (time.perf_counter() - t0) * 1e3

    def _parallel(self, fns: list) -> list:
        if len(fns) <= 1:
            return [_call(f) for f in fns]
        return list(_pool(self.max_workers).map(_call, fns))

    # ---- stages ------------------------------------------------------------------------
    def hydrate_query(self, query: Q, result: PipelineResult) -> Q:
        enabled = [h for h in self.query_hydrators if h.enable(query)]
        outcomes = self._parallel([lambda h=h: h.hydrate(query) for h in enabled])
        for h, (ok, value, took) in zip(enabled, outcomes, strict=True):
            result.timings_ms[f"query_hydrator:{h.name}"] = took
            if ok:
                query = dataclasses.replace(query, **value)
            else:
                self._fail(result, "query_hydrator", h.name, value)
        return query

    def fetch(self, query: Q, result: PipelineResult) -> list[C]:
        enabled = [s for s in self.sources if s.enable(query)]
        outcomes = self._parallel([lambda s=s: s.get_candidates(query) for s in enabled])
        out: list[C] = []
        for s, (ok, value, took) in zip(enabled, outcomes, strict=True):
            result.timings_ms[f"source:{s.name}"] = took
            if ok:
                out.extend(value)
                result.counts[f"source:{s.name}"] = len(value)
            else:
                self._fail(result, "source", s.name, value)
        return out

    def hydrate(
        self, query: Q, candidates: list[C], result: PipelineResult, hydrators: list | None = None
    ) -> list[C]:
        """Hydrators see the same snapshot (may run concurrently); applied in declaration order,
        each owning its fields: later hydrators' owned fields are merged onto the result."""
        hydrators = self.hydrators if hydrators is None else hydrators
        enabled = [h for h in hydrators if h.enable(query)]
        outcomes = self._parallel([lambda h=h: h.hydrate(query, candidates) for h in enabled])
        updates: list[dict] = [{} for _ in candidates]  # owned fields, merged in order
        replaced = list(candidates)  # hydrators that own no fields replace whole candidates
        for h, (ok, value, took) in zip(enabled, outcomes, strict=True):
            result.timings_ms[f"hydrator:{h.name}"] = took
            if ok:
                try:
                    columns = _owned_columns(h, value, len(candidates))
                except ValueError as exc:
                    ok, value = False, exc
            if not ok:
                self._fail(result, "hydrator", h.name, value)
                continue
            if columns is None:  # owns no fields: replaces whole candidates
                replaced, updates = list(value), [{} for _ in candidates]
                continue
            for f, col in columns.items():
                for u, x in zip(updates, col, strict=True):
                    u[f] = x
        return [_evolve(c, u) for c, u in zip(replaced, updates, strict=True)]

    def run_filters(
        self, query: Q, candidates: list[C], filters: list, stage: str, result: PipelineResult
    ) -> list[C]:
        for f in filters:
            if not f.enable(query):
                continue
            t0 = time.perf_counter()
            try:
                res = f.filter(query, candidates)
            except Exception as exc:  # noqa: BLE001 - policy decides
                self._fail(result, stage, f.name, exc)
                continue
            finally:
                self._timed(result, f"{stage}:{f.name}", t0)
            result.removed.extend(Removed(c, stage, f.name, why) for c, why in res.removed)
            result.counts[f"{stage}:{f.name}"] = len(res.removed)
            candidates = res.kept
        return candidates

    def run_scorers(self, query: Q, candidates: list[C], result: PipelineResult) -> list[C]:
        for s in self.scorers:
            if not s.enable(query):
                continue
            t0 = time.perf_counter()
            try:
                scored = s.score(query, candidates)
                if len(scored) != len(candidates):
                    raise ValueError(
                        f"length_mismatch expected={len(candidates)} got={len(scored)}"
                    )
                if any(a.post_id != b.post_id for a, b in zip(scored, candidates, strict=True)):
                    raise ValueError("scorer changed the order of candidates")
                candidates = scored
            except Exception as exc:  # noqa: BLE001 - policy decides
                self._fail(result, "scorer", s.name, exc)
            finally:
                self._timed(result, f"scorer:{s.name}", t0)
        return candidates

    def select(self, query: Q, candidates: list[C], result: PipelineResult) -> SelectResult[C]:
        if self.selector is None or not self.selector.enable(query):
            return SelectResult(list(candidates), [])
        t0 = time.perf_counter()
        res = self.selector.select(query, candidates)
        self._timed(result, f"selector:{self.selector.name}", t0)
        return res

    def post_select(
        self, query: Q, sel: SelectResult[C], result: PipelineResult
    ) -> tuple[list[C], list[C]]:
        """Post-selection hydration and filters on the selected, then truncation."""
        final = self.hydrate(query, sel.selected, result, self.post_selection_hydrators)
        final = self.run_filters(query, final, self.post_selection_filters,
                                 "post_selection_filter", result)  # fmt: skip
        non_selected = list(sel.non_selected)
        if self.result_size is not None and len(final) > self.result_size:
            non_selected += final[self.result_size :]
            final = final[: self.result_size]
        return final, non_selected

    def execute(self, query: Q) -> PipelineResult[Q, C]:
        result: PipelineResult = PipelineResult(query)
        t0 = time.perf_counter()
        query = self.hydrate_query(query, result)
        result.query = query
        candidates = self.hydrate(query, self.fetch(query, result), result)
        result.retrieved = list(candidates)
        kept = self.run_filters(query, candidates, self.filters, "filter", result)
        kept = self.run_scorers(query, kept, result)
        result.scored = list(kept)
        sel = self.select(query, kept, result)
        final, non_selected = self.post_select(query, sel, result)
        result.selected, result.non_selected = final, non_selected
        for effect in self.side_effects:
            if effect.enable(query):
                try:
                    effect.run(query, final, non_selected)
                except Exception as exc:  # noqa: BLE001 - side effects never fail a request
                    logger.warning("side effect %s failed: %s", effect.name, exc)
        result.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
        return result


def _owned_columns(hydrator, value, n: int) -> dict[str, list] | None:
    """A hydrator's output as {owned field: column}; None for a hydrator that owns no fields."""
    owned = tuple(getattr(hydrator, "fields", ()))
    if isinstance(value, Mapping):
        extra = sorted(set(value) - set(owned))
        if extra:
            raise ValueError(f"returned fields it does not own: {', '.join(extra)}")
        bad = [f for f, col in value.items() if len(col) != n]
        if bad:
            raise ValueError(f"length_mismatch expected={n} got={len(value[bad[0]])}")
        return dict(value)
    if len(value) != n:
        raise ValueError(f"length_mismatch expected={n} got={len(value)}")
    if not owned:
        return None
    return {f: [getattr(v, f) for v in value] for f in owned}


@functools.lru_cache(maxsize=4)
def _pool(max_workers: int) -> ThreadPoolExecutor:
    """One long-lived pool per size: starting threads per stage cost ~10 ms a request.
    Components must not call back into a pipeline stage (that could wait on its own pool)."""
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="xfeed-stage")


def _evolve(c, changes: dict):
    if not changes:
        return c
    evolve = getattr(c, "evolve", None)
    return evolve(**changes) if evolve else dataclasses.replace(c, **changes)


def _call(fn) -> tuple[bool, Any, float]:
    t0 = time.perf_counter()
    try:
        return True, fn(), (time.perf_counter() - t0) * 1e3
    except Exception as exc:  # noqa: BLE001 - returned to the policy
        return False, exc, (time.perf_counter() - t0) * 1e3
