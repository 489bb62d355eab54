"""The upstream run_pipeline flow: one user's sequence -> two-tower retrieval -> Phoenix ranking.

Re-implements phoenix/run_pipeline.py @0bfc279 (phoenix_spec.md §3.2) over either checkpoint
format: read both configs, hash the history, encode the user, dot-product top-K over the corpus,
rank the retrieved posts in chunks of `candidate_seq_len`, weighted score
1.0·P[fav] + 0.5·P[reply] + 0.3·P[retweet] + 0.2·P[recap dwelled] (outputs indexed by ActionName).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from checkpoints.corpus import Corpus, load_corpus
from checkpoints.errors import CheckpointError
from checkpoints.formats import load_model
from phoenix.actions import UPSTREAM_DEMO_WEIGHTS, ActionName
from phoenix.config import ModelType
from phoenix.inputs import UserHistory, load_sequence_json
from phoenix.runtime import Ranker, Retriever
from phoenix.search import top_k

logger = logging.getLogger(__name__)

CORPUS_FILES = ("corpus.safetensors", "sports_corpus.npz")
SEQUENCE_FILE = "example_sequence.json"


@dataclasses.dataclass(frozen=True)
class FlowResult:
    user_id: int
    history_len: int
    corpus_size: int
    user_norm: float
    post_ids: np.ndarray  # [K] int64, in final order
    author_ids: np.ndarray  # [K] int64
    topics: list[str]  # [K]
    retrieval_scores: np.ndarray  # [K] float32
    head_names: tuple[str, ...]  # ranker heads (empty when not ranked)
    probs: np.ndarray | None  # [K, A] float32, or None for retrieval only
    weighted: np.ndarray | None  # [K] float32
    missing_weight_heads: tuple[str, ...]  # weighted-score heads the ranker lacks (contribute 0)
    timings_ms: dict[str, float]


def default_corpus(artifacts: Path) -> Path:
    for name in CORPUS_FILES:
        if (artifacts / name).exists():
            return artifacts / name
    raise CheckpointError(f"{artifacts}: no corpus ({' or '.join(CORPUS_FILES)}); pass --corpus")


def weighted_score(
    probs: np.ndarray, head_names: tuple[str, ...], weights: dict[ActionName, float]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Σ weight · P[head] over the weighted heads the model has: [N, A] -> [N]; also returns the
    names of weighted heads the model lacks (they contribute 0)."""
    index = {name: i for i, name in enumerate(head_names)}
    score = np.zeros(len(probs), np.float32)
    missing = []
    for action, w in weights.items():
        if action.name in index:
            score += np.float32(w) * probs[:, index[action.name]]
        else:
            missing.append(action.name)
    return score, tuple(missing)


def run_phoenix_flow(
    artifacts: Path | str,
    *,
    sequence: Path | str | None = None,
    corpus: Path | str | None = None,
    top_k_retrieval: int = 200,
    rank: bool = True,
    dtype: str | None = None,
) -> FlowResult:
    """Retrieve (and optionally rank) for the user of `sequence` over `corpus`.

    `artifacts` is a bundle directory (upstream artifacts or xfeed's) with `ranker/` and
    `retrieval/`. `dtype` overrides the compute dtype (default: the checkpoint's, bfloat16).
    """
    artifacts = Path(artifacts)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    retr_ckpt, _ = load_model(artifacts, ModelType.RETRIEVAL)
    rank_ckpt = load_model(artifacts, ModelType.RANKER)[0] if rank else None
    if dtype:
        retr_ckpt = retr_ckpt.with_dtype(dtype)
        rank_ckpt = rank_ckpt.with_dtype(dtype) if rank_ckpt else None
    corpus_data: Corpus = load_corpus(corpus or default_corpus(artifacts))
    if corpus_data.dim != retr_ckpt.config.emb_size:
        raise CheckpointError(
            f"corpus width {corpus_data.dim} != retrieval emb_size {retr_ckpt.config.emb_size}"
        )
    seq_path = Path(sequence) if sequence else artifacts / SEQUENCE_FILE
    if not seq_path.exists():
        raise CheckpointError(f"{seq_path}: sequence file not found")
    try:
        history: UserHistory = load_sequence_json(seq_path, retr_ckpt.config.num_actions)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{seq_path}: bad sequence file ({exc})") from exc
    timings["load"] = (time.perf_counter() - t0) * 1e3

    t0 = time.perf_counter()
    retriever = Retriever(retr_ckpt)
    rep, norm = retriever.encode_user(history)
    scores = np.asarray(corpus_data.embeddings @ rep, np.float32)  # [N]
    idx, top_scores = top_k(scores, top_k_retrieval)
    timings["retrieve"] = (time.perf_counter() - t0) * 1e3
    logger.info("User repr norm=%.4f", norm)
    if len(idx):
        logger.info(
            "Retrieved %d (score range: %.4f - %.4f)", len(idx), top_scores[-1], top_scores[0]
        )

    post_ids = corpus_data.post_ids[idx]
    author_ids = corpus_data.author_ids[idx]
    topics = [str(corpus_data.topics[i]) if corpus_data.topics is not None else "" for i in idx]
    probs = weighted = None
    heads: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    if rank_ckpt is not None:
        t0 = time.perf_counter()
        ranker_history = load_sequence_json(seq_path, rank_ckpt.config.num_actions)
        probs = Ranker(rank_ckpt, upstream_sigmoid=True).rank(ranker_history, post_ids, author_ids)
        heads = rank_ckpt.config.head_names
        weighted, missing = weighted_score(probs, heads, UPSTREAM_DEMO_WEIGHTS)
        order = np.lexsort((post_ids, -weighted))
        post_ids, author_ids, probs, weighted = (
            post_ids[order],
            author_ids[order],
            probs[order],
            weighted[order],
        )
        top_scores = top_scores[order]
        topics = [topics[i] for i in order]
        timings["rank"] = (time.perf_counter() - t0) * 1e3
    return FlowResult(
        user_id=history.user_id,
        history_len=min(len(history), retr_ckpt.config.history_seq_len),
        corpus_size=len(corpus_data),
        user_norm=norm,
        post_ids=post_ids,
        author_ids=author_ids,
        topics=topics,
        retrieval_scores=top_scores,
        head_names=heads,
        probs=probs,
        weighted=weighted,
        missing_weight_heads=missing,
        timings_ms=timings,
    )
