"""A large world for scale runs, made in seconds: N copies ("tiles") of a world side by side.

    python -m benchmarks.tiled_world --tiles 50 --out /tmp/world-100k [--world data/samples/world]

Tile t shifts every user id by t · 10,000,000 and every post id by t · 20,480 inside the id's
low 22 bits (so a snowflake id keeps its creation time); zero ids stay zero. Each tile is the
source world's community again (the same follows, posts, engagements and impressions among its
own users), so per-user work matches the source world while the tables grow N times: 50 tiles
of the bundled world are 100,000 users, 1.02 M posts, 19 M engagements and 14 M impressions.
Tables stay sorted by user (row groups of 1 Mi rows, as `xfeed data synth` writes them). The
retrieval corpus is not copied: it is built into the cache on first use.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from safeio.atomic import atomic_path
from world.tables import WORLD_OUTPUT, read_world_json

USER_STEP = 10_000_000
POST_STEP = 20_480  # within the low 22 bits of a snowflake id
USER_COLUMNS = {
    "users": ("user_id",),
    "edges": ("src_user_id", "dst_user_id"),
    "posts": ("author_id", "in_reply_to_user_id", "source_user_id", "quoted_user_id"),
    "engagements": ("user_id", "author_id"),
    "impressions": ("user_id",),
}
POST_COLUMNS = {
    "posts": ("post_id", "in_reply_to_post_id", "conversation_id", "source_post_id",
              "quoted_post_id"),
    "engagements": ("post_id",),
    "impressions": ("post_id",),
}  # fmt: skip


def _shift(col: pa.ChunkedArray, step: int) -> pa.Array:
    v = col.to_numpy(zero_copy_only=False)
    null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), bool)
    v = np.where(null, 0, v).astype(np.int64)
    return pa.array(np.where(v != 0, v + step, 0), col.type, mask=null if null.any() else None)


def tile_table(table: pa.Table, name: str, tile: int) -> pa.Table:
    """One tile of a world table: ids shifted as the module docstring says."""
    for cols, step in ((USER_COLUMNS, tile * USER_STEP), (POST_COLUMNS, tile * POST_STEP)):
        for c in cols.get(name, ()):
            table = table.set_column(table.schema.get_field_index(c), c, _shift(table[c], step))
    return table


def tile_world(world: Path | str, out: Path | str, tiles: int, force: bool = False) -> dict:
    """Write `tiles` copies of `world` into `out` (atomically); returns the table row counts."""
    world = Path(world)
    posts = pq.read_table(world / "posts.parquet").column("post_id").to_numpy()
    if len(posts) and int((posts & ((1 << 22) - 1)).max()) >= POST_STEP:
        raise ValueError(f"{world}: post ids use more than {POST_STEP} low values; cannot tile")
    users = pq.read_table(world / "users.parquet").column("user_id").to_numpy()
    if len(users) and int(users.max()) >= USER_STEP:
        raise ValueError(f"{world}: user ids reach {USER_STEP}; cannot tile")
    counts = {}
    with atomic_path(Path(out), kind=WORLD_OUTPUT, force=force) as tmp:
        for name in ("users", "edges", "posts", "engagements", "impressions"):
            src = pq.read_table(world / f"{name}.parquet")
            if "user_id" in src.column_names:  # keep the tiles' rows ordered by user
                src = src.sort_by([("user_id", "ascending")])
            table = pa.concat_tables([tile_table(src, name, t) for t in range(tiles)])
            pq.write_table(table, tmp / f"{name}.parquet", compression="zstd",
                           row_group_size=1 << 20)  # fmt: skip
            counts[name] = table.num_rows
        meta = read_world_json(world)
        meta = {**meta, "generator": f"xfeed benchmarks.tiled_world ({tiles} tiles of {world})",
                "tiles": tiles}  # fmt: skip
        (tmp / "world.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=50)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--world", type=Path, default=Path(__file__).parent.parent / "data" /
                    "samples" / "world")  # fmt: skip
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    counts = tile_world(args.world, args.out, args.tiles, args.force)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
