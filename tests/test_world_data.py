"""WorldData lookups: edge membership and id rows equal a brute-force answer, whichever search
path (a batch's few viewers, or many destinations; needles sorted or not) they take."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.feed import BUNDLED
from world import data
from world.data import WorldData


@pytest.fixture(scope="module")
def world():
    return WorldData(BUNDLED.world)


def _pairs(world, kind, rng, viewers):
    src, dst, created = world.edges[kind]
    pick = rng.integers(0, len(src), 3000)
    s = np.r_[src[pick], dst[pick], rng.choice(world.user_ids, 3000), [99, 1007]]  # + unknown
    d = np.r_[dst[pick], src[pick], rng.choice(viewers, 3000), [1007, 99]]
    return s.astype(np.int64), d.astype(np.int64)


@pytest.mark.parametrize("viewers", [40, None])  # a batch's few viewers; every user
@pytest.mark.parametrize("kind", ["follow", "block"])
def test_has_edges_equals_a_brute_force_lookup(world, kind, viewers):
    rng = np.random.default_rng(0)
    pool = world.user_ids if viewers is None else rng.choice(world.user_ids, viewers)
    src, dst, created = world.edges[kind]
    first: dict[tuple[int, int], int] = {}
    for a, b, t in zip(src.tolist(), dst.tolist(), created.tolist(), strict=True):
        first[(a, b)] = min(t, first.get((a, b), t))
    s, d = _pairs(world, kind, rng, pool)
    if viewers is not None:  # every destination one of the few viewers, and their in-edges
        mine = [p for p in first if p[1] in set(pool.tolist())]
        s = np.r_[[a for a, _ in mine], rng.choice(world.user_ids, 3000)].astype(np.int64)
        d = np.r_[[b for _, b in mine], rng.choice(pool, 3000)].astype(np.int64)
    until = np.full(len(s), int(np.median(created)), np.int64)
    got = world.has_edges(s, d, kind)
    got_t = world.has_edges(s, d, kind, until)
    want = [(a, b) in first for a, b in zip(s.tolist(), d.tolist(), strict=True)]
    want_t = [first.get((a, b), 1 << 62) <= u for a, b, u in
              zip(s.tolist(), d.tolist(), until.tolist(), strict=True)]  # fmt: skip
    assert got.tolist() == want and got_t.tolist() == want_t
    assert any(want) and not all(want)


@pytest.mark.parametrize("keys", [1000, data.SEARCH_CACHED_KEYS + 1])
def test_search_equals_searchsorted_on_small_and_large_key_arrays(keys):
    rng = np.random.default_rng(keys)
    sorted_values = np.sort(rng.integers(0, 2**40, keys))
    x = np.r_[rng.choice(sorted_values, 3000), rng.integers(0, 2**40, 3000)]  # hits and misses
    np.testing.assert_array_equal(data._search(sorted_values, x),
                                  np.searchsorted(sorted_values, x))  # fmt: skip


@pytest.mark.parametrize("kind", ["follow", "block"])
def test_out_edges_equal_the_edge_table_oldest_first(world, kind):
    import pyarrow.parquet as pq  # noqa: PLC0415

    t = pq.read_table(f"{BUNDLED.world}/edges.parquet").to_pylist()
    rows = [r for r in t if r["kind"] == kind]
    users = sorted({r["src_user_id"] for r in rows})[:25] + [99, int(world.user_ids[-1]) + 1]
    until = int(np.median([r["created_ms"] for r in rows if r["created_ms"] is not None]))
    for u in users:
        mine = sorted((r for r in rows if r["src_user_id"] == u),
                      key=lambda r: (r["created_ms"] is None, r["created_ms"] or 0,
                                     r["dst_user_id"]))  # fmt: skip
        assert world.out_edges(u, kind).tolist() == [r["dst_user_id"] for r in mine]
        assert world.out_edges(u, kind, until).tolist() == [
            r["dst_user_id"] for r in mine if (r["created_ms"] or 0) <= until
        ]
    src, dst, _ = world.edges[kind]  # the per-edge view: sources repeated, sorted
    assert len(src) == len(dst) == len(rows) and (np.diff(src) >= 0).all()
