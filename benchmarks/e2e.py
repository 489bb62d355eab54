"""End-to-end benchmark: `xfeed rank` (the whole For You pipeline) on a world with a large
retrieval corpus, warm (models, world and snapshot loaded once, as a server would hold them).

Without `--world`, a synthetic world with about `posts` posts is generated once (2,000 users,
2 days) and cached under the work directory with its corpus and Thunder snapshot.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.core import DEFAULT_WORKDIR, Report, Row, Timing, device_info, logger
from checkpoints.corpus import corpus_header
from checkpoints.safetensors_io import read_header
from pipeline.feed import BUNDLED, new_query, rank
from pipeline.params import FeedParams
from pipeline.query import Resources
from thunder.log import read_logs
from thunder.snapshot import save_snapshot
from thunder.store import build_store
from world.corpus import build_corpus, checkpoint_hash
from world.synth import SynthConfig, synth_world
from world.tables import read_table, read_world_json


def prepare_world(posts: int, workdir: Path, checkpoint: str, users: int = 2000) -> Path:
    """A world of ~`posts` posts within retention, with corpus.safetensors and thunder/
    (made once; reused while its files are there)."""
    world = workdir / f"world-{posts}"
    if not (world / "world.json").exists():
        logger.info("e2e: generating a world of ~%d posts (about a minute per million)", posts)
        # ~15% of 2 days of posts fall out of the retention window at as_of
        synth_world(world, SynthConfig(users=users, days=2.0, posts_per_user=posts / users * 1.17))
    corpus = world / "corpus.safetensors"
    if not corpus.exists() or corpus_header(corpus).get("checkpoint_hash") != checkpoint_hash(
        checkpoint
    ):
        logger.info("e2e: embedding the corpus")
        build_corpus(checkpoint, world, corpus)
    if not (world / "thunder" / "manifest.json").exists():
        logger.info("e2e: building the Thunder snapshot")
        log = read_logs([world / "posts.parquet"])
        now = int(read_world_json(world)["as_of_ms"])
        save_snapshot(world / "thunder", build_store(log, now), log)
    return world


def bench_e2e(
    requests: int = 20,
    posts: int = 1_000_000,
    world: Path | None = None,
    checkpoint: str | None = None,
    workdir: Path = DEFAULT_WORKDIR,
    ranker: str = "cached",
) -> Report:
    """Cold first request, then warm p50/p95 over `requests` different viewers."""
    checkpoint = checkpoint or BUNDLED.checkpoint
    world = world or prepare_world(posts, Path(workdir), checkpoint)
    snapshot = world / "thunder"
    res = Resources(world=str(world), checkpoint=str(checkpoint),
                    snapshot=str(snapshot) if snapshot.exists() else None, corpus=None)  # fmt: skip
    params = FeedParams(ranker=ranker)
    users = read_table(world, "users", ["user_id"]).column("user_id").to_numpy()
    warmup = 4  # after the first: the other candidate-count buckets get compiled
    viewers = np.random.default_rng(0).choice(users, min(requests + 1 + warmup, len(users)),
                                              replace=False)  # fmt: skip
    logger.info("e2e: cold request")
    t0 = time.perf_counter()
    first = rank(new_query(int(viewers[0]), res, params))
    cold_ms = (time.perf_counter() - t0) * 1e3
    for v in viewers[1 : 1 + warmup]:
        rank(new_query(int(v), res, params))
    samples, stages, sizes = [], {}, []
    logger.info("e2e: %d warm requests", len(viewers) - 1 - warmup)
    for v in viewers[1 + warmup :]:
        t0 = time.perf_counter()
        result = rank(new_query(int(v), res, params))
        samples.append((time.perf_counter() - t0) * 1e3)
        sizes.append(len(result.retrieved))
        for k, ms in result.timings_ms.items():
            stages.setdefault(k, []).append(ms)
    warm = Timing(tuple(samples))
    corpus_rows = first.counts.get("source:PhoenixRetrievalSource")
    report = Report("e2e")
    report.info = {**device_info(), "world": str(world), "ranker": ranker,
                   "corpus_posts": _corpus_size(world), "requests": len(samples)}  # fmt: skip
    report.rows = [
        Row("cold (first request: loads world, models, snapshot; compiles)", Timing((cold_ms,))),
        Row("warm rank", warm, 1e3 / warm.p50, "requests/s",
            {"mean_candidates": round(float(np.mean(sizes)), 1)}),
    ]  # fmt: skip
    top = sorted(stages.items(), key=lambda kv: -float(np.median(kv[1])))[1:9]
    for name, ms in top:
        report.rows.append(Row(f"  stage {name}", Timing(tuple(ms))))
    report.summary = {"warm_p50_ms": round(warm.p50, 1), "warm_p95_ms": round(warm.p95, 1),
                      "cold_ms": round(cold_ms, 1), "oon_retrieved": corpus_rows}  # fmt: skip
    return report


def _corpus_size(world: Path) -> int | None:
    path = world / "corpus.safetensors"
    if not path.exists():
        return None
    header, _, _ = read_header(path)
    return int(header["post_ids"]["shape"][0])
