"""Check a whole population run against the per-user command: for every user, the served rows
of `rank --users … --out DIR` equal `rank --user U` (same posts, same order, scores to 1e-6).

    python -m benchmarks.population_check [--dataset DIR] [--users all|ID,ID|FILE] [--world W]
        [--checkpoint CKPT]

Without --dataset it first runs the population into a temporary directory. Exit status 1 when
any user differs (each difference is printed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import feed
from pipeline import population as pop
from pipeline.params import FeedParams
from pipeline.query import Resources


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, help="an existing dataset directory")
    ap.add_argument("--users", default="all")
    ap.add_argument("--world", default=feed.BUNDLED.world)
    ap.add_argument("--checkpoint", default=feed.BUNDLED.checkpoint,
                    help="e.g. `xfeed ckpt fake --preset mini` (bfloat16)")  # fmt: skip
    args = ap.parse_args(argv)
    world = str(args.world)
    snap = Path(world) / "thunder"
    res = Resources(world, str(args.checkpoint), str(snap) if snap.exists() else None, None)
    users = pop.resolve_users(args.users, world)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.dataset or Path(tmp) / "feeds"
        if args.dataset is None:
            spec = pop.RunSpec(res, FeedParams(), pop.request_time(world, None))
            t0 = time.perf_counter()
            pop.run_population(users, spec, out)
            print(f"population run: {len(users)} users in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)  # fmt: skip
        table = pq.read_table(sorted(out.glob("part-*.parquet")))
        table = table.filter(pc.equal(table.column("stage"), "served"))
        viewer = table.column("viewer_id").to_numpy()
        bad = 0
        for n, u in enumerate(users.tolist(), start=1):
            rows = table.filter(pc.equal(table.column("viewer_id"), u)).sort_by("position")
            got_ids = rows.column("post_id").to_pylist()
            got_scores = np.array(rows.column("score").to_pylist(), np.float64)
            ref = feed.rank(feed.new_query(u, res)).selected
            ids = [c.post_id for c in ref]
            scores = np.array([c.score for c in ref], np.float64)
            if got_ids != ids or not np.allclose(got_scores, scores, rtol=1e-6, atol=1e-12):
                bad += 1
                print(f"user {u}: differs ({len(got_ids)} vs {len(ids)} posts)")
            if n % 200 == 0:
                print(f"checked {n}/{len(users)}", file=sys.stderr)
        print(f"{len(users) - bad}/{len(users)} users equal; {int(np.isin(viewer, users).sum())} "
              "served rows")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
