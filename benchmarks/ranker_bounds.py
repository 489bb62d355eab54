"""What limits the ranker's favorite AUC on a synth world? Oracle scorers on `xfeed eval`'s split.

`xfeed eval`'s ranker protocol (the last 20 % of each user's items held out, every held-out item a
candidate, favorite AUC over all of them) with scorers that know the synth generator's hidden
state (replayed from world.json, as `benchmarks.retrieval_bounds --oracle`). The generator
engages with probability gate(pref[user, post topic] · author quality · post quality, ×1.3 for a
followed author); each scorer keeps some of those factors:

- `oracle`: the generator's affinity itself (the ceiling: engagement is drawn at random);
- `post topic, author quality`: pref[user, post topic] · author quality² (no post quality, no
  follows);
- `author level`: the author's primary topic instead of the post's (what author ids carry);
- `author level, retweets as their source`: the same, a retweet taking its source post's author
  (as `PhoenixScorer` serves it, upstream keying a retweet by its original post);
- `author level x post quality`: the author level with each post's own quality.

A post's topic is its author's primary topic for 92 % of originals, but a reply or a retweet
takes the topic of the post it points to (synth.py), so the author id misses it there.

Run: python -m benchmarks.ranker_bounds [--world data/samples/world] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.retrieval_bounds import _hidden
from training import metrics
from training.evaluation import FAV, load_split


def bounds(world: Path | str) -> dict[str, float]:
    """{scorer: favorite AUC over every held-out item}, plus `held-out items` and
    `topic differs from the author's` (the share of held-out items whose post topic is not its
    author's primary topic)."""
    _, users, following, posts = _hidden(world)
    data = load_split(world, 64)
    seq, split = data.seq, data.split
    items = np.concatenate([np.arange(split[u], seq.offsets[u + 1]) for u in range(len(split))])
    owner = np.repeat(np.arange(len(split)), seq.offsets[1:] - split)  # [N] user row of each
    user_row = np.searchsorted(users.ids, seq.user_ids[owner])  # [N] generator user rows
    row = np.searchsorted(posts["post_id"], seq.post_id[items])  # [N] generator post rows
    author, topic = posts["author_index"][row], posts["topic"][row]
    quality, a_quality = posts["quality"][row], users.quality[author]
    src = np.searchsorted(posts["post_id"], posts["source_post_id"][row])
    src = np.minimum(src, len(posts["post_id"]) - 1)
    retweet = posts["source_post_id"][row] != 0
    shown_author = np.where(retweet, posts["author_index"][src], author)  # [N] as served
    follows = {r: set(following[r].tolist()) for r in np.unique(user_row).tolist()}
    pairs = zip(user_row.tolist(), author.tolist(), strict=True)
    followed = np.array([a in follows[r] for r, a in pairs], bool)  # [N]
    pref = users.pref[user_row]  # [N, T]
    at = np.arange(len(items))
    a_level = pref[at, users.primary[author]] * a_quality**2
    scores = {
        "oracle": pref[at, topic] * a_quality * quality * np.where(followed, 1.3, 1.0),
        "post topic, author quality": pref[at, topic] * a_quality**2,
        "author level": a_level,
        "author level, retweets as their source": pref[at, users.primary[shown_author]]
        * a_quality**2,
        "author level x post quality": pref[at, users.primary[author]] * a_quality * quality,
    }
    y = seq.actions[items, FAV]
    out = {name: float(metrics.auc(s, y)) for name, s in scores.items()}
    out["held-out items"] = float(len(items))
    out["topic differs from the author's"] = float(np.mean(topic != users.primary[author]))
    return out


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
