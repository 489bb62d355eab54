"""`xfeed bench population`: the whole population run (`rank --users … --out DIR`) on a world,
users/s, per-stage time per user, peak RSS, and the floor beside it: the Phoenix FLOPs per user
÷ the measured matmul rate, plus the Thunder fetch and retrieval time per user. With
`engine="ray"` the same users also run on a local Ray (`--engine ray`) and the ratio is
reported."""

from __future__ import annotations

import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.core import Report, Row, Timing, device_info, logger, matmul_gflops
from phoenix.cached import bucket
from pipeline import feed
from pipeline import population as pop
from pipeline.params import FeedParams
from pipeline.query import Resources


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def bench_population(users: int | None = None, world: Path | None = None,
                     checkpoint: str | None = None, engine: str = "local") -> Report:  # fmt: skip
    """Rank `users` users (default: all) of `world` (default: bundled) with `checkpoint`
    (default: bundled) into a temporary dataset; report users/s, peak RSS and the floor."""
    b = feed.BUNDLED
    world_s = str(world or b.world)
    snap = Path(world_s) / "thunder"
    res = Resources(world_s, checkpoint or b.checkpoint, str(snap) if snap.exists() else None)
    ids = pop.world_user_ids(world_s)
    if users is not None:
        ids = ids[:users]
    spec = pop.RunSpec(res, FeedParams(), pop.request_time(world_s, None))
    logger.info("population: warming up (loads world and models, compiles)")
    t0 = time.perf_counter()
    pop.rank_users(ids[: pop.batch_users()], spec)
    warm_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        logger.info("population: ranking %d users", len(ids))
        t0, c0 = time.perf_counter(), time.process_time()
        manifest = pop.run_population(ids, spec, Path(tmp) / "feeds")
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    run_rss = peak_rss_mb()  # before the floor's own compile and matmul
    rate = len(ids) / elapsed
    stage_ms = {k: v / len(ids) for k, v in manifest["time"]["stage_ms"].items()}
    floor = _floor(spec, ids, stage_ms)
    report = Report("population")
    report.info = {**device_info(), "world": world_s, "checkpoint": res.checkpoint,
                   "users": len(ids), "batch_users": pop.batch_users(),
                   "part_users": pop.PART_USERS}  # fmt: skip
    report.rows = [
        Row("warm-up (first batch: loads, compiles)", Timing((warm_s * 1e3,))),
        Row("whole run (rank --users … --out DIR)", Timing((elapsed * 1e3,)), rate, "users/s",
            {"served_rows": manifest["counts"]["served_rows"],
             "cpu_ms_per_user": round(cpu / len(ids) * 1e3, 2)}),
    ]  # fmt: skip
    for stage, ms in sorted(stage_ms.items(), key=lambda kv: -kv[1]):
        if stage != "total":
            report.rows.append(Row(f"  {stage} per user", Timing((ms,))))
    per_user_ms = 1e3 / rate
    report.summary = {"users_per_s": round(rate, 1), "ms_per_user": round(per_user_ms, 2),
                      "cpu_ms_per_user": round(cpu / len(ids) * 1e3, 2), **floor,
                      "ratio_to_floor": round(per_user_ms / floor["floor_ms_per_user"], 2),
                      "ratio_to_phoenix_floor": round(
                          per_user_ms / floor["phoenix_floor_ms_per_user"], 2),
                      "ratio_to_phoenix_floor_at_float32_rate": round(
                          per_user_ms / floor["phoenix_floor_ms_per_user_at_float32_rate"], 2),
                      "peak_rss_mb": round(run_rss, 1)}  # fmt: skip
    if engine == "ray":
        _ray(report, ids, spec, rate)
    report.notes = [
        "floor = Phoenix FLOPs per user (the cached call's FLOPs as XLA counts them, at each "
        "user's own number of ranked candidates, no padding; mean over floor_sample_users users "
        "evenly spaced over the run) ÷ the measured 2048³ matmul rate in the model's compute "
        "dtype (bfloat16 products accumulated in float32, as the model computes them; the "
        "float32 rate and the floor at it beside), + Thunder fetch and "
        "retrieval time per user (as measured inside this run); "
        "phoenix_gflop_per_user_at_buckets: the same at each user's shape bucket (what the "
        "engine computes, padding included)",
        "peak_rss_mb: this process's peak resident set (world, models, warm-up, the run) at the "
        "end of the run, before the floor is measured",
    ]
    return report


def _ray(report: Report, ids: np.ndarray, spec: pop.RunSpec, local_rate: float) -> None:
    """The same users on a local Ray (actors load the world and models inside the timed run,
    as `rank --engine ray` does); users/s and the ratio to the local engine."""
    from pipeline.ray_engine import run_population_ray  # noqa: PLC0415 (Ray is an extra)

    with tempfile.TemporaryDirectory() as tmp:
        logger.info("population: ranking %d users on a local Ray", len(ids))
        t0 = time.perf_counter()
        run_population_ray(ids, spec, Path(tmp) / "feeds")
        elapsed = time.perf_counter() - t0
    rate = len(ids) / elapsed
    report.rows.append(Row("same users, --engine ray (local Ray, 2 actors × 0.5 CPU; start-up "
                           "and per-actor loading included)", Timing((elapsed * 1e3,)), rate,
                           "users/s"))  # fmt: skip
    report.summary["ray_users_per_s"] = round(rate, 1)
    report.summary["ray_to_local_ratio"] = round(rate / local_rate, 2)


FLOOR_SAMPLE = 64  # users, evenly spaced over the run, whose ranked candidates set the floor


def _floor(spec: pop.RunSpec, ids: np.ndarray, stage_ms: dict[str, float]) -> dict[str, float]:
    """The FLOP floor of the ranking per user, plus the measured Thunder and retrieval time.

    The ranking FLOPs are the mean over up to FLOOR_SAMPLE of the run's users (evenly spaced)
    of the cached call's FLOPs at each user's own candidate count (what the ranker has to
    score: no padding), and beside it at each user's shape bucket (what the engine computes).
    XLA counts the call at two bucket sizes; its FLOPs are affine in the candidate count
    (history once + the same work per candidate), checked at a third size."""
    sample = ids[np.unique(np.linspace(0, len(ids) - 1, min(FLOOR_SAMPLE, len(ids))).astype(int))]
    table, _ = pop.rank_users(sample, dataclasses.replace(spec, keep="scored"))
    viewers = table.column("viewer_id").to_numpy()
    counts = np.unique(viewers, return_counts=True)[1]  # [users] candidates each ranked
    q = feed.rank(feed.new_query(int(sample[0]), spec.resources, spec.params, spec.now_ms)).query
    ranker = feed._ranker(spec.resources.checkpoint, spec.params.ranker, spec.resources.world)
    cfg = ranker.config
    hist = q.user_history(cfg.num_actions, cfg.history_seq_len)
    c = cfg.candidate_seq_len
    n1, n2, n3 = 8 * c, 16 * c, 12 * c  # all three are their own buckets (multiples of c)
    f1, f2, f3 = (ranker.cached_flops(hist, np.arange(1, n + 1, dtype=np.int64))
                  for n in (n1, n2, n3))  # fmt: skip
    per_cand = (f2 - f1) / (n2 - n1)
    base = f1 - per_cand * n1
    if abs(base + per_cand * n3 - f3) > 1e-3 * f3:
        raise RuntimeError("ranker FLOPs are not affine in the candidate count")
    buckets = np.array([bucket(int(n), c) for n in counts])
    flops = float(base + per_cand * counts.mean())
    flops_b = float(base + per_cand * buckets.mean())
    rate32 = matmul_gflops("float32")
    dtype = str(cfg.fprop_dtype)
    rate = rate32 if dtype == "float32" else matmul_gflops(dtype)
    phoenix_ms = flops / (rate * 1e9) * 1e3
    return {
        "floor_sample_users": int(len(counts)),
        "ranked_candidates_per_user": round(float(counts.mean()), 1),
        "bucket_candidates_per_user": round(float(buckets.mean()), 1),
        "phoenix_gflop_per_user": round(flops / 1e9, 4),
        "phoenix_gflop_per_user_at_buckets": round(flops_b / 1e9, 4),
        "compute_dtype": dtype,
        "matmul_gflops": round(rate, 1),  # in the compute dtype: the floor's rate
        "matmul_gflops_float32": round(rate32, 1),
        "phoenix_floor_ms_per_user": round(phoenix_ms, 3),
        "phoenix_floor_ms_per_user_at_float32_rate": round(flops / (rate32 * 1e9) * 1e3, 3),
        "sources_ms_per_user": round(stage_ms.get("source", 0.0), 3),  # Thunder + retrieval
        "floor_ms_per_user": round(phoenix_ms + stage_ms.get("source", 0.0), 3),
    }
