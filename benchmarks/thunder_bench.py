"""Thunder benchmark (the same as `xfeed bench thunder --json`), kept as a plain script.

python -m benchmarks.thunder_bench [--events 10000000] [--authors 200000] [--follow 1000]
"""

from __future__ import annotations

import argparse
import json

from benchmarks.thunder_store import bench_thunder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--authors", type=int, default=200_000)
    ap.add_argument("--follow", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    report = bench_thunder(args.events, args.authors, args.follow, args.requests)
    print(json.dumps(report.to_json(), indent=2))


if __name__ == "__main__":
    main()
