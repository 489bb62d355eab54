"""Candidate sources (homemixer_spec.md §4): Thunder in-network and Phoenix retrieval
out-of-network, concatenated in that order (so Thunder wins duplicates)."""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from checkpoints.corpus import Corpus
from pipeline.columns import Cands, nonzero_tuples, object_array
from pipeline.framework import StageDefaults
from pipeline.hydrators import SNOWFLAKE_EPOCH_MS
from pipeline.query import FeedQuery
from thunder.fetch import InNetworkRequest, in_network_posts
from thunder.log import read_logs
from thunder.snapshot import load_snapshot
from thunder.store import ThunderStore, build_store

if TYPE_CHECKING:
    from phoenix.runtime import Retriever
    from world.data import WorldData


@functools.lru_cache(maxsize=4)
def _snapshot_store(snapshot: str) -> ThunderStore:
    return load_snapshot(snapshot)[0]


@functools.lru_cache(maxsize=4)
def _log_store(world: str, now_ms: int) -> ThunderStore:
    store = build_store(read_logs([Path(world) / "posts.parquet"]), now_ms)
    pa.default_memory_pool().release_unused()  # the log read for it (~0.4 GB at 100k users)
    return store


def thunder_store(snapshot: str | None, world: str, now_ms: int) -> ThunderStore:
    """The snapshot (memory-mapped) when it is as of the request time; otherwise a store built
    in memory from the world's post log at the request time (a snapshot of another time would
    serve posts created after the request, or miss posts deleted since)."""
    with _STORE_LOCK:  # one store object per key, also when batches run in threads
        if snapshot:
            store = _snapshot_store(snapshot)
            if store.as_of_ms == now_ms:
                return store
        return _log_store(world, now_ms)


_STORE_LOCK = threading.Lock()


@dataclasses.dataclass
class ThunderSource(StageDefaults):
    """In-network posts of followed accounts, minus seen ids, newest first (≤ 1,200)."""

    def get_candidates(self, queries: Sequence[FeedQuery], reqs: np.ndarray) -> Cands:
        rows, req, stores = [], [], set()
        for r in reqs.tolist():
            q = queries[r]
            store = thunder_store(q.resources.snapshot, q.resources.world, q.now_ms)
            stores.add(id(store))
            request = InNetworkRequest(
                q.user_id,
                np.asarray(q.followed_ids, np.int64),
                np.asarray(q.seen_ids, np.int64),
                max_results=q.params.thunder_max_results,
            )
            got = in_network_posts(store, request)  # [K] store rows
            rows.append(got)
            req.append(np.full(len(got), r, np.int64))
        if len(stores) > 1:
            raise ValueError("a batch must share one Thunder store (same world, snapshot, time)")
        rows = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
        req = np.concatenate(req) if req else np.zeros(0, np.int64)
        p = store.posts if reqs.size else {}
        col = (
            {k: np.asarray(p[k][rows], np.int64) for k in _THUNDER_INT}
            if reqs.size
            else {k: np.zeros(0, np.int64) for k in _THUNDER_INT}
        )
        reply_to, conv = col["in_reply_to_post_id"], col["conversation_id"]
        ancestors = nonzero_tuples(reply_to, np.where(conv != reply_to, conv, 0))  # parent, root
        has_video = np.asarray(p["has_video"][rows], bool) if reqs.size else np.zeros(0, bool)
        return Cands(req).with_columns({
            **col, "source": object_array(["thunder"] * len(rows)),
            "ancestors": ancestors, "has_video": has_video,
        })  # fmt: skip


_THUNDER_INT = (
    "post_id", "author_id", "created_ms", "in_reply_to_post_id", "in_reply_to_user_id",
    "conversation_id", "source_post_id", "source_user_id",
)  # fmt: skip


# users per user-tower call (fixed shapes, so a user's representation is the same bits alone or
# in any batch); small, so a single request does not pay for 63 padding users
USERS_PER_CALL = 8
# users per retrieval product (fixed shape, as above): one pass over the corpus serves them all;
# on a large corpus reading it costs more than the padding rows' products
USERS_PER_SEARCH = 64


@dataclasses.dataclass
class PhoenixRetrievalSource(StageDefaults):
    """Out-of-network posts: the user tower over the query's sequence, dot-product top-K over the
    corpus (≤ 1,000), posts created after the request time excluded. Off for in-network-only
    viewers. Ancestors stay empty (as upstream). One user-tower call per block of
    USERS_PER_CALL users and one exact search (phoenix.search) per block of USERS_PER_SEARCH
    users (per request time)."""

    retriever: Retriever
    corpus: Corpus
    world: WorldData

    def enable(self, query: FeedQuery) -> bool:
        return not query.in_network_only

    def get_candidates(self, queries: Sequence[FeedQuery], reqs: np.ndarray) -> Cands:
        from phoenix.search import search  # noqa: PLC0415 (JAX only where retrieval runs)

        cfg = self.retriever.config
        histories = [queries[r].user_history(cfg.num_actions, cfg.history_seq_len)
                     for r in reqs.tolist()]  # fmt: skip
        reps = self.retriever.encode_users(histories, USERS_PER_CALL)  # [U, D]
        ks = {queries[r].params.retrieval_max_results for r in reqs.tolist()}
        k = min(max(ks) if ks else 0, len(self.corpus.post_ids))
        idx = np.zeros((len(reps), k), np.int64)
        top = np.zeros((len(reps), k), np.float32)
        now = np.array([queries[r].now_ms for r in reqs.tolist()], np.int64)
        for t in np.unique(now).tolist():
            rows = live_rows(self.corpus, self.world, t)  # [M] or None (all)
            emb = self.corpus.embeddings if rows is None else self.corpus.embeddings[rows]
            at = np.flatnonzero(now == t)
            kt = min(k, len(emb))
            for a in range(0, len(at), USERS_PER_SEARCH):  # one fixed-shape product per block,
                part = at[a : a + USERS_PER_SEARCH]  # so a user's scores are the same bits in
                i, s = search(reps[part], emb, kt, rows=USERS_PER_SEARCH)  # any batch
                idx[part, :kt], top[part, :kt] = (i if rows is None else rows[i]), s  # [P, kt]
            k = min(k, kt)
        kk = min(k, len(self.corpus.post_ids))
        take = np.array([min(queries[r].params.retrieval_max_results, kk) for r in reqs.tolist()],
                        np.int64)  # fmt: skip
        keep = np.arange(idx.shape[1])[None, :] < take[:, None]  # [U, K]
        idx, top = idx[keep], top[keep]  # row-major: grouped by user, best first
        req = np.repeat(reqs.astype(np.int64), take)
        return Cands(req).with_columns({
            "post_id": np.asarray(self.corpus.post_ids[idx], np.int64),
            "author_id": np.asarray(self.corpus.author_ids[idx], np.int64),
            "source": object_array(["phoenix_retrieval"] * len(idx)),
            "retrieval_score": top.astype(np.float32).astype(np.float64),
        })  # fmt: skip


def live_rows(corpus: Corpus, world: WorldData, now_ms: int) -> np.ndarray | None:
    """Rows of the corpus a request at `now_ms` may retrieve: posts created at or before it
    (creation time from the world, else from the snowflake id). None = every row (a corpus
    built as of `now_ms` or earlier holds nothing newer)."""
    as_of = corpus.meta.get("as_of_ms")
    if as_of is not None and int(as_of) <= now_ms:
        return None
    rows = world.post_rows(corpus.post_ids)  # [N]
    created = np.where(rows >= 0, world.posts["created_ms"][np.maximum(rows, 0)],
                       (corpus.post_ids >> 22) + SNOWFLAKE_EPOCH_MS)  # fmt: skip
    return np.flatnonzero(created <= now_ms)
