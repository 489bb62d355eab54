"""`explain`: what happened to given posts in one request, read off one pipeline run.

The record that counts for a post id is decided in the order a feed is built: served (in the
final feed) → its score breakdown, with the removed duplicate copies as a note; scored but removed
after selection → removed; scored but not selected → the breakdown and why it is not in the
feed; removed before scoring (every copy) → every removal record; otherwise not retrieved. Several
posts (`--post A --post B`, `--top N`) are explained from the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline import scorers as s
from pipeline.framework import PipelineResult, Removed
from pipeline.selector import sort_key


def _record(r: Removed) -> dict[str, Any]:
    return {"stage": r.stage, "component": r.component, "reason": r.reason,
            "source": r.candidate.source}  # fmt: skip


def explain_result(res: PipelineResult, post_id: int) -> dict[str, Any]:
    """What happened to `post_id` in the pipeline run `res` (see the module docstring)."""
    records = [r for r in res.removed if r.candidate.post_id == post_id]
    final_ids = [c.post_id for c in res.selected]
    scored = {c.post_id: c for c in res.scored}
    pid = str(post_id)
    if post_id in final_ids:
        out = _breakdown(res, scored[post_id], final_ids)
        return {"post_id": pid, "outcome": "served", **out,
                "removed_copies": [_record(r) for r in records]}  # fmt: skip
    if records and (post_id not in scored or any(r.stage != "filter" for r in records)):
        return {"post_id": pid, "outcome": "removed", "removals": [_record(r) for r in records],
                "candidate": records[-1].candidate.to_json()}  # fmt: skip
    if post_id in scored:
        out = _breakdown(res, scored[post_id], final_ids)
        top_k = res.query.params.top_k
        why = (f"below the top {top_k} by score" if out["pool_rank"] > top_k
               else "cut by the feed size after post-selection filters")  # fmt: skip
        return {"post_id": pid, "outcome": "not selected", "reason": why, **out,
                "removed_copies": [_record(r) for r in records]}  # fmt: skip
    return {"post_id": pid, "outcome": "not retrieved",
            "reason": "no source returned it (not in-network for this viewer, not in the "
                      "retrieval top-K, or already seen)"}  # fmt: skip


def _breakdown(res: PipelineResult, c, final_ids: list[int]) -> dict[str, Any]:
    """Each head's probability × weight = contribution, the multipliers, ranks."""
    q = res.query
    weights = s.head_weights(c, q)
    probs = c.probs or {}
    heads = [
        {"head": head, "probability": probs.get(head), "weight": weights[head],
         "contribution": probs.get(head, 0.0) * weights[head]}
        for head in weights if head in probs or weights[head] != 0
    ]  # fmt: skip
    parts = s.weighted_parts(c, q)
    pos = sum(v for v in parts.values() if v >= 0)
    neg = sum(-v for v in parts.values() if v < 0)
    ordered = [x.post_id for x in sorted(res.scored, key=sort_key)]
    return {
        "feed_position": final_ids.index(c.post_id) + 1 if c.post_id in final_ids else None,
        "pool_rank": ordered.index(c.post_id) + 1,
        "pool_size": len(ordered),
        "heads": heads,
        "missing_heads": [hd for hd in weights if hd not in probs and hd != "dwell_time"],
        "positive": pos, "negative": neg, "combined": pos - neg,
        "weighted_score": c.weighted_score,
        "cold_start_boosted": c.cold_start_boosted,
        "diversity_multiplier": c.diversity_multiplier,
        "oon_multiplier": c.oon_multiplier,
        "final_score": c.score,
        "candidate": c.to_json(),
    }  # fmt: skip


def explain_posts(res: PipelineResult, post_ids: Sequence[int] = (), top: int = 0) -> list[dict]:
    """Explanations of `post_ids`, then of the feed's first `top` posts not already asked for."""
    ids = list(dict.fromkeys(int(p) for p in post_ids))
    ids += [c.post_id for c in res.selected[:top] if c.post_id not in ids]
    return [explain_result(res, p) for p in ids]
