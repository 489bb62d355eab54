"""Where a retrieval model's top 100 goes: new posts against posts training touched.

`xfeed eval`'s retrieval protocol (the last 20 % of each user's items held out, relevant = the
held-out favorited posts, corpus = every live post, the user's training items excluded). A post
is "new" when no training item touched it (its id rows never trained); the others are "older".
Printed:

- the held-out favorites: the share that are new, and for each group the hours from the post's
  creation to the user's split (the first held-out item; negative = created after it);
- the model's recall@100 and the share of its top 100 that is new;
- recall@100 when the top 100 is the model's best `a` new posts and best `100 − a` older posts
  (its own order within each group), for a = 100, 90, 80, 50: whether the slots the model gives
  older posts find more than the same slots given to new posts.

Run: python -m benchmarks.retrieval_slots --checkpoint data/samples/checkpoint
     [--world data/samples/world] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from checkpoints.formats import load_model
from phoenix.config import ModelType
from phoenix.runtime import Retriever
from training import metrics
from training.evaluation import FAV, RECALL_K, eval_corpus, load_split, user_history
from world.sequences import load_post_sids

HOUR_MS = 3_600_000
NEW_SLOTS = (100, 90, 80, 50)


def slots(checkpoint: Path | str, world: Path | str) -> dict[str, float | list[float]]:
    """{figure: value} as the module docstring lists them (quantiles are [10 %, 50 %, 90 %])."""
    ckpt, _ = load_model(checkpoint, ModelType.RETRIEVAL)
    data = load_split(world, ckpt.config.num_actions)
    seq, split = data.seq, data.split
    ids, authors = eval_corpus(world)
    train = np.zeros(len(seq.post_id), bool)
    for u in range(len(seq.user_ids)):
        train[seq.offsets[u] : split[u]] = True
    trained = np.isin(ids, seq.post_id[train])  # [N] False = new
    retriever = Retriever(ckpt, sids=load_post_sids(world, ckpt.config))
    emb = retriever.encode_posts(ids, authors)
    users = [u for u in range(len(seq.user_ids))
             if (seq.actions[int(split[u]) : int(seq.offsets[u + 1]), FAV] > 0).any()]  # fmt: skip
    reps = retriever.encode_users(
        [user_history(seq, u, int(split[u]), ckpt.config.history_seq_len) for u in users]
    )
    recall, new_share, before = [], [], {True: [], False: []}
    mixed: dict[int, list[float]] = {a: [] for a in NEW_SLOTS}
    for u, rep in zip(users, reps, strict=True):
        lo, hi = int(split[u]), int(seq.offsets[u + 1])
        relevant = seq.post_id[lo:hi][seq.actions[lo:hi, FAV] > 0]
        is_new = ~np.isin(relevant, seq.post_id[train])
        for p, new in zip(relevant.tolist(), is_new.tolist(), strict=True):
            before[new].append((seq.time_ms[lo] - data.created.get(p, 0)) / HOUR_MS)
        seen = np.isin(ids, seq.post_id[seq.offsets[u] : lo])
        s = np.where(seen, -np.inf, emb @ rep)
        top = np.argpartition(-s, RECALL_K)[:RECALL_K]
        recall.append(metrics.recall_at_k(ids[top], relevant))
        new_share.append(float(np.mean(~trained[top])))
        by_new = np.argsort(-np.where(trained, -np.inf, s), kind="stable")
        by_old = np.argsort(-np.where(trained, s, -np.inf), kind="stable")
        for a in NEW_SLOTS:
            pick = np.r_[by_new[:a], by_old[: RECALL_K - a]]
            mixed[a].append(metrics.recall_at_k(ids[pick], relevant))
    n_new, n_old = len(before[True]), len(before[False])
    out: dict[str, float | list[float]] = {
        "held-out favorites new share": n_new / max(n_new + n_old, 1),
        "new: hours created before the split [10/50/90 %]": _q(before[True]),
        "older: hours created before the split [10/50/90 %]": _q(before[False]),
        "model recall@100": float(np.mean(recall)),
        "model top 100 new share": float(np.mean(new_share)),
    }
    for a in NEW_SLOTS:
        out[f"recall@100, best {a} new + best {RECALL_K - a} older"] = float(np.mean(mixed[a]))
    return out


def _q(values: list[float]) -> list[float]:
    return [round(float(v), 1) for v in np.percentile(values, [10, 50, 90])] if values else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="data/samples/checkpoint")
    ap.add_argument("--world", default="data/samples/world")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = slots(args.checkpoint, args.world)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"{name:52s} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
