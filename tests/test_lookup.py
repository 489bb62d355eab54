"""world.lookup: IdIndex gives the rows a binary search gives (absent ids -1); SparseColumn reads
as its dense column."""

import numpy as np
import pytest

from world import lookup
from world.lookup import IdIndex


def _binary(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    if not len(sorted_ids):
        return np.full(len(ids), -1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 50_000])
def test_id_index_rows_equal_a_binary_search(n):
    rng = np.random.default_rng(n)
    # snowflake-like ids (time in the high bits) and small ids: both hash apart
    ids = np.unique(np.r_[rng.integers(1 << 60, 1 << 61, n), rng.integers(0, 4 * n + 1, n // 2)])
    asked = np.r_[ids[rng.integers(0, len(ids), 3 * n)] if len(ids) else [],
                  rng.integers(-5, 1 << 62, 500), -1, 0].astype(np.int64)  # fmt: skip
    assert np.array_equal(IdIndex(ids).rows(asked), _binary(ids, asked))


def test_id_index_answers_the_first_row_of_a_repeated_id():
    ids = np.array([3, 5, 5, 5, 9], np.int64)
    assert IdIndex(ids).rows(np.array([5, 9, 4, 3])).tolist() == [1, 4, -1, 0]


def test_id_index_probes_past_colliding_ids():
    # 40 ids that all hash to one slot: lookups walk the chain, then fall back to the search
    probe = IdIndex(np.arange(40, dtype=np.int64))  # the same table size as below
    candidates = np.arange(200_000, dtype=np.int64)
    ids = candidates[probe._home(candidates) == 5][:40]
    index = IdIndex(ids)
    assert len(np.unique(index._home(ids))) == 1
    assert np.array_equal(index.rows(ids), np.arange(40))
    assert index.rows(np.array([ids[-1] + 1]))[0] == -1


def test_sparse_columns_read_as_the_dense_columns_and_share_slots():
    rng = np.random.default_rng(3)
    n = 5000
    reply = np.where(rng.random(n) < 0.1, rng.integers(1, 1 << 60, n), 0)
    cols = {
        "parent": reply,
        "parent_user": np.where(reply != 0, rng.integers(1, 1 << 40, n), 0),  # same rows
        "quoted": np.where(rng.random(n) < 0.05, rng.integers(1, 1 << 60, n), 0),
        "dense": rng.integers(1, 1 << 60, n),
        "none": np.zeros(n, np.int64),
    }
    got = lookup.sparse_columns(cols)
    assert isinstance(got["dense"], np.ndarray)
    assert got["parent"].slots is got["parent_user"].slots  # one slot array for both
    assert got["quoted"].slots is not got["parent"].slots
    rows = np.r_[rng.integers(0, n, 3000), [0, n - 1, -1]]
    for name, col in cols.items():
        assert got[name][rows].dtype == np.int64
        assert np.array_equal(got[name][rows], col[rows]), name
        assert np.array_equal(np.asarray(got[name]), col) and len(got[name]) == n
