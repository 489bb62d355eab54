"""Id hashing reproduces upstream's test vectors (phoenix_spec.md §3.5)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenix import hashing
from phoenix.config import HashConfig

CFG = HashConfig()


@pytest.mark.parametrize(
    ("kind", "entity_id", "rows"),
    [
        ("user", 12345, [934577, 621747]),
        ("item", 2055082803453378718, [1344956, 1135690]),
        ("item", 2055046114877850067, [1820428, 1567513]),
        ("item", 2055089335398023196, [1799989, 1437383]),
        ("author", 19426551, [2771806, 2838592]),
        ("author", 19923144, [2204813, 2290121]),
        ("author", 50004938, [2037918, 2609221]),
        ("user", 0, [0, 0]),
        ("item", 0, [0, 0]),
        ("author", 0, [0, 0]),
    ],
)
def test_hash_rows_reproduce_upstream_vectors(kind, entity_id, rows):
    fn = {"user": hashing.user_rows, "item": hashing.item_rows, "author": hashing.author_rows}[kind]
    np.testing.assert_array_equal(fn(np.array([entity_id]), CFG)[0], rows)


def _bigint_reference(x: int, scale: int, bias: int, modulus: int, vocab: int, offset: int) -> int:
    """Pure-Python big ints with explicit int64 wrap after the multiply and after the add."""

    def wrap(v: int) -> int:
        v &= (1 << 64) - 1
        return v - (1 << 64) if v >= 1 << 63 else v

    if x == 0:
        return 0
    raw = wrap(wrap(wrap(x) * scale) + bias) % modulus
    return raw % (vocab - 1) + 1 + offset


@given(st.lists(st.integers(min_value=0, max_value=(1 << 64) - 1), min_size=1, max_size=20))
def test_vectorised_hash_equals_bigint_reference_on_uint64_ids(ids):
    arr = np.array(ids, dtype=np.uint64)
    got = hashing.item_rows(arr, CFG)
    ent, off = CFG.item, CFG.offsets["item"]
    for i, x in enumerate(ids):
        for k in range(ent.num_hashes):
            want = _bigint_reference(
                x, ent.scales[k], ent.biases[k], ent.modulus, ent.vocab_size, off
            )
            assert got[i, k] == want


def test_hash_buckets_stay_inside_the_entity_table():
    ids = np.random.default_rng(0).integers(1, 2**62, size=10_000)
    cfg = CFG.with_vocab(97)
    h = hashing.entity_buckets(ids, cfg.author)
    assert h.min() >= 1 and h.max() <= 96
    rows = hashing.author_rows(ids, cfg)
    assert rows.min() >= cfg.offsets["author"] + 1 and rows.max() < cfg.total_rows


def test_python_ints_above_int64_are_reinterpreted_like_uint64():
    big = (1 << 64) - 5
    np.testing.assert_array_equal(
        hashing.item_rows([big], CFG), hashing.item_rows(np.array([big], np.uint64), CFG)
    )
