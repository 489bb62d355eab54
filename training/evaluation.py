"""`xfeed eval`: offline quality of a checkpoint on a world's held-out items, with baselines.

Protocol (printed with the numbers): the last 20% of each user's items (by time) are held out
(`sequences.split_points`); the model sees only the user's earlier items as history.
- Ranker: every held-out item is a candidate for its user; per-action AUC and log-loss over all
  of them; NDCG@10 and HR@10 of favorited items within each user's held-out list, averaged over
  users with at least one favorite and two or more held-out items.
- Retrieval: the corpus is every post created in the world (deletes removed); recall@K of each
  user's held-out favorited posts, the user's training items excluded from the ranking.
- Baselines on the same candidates: random (seeded), popularity (training-period engagement
  count), recency (newest first), and for retrieval author-follow (posts by followed authors,
  newest first, then the rest by popularity).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from checkpoints.errors import CheckpointError
from checkpoints.formats import load_model
from phoenix.actions import ActionName, head_name
from phoenix.config import ModelType
from phoenix.inputs import UserHistory
from phoenix.runtime import Ranker, Retriever
from training import metrics
from world.sequences import (
    Sequences,
    attach_post_inputs,
    load_post_sids,
    load_sequences,
    split_points,
)
from world.tables import read_table

FAV = ActionName.SERVER_TWEET_FAV
NDCG_K = 10
RECALL_K = 100
MIN_POSITIVES = 20  # heads with fewer held-out positives get no AUC row


@dataclasses.dataclass
class Split:
    seq: Sequences
    split: np.ndarray  # [U] first held-out item index per user
    popularity: dict[int, float]  # post id -> training engagement count
    created: dict[int, int]  # post id -> created_ms


def user_history(seq: Sequences, u: int, stop: int, length: int) -> UserHistory:
    """The user's most recent `length` items before `stop` (the model's history window)."""
    sl = slice(max(int(seq.offsets[u]), stop - length), stop)
    return UserHistory(
        user_id=int(seq.user_ids[u]), post_ids=seq.post_id[sl], author_ids=seq.author_id[sl],
        actions=seq.actions[sl], product_surface=seq.surface[sl], dwell_s=seq.dwell_s[sl],
    )  # fmt: skip


def load_split(world: Path | str, num_actions: int) -> Split:
    """The world's items with the protocol's split, training-period popularity and creation
    times."""
    seq = load_sequences(world, max(num_actions, FAV + 1))
    split = split_points(seq)
    train = np.zeros(len(seq.post_id), bool)
    for u in range(len(seq.user_ids)):
        train[seq.offsets[u] : split[u]] = True
    positive = seq.actions[:, FAV] + seq.actions[:, ActionName.SERVER_TWEET_RETWEET]
    ids, counts = np.unique(seq.post_id[train], return_counts=True)
    weights = np.bincount(np.searchsorted(ids, seq.post_id[train]), positive[train], len(ids))
    popularity = dict(zip(ids.tolist(), (counts + 3 * weights).tolist(), strict=True))
    posts = read_table(world, "posts", ["event", "post_id", "created_ms"])
    creates = posts.filter(pc.equal(posts.column("event"), "create"))
    created = dict(zip(creates.column("post_id").to_pylist(),
                       creates.column("created_ms").to_pylist(), strict=True))  # fmt: skip
    return Split(seq, split, popularity, created)


def _tail_scores(name: str, post_ids: np.ndarray, data: Split, rng: np.random.Generator):
    if name == "random":
        return rng.random(len(post_ids))
    if name == "popularity":
        return np.array([data.popularity.get(int(p), 0.0) for p in post_ids], np.float64)
    return np.array([data.created.get(int(p), 0) for p in post_ids], np.float64)  # recency


def evaluate_ranker(checkpoint: Path | str, world: Path | str, seed: int = 0) -> dict[str, Any]:
    ckpt, prov = load_model(checkpoint, ModelType.RANKER)
    cfg = ckpt.config
    data = load_split(world, cfg.num_actions)
    seq, split = attach_post_inputs(data.seq, world, cfg), data.split
    ranker = Ranker(ckpt, sids=seq.sids)
    all_probs, all_labels, per_user = [], [], []
    for u in range(len(seq.user_ids)):
        lo, hi = int(split[u]), int(seq.offsets[u + 1])
        if hi - lo < 1:
            continue
        history = user_history(seq, u, lo, cfg.history_seq_len)
        # scored as serving scores them: a retweet as its source post by the source's author
        posts, authors = seq.as_served(seq.post_id[lo:hi], seq.author_id[lo:hi])
        probs = ranker.rank(history, posts, authors, seq.surface[lo:hi])
        labels = seq.actions[lo:hi, : cfg.num_actions]
        all_probs.append(probs)
        all_labels.append(labels)
        per_user.append((seq.post_id[lo:hi], probs[:, FAV], seq.actions[lo:hi, FAV]))
    probs, labels = np.concatenate(all_probs), np.concatenate(all_labels)
    heads = []
    for i, name in enumerate(cfg.head_names):
        pos = int(labels[:, i].sum())
        if pos >= MIN_POSITIVES and pos < len(labels):
            p, y = probs[:, i], labels[:, i]
            heads.append({"head": head_name(name), "action": name, "positives": pos,
                          "auc": metrics.auc(p, y),
                          "log_loss": metrics.log_loss(p, y)})  # fmt: skip
    rng = np.random.default_rng(seed)
    ranking = {}
    for name in ("model", "random", "popularity", "recency"):
        ndcg, hr = [], []
        for post_ids, p_fav, fav in per_user:
            if len(post_ids) < 2 or not fav.any():
                continue
            scores = p_fav if name == "model" else _tail_scores(name, post_ids, data, rng)
            ndcg.append(metrics.ndcg_at_k(scores, fav, NDCG_K))
            hr.append(metrics.hit_rate_at_k(scores, fav, NDCG_K))
        ranking[name] = {f"ndcg@{NDCG_K}": float(np.mean(ndcg)), f"hr@{NDCG_K}": float(np.mean(hr)),
                         "users": len(ndcg)}  # fmt: skip
    return {
        "checkpoint": str(checkpoint),
        "provenance": prov,
        "protocol": {
            "split": "last 20% of each user's items (by time) held out; history = earlier items",
            "candidates": "each user's held-out items",
            "held_out_items": int(len(labels)),
            "users": len(per_user),
            "ranking_relevance": "favorited (SERVER_TWEET_FAV)",
            "ranking_score": "P(favorite)",
            "k": NDCG_K,
        },
        "heads": heads,
        "ranking": ranking,
    }


def eval_corpus(world: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """The retrieval evaluation's corpus: (post ids [P], author ids [P]) of every created post
    of the world that is never deleted, in creation-event order (retweets included, any age)."""
    posts = read_table(world, "posts", ["event", "post_id", "author_id"])
    creates = posts.filter(pc.equal(posts.column("event"), "create"))
    deletes = posts.filter(pc.equal(posts.column("event"), "delete")).column("post_id").to_numpy()
    ids, authors = creates.column("post_id").to_numpy(), creates.column("author_id").to_numpy()
    keep = ~np.isin(ids, deletes)
    return ids[keep], authors[keep]


def evaluate_retrieval(checkpoint: Path | str, world: Path | str, seed: int = 0) -> dict[str, Any]:
    ckpt, prov = load_model(checkpoint, ModelType.RETRIEVAL)
    data = load_split(world, ckpt.config.num_actions)
    seq, split = data.seq, data.split
    corpus_ids, corpus_authors = eval_corpus(world)
    retriever = Retriever(ckpt, sids=load_post_sids(world, ckpt.config))
    emb = retriever.encode_posts(corpus_ids, corpus_authors)
    popularity = np.array([data.popularity.get(int(p), 0.0) for p in corpus_ids])
    created = np.array([data.created.get(int(p), 0) for p in corpus_ids], np.float64)
    edges = read_table(world, "edges", ["src_user_id", "dst_user_id", "kind"])
    follows = edges.filter(pc.equal(edges.column("kind"), "follow"))
    src, dst = follows.column("src_user_id").to_numpy(), follows.column("dst_user_id").to_numpy()
    rng = np.random.default_rng(seed)
    recalls: dict[str, list[float]] = {"model": [], "random": [], "popularity": [], "recency": [],
                                       "author-follow": []}  # fmt: skip
    users = [u for u in range(len(seq.user_ids))
             if (seq.actions[int(split[u]) : int(seq.offsets[u + 1]), FAV] > 0).any()]  # fmt: skip
    reps = retriever.encode_users(  # [users, D], one jitted call per 64 users
        [user_history(seq, u, int(split[u]), ckpt.config.history_seq_len) for u in users]
    )
    for u, rep in zip(users, reps, strict=True):
        lo, hi = int(split[u]), int(seq.offsets[u + 1])
        relevant = seq.post_id[lo:hi][seq.actions[lo:hi, FAV] > 0]
        seen = np.isin(corpus_ids, seq.post_id[seq.offsets[u] : lo])
        followed = np.isin(corpus_authors, dst[src == seq.user_ids[u]])
        scores = {
            "model": emb @ rep,
            "random": rng.random(len(corpus_ids)),
            "popularity": popularity,
            "recency": created,
            "author-follow": followed * 1e15 + np.where(followed, created, popularity),
        }
        for name, s in scores.items():
            s = np.where(seen, -np.inf, s)
            top = np.argpartition(-s, RECALL_K)[:RECALL_K]
            recalls[name].append(metrics.recall_at_k(corpus_ids[top], relevant))
    return {
        "checkpoint": str(checkpoint),
        "provenance": prov,
        "protocol": {
            "split": "last 20% of each user's items (by time) held out; history = earlier items",
            "corpus": f"{len(corpus_ids)} posts (every create, deletes removed)",
            "relevant": "held-out favorited posts; the user's training items are excluded",
            "k": RECALL_K,
            "users": len(recalls["model"]),
        },
        "recall": {name: float(np.mean(v)) for name, v in recalls.items()},
    }


def evaluate(checkpoint: Path | str, world: Path | str, seed: int = 0) -> dict[str, Any]:
    """Both models of a checkpoint bundle (whichever are present)."""
    out: dict[str, Any] = {"world": str(world)}
    root = Path(checkpoint)
    if (root / "ranker").exists() or (root / "config.json").exists():
        out["ranker"] = evaluate_ranker(checkpoint, world, seed)
    if (root / "retrieval").exists():
        out["retrieval"] = evaluate_retrieval(checkpoint, world, seed)
    if "ranker" not in out and "retrieval" not in out:
        what = "no such checkpoint directory" if not root.exists() else "no ranker/ or retrieval/"
        raise CheckpointError(f"{root}: {what}")
    return out
