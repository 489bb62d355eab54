"""The For You pipeline, assembled: `rank` end to end, one function per stage for the JSONL
chain (`retrieve | filter | score | select | post-filter` equals `rank`), `explain`, `whatif`.

Stage order and components follow the January 2026 home-mixer (homemixer_spec.md §2–§9,
10b) with the August additions xfeed has data for; see the README for what is implemented,
adapted or left out.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from checkpoints.corpus import load_corpus
from filters import post_selection_filters, pre_scoring_filters
from phoenix.config import ModelType
from pipeline import hydrators as h
from pipeline import scorers as s
from pipeline.candidates import PostCandidate
from pipeline.columns import Cands
from pipeline.explain import explain_posts
from pipeline.framework import BatchResult, CandidatePipeline, PipelineResult
from pipeline.params import FeedParams
from pipeline.query import FeedQuery, Resources, query_hydrators
from pipeline.selector import TopKScoreSelector

if TYPE_CHECKING:
    from checkpoints.corpus import Corpus
    from phoenix.runtime import Ranker, Retriever
    from world.data import WorldData

REPO = Path(__file__).resolve().parent.parent
BUNDLED = Resources(
    world=str(REPO / "data" / "samples" / "world"),
    checkpoint=str(REPO / "data" / "samples" / "checkpoint"),
    snapshot=str(REPO / "data" / "samples" / "world" / "thunder"),
    corpus=None,
)


@functools.lru_cache(maxsize=4)
def _world(path: str) -> WorldData:
    from world.data import WorldData  # noqa: PLC0415 (pyarrow only where a stage reads a world)

    world = WorldData(path)
    _ = world.activity
    gc.freeze()  # long-lived: keep its objects out of every later full collection
    return world


@functools.lru_cache(maxsize=4)
def _ranker(checkpoint: str, path: str, world: str) -> Ranker:
    """The checkpoint's ranker; one that reads post semantic ids gets the world's post topics."""
    from checkpoints.formats import load_model  # noqa: PLC0415 (JAX only where a model runs)
    from phoenix.runtime import Ranker  # noqa: PLC0415
    from world.sequences import load_post_sids  # noqa: PLC0415

    ckpt = load_model(checkpoint, ModelType.RANKER)[0]
    ranker = Ranker(ckpt, path=path, sids=load_post_sids(world, ckpt.config))
    gc.freeze()
    return ranker


@functools.lru_cache(maxsize=4)
def _retrieval(checkpoint: str, corpus: str, world: str) -> tuple[Retriever, Corpus]:
    """The retrieval model (one that reads post semantic ids gets the world's post topics for
    the user tower's history) and its corpus."""
    from checkpoints.formats import load_model  # noqa: PLC0415
    from phoenix.runtime import Retriever  # noqa: PLC0415
    from world.sequences import load_post_sids  # noqa: PLC0415

    ckpt = load_model(checkpoint, ModelType.RETRIEVAL)[0]
    out = Retriever(ckpt, sids=load_post_sids(world, ckpt.config)), load_corpus(corpus)
    gc.freeze()
    return out


@functools.lru_cache(maxsize=8)
def _corpus_path(checkpoint: str, world: str, corpus: str | None) -> str:
    """The corpus bound to this checkpoint and world (world/corpus.py: the world's own, one built
    into the cache, or an error naming the `xfeed index build` command)."""
    from world.corpus import resolve  # noqa: PLC0415

    return resolve(checkpoint, world, corpus)


@functools.lru_cache(maxsize=4)
def _history_length(checkpoint: str) -> int:
    """The longest history either model reads (configs only, no weights loaded)."""
    from checkpoints.formats import model_dir, read_config  # noqa: PLC0415

    return max(read_config(model_dir(checkpoint, t))[0].history_seq_len for t in ModelType)


# What each part of the pipeline loads: a stage process builds only its parts, so `xfeed filter`
# or `xfeed select` loads no model (and no JAX) and `xfeed score` no world.
PARTS = frozenset({"query", "sources", "hydrators", "filters", "scorers", "selector", "post"})


def build_pipeline(query: FeedQuery, parts: frozenset[str] = PARTS) -> CandidatePipeline:
    """The For You pipeline for `query`; components of the parts not asked for are left out.
    `params.arm == "chrono"` is the reverse-chronological control: the same query hydration,
    Thunder source, hydrators and filters, no retrieval, and the newest posts served first
    (Phoenix still scores them, for the record, but does not order them)."""
    r, p = query.resources, query.params
    chrono = p.arm == "chrono"
    world = _world(r.world) if parts & {"query", "sources", "hydrators", "post"} else None
    sources, scorers = [], []
    if "sources" in parts:
        from pipeline.sources import PhoenixRetrievalSource, ThunderSource  # noqa: PLC0415

        sources = [ThunderSource()]
        if not chrono:  # the chrono arm has no out-of-network source (and loads no retrieval)
            path = _corpus_path(r.checkpoint, r.world, r.corpus)
            sources.append(PhoenixRetrievalSource(*_retrieval(r.checkpoint, path, r.world), world))
    if "scorers" in parts:
        ranker = s.PhoenixScorer(_ranker(r.checkpoint, p.ranker, r.world))
        scorers = [ranker, s.WeightedScorer(), s.ChronoScorer()] if chrono else [
            ranker,
            s.WeightedScorer(),
            s.NewAuthorBoostScorer(),
            s.AuthorDiversityScorer(),
            s.OONScorer(),
        ]  # fmt: skip
    hydrators = [] if "hydrators" not in parts else [
        h.InNetworkHydrator(),
        h.CoreDataHydrator(world),
        h.MediaHydrator(world),
        h.SubscriptionHydrator(world),
        h.AuthorHydrator(world),
        h.SocialContextHydrator(world),
        h.EngagementCountsHydrator(world),
    ]  # fmt: skip
    return CandidatePipeline(
        query_hydrators=query_hydrators(world, _history_length(r.checkpoint))
        if "query" in parts
        else [],  # fmt: skip
        sources=sources,
        hydrators=hydrators,
        filters=pre_scoring_filters(p.max_post_age_ms),
        scorers=scorers,
        selector=TopKScoreSelector(),
        post_selection_hydrators=[h.VisibilityHydrator(world)] if "post" in parts else [],
        post_selection_filters=post_selection_filters(),
        result_size=p.result_size,
        lenient=query.lenient,
    )


def new_query(
    user_id: int,
    resources: Resources = BUNDLED,
    params: FeedParams | None = None,
    now_ms: int | None = None,
    lenient: bool = False,
) -> FeedQuery:
    """An unhydrated query; the request time defaults to the world's as_of_ms."""
    from world.tables import read_world_json  # noqa: PLC0415

    now = int(read_world_json(resources.world)["as_of_ms"]) if now_ms is None else int(now_ms)
    return FeedQuery(user_id=int(user_id), now_ms=now, resources=resources,
                     params=params or FeedParams(), lenient=lenient)  # fmt: skip


def rank(query: FeedQuery) -> PipelineResult:
    """The whole pipeline for one request (a batch of one)."""
    return build_pipeline(query).execute([query]).request(0)


def rank_batch(queries: list[FeedQuery]) -> BatchResult:
    """The whole pipeline for a batch of requests sharing resources and params. Components run
    one after another: over a batch each is a few large numpy calls, and threads only contend
    for the GIL (measured ~20 % slower with 4 threads)."""
    pipe = build_pipeline(queries[0])
    if len(queries) > 1:
        pipe.max_workers = 1
    return pipe.execute(queries)


# ---- one function per stage (the JSONL chain) -------------------------------------------------


def _one(query: FeedQuery, result: BatchResult) -> PipelineResult:
    return PipelineResult(result.queries[0], timings_ms=dict(result.timings_ms),
                          errors=list(result.errors), counts=dict(result.counts[0]))  # fmt: skip


def retrieve(query: FeedQuery) -> tuple[FeedQuery, list[PostCandidate], PipelineResult]:
    """Query hydration, sources and candidate hydration."""
    pipe = build_pipeline(query, frozenset({"query", "sources", "hydrators"}))
    result = pipe.new_result([query])
    (query,) = pipe.hydrate_queries([query], result)
    cands = pipe.hydrate([query], pipe.fetch([query], result), result)
    return query, cands.to_candidates(), _one(query, result)


def _run_stage(query: FeedQuery, part: str, cands: list[PostCandidate], run):
    """Run one stage of the query's pipeline on a batch of one: `run(pipeline, columns,
    result)`; returns (output candidates, result). Only that stage's part is built (and
    loaded)."""
    pipe = build_pipeline(query, frozenset({part}))
    result = pipe.new_result([query])
    out = run(pipe, Cands.from_candidates(cands), result)
    return out.to_candidates(), _one(query, result)


def hydrate(query: FeedQuery, cands: list[PostCandidate]):
    return _run_stage(query, "hydrators", cands, lambda p, c, r: p.hydrate([query], c, r))


def filter_stage(query: FeedQuery, cands: list[PostCandidate]):
    def run(p, c, r):
        return p.run_filters([query], c, p.filters, "filter", r)

    return _run_stage(query, "filters", cands, run)


def score(query: FeedQuery, cands: list[PostCandidate]):
    return _run_stage(query, "scorers", cands, lambda p, c, r: p.run_scorers([query], c, r))


def select(query: FeedQuery, cands: list[PostCandidate]):
    return _run_stage(query, "selector", cands, lambda p, c, r: p.select([query], c, r)[0])


def post_filter(query: FeedQuery, cands: list[PostCandidate]):
    def run(p, c, r):
        return p.post_select([query], c, c.take(np.zeros(0, np.int64)), r)[0]

    return _run_stage(query, "post", cands, run)


# ---- explain and what-if ---------------------------------------------------------------------


def explain(query: FeedQuery, post_ids: Sequence[int] = (), top: int = 0) -> list[dict[str, Any]]:
    """What happened to each post of `post_ids` and to the feed's first `top` posts, from one
    run of the pipeline (pipeline/explain.py)."""
    return explain_posts(rank(query), post_ids, top)


def whatif(
    query: FeedQuery,
    params_a: FeedParams,
    params_b: FeedParams,
    resources_b: Resources | None = None,
) -> dict[str, Any]:
    """The two slates under two parameter sets (and, with `resources_b`, another checkpoint or
    world for B), and what moved, entered or left."""
    a = rank(dataclasses.replace(query, params=params_a))
    b = rank(dataclasses.replace(query, params=params_b, resources=resources_b or query.resources))
    ia = [c.post_id for c in a.selected]
    ib = [c.post_id for c in b.selected]
    moved = [{"post_id": str(p), "from": ia.index(p) + 1, "to": ib.index(p) + 1}
             for p in ib if p in ia and ia.index(p) != ib.index(p)]  # fmt: skip
    return {
        "a": [c.to_json() for c in a.selected],
        "b": [c.to_json() for c in b.selected],
        "moved": moved,
        "entered": [str(p) for p in ib if p not in ia],
        "left": [str(p) for p in ia if p not in ib],
    }
