"""What reaches the author-follow baseline? Recall@100 of hand-made scorers on `xfeed eval`'s split.

`xfeed eval`'s retrieval protocol (the last 20 % of each user's items held out, relevant = the
held-out favorited posts, corpus = every live post, the user's training items excluded) with
scorers that use named pieces of information, to say which of them the baseline's figure needs:

- `author-follow`: the eval baseline (follow graph + creation time, newest first);
- `follows, no time`: followed authors first, in random order (follow graph only);
- `history authors`: authors ranked by the user's training favorites + 0.3 x impressions of them,
  posts of one author in random order (what a two-tower model reads: history authors and actions);
- `history authors, unseen posts first`: the same, but posts no training item touched (posts an
  id-based model has never seen) before the others of that author score;
- `history authors, last 18 h`: the same restricted to posts created in the world's last 18 hours
  (exact creation time: not an input of the two-tower model), then the rest.

Run: python -m benchmarks.retrieval_bounds [--world data/samples/world] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from training import metrics
from training.evaluation import FAV, RECALL_K, load_split
from world.tables import read_table, read_world_json

HOUR_MS = 3_600_000
WINDOW_H = 18


def bounds(world: Path | str, seed: int = 0) -> dict[str, float]:
    """{scorer: mean recall@100 over users with a held-out favorite} on `world`."""
    data = load_split(world, 64)
    seq, split = data.seq, data.split
    posts = read_table(world, "posts", ["event", "post_id", "author_id"])
    creates = posts.filter(pc.equal(posts.column("event"), "create"))
    deletes = posts.filter(pc.equal(posts.column("event"), "delete")).column("post_id").to_numpy()
    ids, authors = creates.column("post_id").to_numpy(), creates.column("author_id").to_numpy()
    keep = ~np.isin(ids, deletes)
    ids, authors = ids[keep], authors[keep]  # [P] the eval's corpus
    created = np.array([data.created.get(int(p), 0) for p in ids], np.float64)
    popularity = np.array([data.popularity.get(int(p), 0.0) for p in ids])
    recent = created >= int(read_world_json(world)["as_of_ms"]) - WINDOW_H * HOUR_MS
    train = np.concatenate([seq.post_id[seq.offsets[u] : split[u]] for u in range(len(split))])
    unseen = ~np.isin(ids, train)  # no training item is this post
    edges = read_table(world, "edges", ["src_user_id", "dst_user_id", "kind"])
    follows = edges.filter(pc.equal(edges.column("kind"), "follow"))
    src = follows.column("src_user_id").to_numpy()
    dst = follows.column("dst_user_id").to_numpy()
    uniq, col = np.unique(authors, return_inverse=True)  # [A], [P]
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {}
    for u in range(len(seq.user_ids)):
        lo, hi, first = int(split[u]), int(seq.offsets[u + 1]), int(seq.offsets[u])
        relevant = seq.post_id[lo:hi][seq.actions[lo:hi, FAV] > 0]
        if not len(relevant):
            continue
        a_rows = np.searchsorted(uniq, seq.author_id[first:lo])
        ok = a_rows < len(uniq)
        favs = np.bincount(a_rows[ok], seq.actions[first:lo, FAV][ok], len(uniq))
        shown = np.bincount(a_rows[ok], None, len(uniq))
        affinity = (favs + 0.3 * shown)[col]  # [P]
        followed = np.isin(authors, dst[src == seq.user_ids[u]])
        noise = rng.random(len(ids))
        scores = {
            "author-follow": followed * 1e15 + np.where(followed, created, popularity),
            "follows, no time": followed * 10.0 + noise,
            "history authors": affinity * 10.0 + noise,
            "history authors, unseen posts first": (affinity * 10.0 + noise) * (1 + unseen),
            f"history authors, last {WINDOW_H} h": recent * 1e6 + affinity * 10.0 + noise,
        }
        seen = np.isin(ids, seq.post_id[first:lo])
        for name, s in scores.items():
            s = np.where(seen, -np.inf, s)
            top = np.argpartition(-s, RECALL_K)[:RECALL_K]
            out.setdefault(name, []).append(metrics.recall_at_k(ids[top], relevant))
    return {name: float(np.mean(v)) for name, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="data/samples/world")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = bounds(args.world)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:40s} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
