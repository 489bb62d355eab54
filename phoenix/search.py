"""Exact top-K search over a retrieval corpus, for one user or a batch of users.

Scores are dot products of unit-norm user and candidate representations (phoenix_spec.md §2):
one matrix product per block of users, then a partial sort per row. On CPU this is numpy (BLAS
`sgemm` + `argpartition`); on an accelerator the corpus lives on the device and the product and
`lax.top_k` run there. Results are ordered by score descending, ties by corpus index; which of
several equal scores at the K-th place make the cut is left to the partial sort (deterministic).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# one block of scores is at most this many float32s (256 MB), whatever the batch size
MAX_BLOCK_SCORES = 64 * 1024 * 1024


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-K of a score vector [N]: (indices [K], scores [K]), score descending, ties by
    index (upstream run_pipeline: argpartition + sort)."""
    idx, top = top_k_rows(scores[None], k)
    return idx[0], top[0]


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise exact top-K of scores [U, N]: (indices [U, K] int64, scores [U, K])."""
    u, n = scores.shape
    k = min(k, n)
    if k == 0:
        return np.zeros((u, 0), np.int64), np.zeros((u, 0), scores.dtype)
    if k < n:
        idx = np.argpartition(scores, n - k, axis=1)[:, n - k :]  # [U, K], unordered
    else:
        idx = np.broadcast_to(np.arange(n), (u, n))
    top = np.take_along_axis(scores, idx, axis=1)
    order = np.lexsort((idx, -top), axis=1)  # score descending, then index ascending
    idx = np.take_along_axis(idx, order, axis=1)
    return idx.astype(np.int64), np.take_along_axis(top, order, axis=1)


def search(
    queries: np.ndarray,  # [U, D] float32
    corpus: np.ndarray,  # [N, D] float32
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-K corpus rows for each query on the host: (indices [U, K], scores [U, K]).

    One `queries @ corpus.T` per block of users (blocks bounded by MAX_BLOCK_SCORES), no loop
    per user."""
    queries = np.asarray(queries, np.float32)
    u, n = len(queries), len(corpus)
    k = min(k, n)
    idx = np.zeros((u, k), np.int64)
    top = np.zeros((u, k), np.float32)
    block = max(1, MAX_BLOCK_SCORES // max(n, 1))
    for start in range(0, u, block):
        stop = min(start + block, u)
        scores = (
            queries[start:stop] @ corpus.T if stop - start > 1 else (corpus @ queries[start])[None]
        )
        idx[start:stop], top[start:stop] = top_k_rows(scores, k)
    return idx, top


class DeviceCorpus:
    """A corpus resident on a JAX device: one jitted product + `lax.top_k` per batch of users.

    Worth it on an accelerator (the corpus is copied once); on CPU `search` is as fast."""

    def __init__(self, corpus: np.ndarray, device: jax.Device | None = None):
        self.embeddings = jax.device_put(jnp.asarray(corpus, jnp.float32), device)  # [N, D]
        self.device = device

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices [U, K], scores [U, K]) with the same order as `search`."""
        k = min(k, int(self.embeddings.shape[0]))
        q = jax.device_put(jnp.asarray(queries, jnp.float32), self.device)
        top, idx = _device_top_k(q, self.embeddings, k)
        top, idx = np.asarray(top), np.asarray(idx).astype(np.int64)
        order = np.lexsort((idx, -top), axis=1)  # lax.top_k's tie order is unspecified
        return np.take_along_axis(idx, order, axis=1), np.take_along_axis(top, order, axis=1)


@functools.partial(jax.jit, static_argnums=2)
def _device_top_k(q: jax.Array, corpus: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    return jax.lax.top_k(q @ corpus.T, k)  # [U, K] each
