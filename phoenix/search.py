"""Exact top-K search over a retrieval corpus, for one user or a batch of users.

Scores are dot products of unit-norm user and candidate representations (phoenix_spec.md §2).
On CPU this is numpy: one BLAS `sgemm` per corpus chunk for a whole block of users, then an
exact two-stage selection (`search`); on an accelerator the corpus lives on the device and the
product and `lax.top_k` run there. Results are ordered by score descending, ties by corpus
index: of several equal scores at the K-th place, the lowest indices make the cut.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from phoenix.device import full_precision

# corpus rows per product: a block's scores stay small (64 users -> 16 MB) whatever the corpus
SEARCH_CHUNK = 64 * 1024
# scores per group in the two-stage selection (see `search`)
GROUP = 16
# the plain partial sort's block of users holds at most this many scores (256 MB)
MAX_BLOCK_SCORES = 64 * 1024 * 1024


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-K of a score vector [N]: (indices [K], scores [K]), score descending, ties by
    index (upstream run_pipeline: argpartition + sort)."""
    idx, top = top_k_rows(scores[None], k)
    return idx[0], top[0]


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise exact top-K of scores [U, N]: (indices [U, K] int64, scores [U, K]); score
    descending, ties by index (the lowest indices make the cut)."""
    u, n = scores.shape
    k = min(k, n)
    if k == 0:
        return np.zeros((u, 0), np.int64), np.zeros((u, 0), scores.dtype)
    if not np.isfinite(scores).all():  # NaN has no place in an order: argpartition's choice
        idx = np.argpartition(scores, n - k, axis=1)[:, n - k :] if k < n else (
            np.broadcast_to(np.arange(n), (u, n)))  # fmt: skip
        top = np.take_along_axis(scores, idx, axis=1)
        order = np.lexsort((idx, -top), axis=1)
        return (np.take_along_axis(idx, order, axis=1).astype(np.int64),
                np.take_along_axis(top, order, axis=1))  # fmt: skip
    if k < n:
        # the K-th largest score of each row; every score above it, and the lowest-index
        # copies of it, are the top-K
        kth = np.partition(scores, n - k, axis=1)[:, n - k]  # [U]
        rows, cols = np.nonzero(scores >= kth[:, None])
    else:
        rows, cols = np.divmod(np.arange(u * n), n)
    return _select(rows, cols, scores[rows, cols], u, k)


def _select(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, u: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first K of each row's candidates (row [S], corpus index [S], score [S]) by score
    descending then index; every row has at least K candidates -> ([U, K], [U, K])."""
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    counts = np.bincount(rows, minlength=u)  # [U], each >= k
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    first = rank < k
    return cols[first].astype(np.int64).reshape(u, k), vals[first].reshape(u, k)


def search(
    queries: np.ndarray,  # [U, D] float32
    corpus: np.ndarray,  # [N, D] float32
    k: int,
    rows: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-K corpus rows for each query on the host: (indices [U, K], scores [U, K]),
    the same as sorting each user's full score row. With `rows` R >= U, the products are
    computed for R query rows (padding with copies of the first), so that their shape, and with
    it the bits of a user's scores, is the same in any block of up to R users.

    One `chunk @ queries.T` per corpus chunk of SEARCH_CHUNK rows (no loop per user), and no
    partial sort over the full rows: each chunk's scores are split into groups of GROUP; the
    K-th largest of the group maxima seen so far is a lower bound t of each user's K-th largest
    score (K maxima of disjoint groups are K scores >= t), so only the groups whose maximum
    reaches t are read, and only their scores >= t are kept. The survivors (about K per user)
    are sorted exactly. A corpus of fewer than 2·K groups takes a plain partial sort per row
    (`top_k_rows`, blocks of users bounded by MAX_BLOCK_SCORES). BLAS runs on one thread."""
    with _search_blas_threads():
        return _search(np.asarray(queries, np.float32), corpus, k, rows)


def _search(
    queries: np.ndarray, corpus: np.ndarray, k: int, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    u, n = len(queries), len(corpus)
    k = min(k, n)
    if not np.isfinite(queries).all():
        raise ValueError("search: the query representations hold NaN or inf")
    if k == 0 or u == 0:
        return np.zeros((u, k), np.int64), np.zeros((u, k), np.float32)
    if rows:
        if u > rows:
            raise ValueError(f"search: {u} queries for products of {rows} rows")
        queries = np.concatenate([queries, np.repeat(queries[:1], rows - u, axis=0)])
    if n < 2 * k * GROUP:
        block = rows or max(1, MAX_BLOCK_SCORES // n)
        parts = [top_k_rows(_scores(queries[a : a + block], corpus, 0, n).T[: u - a], k)
                 for a in range(0, u, block)]  # fmt: skip
        return np.concatenate([i for i, _ in parts]), np.concatenate([t for _, t in parts])
    thresh = np.full(u, -np.inf, np.float32)  # [U] lower bound of each K-th largest score
    best = np.zeros((u, 0), np.float32)  # [U, <=K] the largest group maxima so far
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (row, index, score) [S]
    # one score buffer for every chunk (the same sgemm writes into it): a fresh 16 MB array
    # per chunk kept glibc's heap ~75 MB high through each batch
    r_all = len(queries)  # R >= U columns of the scores (the padding users' are not read)
    buf = np.empty(r_all * min(n, SEARCH_CHUNK), np.float32)
    for start in range(0, n, SEARCH_CHUNK):
        stop = min(n, start + SEARCH_CHUNK)
        scores = _scores(queries, corpus, start, stop, buf)  # [C, R] row-major
        width = len(scores)
        g = width // GROUP
        # group j of a user: corpus rows j, j + g, ..., j + 15g of the chunk
        maxima = scores[: g * GROUP, :u].reshape(GROUP, g, u).max(axis=0)  # [g, U]
        best = np.concatenate([best, maxima.T], axis=1)  # rows contiguous: a faster partition
        if best.shape[1] >= k:
            best = np.partition(best, best.shape[1] - k, axis=1)[:, -k:]
            thresh = best.min(axis=1)
        j, r = np.nonzero(maxima >= thresh)  # groups that may hold top-K scores
        # their scores by flat index into the chunk's scores (one take, not a 3-D fancy index)
        index = np.int32 if r_all * width < np.iinfo(np.int32).max else np.int64
        flat = (j * r_all + r).astype(index)[:, None] + (g * r_all) * np.arange(GROUP, dtype=index)
        vals = scores.reshape(-1).take(flat)  # [S, GROUP]
        keep = vals >= thresh[r][:, None]
        flat = flat[keep]
        col = flat // r_all
        found.append((flat - col * r_all, col.astype(np.int64) + start, vals[keep]))
        del flat, vals, keep, col
        tail = scores[g * GROUP :, :u]  # the last < GROUP scores of a user
        c, r = np.nonzero(tail >= thresh)
        found.append((r, c + g * GROUP + start, tail[c, r]))
    rows, cols, vals = (np.concatenate(x) for x in zip(*found, strict=True))
    keep = vals >= thresh[rows]  # the final bound
    return _select(rows[keep], cols[keep], vals[keep], u, k)


@functools.cache
def _blas_local_threads() -> ctypes._CFuncPtr | None:
    """OpenBLAS's setter of the calling thread's BLAS thread count, in numpy's bundled OpenBLAS
    (OpenBLAS >= 0.3.27); None where numpy uses another BLAS."""
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for lib in sorted(libs.glob("libscipy_openblas*.so*")):
        try:
            setter = ctypes.CDLL(str(lib)).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
        return setter
    return None


@contextlib.contextmanager
def _search_blas_threads() -> Iterator[None]:
    """BLAS calls of this thread on one core when it is not the main thread (a population
    engine's batch thread, beside the other batch in flight): there OpenBLAS's spinning helper
    threads doubled the CPU time of a search. The main thread (a single request, a run of one
    batch) keeps BLAS's threads: on an idle 2-core machine a one-user search over 1 M × 128
    rows took 28.6 ms on one thread against 20.6 on two. Same bits either way."""
    if threading.current_thread() is threading.main_thread():
        yield
        return
    setter = _blas_local_threads()
    previous = setter(1) if setter is not None else None
    try:
        yield
    finally:
        if setter is not None:
            setter(previous)


def _scores(queries: np.ndarray, corpus: np.ndarray, start: int, stop: int,
            buf: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """corpus[start:stop] @ queries.T -> [C, U] (a corpus row's scores side by side), into the
    front of the flat float32 `buf` when given. This layout's sgemm (the corpus rows as the long
    side) ran 1.5x faster than queries @ chunk.T in OpenBLAS for 64 queries of 32 dimensions,
    with the same bits; a single query is a product with a vector, as before: the bits of a
    score do not depend on the chunking or the buffer."""
    chunk = corpus[start:stop]
    if len(queries) == 1:
        return (chunk @ queries[0])[:, None]
    if buf is None:
        return chunk @ queries.T
    out = buf[: len(chunk) * len(queries)].reshape(len(chunk), len(queries))
    return np.matmul(chunk, queries.T, out=out)


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
@full_precision
def _device_top_k(q: jax.Array, corpus: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    return jax.lax.top_k(q @ corpus.T, k)  # [U, K] each
