"""TopKScoreSelector with a total order: NaN and ±inf sink to the bottom, ties broken by post id
(larger, i.e. newer, first), so the selection is deterministic (selector.rs@104d54a)."""

from __future__ import annotations

import dataclasses
import math

from pipeline.framework import SelectResult, StageDefaults


def sort_key(c) -> tuple[int, float, int]:
    s = c.score
    finite = s is not None and math.isfinite(s)
    return (0 if finite else 1, -s if finite else 0.0, -c.post_id)


@dataclasses.dataclass
class TopKScoreSelector(StageDefaults):
    def select(self, query, candidates: list) -> SelectResult:
        ranked = sorted(candidates, key=sort_key)
        k = query.params.top_k
        return SelectResult(ranked[:k], ranked[k:])
