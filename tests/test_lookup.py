"""world.lookup.IdIndex: the same rows as a binary search, absent ids -1."""

import numpy as np
import pytest

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
