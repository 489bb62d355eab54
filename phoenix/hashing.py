"""Id hashing into the unified embedding table, vectorised.

Re-implements run_pipeline._hash_ids @0bfc279 (phoenix_spec.md §3.2 step 6) without the Python
double loop: for hash i,

    raw_i = (id · scale_i + bias_i) mod modulus      # int64 multiply/add wrap (two's complement),
                                                    # floor mod so raw_i >= 0
    h_i   = raw_i mod (vocab − 1) + 1               # in [1, vocab − 1]
    row_i = h_i + offset(entity)                    # unified-table row; id 0 -> row 0 (padding)

Unified table layout: 65 zero rows, then the user, item and author tables.
"""

from __future__ import annotations

import numpy as np

from phoenix.config import EntityHash, HashConfig


def as_int64_ids(ids: np.ndarray | list[int] | int) -> np.ndarray:
    """Ids as int64; uint64 (and Python ints >= 2**63) are reinterpreted bit-for-bit, as upstream
    passes ids as uint64 and views them as int64."""
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros(arr.shape, np.int64)
    if arr.dtype == np.uint64:
        return arr.view(np.int64)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype == object:
        flat = [int(x) & 0xFFFFFFFFFFFFFFFF for x in arr.ravel()]
        return np.array(flat, dtype=np.uint64).view(np.int64).reshape(arr.shape)
    raise TypeError(f"ids must be integers, got dtype {arr.dtype}")


def entity_buckets(ids: np.ndarray, ent: EntityHash) -> np.ndarray:
    """Per-table buckets h in [1, vocab−1] (0 for id 0).

    Args:
        ids: [...] int64 ids.
    Returns:
        [..., num_hashes] int64.
    """
    ids = as_int64_ids(ids)
    scales = np.asarray(ent.scales, dtype=np.int64)  # [K]
    biases = np.asarray(ent.biases, dtype=np.int64)  # [K]
    with np.errstate(over="ignore"):
        raw = ids[..., None] * scales + biases  # [..., K], wraps in int64
    raw = np.mod(raw, np.int64(ent.modulus))
    h = np.mod(raw, np.int64(ent.vocab_size - 1)) + 1
    return np.where(ids[..., None] == 0, 0, h)


def _rows(ids: np.ndarray, ent: EntityHash, offset: int) -> np.ndarray:
    h = entity_buckets(ids, ent)
    return np.where(h == 0, 0, h + offset).astype(np.int64)


def user_rows(ids: np.ndarray, cfg: HashConfig) -> np.ndarray:
    """Unified-table rows of user ids: [...] -> [..., num_user_hashes] int64."""
    return _rows(ids, cfg.user, cfg.offsets["user"])


def item_rows(ids: np.ndarray, cfg: HashConfig) -> np.ndarray:
    """Unified-table rows of post ids: [...] -> [..., num_item_hashes] int64."""
    return _rows(ids, cfg.item, cfg.offsets["item"])


def author_rows(ids: np.ndarray, cfg: HashConfig) -> np.ndarray:
    """Unified-table rows of author ids: [...] -> [..., num_author_hashes] int64."""
    return _rows(ids, cfg.author, cfg.offsets["author"])
