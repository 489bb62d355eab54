"""Candidate sources (homemixer_spec.md §4): Thunder in-network and Phoenix retrieval
out-of-network, concatenated in that order (so Thunder wins duplicates)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from checkpoints.corpus import Corpus, load_corpus
from pipeline.candidates import PostCandidate
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
    return build_store(read_logs([Path(world) / "posts.parquet"]), now_ms)


def thunder_store(snapshot: str | None, world: str, now_ms: int) -> ThunderStore:
    """The snapshot (memory-mapped) when it is as of the request time; otherwise a store built
    in memory from the world's post log at the request time (a snapshot of another time would
    serve posts created after the request, or miss posts deleted since)."""
    if snapshot:
        store = _snapshot_store(snapshot)
        if store.as_of_ms == now_ms:
            return store
    return _log_store(world, now_ms)


@dataclasses.dataclass
class ThunderSource(StageDefaults):
    """In-network posts of followed accounts, minus seen ids, newest first (≤ 1,200)."""

    def get_candidates(self, query: FeedQuery) -> list[PostCandidate]:
        r = query.resources
        store = thunder_store(r.snapshot, r.world, query.now_ms)
        request = InNetworkRequest(
            query.user_id,
            np.asarray(query.followed_ids, np.int64),
            np.asarray(query.seen_ids, np.int64),
            max_results=query.params.thunder_max_results,
        )
        rows = in_network_posts(store, request)
        p = store.posts
        out = []
        for row in rows.tolist():
            reply_to, conv = int(p["in_reply_to_post_id"][row]), int(p["conversation_id"][row])
            ancestors = tuple(x for x in (reply_to, conv if conv != reply_to else 0) if x)
            out.append(PostCandidate(
                post_id=int(p["post_id"][row]), author_id=int(p["author_id"][row]),
                created_ms=int(p["created_ms"][row]), source="thunder",
                in_reply_to_post_id=reply_to,
                in_reply_to_user_id=int(p["in_reply_to_user_id"][row]),
                conversation_id=conv, source_post_id=int(p["source_post_id"][row]),
                source_user_id=int(p["source_user_id"][row]), ancestors=ancestors,
                has_video=bool(p["has_video"][row]),
            ))  # fmt: skip
        return out


@dataclasses.dataclass
class PhoenixRetrievalSource(StageDefaults):
    """Out-of-network posts: the user tower over the query's sequence, dot-product top-K over the
    corpus (≤ 1,000), posts created after the request time excluded. Off for in-network-only
    viewers. Ancestors stay empty (as upstream)."""

    retriever: Retriever
    corpus: Corpus
    world: WorldData

    def enable(self, query: FeedQuery) -> bool:
        return not query.in_network_only

    def get_candidates(self, query: FeedQuery) -> list[PostCandidate]:
        from phoenix.search import search  # noqa: PLC0415 (JAX only where retrieval runs)

        cfg = self.retriever.config
        history = query.user_history(cfg.num_actions, cfg.history_seq_len)
        rep, _ = self.retriever.encode_user(history)  # [D]
        rows = live_rows(self.corpus, self.world, query.now_ms)  # [M] or None (all)
        emb = self.corpus.embeddings if rows is None else self.corpus.embeddings[rows]
        idx, top = search(rep[None], emb, query.params.retrieval_max_results)
        idx, top = idx[0], top[0]  # [K]
        if rows is not None:
            idx = rows[idx]
        return [
            PostCandidate(post_id=int(self.corpus.post_ids[i]),
                          author_id=int(self.corpus.author_ids[i]),
                          source="phoenix_retrieval", retrieval_score=float(s))
            for i, s in zip(idx.tolist(), top.tolist(), strict=True)
        ]  # fmt: skip


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


def default_corpus_path(query: FeedQuery) -> str:
    return query.resources.corpus or str(Path(query.resources.world) / "corpus.safetensors")


def load_default_corpus(query: FeedQuery) -> Corpus:
    return load_corpus(default_corpus_path(query))
