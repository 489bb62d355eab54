"""Whole-process latency, the latency a shell user feels: `xfeed --help`, a usage error,
`xfeed rank --user ID` and the five-process stage chain, each with JAX's persistent compilation
cache cold (a fresh empty cache directory per run) and warm (filled by one untimed run), beside
the in-process warm figure (the pipeline alone, world and models already loaded).

Every run is a fresh process started the way a user starts it (the `xfeed` console script next
to this Python, else `python -m xfeed_cli.main`); the page cache is warm in both cases, so
"cold" means compile-cache cold. Measure on a quiet machine: other processes inflate the wall
times of start-up far more than a steady-state benchmark's.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.core import Report, Row, Timing, device_info, logger

TARGETS_S = {"help": 0.3, "usage": 0.3, "rank_warm": 2.0, "chain_warm": 5.0}
STAGES = ("filter", "score", "select", "post-filter")


def xfeed_command() -> list[str]:
    """How a user runs xfeed from this environment."""
    script = Path(sys.executable).with_name("xfeed")
    return [str(script)] if script.exists() else [sys.executable, "-m", "xfeed_cli.main"]


def _run(
    argv: list[str] | str, env: dict[str, str], shell: bool = False
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds (user + system, all its processes), exit code) of one process
    or shell pipeline."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    bash = "/bin/bash" if shell else None
    proc = subprocess.run(argv, env=env, shell=shell, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, executable=bash)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def _chain(user: int, device: str) -> str:
    x = " ".join(f"'{a}'" for a in xfeed_command())
    dev = f"--device {device}"
    parts = [f"{x} retrieve --user {user} {dev}", f"{x} filter", f"{x} score {dev}",
             f"{x} select", f"{x} post-filter"]  # fmt: skip
    return "set -o pipefail; " + " | ".join(parts)


def bench_startup(
    runs: int = 5, user: int = 1007, device: str = "cpu", in_process: bool = True
) -> Report:
    """Median (p50) and p95 wall time of each whole-process case over `runs` runs."""
    base = {**os.environ, "XFEED_COMPILE_CACHE": "1"}
    x = xfeed_command()
    rank = [*x, "rank", "--user", str(user), "--device", device]
    cases: list[tuple[str, str, list[str] | str, bool, str | None]] = [
        # (key, label, argv, shell, cache: None | "cold" | "warm")
        ("help", "xfeed --help", [*x, "--help"], False, None),
        ("help_rank", "xfeed rank --help", [*x, "rank", "--help"], False, None),
        ("usage", "usage error (xfeed rank --usr 1)", [*x, "rank", "--usr", "1"], False, None),
        ("rank_cold", f"xfeed rank --user {user}, cold compile cache", rank, False, "cold"),
        ("rank_warm", f"xfeed rank --user {user}, warm compile cache", rank, False, "warm"),
        ("chain_cold", "retrieve | filter | score | select | post-filter, cold cache",
         _chain(user, device), True, "cold"),
        ("chain_warm", "retrieve | filter | score | select | post-filter, warm cache",
         _chain(user, device), True, "warm"),
    ]  # fmt: skip
    report = Report("startup", info={**_light_info(), "runs": runs, "user": user,
                                     "command": " ".join(x)})  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="xfeed-startup-"))
    try:
        warm = scratch / "warm"
        for key, label, argv, shell, cache in cases:
            logger.info("startup: %s (%d runs)", label, runs)
            samples, cpu = [], []
            if cache == "warm":
                _run(argv, {**base, "XFEED_CACHE_DIR": str(warm)}, shell)  # fills the cache
            for i in range(runs):
                env = dict(base)
                if cache == "cold":
                    env["XFEED_CACHE_DIR"] = str(scratch / f"{key}-{i}")
                elif cache == "warm":
                    env["XFEED_CACHE_DIR"] = str(warm)
                seconds, cpu_s, code = _run(argv, env, shell)
                expected = 2 if key == "usage" else 0
                if code != expected:
                    raise RuntimeError(f"startup: {label} exited {code} (expected {expected})")
                samples.append(seconds * 1e3)
                cpu.append(cpu_s * 1e3)
            row = Row(label, Timing(tuple(samples)))
            row.extra["cpu_ms"] = round(Timing(tuple(cpu)).p50, 1)
            if key in TARGETS_S:
                row.extra["target_ms"] = TARGETS_S[key] * 1e3
            report.rows.append(row)
        if in_process:
            report.rows.append(_in_process(user))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    by = {k: r for (k, *_), r in zip(cases, report.rows, strict=False)}
    report.summary = {
        f"{k} p50 ≤ {t:g} s": "met" if by[k].timing.p50 <= t * 1e3 else "not met"
        for k, t in TARGETS_S.items()
    }
    report.notes.append(
        "cold = an empty compile cache per run; warm = filled by one earlier "
        "run; wall time of the whole process (or pipeline); page cache warm"
    )
    return report


def _light_info() -> dict:
    import jax  # noqa: PLC0415 (the parent process only; children are what is measured)

    return device_info(jax.devices()[0])


def _in_process(user: int) -> Row:
    """The pipeline alone in this process, world and models loaded (as `xfeed bench e2e`)."""
    from benchmarks.core import measure  # noqa: PLC0415
    from pipeline.feed import new_query, rank  # noqa: PLC0415

    q = new_query(user)
    t = measure(lambda: rank(q), repeat=10, warmup=2)
    return Row(f"in process, warm: pipeline for user {user} (no start-up)", t)
