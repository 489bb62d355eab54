"""Compare two population datasets of the same users (e.g. one run on the CPU, one on a GPU):
per (viewer, position), are the same posts served; how many users serve a different set; the
largest and 99th-percentile |Δ| of the scores and a few heads where the same post is served.

    python -m benchmarks.population_compare DIR_A DIR_B [--json]

Exit status 1 when the datasets serve different posts to any user.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

COLUMNS = ("score", "weighted_score", "retrieval_score", "p_favorite", "p_dwell", "p_not_dwelled")


def _served(path: Path):
    table = pq.read_table(sorted(Path(path).glob("part-*.parquet")))
    table = table.filter(np.asarray(table["stage"].to_numpy(zero_copy_only=False)) == "served")
    return table.sort_by([("viewer_id", "ascending"), ("position", "ascending")])


def compare(a_dir: Path, b_dir: Path) -> dict:
    """The differences between the served rows of two datasets (see the module docstring)."""
    a, b = _served(a_dir), _served(b_dir)
    keys_a = set(zip(a["viewer_id"].to_pylist(), a["post_id"].to_pylist(), strict=True))
    keys_b = set(zip(b["viewer_id"].to_pylist(), b["post_id"].to_pylist(), strict=True))
    report = {"rows": [a.num_rows, b.num_rows],
              "users": len(set(a["viewer_id"].to_pylist()) | set(b["viewer_id"].to_pylist())),
              "users_serving_other_posts": len({v for v, _ in keys_a ^ keys_b})}  # fmt: skip
    if a.num_rows == b.num_rows:
        same = (a["viewer_id"].to_numpy() == b["viewer_id"].to_numpy()) & (
            a["post_id"].to_numpy() == b["post_id"].to_numpy()
        )
        report["slots_equal"] = int(same.sum())
        report["users_with_a_slot_differing"] = len(set(a["viewer_id"].to_numpy()[~same].tolist()))
        for col in COLUMNS:
            x = a[col].to_numpy(zero_copy_only=False).astype(float)[same]
            y = b[col].to_numpy(zero_copy_only=False).astype(float)[same]
            d = np.abs(x - y)[np.isfinite(x) & np.isfinite(y)]
            report[col] = {"max_abs": float(d.max()) if d.size else 0.0,
                           "p99_abs": float(np.quantile(d, 0.99)) if d.size else 0.0}  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    report = compare(args.a, args.b)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 1 if report["users_serving_other_posts"] else 0


if __name__ == "__main__":
    sys.exit(main())
