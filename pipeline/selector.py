"""TopKScoreSelector with a total order: NaN and ±inf sink to the bottom, ties broken by post id
(larger, i.e. newer, first), so the selection is deterministic (selector.rs@104d54a)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from pipeline.columns import Cands, rank_within
from pipeline.framework import StageDefaults


def sort_key(c) -> tuple[int, float, int]:
    """The order of one candidate object (the same order `select` applies to columns)."""
    s = c.score
    finite = s is not None and math.isfinite(s)
    return (0 if finite else 1, -s if finite else 0.0, -c.post_id)


@dataclasses.dataclass
class TopKScoreSelector(StageDefaults):
    def select(self, queries: Sequence, cands: Cands) -> tuple[np.ndarray, np.ndarray]:
        s = cands.get("score")
        finite = ~cands.null("score") & np.isfinite(s)
        order = np.lexsort((-cands.get("post_id"), np.where(finite, -s, 0.0), ~finite, cands.req))
        pos = rank_within(cands.req, order)[order]
        k = np.array([q.params.top_k for q in queries] + [0], np.int64)[cands.req[order]]
        return order[pos < k], order[pos >= k]
