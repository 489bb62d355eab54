"""Scoring (homemixer_spec.md §7): Phoenix probabilities, the weighted score with the negative
offset, the optional new-author boost, author diversity, and the out-of-network discount.

Each scorer works on a batch of requests as columns (rows grouped by request) and returns the
columns it sets; per-candidate views (`head_weights`, `weighted_parts`) run the same code on a
batch of one row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from filters.base import pair_keys
from pipeline.candidates import PostCandidate
from pipeline.columns import Cands, rank_within
from pipeline.framework import StageDefaults
from pipeline.params import HEADS, FeedParams
from pipeline.query import FeedQuery

if TYPE_CHECKING:
    from phoenix.runtime import Ranker


def _param(queries: Sequence[FeedQuery], req: np.ndarray, name: str, dtype=np.float64):
    """A params field for every row: [N]."""
    values = np.array([getattr(q.params, name) for q in queries], dtype)
    return values[req] if len(values) else np.zeros(len(req), dtype)


def _is_reply(c: Cands) -> np.ndarray:
    return (c.get("in_reply_to_post_id") != 0) | (c.get("in_reply_to_user_id") != 0)


def _is_retweet(c: Cands) -> np.ndarray:
    return c.get("source_post_id") != 0


@dataclasses.dataclass
class PhoenixScorer(StageDefaults):
    """Probabilities of every score head the checkpoint has, for all candidates; retweets are
    scored as their source post (by its author). Batched across the requests."""

    ranker: Ranker

    def available_heads(self) -> dict[str, int]:
        index = {name: i for i, name in enumerate(self.ranker.config.head_names)}
        return {head: index[a.name] for head, (a, _) in HEADS.items() if a.name in index}

    def score(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        heads = self.available_heads()
        cfg = self.ranker.config
        src, src_user = cands.get("source_post_id"), cands.get("source_user_id")
        posts = np.where(src != 0, src, cands.get("post_id"))  # [N]
        authors = np.where(src_user != 0, src_user, cands.get("author_id"))  # [N]
        reqs = np.unique(cands.req)
        starts = np.searchsorted(cands.req, reqs)
        stops = np.searchsorted(cands.req, reqs, side="right")
        histories = [queries[r].user_history(cfg.num_actions, cfg.history_seq_len)
                     for r in reqs.tolist()]  # fmt: skip
        probs = self.ranker.rank_many(
            histories, [posts[a:b] for a, b in zip(starts, stops, strict=True)],
            [authors[a:b] for a, b in zip(starts, stops, strict=True)],
        )  # fmt: skip
        out = np.zeros((len(cands), len(heads)), np.float64)  # [N, H]
        cols = list(heads.values())
        for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
            out[a:b] = np.round(probs[i][:, cols].astype(np.float64), 6)
            probs[i] = None  # [N_u, A] float32, no longer needed: a batch holds one copy
        return {"probs": (tuple(heads), out)}


def head_weight_rows(queries: Sequence[FeedQuery], c: Cands) -> np.ndarray:
    """Per-candidate weights [N, H] over HEADS: the mutual-follow reply boost, VQV gating,
    post_unexplored in-network only."""
    heads = list(HEADS)
    col = {h: i for i, h in enumerate(heads)}
    w = np.array([[q.params.weights[h] for h in heads] for q in queries], np.float64)
    w = w[c.req] if len(queries) else np.zeros((len(c), len(heads)))  # [N, H]
    mutual = ~_is_reply(c) & ~_is_retweet(c) & c.is_true("is_mutual_follow_author")
    w[:, col["reply"]] += np.where(mutual, _param(queries, c.req, "reply_mutual_follow_boost"), 0)
    followers = np.array([np.nan if q.follower_count is None else q.follower_count
                          for q in queries] + [np.nan], np.float64)[c.req]  # fmt: skip
    viewer_small = np.isnan(followers) | (
        followers < _param(queries, c.req, "vqv_max_viewer_followers")
    )
    long_video = ~c.null("video_duration_ms") & (
        c.get("video_duration_ms") > _param(queries, c.req, "vqv_min_video_ms", np.int64)
    )
    w[~(viewer_small & long_video), col["vqv"]] = 0.0
    only_in = _param(queries, c.req, "post_unexplored_in_network_only", bool)
    w[only_in & ~c.is_true("in_network"), col["post_unexplored"]] = 0.0
    return w


def weighted_part_rows(queries: Sequence[FeedQuery], c: Cands) -> tuple[np.ndarray, np.ndarray]:
    """Each head's contribution probability × weight [N, H] (missing heads contribute 0), and
    the continuous dwell-time part [N]."""
    probs = (np.stack([c.prob(h) for h in HEADS], axis=1, dtype=np.float64) if len(c)
             else np.zeros((0, len(HEADS))))  # fmt: skip
    dwell = np.where(c.null("dwell_time_s"), 0.0, c.get("dwell_time_s"))
    probs *= head_weight_rows(queries, c)  # in place: [N, H] float64 arrays are ~10 MB a batch
    return probs, dwell * _dwell_weight(queries, c.req)


def _dwell_weight(queries: Sequence[FeedQuery], req: np.ndarray) -> np.ndarray:
    w = np.array([q.params.weights["dwell_time"] for q in queries], np.float64)
    return w[req] if len(w) else np.zeros(len(req))


def head_weights(c: PostCandidate, query: FeedQuery) -> dict[str, float]:
    """One candidate's weights per head (the batch code on one row)."""
    w = head_weight_rows([query], Cands.from_candidates([c]))[0].tolist()
    return dict(zip(HEADS, w, strict=True)) | {"dwell_time": query.params.weights["dwell_time"]}


def weighted_parts(c: PostCandidate, query: FeedQuery) -> dict[str, float]:
    """One candidate's contribution per head (the batch code on one row)."""
    parts, dwell = weighted_part_rows([query], Cands.from_candidates([c]))
    out = dict(zip(HEADS, parts[0].tolist(), strict=True))
    if c.dwell_time_s is not None:
        out["dwell_time"] = float(dwell[0])
    return out


def offset_score(combined: float, params: FeedParams) -> float:
    """Negative handling: every non-negative post outranks every net-negative one."""
    return float(offset_scores(np.array([combined], np.float64), params)[0])


@dataclasses.dataclass
class WeightedScorer(StageDefaults):
    """Σ probability × weight over the heads (`head_weight_rows`), then `offset_scores`."""

    def score(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        parts, dwell = weighted_part_rows(queries, cands)  # [N, H], [N]
        pos = np.where(parts >= 0, parts, 0.0).sum(axis=1) + np.maximum(dwell, 0.0)
        np.negative(parts, out=parts)  # in place: parts < 0 is now parts > 0, -parts is parts
        neg = np.where(parts > 0, parts, 0.0).sum(axis=1) + np.maximum(-dwell, 0.0)
        ws = offset_rows(pos - neg, queries, cands.req)
        return {"weighted_score": ws, "score": ws}


def offset_scores(combined: np.ndarray, params: FeedParams) -> np.ndarray:
    """Negative handling over combined scores [N]: non-negative ones move up by the offset,
    net-negative ones are squeezed into [0, offset), below all of them."""
    return _offset(combined, np.full(len(combined), params.positive_sum),
                   np.full(len(combined), params.negative_sum),
                   np.full(len(combined), params.negative_scores_offset))  # fmt: skip


def offset_rows(combined: np.ndarray, queries: Sequence[FeedQuery], req: np.ndarray) -> np.ndarray:
    """`offset_scores` with each row's request params."""
    per = np.array([(q.params.positive_sum, q.params.negative_sum,
                     q.params.negative_scores_offset) for q in queries] + [(0.0, 0.0, 0.0)],
                   np.float64)[req]  # fmt: skip
    return _offset(combined, per[:, 0], per[:, 1], per[:, 2])


def _offset(combined, pos_sum, neg_sum, offset) -> np.ndarray:
    total = pos_sum + neg_sum
    safe = np.where(total == 0, 1.0, total)
    out = np.where(combined < 0, (combined + neg_sum) / safe * offset, combined + offset)
    return np.where(total == 0, np.maximum(combined, 0.0), out)


def _score_or_zero(c: Cands) -> np.ndarray:
    s = c.get("score")
    return np.where(c.null("score"), 0.0, s)


@dataclasses.dataclass
class NewAuthorBoostScorer(StageDefaults):
    """Lift the best eligible new-author original post to the 16th-highest score (one per
    request). Off unless `new_author_boost`."""

    def enable(self, query: FeedQuery) -> bool:
        return query.params.new_author_boost

    def score(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        score = _score_or_zero(cands).copy()
        boosted = cands.get("cold_start_boosted").copy()
        eligible = (~_is_reply(cands) & ~_is_retweet(cands) & ~cands.null("author_follower_count")
                    & ~cands.null("view_count"))  # fmt: skip
        followers, views = cands.get("author_follower_count"), cands.get("view_count")
        for r in np.unique(cands.req).tolist():
            p = queries[r].params
            rows = np.flatnonzero(cands.req == r)
            scores = score[rows].tolist()
            ranked = sorted(scores, reverse=True)
            hi = min(p.cold_start_slot, len(ranked))
            lo = min(p.cold_start_slot - 1, hi)
            if lo >= hi:
                continue
            target = ranked[lo]
            nonzero = sorted((s for s in scores if s != 0), reverse=True)
            limit = p.cold_start_max_position_ratio * len(nonzero)
            best = None
            for k, i in enumerate(rows.tolist()):
                if not eligible[i] or followers[i] > p.cold_start_follower_cap:
                    continue
                if views[i] >= p.cold_start_impression_threshold:
                    continue
                if scores[k] == 0 or nonzero.index(scores[k]) >= limit:
                    continue
                if best is None or scores[k] >= scores[best]:
                    best = k
            if best is not None:
                score[rows[best]] = max(scores[best], target)
                boosted[rows[best]] = True
        return {"score": score, "cold_start_boosted": boosted}


def diversity_multipliers(k: np.ndarray, decay: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """(1 − floor) · decay^k + floor per row: 1.0, 0.625, 0.4375, … -> 0.25 at the defaults."""
    return (1 - floor) * np.power(decay, k) + floor


def diversity_multiplier(k: int, decay: float, floor: float) -> float:
    return float(diversity_multipliers(np.array([k]), np.array([decay]), np.array([floor]))[0])


@dataclasses.dataclass
class AuthorDiversityScorer(StageDefaults):
    """k = posts by the same author ranked above in the whole pool; score × mult(k)."""

    def score(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        s = cands.get("score")
        low = np.where(cands.null("score") | ~np.isfinite(s), -np.inf, s)
        # visit each request's rows by score descending (ties: pool order), count the author
        order = np.lexsort((-low, cands.req))
        (key,) = pair_keys(cands.req, cands.get("author_id"))
        by_author = order[np.argsort(key[order], kind="stable")]  # grouped by (req, author)
        k = rank_within(key, by_author)
        decay = _param(queries, cands.req, "author_diversity_decay")
        floor = _param(queries, cands.req, "author_diversity_floor")
        mult = diversity_multipliers(k, decay, floor)
        return {"score": _score_or_zero(cands) * mult, "diversity_multiplier": mult}


def oon_rows(queries: Sequence[FeedQuery], c: Cands) -> np.ndarray:
    """[N] bool: the out-of-network discount applies (out of network, or in-network reply or
    retweet when `oon_rescore_in_network_replies_retweets`)."""
    oon = ~c.get("in_network").astype(bool) & ~c.null("in_network")
    rescore = _param(queries, c.req, "oon_rescore_in_network_replies_retweets", bool)
    return oon | (c.is_true("in_network") & rescore & (_is_reply(c) | _is_retweet(c)))


@dataclasses.dataclass
class OONScorer(StageDefaults):
    """Out-of-network (and in-network reply/retweet) discount × 0.75."""

    def score(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        f = _param(queries, cands.req, "oon_weight_factor")
        on = oon_rows(queries, cands)
        score = np.where(on, _score_or_zero(cands) * f, cands.get("score"))
        null = cands.null("score") & ~on
        mult = np.where(on, f, cands.get("oon_multiplier"))
        mult_null = cands.null("oon_multiplier") & ~on
        return {
            "score": np.ma.array(score, mask=null),
            "oon_multiplier": np.ma.array(mult, mask=mult_null),
        }


@dataclasses.dataclass
class ChronoScorer(StageDefaults):
    """The reverse-chronological control arm (`arm = "chrono"`): the final score is the post's
    creation time (ms), so the selector serves the newest first (ties: the larger post id).
    Phoenix probabilities and the weighted score stay as recorded, for comparison only."""

    def enable(self, query: FeedQuery) -> bool:
        return query.params.arm == "chrono"

    def score(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        return {"score": cands.get("created_ms").astype(np.float64)}  # [N]
