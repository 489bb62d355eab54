"""Checkpoint loading benchmark: a mini ranker with 3 × `vocab` × 128 embedding tables (the real
mini size at vocab 1,000,000) in xfeed's safetensors format, loaded in a fresh process
memory-mapped and, for comparison, eagerly (every table read into memory).

Each load runs in its own subprocess so its peak RSS (VmHWM) is its own: the figure includes the
interpreter, numpy and JAX (`baseline_rss_mb` is that part alone). The first ranking call after
loading (1,536 candidates by default, includes compilation) shows that only the looked-up rows
are read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.core import DEFAULT_WORKDIR, Report, Row, Timing, device_info, logger
from checkpoints.fake import fake_checkpoint
from checkpoints.formats import save_xfeed
from phoenix.config import ModelType, Preset

_PROBE = r"""
import json, sys, time
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")
import numpy as np
from checkpoints.formats import load_model
from phoenix.inputs import UserHistory
from phoenix.runtime import Ranker
base = rss("VmRSS:")
t0 = time.perf_counter()
ckpt, _ = load_model(sys.argv[1], "ranker", mmap=sys.argv[2] == "mmap")
load_s = time.perf_counter() - t0
after_load = rss("VmRSS:")
rng = np.random.default_rng(0)
cfg = ckpt.config
hist = UserHistory(1, rng.integers(1, 2**62, 127), rng.integers(1, 10**9, 127),
                   (rng.random((127, cfg.num_actions)) < 0.1).astype(np.float32))
posts = rng.integers(1, 2**62, int(sys.argv[3]))
t0 = time.perf_counter()
Ranker(ckpt, "cached").rank(hist, posts, posts % 100_003 + 1)
first_rank_s = time.perf_counter() - t0
print(json.dumps({"load_s": load_s, "baseline_rss_mb": base, "rss_after_load_mb": after_load,
                  "peak_rss_mb": rss("VmHWM:"), "first_rank_s": first_rank_s}))
"""


def prepare_checkpoint(vocab: int, workdir: Path) -> Path:
    """A random mini ranker with `vocab`-row tables in xfeed format (written once, reused)."""
    out = workdir / f"mini-ranker-{vocab}"
    if not (out / "ranker" / "config.json").exists():
        logger.info("load: writing a mini ranker with 3 x %d x 128 tables", vocab)
        save_xfeed(out / "ranker", fake_checkpoint(ModelType.RANKER, vocab, 0, Preset.MINI),
                   {"source": "xfeed bench load (random weights)"})  # fmt: skip
    return out


def _probe(path: Path, mode: str, candidates: int) -> dict:
    root = Path(__file__).resolve().parents[1]  # the repository
    argv = [sys.executable, "-c", _PROBE, str(path), mode, str(candidates)]
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"load probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def evict(path: Path) -> None:
    """Drop a directory's files from the OS page cache (posix_fadvise DONTNEED), so the next
    load is cold: read from disk, and no cached neighbours mapped in around each touched row."""
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_through(path: Path) -> None:
    """Read a directory's files once, so they sit in the page cache (a warm load)."""
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


MODES = (("mmap", True), ("mmap", False), ("eager", True))  # (how, cold page cache)


def bench_load(
    vocab: int = 1_000_000,
    workdir: Path | None = None,
    repeat: int = 3,
    candidates: int = 1536,
    modes: tuple[tuple[str, bool], ...] = MODES,
) -> Report:
    """Load time and peak RSS, memory-mapped (cold and warm page cache) and eager (cold), each
    in `repeat` fresh processes that then rank `candidates` candidates once."""
    path = prepare_checkpoint(vocab, Path(workdir or DEFAULT_WORKDIR))
    table_bytes = 3 * vocab * 128 * 4
    report = Report("load")
    report.info = {**device_info(), "checkpoint": str(path), "tables": f"3 x {vocab:,} x 128",
                   "table_mb": round(table_bytes / 2**20), "repeat": repeat}  # fmt: skip
    for mode, cold in modes:
        label = f"{mode}, {'cold' if cold else 'warm'} cache"
        logger.info("load: %s x%d", label, repeat)
        runs = []
        for _ in range(repeat):
            evict(path) if cold else read_through(path)
            runs.append(_probe(path, mode, candidates))
        load = Timing(tuple(r["load_s"] * 1e3 for r in runs))
        peak = max(r["peak_rss_mb"] for r in runs)
        report.rows.append(Row(f"load ({label})", load, extra={
            "peak_rss_mb": round(peak), "baseline_rss_mb": round(runs[0]["baseline_rss_mb"]),
            "first_rank_ms": round(runs[0]["first_rank_s"] * 1e3)}))  # fmt: skip
        report.summary[label] = {"load_p50_ms": round(load.p50, 1), "peak_rss_mb": round(peak)}
    report.notes += [
        f"peak RSS = VmHWM of a fresh process that loads, then ranks {candidates:,} candidates "
        "once",
        "warm cache: the kernel maps already-cached neighbour pages around each touched row "
        "(fault-around); they count in RSS but are shared, clean page cache",
    ]
    return report
