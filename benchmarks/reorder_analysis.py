"""Where does retrieve-then-rank lose? The LOO protocol's reorder, item by item.

`xfeed eval --protocol loo` lets the ranker reorder retrieval's top R (200) for each user's
held-out item. This script takes the same split, tie order, candidates and rank head, and
reports for the users whose held-out item is in retrieval's top R (the only ones the reorder
can move): hits in the top 10 (HR@10 = hits / users), NDCG@10, mean and median rank within the
R, the per-user AUC of the held-out item against the other R − 1, and the training popularity
of each scorer's top 10. Scorers: retrieval's dot product, the ranker's logit, and two
corrections of the logit by the ranker's negative sampling (a BCE ranker trained with negatives
from q learns odds ∝ p(item | user) / q(item | user)):

- `logit + log q`: q = the ranker's own negative mix's density on a top-R item, n_ret / R +
  n_pop · count / N (read from its provenance: n_ret retrieval negatives drawn uniformly from the
  top R, n_pop sampled by training count; N the training interactions; 1 for a ranker trained
  with the log-Q shift, whose logit has it already);
- `rank average`: the mean of retrieval's and the ranker's ranks (not a serving rule:
  home-mixer orders by the ranker's heads alone).

Run: python -m benchmarks.reorder_analysis --world W --checkpoint CKPT [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from checkpoints.formats import load_model
from phoenix.actions import ActionName
from phoenix.config import ModelType
from phoenix.runtime import Ranker, Retriever
from training.evaluation import user_history
from training.loo import _history_cols, baseline_scores, loo_split
from training.metrics import auc
from world.sequences import load_post_sids
from world.tables import read_world_json


def _scores(world: Path, ckpt: Path, top: int) -> dict[str, np.ndarray]:
    """[U', R] retrieval scores, ranker logits, training popularity, the ranker's negative
    density q, and [U', R] bool marking the held-out item, for every evaluated user (rows of
    users without it in the top R are all False)."""
    ret, _ = load_model(ckpt, ModelType.RETRIEVAL)
    rk_ckpt, prov = load_model(ckpt, ModelType.RANKER)
    split = loo_split(world, max(ret.config.num_actions, rk_ckpt.config.num_actions), None)
    seq = split.seq
    consumed = read_world_json(world).get("source", {}).get("spec", {}).get("consumed_action")
    head = int(ActionName[consumed] if consumed else ActionName.SERVER_TWEET_FAV)
    tiebreak = np.random.default_rng(0).permutation(len(split.catalogue))  # as evaluate_loo
    pop = baseline_scores(split)["popularity"][0]  # [I] training users per item
    retriever = Retriever(ret, sids=load_post_sids(world, ret.config))
    ranker = Ranker(rk_ckpt, sids=load_post_sids(world, rk_ckpt.config))
    emb = retriever.encode_posts(split.catalogue, split.catalogue_authors)  # [I, D]
    hl = ret.config.history_seq_len
    pairs = zip(split.users, split.target, strict=True)
    reps = retriever.encode_users([user_history(seq, int(u), int(t), hl) for u, t in pairs])
    surface = int(np.bincount(seq.surface).argmax()) if len(seq.surface) else 0
    out = {"retrieval": [], "ranker": [], "popularity": [], "target": []}
    for j in range(len(split.users)):
        s = (emb @ reps[j]).astype(np.float64)
        s[_history_cols(split, j)] = -np.inf
        order = np.lexsort((tiebreak, -s))[:top]  # retrieval's top R, in its order
        hist = user_history(seq, int(split.users[j]), int(split.target[j]),
                            rk_ckpt.config.history_seq_len)  # fmt: skip
        probs = ranker.rank(hist, split.catalogue[order], split.catalogue_authors[order],
                            np.full(len(order), surface, np.int32))  # fmt: skip
        p = probs[:, head].astype(np.float64)
        out["retrieval"].append(s[order])
        out["ranker"].append(np.log(p) - np.log1p(-p))
        out["popularity"].append(pop[order])
        out["target"].append(order == int(split.target_col[j]))
    tc = (prov or {}).get("train", {})
    n_ret = tc.get("retrieval_negatives", 0) if (prov or {}).get("negatives_from") else 0
    q = n_ret / top + tc.get("sampled_negatives", 0) * np.array(out["popularity"]) / pop.sum()
    if tc.get("ranker_logq_shift"):  # trained with the shift: the logit is corrected already
        q = np.ones_like(q)
    return {k: np.array(v) for k, v in out.items()} | {"q": np.maximum(q, 1e-12)}


def _summary(score: np.ndarray, target: np.ndarray, pop: np.ndarray) -> dict[str, float]:
    """Ranks as `evaluate_loo` gives them (ties: the earlier retrieval position first)."""
    users = np.flatnonzero(target.any(1))
    ranks, aucs = [], []
    for i in users:
        m = int(np.flatnonzero(target[i])[0])
        ahead = (score[i] > score[i, m]) | (
            (score[i] == score[i, m]) & (np.arange(len(score[i])) < m)
        )
        ranks.append(int(ahead.sum()) + 1)
        aucs.append(auc(score[i], target[i]))
    r = np.array(ranks, np.float64)
    top10 = np.take_along_axis(pop, np.argsort(-score, 1, kind="stable")[:, :10], 1)
    return {"hits@10": int((r <= 10).sum()),
            "hr@10": float((r <= 10).sum() / len(target)),
            "ndcg@10": float(np.where(r <= 10, 1 / np.log2(r + 1), 0).sum() / len(target)),
            "mean_rank": float(r.mean()), "median_rank": float(np.median(r)),
            "auc": float(np.mean(aucs)),
            "top10_pop_median": float(np.median(top10)),
            "top10_pop_under_10": float(np.mean(top10 < 10))}  # fmt: skip


def analyse(world: Path | str, checkpoint: Path | str, top: int = 200) -> dict:
    """{"users", "in_top", "held_out_pop_median", "scorers": {name: summary}}."""
    d = _scores(Path(world), Path(checkpoint), top)
    target, pop = d["target"], d["popularity"]
    q = d["q"]
    rank = lambda x: np.argsort(np.argsort(-x, 1, kind="stable"), 1)  # noqa: E731
    scorers = {"retrieval": d["retrieval"], "ranker logit": d["ranker"],
               "logit + log q": d["ranker"] + np.log(q), "popularity": pop,
               "rank average": -(rank(d["retrieval"]) + rank(d["ranker"]))}  # fmt: skip
    return {"users": int(len(target)), "in_top": int(target.any(1).sum()),
            "held_out_pop_median": float(np.median(pop[target])),
            "scorers": {k: _summary(v, target, pop) for k, v in scorers.items()}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--rerank", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = analyse(args.world, args.checkpoint, args.rerank)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{res['in_top']} of {res['users']} held-out items in retrieval's top {args.rerank} "
          f"(their median popularity {res['held_out_pop_median']:.0f} training users)")  # fmt: skip
    print(f"{'scorer':16s} {'hits':>5s} {'HR@10':>7s} {'NDCG@10':>8s} {'mean rank':>9s} "
          f"{'median':>6s} {'AUC':>6s} {'top-10 pop':>10s} {'<10 users':>9s}")  # fmt: skip
    for name, m in res["scorers"].items():
        print(f"{name:16s} {m['hits@10']:5d} {m['hr@10']:7.4f} {m['ndcg@10']:8.4f} "
              f"{m['mean_rank']:9.1f} {m['median_rank']:6.1f} {m['auc']:6.3f} "
              f"{m['top10_pop_median']:10.0f} {m['top10_pop_under_10']:9.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
