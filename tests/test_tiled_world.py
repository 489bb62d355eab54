"""benchmarks.tiled_world: N copies of a world with shifted ids, for scale runs."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from benchmarks.tiled_world import POST_STEP, USER_STEP, tile_world
from pipeline.feed import BUNDLED
from world.data import WorldData


def test_tiles_copy_the_world_with_shifted_ids(tmp_path):
    out = tmp_path / "tiled"
    counts = tile_world(BUNDLED.world, out, 2)
    src = WorldData(BUNDLED.world)
    got = WorldData(out)
    assert counts["users"] == 2 * len(src.user_ids)
    assert np.array_equal(got.user_ids, np.r_[src.user_ids, src.user_ids + USER_STEP])
    ids = src.posts["post_id"]
    assert np.array_equal(got.posts["post_id"], np.sort(np.r_[ids, ids + POST_STEP]))
    rows = got.post_rows(ids + POST_STEP)  # tile 1's copy of each post: same time and author
    assert (rows >= 0).all() and ((ids + POST_STEP) >> 22 == ids >> 22).all()
    assert np.array_equal(got.posts["created_ms"][rows], src.posts["created_ms"])
    assert np.array_equal(got.posts["author_id"][rows], src.posts["author_id"] + USER_STEP)
    # tile 1's edges join tile 1's users only
    follow_src, follow_dst, _ = got.edges["follow"]
    assert np.array_equal(follow_src >= USER_STEP, follow_dst >= USER_STEP)
    eng = pq.read_table(out / "engagements.parquet", columns=["user_id"]).column(0).to_numpy()
    assert (np.diff(eng) >= 0).all()  # ordered by user, as the streamed reader needs
