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

With `--oracle` (worlds of `xfeed data synth` only: the generator's hidden user topic preferences,
author qualities, follows and post topics/qualities are replayed from world.json's seed and
params), scorers that know the generator's truth, to bound what each kind of information allows.
Each scores a post by the engagement gate of its affinity (synth.py: sigmoid(40 · (pref[user,
topic] · author quality · post quality − 0.07))) times its impression propensity (the topic share
of synth's impression draw), and puts posts no training item touched first (all an id model can
tell of a post's age):
- `oracle, author level`: the topic is the author's primary topic and the post quality its
  expectation given the author: what the towers can know of a post no training item touched
  (its author; its id row never trained);
- `oracle, author level + history author shares`: the propensity adds the share of the user's
  training items by that author (what the user tower reads of who the user follows);
- `oracle, author level + follows`: the propensity and the gate use the follow graph;
- `oracle, post level`: each post's own topic and quality (a new post's topic is a tower input
  through its semantic id; its quality is not).

Run: python -m benchmarks.retrieval_bounds [--world data/samples/world] [--oracle] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from training import metrics
from training.evaluation import FAV, RECALL_K, eval_corpus, load_split
from world import synth
from world.tables import read_table, read_world_json

HOUR_MS = 3_600_000
WINDOW_H = 18


def _hidden(world: Path | str) -> tuple[dict, object, list, dict]:
    """The generator's hidden state of a synth world, replayed from world.json (seed, params):
    (world.json, users, following, posts); raises ValueError when the world is not a synth world
    or its posts differ from the replay."""
    meta = read_world_json(world)
    if meta.get("generator") != synth.GENERATOR or "params" not in meta:
        raise ValueError(f"{world}: --oracle needs a world made by `xfeed data synth`")
    cfg = synth.SynthConfig(**meta["params"])
    rng = np.random.default_rng(cfg.seed)  # the generator's first draws, in its order
    users = synth._make_users(cfg, rng)
    _, following = synth._make_edges(cfg, users, rng)
    posts = synth._make_posts(cfg, users, rng)
    table = read_table(world, "posts", ["event", "post_id"])
    made = table.filter(pc.equal(table.column("event"), "create")).column("post_id").to_numpy()
    if not np.array_equal(np.sort(made), np.sort(posts["post_id"])):
        raise ValueError(f"{world}: its posts are not the replay of its seed and params")
    return meta, users, following, posts


def bounds(world: Path | str, seed: int = 0, oracle: bool = False) -> dict[str, float]:
    """{scorer: mean recall@100 over users with a held-out favorite} on `world`; `oracle` adds
    the scorers that know the synth generator's hidden state."""
    data = load_split(world, 64)
    seq, split = data.seq, data.split
    ids, authors = eval_corpus(world)  # [P] the eval's corpus
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
    if oracle:
        _, hu, following, hp = _hidden(world)
        row = np.searchsorted(hp["post_id"], ids)  # [P] generator row of each corpus post
        p_author, p_topic = hp["author_index"][row], hp["topic"][row]
        p_quality = hp["quality"][row]
        share = hp["quality"][row] * (1 + (hp["kind"][row] == 0))  # synth's topic_pop
        user_row = {int(x): i for i, x in enumerate(hu.ids)}
        a_quality, a_topic = hu.quality[p_author], hu.primary[p_author]
        a_post_quality = 0.6 * a_quality + 0.2  # E[post quality | author] (beta(2,2) mean 0.5)
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
        if oracle:
            r = user_row[int(seq.user_ids[u])]
            followed_a = np.isin(p_author, following[r])
            mult = np.where(followed_a, 1.3, 1.0)
            pref_a = hu.pref[r, a_topic]
            gate_a = synth._gate(pref_a * a_quality * a_post_quality)
            prop_a = pref_a * share.mean() + 0.02
            history_share = np.zeros(len(ids))
            hist_a, hist_n = np.unique(seq.author_id[first:lo], return_counts=True)
            at = np.minimum(np.searchsorted(hist_a, authors), max(len(hist_a) - 1, 0))
            if len(hist_a):
                history_share = np.where(hist_a[at] == authors, hist_n[at], 0) / (lo - first)
            gate_f = synth._gate(pref_a * a_quality * a_post_quality * mult)
            gate_p = synth._gate(hu.pref[r, p_topic] * a_quality * p_quality)
            prop_p = hu.pref[r, p_topic] * share + 0.02
            new = 1 + 1000 * unseen
            scores |= {
                "oracle, author level": gate_a * prop_a * new + 1e-9 * noise,
                "oracle, author level + history author shares":
                    gate_a * (prop_a + history_share) * new + 1e-9 * noise,
                "oracle, author level + follows":
                    gate_f * (prop_a + 0.45 * followed_a) * new + 1e-9 * noise,
                "oracle, post level": gate_p * prop_p * new + 1e-9 * noise,
            }  # fmt: skip
        seen = np.isin(ids, seq.post_id[first:lo])
        for name, s in scores.items():
            s = np.where(seen, -np.inf, s)
            top = np.argpartition(-s, RECALL_K)[:RECALL_K]
            out.setdefault(name, []).append(metrics.recall_at_k(ids[top], relevant))
    return {name: float(np.mean(v)) for name, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="data/samples/world")
    ap.add_argument("--oracle", action="store_true", help="add the generator-truth scorers")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = bounds(args.world, oracle=args.oracle)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:48s} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
