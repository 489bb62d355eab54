"""The cached ranking call as the population engine runs it: one caller, and two callers at once
(the engine keeps two batches in flight), with wall time and CPU time per call.

    python -m benchmarks.ranking_concurrency [--candidates 1024,1536,2048] [--dtype bfloat16]
        [--rounds 5] [--calls 10] [--out F.json]

Model: the mini preset with random weights (as `xfeed bench ranking`). For each candidate count
(each one of the engine's buckets): XLA's FLOP count of the call, the median over `rounds` of
the mean wall ms and CPU ms per call, with one caller and with two threads calling at once, and
the CPU ms per call against the FLOP floor in core-ms (the FLOPs ÷ the measured 2048³ matmul
rate of the whole machine × its cores): the figure that bounds a population run's users/s once
both cores are busy. The rounds interleave the settings, so a machine's drift hits them alike.
Run it from another checkout (`PYTHONPATH=OTHER python /path/to/this/file`) to compare code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks.core import device_info, matmul_gflops, random_history
from checkpoints.fake import fake_checkpoint
from phoenix.cached import cached_probs_fn
from phoenix.config import ModelType, Preset
from phoenix.runtime import Ranker


def _timed(call, callers: int, calls: int) -> tuple[float, float]:
    """Mean (wall ms, CPU ms) per call of `callers` threads making `calls` calls each."""

    def loop() -> None:
        for _ in range(calls):
            jax.block_until_ready(call())

    threads = [threading.Thread(target=loop) for _ in range(callers)]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = callers * calls
    return (time.perf_counter() - t0) / n * 1e3, (time.process_time() - c0) / n * 1e3


def bench(candidates: list[int], dtype: str, rounds: int, calls: int, seed: int = 0,
          preset: Preset = Preset.MINI, vocab: int = 20_000) -> dict:  # fmt: skip
    """Per candidate count: FLOPs, wall and CPU ms per call at one and two callers."""
    ckpt = fake_checkpoint(ModelType.RANKER, vocab, seed, preset).with_dtype(dtype)
    cfg = ckpt.config
    ranker = Ranker(ckpt, "cached")
    rng = np.random.default_rng(seed)
    history = random_history(cfg.num_actions, cfg.history_seq_len, rng)
    calls_by_n = {}
    for n in candidates:
        posts, authors = rng.integers(1, 2**62, n), rng.integers(1, 10**9, n)
        batch, emb = ranker.cached_inputs(history, posts, authors)
        fn = cached_probs_fn(cfg)
        jax.block_until_ready(fn(ranker.cached_params, batch, emb))  # compiled
        calls_by_n[n] = (ranker.cached_flops(history, posts),
                         lambda fn=fn, b=batch, e=emb: fn(ranker.cached_params, b, e))  # fmt: skip
    samples: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for n, (_, call) in calls_by_n.items():
            for callers in (1, 2):
                samples.setdefault((n, callers), []).append(_timed(call, callers, calls))
    rate = matmul_gflops(dtype)
    cores = os.cpu_count() or 1
    info = {**device_info(), "preset": preset.value, "dtype": dtype, "rounds": rounds,
            "calls": calls, "matmul_gflops": round(rate, 1)}  # fmt: skip
    out: dict = {"info": info, "rows": []}
    for n, (flops, _) in calls_by_n.items():
        floor_core_ms = flops / (rate * 1e9) * 1e3 * cores
        row = {"candidates": n, "gflop": round(flops / 1e9, 3),
               "floor_core_ms": round(floor_core_ms, 2)}  # fmt: skip
        for callers in (1, 2):
            s = samples[(n, callers)]
            wall = statistics.median(x[0] for x in s)
            cpu = statistics.median(x[1] for x in s)
            row[f"callers_{callers}"] = {"wall_ms": round(wall, 2), "cpu_ms": round(cpu, 2),
                                         "cpu_vs_floor": round(cpu / floor_core_ms, 2)}  # fmt: skip
        out["rows"].append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", default="1024,1536,2048")
    ap.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result = bench([int(x) for x in args.candidates.split(",")], args.dtype, args.rounds,
                   args.calls)  # fmt: skip
    for row in result["rows"]:
        one, two = row["callers_1"], row["callers_2"]
        print(f"{row['candidates']} candidates, {row['gflop']} GFLOP (floor "
              f"{row['floor_core_ms']} core-ms): one caller {one['wall_ms']} ms "
              f"({one['cpu_ms']} CPU ms), two callers {two['wall_ms']} ms/call "
              f"({two['cpu_ms']} CPU ms, {two['cpu_vs_floor']}x the floor)")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
