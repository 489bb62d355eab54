"""Ranking benchmark: the cached candidate-isolated path against upstream's chunked reference
path, on the same inputs, in one process.

Model: the mini preset (emb 128, 4 layers, 4 heads, key 32, history 127) with random weights
(speed does not depend on the values). For each compute dtype: p50/p95 of both paths, the
speed-up, the largest |Δ probability| between them, and the FLOP floor of the cached path
(XLA's FLOP count ÷ the measured rate of a 2048³ matmul in that dtype).
"""

from __future__ import annotations

import jax
import numpy as np

from benchmarks.core import (
    Report,
    Row,
    device_info,
    logger,
    matmul_gflops,
    measure,
    random_history,
    ratio,
)
from checkpoints.fake import fake_checkpoint
from phoenix.config import ModelType, Preset
from phoenix.runtime import Ranker


def _inputs(cfg, history_len: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    history = random_history(cfg.num_actions, history_len, rng)
    posts = rng.integers(1, 2**62, n)
    return history, posts, rng.integers(1, 10**9, n)


def bench_ranking(
    repeat: int = 20,
    candidates: int = 1536,
    dtypes: tuple[str, ...] = ("float32", "bfloat16"),
    sweep: tuple[int, ...] = (),
    preset: Preset = Preset.MINI,
    vocab: int = 20_000,
    device: jax.Device | None = None,
    seed: int = 0,
) -> Report:
    """Measure both ranking paths; `sweep` adds latency-vs-candidates series (fastest dtype)."""
    base = fake_checkpoint(ModelType.RANKER, vocab, seed, preset)
    cfg = base.config
    t = cfg.transformer
    history_len = cfg.history_seq_len
    history, posts, authors = _inputs(cfg, history_len, candidates, seed)
    report = Report("ranking")
    report.info = {
        **device_info(device),
        "config": f"{preset.value}: emb {t.emb_size}, {t.num_layers} layers, {t.num_q_heads} "
        f"heads, key {t.key_size}, history {history_len}, chunk {cfg.candidate_seq_len}",
        "candidates": candidates,
        "repeat": repeat,
    }
    p50: dict[str, float] = {}
    with jax.default_device(device or jax.devices()[0]):
        for dtype in dtypes:
            ckpt = base.with_dtype(dtype)
            ref, cached = Ranker(ckpt, "reference"), Ranker(ckpt, "cached")
            logger.info("ranking: %s reference", dtype)
            t_ref = measure(lambda r=ref: r.rank(history, posts, authors), repeat)
            logger.info("ranking: %s cached", dtype)
            t_c = measure(lambda r=cached: r.rank(history, posts, authors), repeat)
            diff = float(np.abs(ref.rank(history, posts, authors)
                                - cached.rank(history, posts, authors)).max())  # fmt: skip
            flops = cached.cached_flops(history, posts)
            rate = matmul_gflops(dtype, device=device)
            floor_ms = flops / (rate * 1e9) * 1e3
            report.rows += [
                Row(f"reference ({dtype})", t_ref, candidates / t_ref.p50 * 1e3, "candidates/s"),
                Row(f"cached ({dtype})", t_c, candidates / t_c.p50 * 1e3, "candidates/s",
                    {"gflop": round(flops / 1e9, 2), "floor_ms": round(floor_ms, 1)}),
            ]  # fmt: skip
            report.summary[dtype] = {
                "speedup_cached_vs_reference": ratio(t_ref.p50, t_c.p50),
                "cached_p50_ms": round(t_c.p50, 2),
                "reference_p50_ms": round(t_ref.p50, 2),
                "max_abs_prob_diff": diff,
                "cached_gflop": round(flops / 1e9, 3),
                "matmul_gflops": round(rate, 1),
                "floor_ms": round(floor_ms, 2),
                "cached_vs_floor": ratio(t_c.p50, floor_ms),
            }
            p50[dtype] = t_c.p50
        fastest = min(p50, key=p50.get)
        report.summary["fastest_dtype"] = fastest
        if sweep:
            ckpt = base.with_dtype(fastest)
            ref, cached = Ranker(ckpt, "reference"), Ranker(ckpt, "cached")
            series: dict[str, list] = {"candidates": [], "reference_ms": [], "cached_ms": []}
            for n in sweep:
                logger.info("ranking: sweep %d candidates", n)
                h, p, a = _inputs(cfg, history_len, n, seed + n)
                series["candidates"].append(n)
                for name, r in (("reference_ms", ref), ("cached_ms", cached)):
                    series[name].append(
                        round(
                            measure(
                                lambda r=r, h=h, p=p, a=a: r.rank(h, p, a), max(3, repeat // 2)
                            ).p50,
                            3,
                        )
                    )
            report.series = {"dtype": fastest, **series}
    report.notes.append(
        "floor = XLA FLOP count of the cached call ÷ the measured 2048³ matmul rate, same dtype"
    )
    return report
