"""`xfeed bench audit`: an audit of two arms of N served rows each (default 1,000,000), with
author groups and the bootstrap, timed in a fresh process that reports its own peak RSS
(target: ≤ 15 s and ≤ 1.5 GB on the 2-core machine).

The runs are synthetic, generated once into the work directory (deterministic for the sizes):
35-slot feeds, 16 topics, Zipf-popular authors, a for-you-like arm (~half out-of-network) and a
chrono-like arm (in-network only) of the same users, every head column filled, parts of 256 users
as `rank --users` writes them, a world with the posts' topics and a groups file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.core import Report, Row, Timing
from pipeline.population import FORMAT, PART_USERS, head_columns, schema

FEED = 35
TOPICS = 16
NOW = 1_784_592_000_000
HOUR = 3_600_000


def make_runs(root: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """Two runs (for-you, chrono) of `rows` served rows each, their world and a groups file
    under `root` (kept; regenerated only when missing)."""
    done = root / "done.json"
    paths = {k: root / k for k in ("for-you", "chrono", "world")} | {
        "groups": root / "groups.parquet"
    }
    if done.exists():
        return paths
    rng = np.random.default_rng(seed)
    users = rows // FEED
    n_authors, n_posts = max(1000, users * 2), max(10_000, rows // 3)
    author_topic = rng.integers(0, TOPICS, n_authors)
    popularity = 1.0 / np.arange(1, n_authors + 1) ** 0.9
    post_author = rng.choice(n_authors, n_posts, p=popularity / popularity.sum())
    post_ids = np.arange(n_posts, dtype=np.int64) * 4096 + 1_000_000_000
    created = NOW - rng.integers(0, 48 * HOUR, n_posts)
    world = paths["world"]
    world.mkdir(parents=True, exist_ok=True)
    names = [f"t{t}" for t in range(TOPICS)]
    topic_lists = pa.array([[names[author_topic[a]]] for a in post_author], pa.list_(pa.string()))
    pq.write_table(pa.table({"event": pa.array(["create"] * n_posts), "post_id": post_ids,
                             "author_id": post_author.astype(np.int64) + 7,
                             "topics": topic_lists}), world / "posts.parquet")  # fmt: skip
    pq.write_table(pa.table({"author_id": np.arange(n_authors, dtype=np.int64) + 7,
                             "group": [names[t] for t in author_topic]}),
                   paths["groups"])  # fmt: skip
    viewers = np.arange(1, users + 1, dtype=np.int64) * 1000 + 7
    for arm, oon in (("for-you", 0.55), ("chrono", 0.0)):
        _write_run(paths[arm], arm, viewers, post_ids, post_author, created, oon, world, rng)
    done.write_text(json.dumps({"rows": rows, "seed": seed}))
    return paths


def _write_run(out: Path, arm: str, viewers, post_ids, post_author, created, oon, world,
               rng) -> None:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for k, a in enumerate(range(0, len(viewers), PART_USERS)):
        v = viewers[a : a + PART_USERS]
        n = len(v) * FEED
        pick = rng.integers(0, len(post_ids), n)
        if arm == "chrono":  # newest first
            pick = pick.reshape(len(v), FEED)
            pick = np.take_along_axis(pick, np.argsort(-created[pick], axis=1), axis=1).ravel()
        in_net = rng.random(n) >= oon
        cols = {f.name: pa.nulls(n, f.type) for f in schema()}
        cols.update({
            "viewer_id": pa.array(np.repeat(v, FEED)), "post_id": pa.array(post_ids[pick]),
            "position": pa.array(np.tile(np.arange(1, FEED + 1, dtype=np.int32), len(v))),
            "author_id": pa.array(post_author[pick].astype(np.int64) + 7),
            "in_network": pa.array(in_net),
            "source": pa.array(np.where(in_net, "thunder", "phoenix_retrieval")),
            "created_ms": pa.array(created[pick]), "request_ms": pa.array(np.full(n, NOW)),
            "stage": pa.array(["served"] * n), "score": pa.array(rng.random(n)),
        })  # fmt: skip
        for h in head_columns():
            cols[h] = pa.array(np.round(rng.random(n) * 0.1, 6))
        name = f"part-0000-of-0001-{k:05d}.parquet"
        pq.write_table(pa.table(cols, schema=schema()), out / name, compression="zstd")
        parts.append({"file": name, "rows": n, "served_rows": n})
    manifest = {
        "format": FORMAT,
        "arm": arm,
        "world": {"path": str(world), "sha256": "bench"},
        "users": {"count": int(len(viewers))},
        "request_ms": NOW,
        "parts": parts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))


_MEASURE = """
import json, resource, sys, time
t0 = time.perf_counter()
from audit.report import AuditSpec, audit
spec = AuditSpec((sys.argv[1],), baseline=sys.argv[2], group_by=sys.argv[3],
                 replicates=int(sys.argv[4]))
res = audit(spec)
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "peak_rss_mb": rss, "users": res["segments"][0]["users"]}))
"""


def bench_audit(rows: int, workdir: Path, repeat: int = 1, replicates: int = 500) -> Report:
    """Time `xfeed audit` of two generated arms in fresh processes (imports included)."""
    paths = make_runs(Path(workdir) / f"audit-{rows}", rows)
    runs = []
    for _ in range(repeat):
        argv = [sys.executable, "-c", _MEASURE, str(paths["for-you"]), str(paths["chrono"]),
                str(paths["groups"]), str(replicates)]  # fmt: skip
        got = subprocess.run(argv, capture_output=True, text=True, check=True)
        runs.append(json.loads(got.stdout.strip().splitlines()[-1]))
    walls = [r["wall_s"] * 1e3 for r in runs]
    rss = max(r["peak_rss_mb"] for r in runs)
    report = Report("audit")
    report.info = {"served_rows_per_arm": rows, "arms": 2, "users": runs[0]["users"],
                   "bootstrap": replicates, "groups": TOPICS}  # fmt: skip
    report.rows = [Row("audit of two arms (fresh process, imports included)", Timing(tuple(walls)),
                       2 * rows / (np.median(walls) / 1e3), "rows/s",
                       {"peak_rss_mb": round(rss, 1)})]  # fmt: skip
    report.summary = {"wall_s_p50": round(float(np.median(walls)) / 1e3, 2),
                      "peak_rss_mb": round(rss, 1), "target": "≤ 15 s, ≤ 1536 MB"}  # fmt: skip
    return report
