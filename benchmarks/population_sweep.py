"""Population throughput at several engine batch sizes and batch threads (`xfeed bench
population` once per setting, in one process), e.g. to choose the GPU batch size:

    python -m benchmarks.population_sweep --configs 64x2,256x2,256x4,1024x4 [--users N]
        [--world W] [--out F.json]

A setting `BxT` sets the users per batch (on the CPU and on a GPU) to B and the batches in
flight to T; parts hold max(256, B) users. Later settings reuse the compiled shapes of earlier
ones (the ranker's shapes depend on a user's candidates, not on the batch), so the first
setting's run also pays for compiling, unless JAX's persistent compile cache (on, as in the CLI;
`XFEED_COMPILE_CACHE=0` turns it off) already holds them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.population import bench_population
from phoenix.compile_cache import enable_compile_cache
from pipeline import population as pop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="64x2,256x2")
    ap.add_argument("--users", type=int)
    ap.add_argument("--world", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    enable_compile_cache()  # as `xfeed bench population` runs: loaded, not compiled, when warm
    results = []
    for setting in args.configs.split(","):
        size, threads = (int(x) for x in setting.lower().split("x"))
        pop.BATCH_USERS = pop.GPU_BATCH_USERS = size
        pop.BATCH_THREADS = threads
        pop.PART_USERS = max(256, size)
        report = bench_population(users=args.users, world=args.world).to_json()
        summary = report["summary"]
        print(
            f"{size} users x {threads} threads: {summary['users_per_s']} users/s, "
            f"{summary['ms_per_user']} ms/user, peak RSS {summary['peak_rss_mb']} MB"
        )
        results.append({"batch_users": size, "threads": threads, "report": report})
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
