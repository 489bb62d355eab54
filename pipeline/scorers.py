"""Scoring (homemixer_spec.md §7): Phoenix probabilities, the weighted score with the negative
offset, the optional new-author boost, author diversity, and the out-of-network discount."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipeline.candidates import PostCandidate
from pipeline.framework import StageDefaults
from pipeline.params import HEADS, FeedParams
from pipeline.query import FeedQuery

if TYPE_CHECKING:
    from phoenix.runtime import Ranker


@dataclasses.dataclass
class PhoenixScorer(StageDefaults):
    """Probabilities of every score head the checkpoint has, for all candidates; retweets are
    scored as their source post (by its author)."""

    ranker: Ranker

    def available_heads(self) -> dict[str, int]:
        index = {name: i for i, name in enumerate(self.ranker.config.head_names)}
        return {head: index[a.name] for head, (a, _) in HEADS.items() if a.name in index}

    def score(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        if not cands:
            return []
        cfg = self.ranker.config
        history = query.user_history(cfg.num_actions, cfg.history_seq_len)
        posts = np.array([c.original_post_id for c in cands], np.int64)
        authors = np.array([c.source_user_id or c.author_id for c in cands], np.int64)
        probs = self.ranker.rank(history, posts, authors)  # [N, A]
        heads = self.available_heads()
        names = tuple(heads)
        picked = np.round(probs[:, list(heads.values())].astype(np.float64), 6).tolist()  # [N, H]
        return [c.evolve(probs=dict(zip(names, row, strict=True)))
                for c, row in zip(cands, picked, strict=True)]  # fmt: skip


def head_weights(c: PostCandidate, query: FeedQuery) -> dict[str, float]:
    """Per-candidate weights: the mutual-follow reply boost, VQV gating, post_unexplored
    in-network only."""
    p = query.params
    w = dict(p.weights)
    if not c.is_reply and not c.is_retweet and c.is_mutual_follow_author:
        w["reply"] = w["reply"] + p.reply_mutual_follow_boost
    viewer_small = query.follower_count is None or query.follower_count < p.vqv_max_viewer_followers
    long_video = c.video_duration_ms is not None and c.video_duration_ms > p.vqv_min_video_ms
    if not (viewer_small and long_video):
        w["vqv"] = 0.0
    if p.post_unexplored_in_network_only and c.in_network is not True:
        w["post_unexplored"] = 0.0
    return w


def weighted_parts(c: PostCandidate, query: FeedQuery) -> dict[str, float]:
    """Each head's contribution probability × weight (missing heads contribute 0)."""
    w = head_weights(c, query)
    probs = c.probs or {}
    parts = {h: probs.get(h, 0.0) * w[h] for h in HEADS}
    if c.dwell_time_s is not None:
        parts["dwell_time"] = c.dwell_time_s * w["dwell_time"]
    return parts


def offset_score(combined: float, params: FeedParams) -> float:
    """Negative handling: every non-negative post outranks every net-negative one."""
    return float(offset_scores(np.array([combined], np.float64), params)[0])


@dataclasses.dataclass
class WeightedScorer(StageDefaults):
    """Σ probability × weight over the heads (`head_weights` per candidate), then `offset_score`;
    vectorised over the candidates, the same arithmetic as `weighted_parts`."""

    def score(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        if not cands:
            return []
        p = query.params
        heads = list(HEADS)
        col = {h: i for i, h in enumerate(heads)}
        probs = np.array([[(c.probs or {}).get(h, 0.0) for h in heads] for c in cands])  # [N, H]
        w = np.tile(np.array([p.weights[h] for h in heads]), (len(cands), 1))  # [N, H]
        mutual_reply = [not c.is_reply and not c.is_retweet and bool(c.is_mutual_follow_author)
                        for c in cands]  # fmt: skip
        w[mutual_reply, col["reply"]] += p.reply_mutual_follow_boost
        viewer_small = (query.follower_count is None
                        or query.follower_count < p.vqv_max_viewer_followers)  # fmt: skip
        long_video = [c.video_duration_ms is not None and c.video_duration_ms > p.vqv_min_video_ms
                      for c in cands]  # fmt: skip
        w[~(np.array(long_video) & viewer_small), col["vqv"]] = 0.0
        if p.post_unexplored_in_network_only:
            w[[c.in_network is not True for c in cands], col["post_unexplored"]] = 0.0
        parts = probs * w  # [N, H]
        dwell = np.array([c.dwell_time_s or 0.0 for c in cands]) * p.weights["dwell_time"]  # [N]
        pos = np.where(parts >= 0, parts, 0.0).sum(axis=1) + np.maximum(dwell, 0.0)
        neg = np.where(parts < 0, -parts, 0.0).sum(axis=1) + np.maximum(-dwell, 0.0)
        ws = offset_scores(pos - neg, p).tolist()
        return [c.evolve(weighted_score=x, score=x) for c, x in zip(cands, ws, strict=True)]


def offset_scores(combined: np.ndarray, params: FeedParams) -> np.ndarray:
    """Negative handling over combined scores [N]: non-negative ones move up by the offset,
    net-negative ones are squeezed into [0, offset), below all of them."""
    pos_sum, neg_sum = params.positive_sum, params.negative_sum
    total = pos_sum + neg_sum
    if total == 0:
        return np.maximum(combined, 0.0)
    return np.where(combined < 0, (combined + neg_sum) / total * params.negative_scores_offset,
                    combined + params.negative_scores_offset)  # fmt: skip


@dataclasses.dataclass
class NewAuthorBoostScorer(StageDefaults):
    """Lift the best eligible new-author original post to the 16th-highest score (one per
    request). Off unless `new_author_boost`."""

    def enable(self, query: FeedQuery) -> bool:
        return query.params.new_author_boost

    def score(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        p = query.params
        scores = [c.score or 0.0 for c in cands]
        ranked = sorted(scores, reverse=True)
        hi = min(p.cold_start_slot, len(ranked))
        lo = min(p.cold_start_slot - 1, hi)
        if lo >= hi:
            return list(cands)
        target = ranked[lo]
        nonzero = sorted((s for s in scores if s != 0), reverse=True)
        limit = p.cold_start_max_position_ratio * len(nonzero)
        best = None
        for i, c in enumerate(cands):
            if c.is_reply or c.is_retweet or c.author_follower_count is None:
                continue
            if c.author_follower_count > p.cold_start_follower_cap:
                continue
            if c.view_count is None or c.view_count >= p.cold_start_impression_threshold:
                continue
            if scores[i] == 0 or nonzero.index(scores[i]) >= limit:
                continue
            if best is None or scores[i] >= scores[best]:
                best = i
        out = list(cands)
        if best is not None:
            out[best] = out[best].evolve(score=max(scores[best], target), cold_start_boosted=True)
        return out


def diversity_multiplier(k: int, decay: float, floor: float) -> float:
    """(1 − floor) · decay^k + floor: 1.0, 0.625, 0.4375, … -> 0.25 at the defaults."""
    return (1 - floor) * decay**k + floor


@dataclasses.dataclass
class AuthorDiversityScorer(StageDefaults):
    """k = posts by the same author ranked above in the whole pool; score × mult(k)."""

    def score(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        p = query.params
        order = sorted(range(len(cands)), key=lambda i: -_finite_or_low(cands[i].score))
        seen: dict[int, int] = {}
        mult = [1.0] * len(cands)
        for i in order:
            k = seen.get(cands[i].author_id, 0)
            mult[i] = diversity_multiplier(k, p.author_diversity_decay, p.author_diversity_floor)
            seen[cands[i].author_id] = k + 1
        return [
            c.evolve(score=(c.score or 0.0) * m, diversity_multiplier=m)
            for c, m in zip(cands, mult, strict=True)
        ]


def oon_applies(c: PostCandidate, params: FeedParams) -> bool:
    if c.in_network is False:
        return True
    return bool(c.in_network and params.oon_rescore_in_network_replies_retweets
                and (c.is_reply or c.is_retweet))  # fmt: skip


@dataclasses.dataclass
class OONScorer(StageDefaults):
    """Out-of-network (and in-network reply/retweet) discount × 0.75."""

    def score(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        f = query.params.oon_weight_factor
        return [
            c.evolve(score=(c.score or 0.0) * f, oon_multiplier=f)
            if oon_applies(c, query.params) else c
            for c in cands
        ]  # fmt: skip


def _finite_or_low(x: float | None) -> float:
    return x if x is not None and math.isfinite(x) else -math.inf
