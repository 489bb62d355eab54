"""Random-weight checkpoints in upstream's exact artifacts layout, for tests and demos.

`write_fake_artifacts` produces what upstream's run_pipeline.py reads (phoenix_spec.md §3.5):

    DIR/ranker/{config.json, model_params.npz, embedding_tables.npz}
    DIR/retrieval/{config.json, model_params.npz, embedding_tables.npz}
    DIR/sports_corpus.npz       post_ids, candidate_representations, author_ids, topics
    DIR/example_sequence.json   {"user_id", "history": [{post_id, author_id, actions, label}]}

Weights are non-zero (norm scales near 1, matrices ~ N(0, 1/fan_in)) so outputs vary. The corpus
embeddings come from the fake retrieval model's own candidate tower, so retrieval is consistent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from checkpoints.corpus import Corpus, save_upstream_corpus
from checkpoints.formats import CHECKPOINT_OUTPUT, save_upstream
from phoenix.actions import ActionName
from phoenix.config import ModelType, Preset
from phoenix.embeddings import EmbeddingTables
from phoenix.params import random_params
from phoenix.runtime import PhoenixCheckpoint, Retriever
from safeio.atomic import atomic_path

SNOWFLAKE_EPOCH_MS = 1288834974657
FAKE_NOW_MS = 1_778_800_000_000  # 2026-05-14, around the mini checkpoint's release
TOPICS = ("NFL", "NBA", "NHL", "MLB", "Soccer", "F1", "Tennis", "Golf")
HISTORY_ACTIONS = (
    ActionName.SERVER_TWEET_FAV,
    ActionName.SERVER_TWEET_REPLY,
    ActionName.SERVER_TWEET_RETWEET,
    ActionName.CLIENT_TWEET_RECAP_DWELLED,
    ActionName.CLIENT_TWEET_VIDEO_QUALITY_VIEW,
)
HISTORY_ACTION_RATES = (0.8, 0.15, 0.1, 0.7, 0.3)


def snowflake_id(created_ms: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """((created_ms − epoch) << 22) | (sequence mod 2²²)."""
    return ((created_ms.astype(np.int64) - SNOWFLAKE_EPOCH_MS) << 22) | (sequence % (1 << 22))


def random_tables(vocab: int, dim: int, rng: np.random.Generator) -> EmbeddingTables:
    return EmbeddingTables(
        *(0.5 * rng.standard_normal((vocab, dim), dtype=np.float32) for _ in range(3))
    )


def fake_checkpoint(
    model_type: ModelType | str, vocab: int, seed: int, preset: Preset = Preset.MINI
) -> PhoenixCheckpoint:
    """One random model of `preset`'s architecture with `vocab` rows per table."""
    cfg = preset.config(model_type, vocab=vocab)
    offset = 0 if cfg.is_ranker else 1
    rng = np.random.default_rng([seed, offset])
    return PhoenixCheckpoint(
        cfg, random_params(cfg, seed * 2 + offset), random_tables(vocab, cfg.emb_size, rng)
    )


def write_fake_artifacts(
    out: Path | str,
    vocab: int = 1000,
    seed: int = 0,
    corpus_size: int = 2000,
    history_len: int = 40,
    num_authors: int = 300,
    preset: Preset = Preset.MINI,
    *,
    force: bool = False,
) -> Path:
    """Write a complete fake artifacts directory atomically; returns `out`."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    ranker = fake_checkpoint(ModelType.RANKER, vocab, seed, preset)
    retrieval = fake_checkpoint(ModelType.RETRIEVAL, vocab, seed, preset)

    authors = rng.choice(np.arange(10_000_000, 99_999_999), size=num_authors, replace=False)
    created = FAKE_NOW_MS - rng.integers(60_000, 6 * 3600_000, size=corpus_size)
    post_ids = snowflake_id(created, rng.integers(0, 1 << 22, size=corpus_size))
    author_ids = rng.choice(authors, size=corpus_size)
    topics = np.array(TOPICS)[rng.integers(0, len(TOPICS), size=corpus_size)]
    embeddings = Retriever(retrieval).encode_posts(post_ids, author_ids)
    corpus = Corpus(post_ids, author_ids.astype(np.int64), embeddings, topics)

    pick = rng.choice(corpus_size, size=min(history_len, corpus_size), replace=False)
    history = []
    for i in pick:
        hits = rng.random(len(HISTORY_ACTIONS)) < HISTORY_ACTION_RATES
        hits[0] = hits[0] or not hits.any()
        actions = {str(int(a)): 1.0 for a, hit in zip(HISTORY_ACTIONS, hits, strict=True) if hit}
        history.append(
            {
                "post_id": int(post_ids[i]),
                "author_id": int(author_ids[i]),
                "actions": actions,
                "label": str(topics[i]),
            }
        )
    sequence = {"user_id": int(rng.integers(1, 10**9)), "history": history}

    with atomic_path(out, kind=CHECKPOINT_OUTPUT, force=force) as tmp:
        save_upstream(tmp / "ranker", ranker)
        save_upstream(tmp / "retrieval", retrieval)
        save_upstream_corpus(tmp / "sports_corpus.npz", corpus)
        (tmp / "example_sequence.json").write_text(json.dumps(sequence, indent=2) + "\n")
    return out
