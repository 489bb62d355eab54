"""`xfeed eval --protocol loo`: leave-one-out, full ranking over the whole catalogue.

The standard protocol of the recommendation literature (as in NCF, SASRec): each user's last
relevant interaction (by time; ties by post id) is held out; everything the user interacted with
before it is the history; the held-out item is ranked against EVERY item of the catalogue except
the user's other items (no sampled candidates). Reported: HR@K, NDCG@K (one relevant item:
1 / log2(rank + 1) within the top K) and the median rank, for
- popularity: the number of users with a training interaction on the item;
- item-kNN: the sum of the item's cosine similarities (over users' training interactions) to the
  user's history items;
- retrieval: the checkpoint's two towers, dot product over the catalogue;
- retrieve-then-rank: the ranker reorders retrieval's top R (default 200) by one head's
  probability (candidates on the log's most common product surface, as in training); items
  below R keep their retrieval rank.
Ties are broken by a fixed random order of the catalogue (seeded), the same for every system.
Only models trained without the held-out items measure generalisation: train with
`--holdout loo` (the protocol output says whether the checkpoint's provenance does).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from checkpoints.formats import load_model
from phoenix.actions import ActionName
from phoenix.config import ModelType
from phoenix.runtime import Ranker, Retriever
from training.evaluation import user_history
from world.sequences import Sequences, load_post_sids, load_sequences, loo_points
from world.tables import WorldError, read_table, read_world_json

FAV = ActionName.SERVER_TWEET_FAV
MAX_DENSE = 400_000_000  # users x items cells of the item-kNN matrices (2 float32 copies)


@dataclasses.dataclass
class LooSplit:
    """Per evaluated user: the held-out item and the history before it."""

    seq: Sequences
    users: np.ndarray  # [U'] row into seq.user_ids of each evaluated user
    target: np.ndarray  # [U'] absolute item index of the held-out item
    catalogue: np.ndarray  # [I] post ids (sorted), every created post not deleted
    catalogue_authors: np.ndarray  # [I]
    target_col: np.ndarray  # [U'] catalogue column of the held-out post
    relevance: str


def loo_split(world: Path | str, num_actions: int, relevant: ActionName | None) -> LooSplit:
    """Hold out each user's last item (the last with `relevant` among its actions when given);
    users need at least one earlier item."""
    seq = load_sequences(world, max(num_actions, FAV + 1))
    posts = read_table(world, "posts", ["event", "post_id", "author_id"])
    creates = posts.filter(pc.equal(posts.column("event"), "create"))
    deleted = posts.filter(pc.equal(posts.column("event"), "delete")).column("post_id").to_numpy()
    ids = creates.column("post_id").to_numpy().astype(np.int64)
    authors = creates.column("author_id").to_numpy().astype(np.int64)
    keep = ~np.isin(ids, deleted)
    ids, first = np.unique(ids[keep], return_index=True)
    authors = authors[keep][first]
    points = loo_points(seq, relevant)
    held = points < seq.offsets[1:]
    held &= np.isin(seq.post_id[np.minimum(points, len(seq.post_id) - 1)], ids)
    users = np.flatnonzero(held)
    if not len(users):
        raise WorldError(f"{world}: no user has a held-out item with an earlier item")
    targets = points[users]
    target = np.asarray(targets, np.int64)
    return LooSplit(seq, users.astype(np.int64), target, ids, authors,
                    np.searchsorted(ids, seq.post_id[target]),
                    "any interaction" if relevant is None else relevant.name)  # fmt: skip


def _history_cols(split: LooSplit, j: int) -> np.ndarray:
    """Catalogue columns of evaluated user j's items other than the target (excluded)."""
    seq, u = split.seq, int(split.users[j])
    items = seq.post_id[int(seq.offsets[u]) : int(seq.offsets[u + 1])]
    items = items[items != seq.post_id[split.target[j]]]
    cols = np.searchsorted(split.catalogue, items)
    cols = cols[cols < len(split.catalogue)]
    return cols[split.catalogue[cols] == items[: len(cols)]] if len(cols) else cols


def ranks(scores: np.ndarray, target: int, exclude: np.ndarray, tiebreak: np.ndarray) -> int:
    """1-based rank of `target` among all columns but `exclude` (ties: lower `tiebreak` first)."""
    s = scores.astype(np.float64, copy=True)
    s[exclude] = -np.inf
    t = s[target]
    ahead = (s > t) | ((s == t) & (tiebreak < tiebreak[target]))
    ahead[exclude] = False
    return int(ahead.sum()) + 1


def summarize(rank: np.ndarray, k: int) -> dict[str, float]:
    """HR@K, NDCG@K and the median rank of one relevant item per user."""
    rank = np.asarray(rank, np.float64)
    hit = rank <= k
    return {f"hr@{k}": float(hit.mean()),
            f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0).mean()),
            "median_rank": float(np.median(rank)), "users": int(len(rank))}  # fmt: skip


def _matrix(split: LooSplit, rows: list[np.ndarray]) -> np.ndarray:
    """[len(rows), I] float32 with 1 at the catalogue columns of each row's post ids."""
    n_i = len(split.catalogue)
    if 2 * len(rows) * n_i > MAX_DENSE:
        raise WorldError(f"item-kNN needs {len(rows):,} x {n_i:,} dense cells; too large for "
                         f"this protocol's baseline (limit {MAX_DENSE:,})")  # fmt: skip
    x = np.zeros((len(rows), n_i), np.float32)
    for r, items in enumerate(rows):
        cols = np.searchsorted(split.catalogue, items)
        ok = (cols < n_i) & (split.catalogue[np.minimum(cols, n_i - 1)] == items)
        x[r, cols[ok]] = 1.0
    return x


def baseline_scores(split: LooSplit) -> dict[str, np.ndarray]:
    """{name: [U', I] scores} of popularity and item-kNN, learnt from the training interactions:
    every item of users not evaluated, and evaluated users' items before their target."""
    seq = split.seq
    before = {int(u): int(t) for u, t in zip(split.users, split.target, strict=True)}
    rows = [seq.post_id[int(seq.offsets[u]) : before.get(u, int(seq.offsets[u + 1]))]
            for u in range(len(seq.user_ids))]  # fmt: skip
    x = _matrix(split, rows)  # [U, I]
    pop = x.sum(0)  # [I] users with a training interaction
    y = x / np.maximum(np.sqrt(pop), 1.0)  # columns unit norm: cosine = yᵀy
    mine = x[split.users]  # [U', I] evaluated users' histories
    knn = (mine @ y.T) @ y  # [U', I] = history · (yᵀ y)
    return {"popularity": np.broadcast_to(pop, mine.shape), "item-knn": knn}


def evaluate_loo(
    world: Path | str,
    checkpoint: Path | str | None = None,
    *,
    seed: int = 0,
    k: int = 10,
    rerank: int = 200,
    relevant: ActionName | None = None,
    rank_head: ActionName | None = None,
) -> dict[str, Any]:
    """Leave-one-out full-ranking metrics of the baselines and, with a checkpoint bundle, of
    retrieval and retrieve-then-rank. `relevant` None: any interaction (the default for imported
    worlds). `rank_head`: the ranker head that reorders retrieval's top R; default the relevant
    action, or for "any interaction" the imported log's consumed action (favorite otherwise)."""
    root = Path(checkpoint) if checkpoint is not None else None
    retrieval = ranker = None
    prov: dict[str, Any] = {}
    if root is not None and (root / "retrieval").exists():
        retrieval, prov["retrieval"] = load_model(root, ModelType.RETRIEVAL)
    if root is not None and (root / "ranker").exists():
        ranker, prov["ranker"] = load_model(root, ModelType.RANKER)
    if root is not None and retrieval is None:
        raise WorldError(f"{root}: no retrieval model (the protocol ranks the whole catalogue)")
    meta = read_world_json(world)
    if rank_head is None:
        consumed = meta.get("source", {}).get("spec", {}).get("consumed_action")
        rank_head = relevant or (ActionName[consumed] if consumed else FAV)
    num_actions = max([c.config.num_actions for c in (retrieval, ranker) if c] or [FAV + 1])
    split = loo_split(world, num_actions, relevant)
    seq = split.seq
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(len(split.catalogue))
    systems = baseline_scores(split)
    out_ranks = {name: [] for name in systems}
    excl = [_history_cols(split, j) for j in range(len(split.users))]
    for name, scores in systems.items():
        for j in range(len(split.users)):
            out_ranks[name].append(ranks(scores[j], int(split.target_col[j]), excl[j], tiebreak))
    if retrieval is not None:
        r = Retriever(retrieval, sids=load_post_sids(world, retrieval.config))
        emb = r.encode_posts(split.catalogue, split.catalogue_authors)  # [I, D]
        hl = retrieval.config.history_seq_len
        pairs = zip(split.users, split.target, strict=True)
        reps = r.encode_users([user_history(seq, int(u), int(t), hl) for u, t in pairs])  # [U', D]
        out_ranks["retrieval"], out_ranks["retrieve-then-rank"] = [], []
        rk = None if ranker is None else Ranker(ranker, sids=load_post_sids(world, ranker.config))
        # candidates are shown on the log's usual surface (as the ranker's training candidates)
        surface = int(np.bincount(seq.surface).argmax()) if len(seq.surface) else 0
        for j in range(len(split.users)):
            s = emb @ reps[j]  # [I]
            tgt = int(split.target_col[j])
            base = ranks(s, tgt, excl[j], tiebreak)
            out_ranks["retrieval"].append(base)
            if rk is None:
                continue
            if base > rerank:
                out_ranks["retrieve-then-rank"].append(base)
                continue
            s2 = s.astype(np.float64, copy=True)
            s2[excl[j]] = -np.inf
            order = np.lexsort((tiebreak, -s2))[:rerank]  # retrieval's top R
            u, t = int(split.users[j]), int(split.target[j])
            hist = user_history(seq, u, t, ranker.config.history_seq_len)
            probs = rk.rank(
                hist,
                split.catalogue[order],
                split.catalogue_authors[order],
                np.full(len(order), surface, np.int32),
            )
            p = probs[:, int(rank_head)].astype(np.float64)
            mine = int(np.flatnonzero(order == tgt)[0])
            ahead = (p > p[mine]) | ((p == p[mine]) & (np.arange(len(order)) < mine))
            out_ranks["retrieve-then-rank"].append(int(ahead.sum()) + 1)
        if rk is None:
            del out_ranks["retrieve-then-rank"]
    holdout = {m: p.get("holdout") for m, p in prov.items()}
    return {
        "world": str(world),
        "checkpoint": None if root is None else str(root),
        "protocol": {
            "name": "loo",
            "held_out": f"each user's last item ({split.relevance}); history = earlier items",
            "ranking": f"full: all {len(split.catalogue):,} catalogue items but the user's own",
            "users": int(len(split.users)),
            "k": k,
            "rerank": rerank,
            "rank_head": rank_head.name,
            "checkpoint_holdout": holdout,
            "world_imported": bool(meta.get("imported", False)),
        },
        "systems": {name: summarize(np.array(v), k) for name, v in out_ranks.items()},
    }
