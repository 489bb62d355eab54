"""A large world's engagements and impressions are read a row group at a time (bounded memory)
and give the same sequences, impressions and counts as the tables loaded whole."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.feed import BUNDLED
from world import activity as act
from world.data import WorldData


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """The bundled world, and a copy of its two event tables in small row groups (by user)."""
    small = tmp_path_factory.mktemp("streamed")
    for name in ("engagements", "impressions"):
        t = pq.read_table(f"{BUNDLED.world}/{name}.parquet")
        t = t.sort_by([("user_id", "ascending"), ("event_ms", "ascending")])
        pq.write_table(t, small / f"{name}.parquet", row_group_size=20_000)
    return WorldData(BUNDLED.world), small


def test_streamed_activity_equals_the_loaded_tables(worlds, monkeypatch):
    world, small = worlds
    loaded = world.activity
    assert not loaded.streamed
    monkeypatch.setattr(act, "MAX_LOADED_ROWS", 0)
    streamed = act.Activity(small, world.post_rows, len(world.posts["post_id"]))
    assert streamed.streamed
    now = int(world.meta["as_of_ms"])
    for user in world.user_ids[::97].tolist():  # ascending, as a population run visits them
        for t in (now, now - 36 * 3_600_000):
            a, b = loaded.user_sequence(user, t, 64), streamed.user_sequence(user, t, 64)
            assert np.array_equal(a.post_id, b.post_id) and np.array_equal(a.actions, b.actions)
            assert np.array_equal(a.dwell_s, b.dwell_s) and np.array_equal(a.time_ms, b.time_ms)
            ia, ib = loaded.user_impressions(user, t), streamed.user_impressions(user, t)
            assert ia.keys() == ib.keys()
            assert all(np.array_equal(ia[k], ib[k]) for k in ia)
        assert len(streamed._eng._groups) <= act.CACHED_GROUPS  # bounded memory
    actions = {"fav": 0, "reply": 1}
    for k, v in loaded.counts(now, actions).items():
        assert np.array_equal(v, streamed.counts(now, actions)[k]), k
    assert streamed.user_sequence(-5, now, 64).post_id.size == 0  # an unknown user: nothing


def test_tables_not_ordered_by_user_are_loaded_whole(tmp_path):
    t = pq.read_table(f"{BUNDLED.world}/engagements.parquet").slice(0, 50_000)
    t = t.sort_by([("event_ms", "ascending")])  # row groups overlap in user ids
    pq.write_table(t, tmp_path / "engagements.parquet", row_group_size=5_000)
    meta = pq.ParquetFile(tmp_path / "engagements.parquet").metadata
    assert act._user_bounds(meta) is None
