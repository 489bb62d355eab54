"""`xfeed data synth`: a synthetic X world (data.md tables), deterministic for a seed.

Modelled on upstream's reference world (phoenix_spec.md §4.7): topics, author quality, user topic
preferences, and an affinity gate on engagement: affinity = pref[user, topic] · author_quality ·
post_quality (×1.3 when the user follows the author); gate = sigmoid(40 · (affinity − 0.07))
(steeper than upstream's sigmoid(14 · (affinity − 0.10)), so that engagement is predictable enough
for a trained model to be measured);
P(action) = base_rate(action) · gate, negatives ∝ (1 − gate) (more for spam). Everything a
filter or scorer acts on is present: replies in threads, retweets, quotes, videos (some under
5 s, some over 10 s), subscription-only posts, deletes, safety labels, blocks, mutes, muted
keywords (with accents, multi-word and hashtag keywords), seen and served impressions.
"""

from __future__ import annotations

import array
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phoenix.actions import ActionName as A
from safeio.atomic import atomic_path
from world.tables import WORLD_OUTPUT, table_bytes_hash

SNOWFLAKE_EPOCH_MS = 1288834974657
HOUR_MS = 3_600_000
DEFAULT_AS_OF_MS = 1_784_592_000_000  # upstream world.py's now_ms (2026-07-21)
TOPICS = ("space", "cooking", "ml", "gaming", "music", "travel", "sports", "finance", "art",
          "science", "fashion", "food", "history", "film", "nature", "tech")  # fmt: skip
ADJECTIVES = ("quick", "bold", "quiet", "bright", "strange", "classic", "fresh", "wild", "tiny",
              "epic", "cozy", "rare")  # fmt: skip
NOUNS = ("thread", "take", "photo", "story", "idea", "clip", "guide", "update", "review", "tip")
EXTRA_WORDS = ("café", "crypto scam", "spoilers", "election", "giveaway", "résumé", "launch",
               "breaking news")  # fmt: skip
LABELS = ("spam", "violence", "gore")
COUNTRIES = ("US", "GB", "IN", "BR", "JP", "DE", "FR", "ES", "MX", "CA")
LANGUAGES = ("en", "en", "en", "es", "pt", "ja", "de", "fr")

# Engagement base rates (P = rate · gate); actions named by ActionName, defined once here.
POSITIVE_RATES: dict[A, float] = {
    A.SERVER_TWEET_FAV: 0.7, A.CLIENT_TWEET_CLICK: 0.22, A.SERVER_TWEET_RETWEET: 0.07,
    A.SERVER_TWEET_REPLY: 0.05, A.CLIENT_TWEET_CLICK_PROFILE: 0.04, A.SERVER_TWEET_QUOTE: 0.02,
    A.CLIENT_TWEET_SHARE: 0.025, A.CLIENT_TWEET_CLICK_SEND_VIA_DIRECT_MESSAGE: 0.012,
    A.CLIENT_TWEET_SHARE_VIA_COPY_LINK: 0.01, A.CLIENT_TWEET_OPEN_LINK: 0.02,
    A.CLIENT_TWEET_BOOKMARK: 0.02,
}  # fmt: skip
MEDIA_RATES: dict[A, float] = {A.CLIENT_TWEET_PHOTO_EXPAND: 0.25}
VIDEO_RATES: dict[A, float] = {
    A.CLIENT_TWEET_VIDEO_QUALITY_VIEW: 0.4,
    A.CLIENT_TWEET_VIDEO_OPEN: 0.12,
}
QUOTE_RATES: dict[A, float] = {A.CLIENT_QUOTED_TWEET_CLICK: 0.08}
FOLLOW_RATE = (A.CLIENT_TWEET_FOLLOW_AUTHOR, 0.03)  # only for authors not yet followed
NEGATIVE_RATES: dict[A, float] = {
    A.CLIENT_TWEET_NOT_INTERESTED_IN: 0.006, A.CLIENT_TWEET_MUTE_AUTHOR: 0.0008,
    A.CLIENT_TWEET_BLOCK_AUTHOR: 0.0006, A.CLIENT_TWEET_REPORT: 0.0003,
}  # fmt: skip
DWELL_THRESHOLD_S = 10.0

GENERATOR = "xfeed data synth"


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    users: int = 2000
    seed: int = 0
    days: float = 3.0
    as_of_ms: int = DEFAULT_AS_OF_MS
    posts_per_user: float = 10.0  # mean posts per account over the whole period
    impressions_per_user: float = 110.0  # mean, scaled by activity
    follows_mean: float = 45.0
    plant_bias: str | None = None  # "follow|quality:TOPIC:FACTOR" (see parse_plant); off


PLANT_KINDS = ("follow", "quality")


def parse_plant(text: str | None) -> tuple[str, int, float] | None:
    """`KIND:TOPIC:FACTOR` -> (kind, topic index, factor), None when off. A planted bias for
    audits: `follow` makes each account follow about FACTOR times as many accounts whose
    primary topic is TOPIC (the extra follows drawn from a separate random stream, so the rest
    of the world's draws stay the same); `quality` multiplies the quality of TOPIC's posts by
    FACTOR (capped at 1), so they are engaged with more. TOPIC is a topic name or index."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in PLANT_KINDS:
        raise ValueError(f"--plant-bias {text!r}: expected KIND:TOPIC:FACTOR with KIND one of "
                         f"{', '.join(PLANT_KINDS)} (e.g. follow:music:3)")  # fmt: skip
    kind, topic, factor = parts
    if topic in TOPICS:
        t = TOPICS.index(topic)
    elif topic.isdigit() and int(topic) < len(TOPICS):
        t = int(topic)
    else:
        raise ValueError(f"--plant-bias: unknown topic {topic!r} (one of {', '.join(TOPICS)})")
    try:
        f = float(factor)
    except ValueError:
        f = float("nan")
    if not (0.0 < f <= 100.0):
        raise ValueError(f"--plant-bias: FACTOR must be a number in (0, 100], got {factor!r}")
    return kind, t, f


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gate(affinity: np.ndarray) -> np.ndarray:
    return _sigmoid(40.0 * (affinity - 0.07))


@dataclasses.dataclass
class _Users:
    ids: np.ndarray
    pref: np.ndarray  # [U, T] topic preferences (rows sum to 1)
    quality: np.ndarray  # [U] author quality
    activity: np.ndarray  # [U]
    post_rate: np.ndarray  # [U] relative posting rate
    primary: np.ndarray  # [U] primary topic
    secondary: np.ndarray  # [U]
    nsfw: np.ndarray  # [U] bool
    sub_creator: np.ndarray  # [U] bool: posts subscription-only content
    language: np.ndarray  # [U] str


def _make_users(cfg: SynthConfig, rng: np.random.Generator) -> _Users:
    n, t = cfg.users, len(TOPICS)
    pref = np.zeros((n, t))
    for i in range(n):
        k = rng.integers(2, 5)
        topics = rng.choice(t, size=k, replace=False)
        pref[i, topics] = rng.gamma(1.5, size=k)
    pref /= pref.sum(1, keepdims=True)
    order = np.argsort(-pref, axis=1)
    creator = rng.random(n) < 0.25
    return _Users(
        ids=np.arange(1, n + 1, dtype=np.int64) * 1000 + 7,
        pref=pref,
        quality=rng.beta(2, 2, n),
        activity=rng.lognormal(0, 0.6, n),
        post_rate=np.where(creator, rng.lognormal(1.2, 0.6, n), rng.lognormal(-1.0, 0.8, n)),
        primary=order[:, 0],
        secondary=order[:, 1],
        nsfw=rng.random(n) < 0.03,
        sub_creator=creator & (rng.random(n) < 0.08),
        language=np.array(LANGUAGES)[rng.integers(0, len(LANGUAGES), n)],
    )


def _make_edges(
    cfg: SynthConfig, u: _Users, rng: np.random.Generator
) -> tuple[dict[str, Any], list[np.ndarray]]:
    n = cfg.users
    plant = parse_plant(cfg.plant_bias)
    plant_rng = np.random.default_rng([cfg.seed, 1])  # its own stream: the rest stays the same
    popularity = u.post_rate * (0.3 + u.quality) * rng.pareto(2.0, n)
    rows: dict[str, Any] = {"src_user_id": array.array("q"), "dst_user_id": array.array("q"),
                            "kind": [], "created_ms": array.array("q")}  # fmt: skip

    def add(src: int, dsts: np.ndarray, kind: str, r: np.random.Generator = rng) -> None:
        for d in dsts:
            rows["src_user_id"].append(int(u.ids[src]))
            rows["dst_user_id"].append(int(u.ids[d]))
            rows["kind"].append(kind)
            rows["created_ms"].append(int(cfg.as_of_ms - r.integers(1, 400) * 24 * HOUR_MS))

    following = []
    for i in range(n):
        match = u.pref[i][u.primary]  # [U] this user's preference for each author's topic
        p = popularity * (0.2 + 4.0 * match)
        p[i] = 0
        k = int(np.clip(rng.lognormal(np.log(cfg.follows_mean), 0.7), 3, min(400, n // 2)))
        k = min(k, int(np.count_nonzero(p)))
        dsts = rng.choice(n, size=k, replace=False, p=p / p.sum())
        add(i, dsts, "follow")
        if plant is not None and plant[0] == "follow":
            extra = _planted_follows(p, dsts, u.primary == plant[1], plant[2], plant_rng)
            add(i, extra, "follow", plant_rng)
            following.append(np.r_[dsts, extra])
        else:
            following.append(dsts)
        if rng.random() < 0.04:  # mute a few followed authors (their posts reach in-network)
            add(i, rng.choice(dsts, size=min(len(dsts), rng.integers(1, 3)), replace=False), "mute")
        if rng.random() < 0.03:
            others = np.setdiff1d(np.arange(n), np.r_[dsts, i])
            size = min(len(others), int(rng.integers(1, 4)))
            add(i, rng.choice(others, size=size, replace=False), "block")
    creators = np.flatnonzero(u.sub_creator)
    for i in range(n):
        if len(creators) and rng.random() < 0.05:
            targets = creators[creators != i]
            if len(targets):
                add(i, rng.choice(targets, size=1), "subscribe")
    return rows, following


def _planted_follows(p: np.ndarray, dsts: np.ndarray, group: np.ndarray, factor: float,
                     rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """A planted follow bias: (factor − 1) × the user's expected number of follows in `group`
    (k × the group's share of the follow weights `p` [U]) more accounts of the group, drawn
    with the same weights (stochastic rounding; none when factor ≤ 1)."""
    if factor <= 1 or not p.sum():
        return np.zeros(0, np.int64)
    expected = len(dsts) * float(p[group].sum() / p.sum()) * (factor - 1.0)
    want = int(expected) + int(rng.random() < expected - int(expected))
    free = p * group
    free[dsts] = 0.0
    want = min(want, int(np.count_nonzero(free)))
    if want <= 0:
        return np.zeros(0, np.int64)
    return rng.choice(len(p), size=want, replace=False, p=free / free.sum())


def _make_posts(cfg: SynthConfig, u: _Users, rng: np.random.Generator) -> dict[str, np.ndarray]:
    start = cfg.as_of_ms - int(cfg.days * 24 * HOUR_MS)
    rate = u.post_rate / u.post_rate.mean() * cfg.posts_per_user
    counts = rng.poisson(rate)
    author = np.repeat(np.arange(cfg.users), counts)
    n = len(author)
    created = np.sort(rng.integers(start, cfg.as_of_ms - 60_000, n))
    author = rng.permutation(author)
    post_id = ((created - SNOWFLAKE_EPOCH_MS) << 22) | (np.arange(n) % (1 << 22))
    topic = np.where(rng.random(n) < 0.92, u.primary[author], u.secondary[author])
    kind = rng.choice(4, size=n, p=[0.63, 0.17, 0.12, 0.08])  # original, reply, retweet, quote
    kind[:20] = 0  # the earliest posts have nothing to point to
    zeros = np.zeros(n, np.int64)
    cols = {"post_id": post_id, "author_id": u.ids[author], "created_ms": created,
            "in_reply_to_post_id": zeros.copy(), "in_reply_to_user_id": zeros.copy(),
            "conversation_id": zeros.copy(), "source_post_id": zeros.copy(),
            "source_user_id": zeros.copy(), "quoted_post_id": zeros.copy(),
            "quoted_user_id": zeros.copy()}  # fmt: skip
    target_kind = np.zeros(n, int)
    for i in np.flatnonzero(kind > 0):
        # point at an earlier post: recent ones and same-topic ones are likelier
        lo = max(0, i - 400)
        cand = np.arange(lo, i)
        cand = cand[(kind[cand] != 2)]  # never at a retweet
        if not len(cand):
            kind[i] = 0
            continue
        w = 1.0 + 3.0 * (topic[cand] == topic[i])
        j = int(rng.choice(cand, p=w / w.sum()))
        target_kind[i] = kind[j]
        if kind[i] == 1:
            cols["in_reply_to_post_id"][i] = post_id[j]
            cols["in_reply_to_user_id"][i] = u.ids[author[j]]
            cols["conversation_id"][i] = cols["conversation_id"][j] or post_id[j]
            topic[i] = topic[j]
        elif kind[i] == 2:
            cols["source_post_id"][i] = post_id[j]
            cols["source_user_id"][i] = u.ids[author[j]]
            topic[i] = topic[j]
        else:
            cols["quoted_post_id"][i] = post_id[j]
            cols["quoted_user_id"][i] = u.ids[author[j]]
    video = (kind != 1) & (rng.random(n) < 0.16)
    duration = np.where(video, np.clip(rng.lognormal(np.log(14_000), 0.9, n), 1500, 600_000), 0)
    src = np.searchsorted(post_id, cols["source_post_id"])
    is_rt = kind == 2
    duration[is_rt] = duration[np.minimum(src, n - 1)][is_rt]  # a retweet shows its source's video
    photo = ~(duration > 0) & (rng.random(n) < 0.25)
    sub_only = (kind == 0) & u.sub_creator[author] & (rng.random(n) < 0.35)
    labels = np.full(n, "", dtype=object)
    r = rng.random(n)
    labels[r < 0.03] = np.array(LABELS, dtype=object)[rng.integers(0, len(LABELS), n)][r < 0.03]
    labels[u.nsfw[author] & (rng.random(n) < 0.6)] = "nsfw"
    quality = np.clip(0.6 * u.quality[author] + 0.4 * rng.beta(2, 2, n), 0.0, 1.0)
    quality[labels == "spam"] *= 0.3
    plant = parse_plant(cfg.plant_bias)
    if plant is not None and plant[0] == "quality":
        quality = np.where(topic == plant[1], np.minimum(quality * plant[2], 1.0), quality)
    words = []
    for i in range(n):
        tname = TOPICS[topic[i]]
        text = (
            f"[{tname}] {ADJECTIVES[rng.integers(len(ADJECTIVES))]} "
            f"{NOUNS[rng.integers(len(NOUNS))]} #{tname} by @user{author[i] + 1}"
        )
        if rng.random() < 0.06:
            text += f" — {EXTRA_WORDS[rng.integers(len(EXTRA_WORDS))]}!"
        if kind[i] == 2:
            text = ""
        words.append(text)
    return {
        **cols, "kind": kind, "topic": topic, "quality": quality, "author_index": author,
        "video_duration_ms": duration.astype(np.int64), "has_media": (duration > 0) | photo,
        "subscription_only": sub_only, "labels": labels, "text": np.array(words, dtype=object),
        "language": u.language[author],
    }  # fmt: skip


def _engagements(
    cfg: SynthConfig, u: _Users, posts: dict, following: list, rng: np.random.Generator
) -> tuple[dict[str, array.array], dict[str, array.array]]:
    n_posts = len(posts["post_id"])
    # typed arrays, not lists of Python objects: 100,000 users log ~34 M events (9.8 GB as lists)
    eng: dict[str, array.array] = {
        "user_id": array.array("q"), "post_id": array.array("q"), "author_id": array.array("q"),
        "action": array.array("h"), "event_ms": array.array("q"),
        "dwell_s": array.array("d"),  # NaN: none (only the dwell rows carry one)
        "product_surface": array.array("h"),
    }  # fmt: skip
    imp: dict[str, array.array] = {
        "user_id": array.array("q"), "post_id": array.array("q"),
        "served": array.array("b"), "event_ms": array.array("q"),
    }  # fmt: skip
    created = posts["created_ms"]
    by_author: dict[int, np.ndarray] = {}
    order = np.argsort(posts["author_index"], kind="stable")
    bounds = np.searchsorted(posts["author_index"][order], np.arange(cfg.users + 1))
    for a in range(cfg.users):
        by_author[a] = order[bounds[a] : bounds[a + 1]]
    topic_pop = posts["quality"] * (1 + (posts["kind"] == 0))
    followed_flag = np.zeros(cfg.users, bool)

    def record(user: int, post: int, action: A, t: int, dwell: float | None = None) -> None:
        eng["user_id"].append(int(u.ids[user]))
        eng["post_id"].append(int(posts["post_id"][post]))
        eng["author_id"].append(int(posts["author_id"][post]))
        eng["action"].append(int(action))
        eng["event_ms"].append(int(t))
        eng["dwell_s"].append(math.nan if dwell is None else dwell)
        eng["product_surface"].append(1 if rng.random() < 0.85 else 10)

    for i in range(cfg.users):
        followed_flag[:] = False
        followed_flag[following[i]] = True
        in_net = (
            np.concatenate([by_author[a] for a in following[i]])
            if len(following[i])
            else (np.zeros(0, int))
        )
        k = min(int(np.clip(cfg.impressions_per_user * u.activity[i], 15, 450)), n_posts)
        k_in = min(len(in_net), int(k * 0.45))
        k_explore = int(k * 0.25)  # exploration: uniformly random posts
        w = u.pref[i][posts["topic"]] * topic_pop + 0.02
        shown = np.unique(np.r_[
            rng.choice(in_net, size=k_in, replace=False) if k_in else np.zeros(0, int),
            rng.choice(n_posts, size=k - k_in - k_explore, replace=False, p=w / w.sum()),
            rng.choice(n_posts, size=k_explore, replace=False),
        ])  # fmt: skip
        for p in shown:
            t = created[p] + int(rng.exponential(12 * HOUR_MS))
            if t >= cfg.as_of_ms:
                t = created[p] + int(rng.random() * (cfg.as_of_ms - created[p]))
            imp["user_id"].append(int(u.ids[i]))
            imp["post_id"].append(int(posts["post_id"][p]))
            imp["served"].append(0)
            imp["event_ms"].append(int(t))
            author = posts["author_index"][p]
            if author == i:
                continue
            aff = u.pref[i, posts["topic"][p]] * u.quality[author] * posts["quality"][p]
            aff *= 1.3 if followed_flag[author] else 1.0
            g = float(_gate(np.array(aff)))
            rates = dict(POSITIVE_RATES)
            if posts["video_duration_ms"][p] > 0:
                rates.update(VIDEO_RATES)
            elif posts["has_media"][p]:
                rates.update(MEDIA_RATES)
            if posts["quoted_post_id"][p]:
                rates.update(QUOTE_RATES)
            if not followed_flag[author]:
                rates[FOLLOW_RATE[0]] = FOLLOW_RATE[1]
            hits = [a for a, r in rates.items() if rng.random() < r * g]
            spam = 4.0 if posts["labels"][p] == "spam" else 1.0
            negs = [a for a, r in NEGATIVE_RATES.items() if rng.random() < r * (1 - g) * spam]
            for j, a in enumerate(hits + negs):
                record(i, p, a, t + 1000 * (j + 1))
            if hits:
                dwell = float(np.clip(np.exp(rng.normal(np.log(6) + 2 * g, 0.8)), 0.5, 300))
            else:
                dwell = float(np.clip(np.exp(rng.normal(np.log(2), 0.6)), 0.2, 60))
            dwelled = dwell >= DWELL_THRESHOLD_S
            record(
                i,
                p,
                A.CLIENT_TWEET_RECAP_DWELLED if dwelled else A.CLIENT_TWEET_RECAP_NOT_DWELLED,
                t + 500,
                round(dwell, 2),
            )
        # a recent feed request: served (returned) posts, some within the last 10 minutes
        recent = rng.choice(n_posts, size=min(12, n_posts), replace=False)
        for j, p in enumerate(recent):
            imp["user_id"].append(int(u.ids[i]))
            imp["post_id"].append(int(posts["post_id"][p]))
            imp["served"].append(1)
            imp["event_ms"].append(int(cfg.as_of_ms - (2 + 2 * j) * 60_000))
    return eng, imp


def _posts_table(cfg: SynthConfig, posts: dict, rng: np.random.Generator) -> pa.Table:
    n = len(posts["post_id"])
    deleted = np.flatnonzero(rng.random(n) < 0.015)
    del_ms = posts["created_ms"][deleted] + rng.integers(HOUR_MS // 2, 20 * HOUR_MS, len(deleted))
    deleted, del_ms = deleted[del_ms < cfg.as_of_ms], del_ms[del_ms < cfg.as_of_ms]

    def ids(name: str) -> pa.Array:
        v = posts[name]
        return pa.array(
            np.r_[v, np.zeros(len(deleted), np.int64)],
            mask=np.r_[v == 0, np.ones(len(deleted), bool)],
        )

    nd = len(deleted)
    video = posts["video_duration_ms"]
    table = pa.table({
        "event": pa.array(["create"] * n + ["delete"] * nd),
        "event_ms": pa.array(np.r_[posts["created_ms"], del_ms], pa.int64()),
        "post_id": pa.array(np.r_[posts["post_id"], posts["post_id"][deleted]], pa.int64()),
        "author_id": pa.array(np.r_[posts["author_id"], posts["author_id"][deleted]], pa.int64()),
        "created_ms": pa.array(np.r_[posts["created_ms"], posts["created_ms"][deleted]],
                               pa.int64()),
        "in_reply_to_post_id": ids("in_reply_to_post_id"),
        "in_reply_to_user_id": ids("in_reply_to_user_id"),
        "conversation_id": ids("conversation_id"),
        "source_post_id": ids("source_post_id"),
        "source_user_id": ids("source_user_id"),
        "quoted_post_id": ids("quoted_post_id"),
        "quoted_user_id": ids("quoted_user_id"),
        "video_duration_ms": pa.array(np.r_[video, np.zeros(nd, np.int64)].astype(np.int32),
                                      mask=np.r_[video == 0, np.ones(nd, bool)]),
        "has_media": pa.array(np.r_[posts["has_media"], np.zeros(nd, bool)]),
        "subscription_only": pa.array(np.r_[posts["subscription_only"], np.zeros(nd, bool)]),
        "text": pa.array(list(posts["text"]) + [None] * nd, pa.string()),
        "language": pa.array(list(posts["language"]) + [None] * nd, pa.string()),
        "topics": pa.array([[TOPICS[t]] for t in posts["topic"]] + [None] * nd,
                           pa.list_(pa.string())),
        "labels": pa.array([[x] if x else [] for x in posts["labels"]] + [None] * nd,
                           pa.list_(pa.string())),
    })  # fmt: skip
    order = np.lexsort((np.arange(n + nd), table.column("event_ms").to_numpy()))
    return table.take(pa.array(order))


def synth_world(out: Path | str, cfg: SynthConfig, *, force: bool = False) -> dict[str, Any]:
    """Write a world directory atomically (never over something that is not a world unless
    `force`); returns its world.json content."""
    rng = np.random.default_rng(cfg.seed)
    users = _make_users(cfg, rng)
    edges, following = _make_edges(cfg, users, rng)
    posts = _make_posts(cfg, users, rng)
    eng, imp = _engagements(cfg, users, posts, following, rng)
    posts_table = _posts_table(cfg, posts, rng)

    followers = np.zeros(cfg.users, np.int64)
    for f in following:
        followers[f] += 1
    muted_vocab = [*EXTRA_WORDS, "#gaming", "#finance", "spoilers", "Café"]
    muted = [
        list(rng.choice(muted_vocab, size=rng.integers(1, 4), replace=False))
        if rng.random() < 0.12 else []
        for _ in range(cfg.users)
    ]  # fmt: skip
    users_table = pa.table({
        "user_id": pa.array(users.ids, pa.int64()),
        "screen_name": [f"user{i + 1}" for i in range(cfg.users)],
        "created_ms": pa.array(cfg.as_of_ms - rng.integers(30, 3000, cfg.users) * 24 * HOUR_MS,
                               pa.int64()),
        "follower_count": pa.array(followers * 37 + rng.integers(0, 40, cfg.users), pa.int64()),
        "is_nsfw": pa.array(users.nsfw),
        "muted_keywords": pa.array(muted, pa.list_(pa.string())),
        "allow_for_you": pa.array(rng.random(cfg.users) < 0.99),
        "country": np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), cfg.users)].tolist(),
        "language": users.language.tolist(),
    })  # fmt: skip
    edges_table = pa.table({
        "src_user_id": pa.array(np.frombuffer(edges["src_user_id"], np.int64)),
        "dst_user_id": pa.array(np.frombuffer(edges["dst_user_id"], np.int64)),
        "kind": pa.array(edges["kind"], pa.string()),
        "created_ms": pa.array(np.frombuffer(edges["created_ms"], np.int64)),
    })  # fmt: skip
    dwell = np.frombuffer(eng["dwell_s"], np.float64)
    eng_table = pa.table(
        {
            "user_id": pa.array(np.frombuffer(eng["user_id"], np.int64)),
            "post_id": pa.array(np.frombuffer(eng["post_id"], np.int64)),
            "author_id": pa.array(np.frombuffer(eng["author_id"], np.int64)),
            "action": pa.array(np.frombuffer(eng["action"], np.int16)),
            "event_ms": pa.array(np.frombuffer(eng["event_ms"], np.int64)),
            "dwell_s": pa.array(dwell.astype(np.float32), mask=np.isnan(dwell)),
            "product_surface": pa.array(np.frombuffer(eng["product_surface"], np.int16)),
        }
    ).sort_by([("user_id", "ascending"), ("event_ms", "ascending"), ("action", "ascending")])
    del eng, dwell
    imp_table = pa.table(
        {
            "user_id": pa.array(np.frombuffer(imp["user_id"], np.int64)),
            "post_id": pa.array(np.frombuffer(imp["post_id"], np.int64)),
            "kind": pa.array(["seen", "served"]).take(np.frombuffer(imp["served"], np.int8)),
            "event_ms": pa.array(np.frombuffer(imp["event_ms"], np.int64)),
        }
    ).sort_by([("user_id", "ascending"), ("event_ms", "ascending"), ("post_id", "ascending")])
    del imp

    tables = {"posts": posts_table, "users": users_table, "edges": edges_table,
              "engagements": eng_table, "impressions": imp_table}  # fmt: skip
    with atomic_path(out, kind=WORLD_OUTPUT, force=force) as tmp:
        paths = []
        for name, table in tables.items():
            path = tmp / f"{name}.parquet"
            pq.write_table(table, path, compression="zstd", compression_level=9)
            paths.append(path)
        meta = {
            "as_of_ms": cfg.as_of_ms,
            "seed": cfg.seed,
            "generator": GENERATOR,
            "params": {
                k: v
                for k, v in dataclasses.asdict(cfg).items()
                if not (k == "plant_bias" and v is None)
            },  # fmt: skip
            "topics": list(TOPICS),
            "rows": {name: t.num_rows for name, t in tables.items()},
            "content_hash": table_bytes_hash(paths),
        }
        (tmp / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
