"""Ranker validation by the reorder it is for: each user's last training item held out, the
retrieval model's top candidates for the history before it, and how the ranker orders them.

`xfeed eval --protocol loo` measures retrieve-then-rank by the rank the ranker gives the user's
held-out item among retrieval's top R. The ranker's training loss (consumed items against
sampled negatives) is a different question; early stopping on it does not say when the reorder
is best. These examples ask the eval's question one item earlier: target = the user's last
training item, history = the items before it, candidates = retrieval's top `top` over the
training catalogue with the history's items left out (as the protocol leaves out the user's
items). The ranker then trains on the items before the target only. The retrieval model has
seen the target (it trains on every training item), so its pool is optimistic; that is the same
for every ranker state compared, which is all model selection needs.
"""

from __future__ import annotations

import numpy as np

from phoenix import hashing
from phoenix.config import PhoenixConfig
from phoenix.inputs import sid_arrays
from training.metrics import auc
from world.sequences import Sequences

K = 10  # HR@K and NDCG@K, as the protocol reports


def reorder_points(seq: Sequences, split: np.ndarray) -> np.ndarray:
    """[U] the validation target per user: its last training item (index split − 1) when the
    user has at least 3 training items, else `split` (nothing held out); the ranker trains on
    the items before it."""
    n = split - seq.offsets[:-1]
    return np.where(n >= 3, split - 1, split).astype(np.int64)


def reorder_examples(
    seq: Sequences,
    cfg: PhoenixConfig,
    cuts: list[tuple[int, int]],
    pool: np.ndarray,
    catalogue: tuple[np.ndarray, np.ndarray],
    surface: int,
) -> dict[str, np.ndarray]:
    """Ranker rows of each validated user's candidates. `cuts` [(user, target index)],
    `pool` [len(cuts), K] catalogue rows of retrieval's top K for the history before each
    target (the history's items left out: `examples.retrieval_pool(history_only=True)`).
    Per user whose target is in its pool: rows of C candidates (the fields of
    `examples.ranker_examples` but the history, on product surface `surface`), `is_target`
    [E, C] marking the held-out item, `group` [E] the user's index in `cuts`, `history_lo` /
    `history_cut` [E] the items the history is built from; `users`: len(cuts) (a target
    retrieval missed is a miss)."""
    cat_id, cat_author = catalogue
    c, h = cfg.candidate_seq_len, cfg.hash
    rows, groups, lo, cut = [], [], [], []
    for g, (u, t) in enumerate(cuts):
        cand = pool[g]
        if seq.post_id[t] not in cat_id[cand]:
            continue
        for start in range(0, len(cand), c):
            part = cand[start : start + c]
            k = len(part)
            posts = np.zeros(c, np.int64)
            authors = np.zeros(c, np.int64)
            posts[:k], authors[:k] = seq.as_served(cat_id[part], cat_author[part])
            weights = np.zeros(c, np.float32)
            weights[:k] = 1.0
            rows.append({
                "user_hashes": hashing.user_rows(seq.user_ids[u], h).astype(np.int32),
                "candidate_post_hashes": hashing.item_rows(posts, h).astype(np.int32),
                "candidate_author_hashes": hashing.author_rows(authors, h).astype(np.int32),
                **sid_arrays("candidate_sids", posts, cfg, seq.sids),  # [C, L] with SIDs
                "candidate_product_surface": np.where(weights > 0, surface, 0).astype(np.int32),
                "labels": np.zeros((c, cfg.num_actions), np.uint8),
                "weights": weights,
                "is_target": np.r_[cat_id[part] == seq.post_id[t], np.zeros(c - k, bool)],
            })  # fmt: skip
            groups.append(g)
            lo.append(int(seq.offsets[u]))
            cut.append(t)
    if not rows:
        raise ValueError("retrieval's top candidates hold no user's validation item")
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    out["group"] = np.asarray(groups, np.int64)
    out["history_lo"] = np.asarray(lo, np.int64)
    out["history_cut"] = np.asarray(cut, np.int64)
    out["users"] = np.int64(len(cuts))
    return out


def reorder_metrics(scores: np.ndarray, ex: dict[str, np.ndarray], k: int = K) -> dict:
    """HR@k and NDCG@k of the targets over every validated user (a target retrieval missed is a
    miss), and the mean per-user AUC of the target against the other candidates (users whose
    target is among them), from `scores` [E, C] of `reorder_examples` rows. Ties: the target
    after the candidates it ties with (a pessimistic rank)."""
    hits, gains, aucs = 0, 0.0, []
    real, target, group = ex["weights"] > 0, ex["is_target"], ex["group"]
    for g in np.unique(group):
        at = group == g
        s, y = scores[at][real[at]], target[at][real[at]]
        if y.sum() != 1:
            continue
        rank = int((s >= s[y][0]).sum())  # 1-based, ties ahead
        hits += rank <= k
        gains += 1.0 / np.log2(rank + 1.0) if rank <= k else 0.0
        aucs.append(auc(s, y))
    n = max(int(ex["users"]), 1)
    return {f"reorder_hr@{k}": hits / n, f"reorder_ndcg@{k}": gains / n,
            "reorder_auc": float(np.mean(aucs)) if aucs else float("nan")}  # fmt: skip
