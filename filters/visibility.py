"""VFFilter (post-selection): remove posts whose visibility verdict is a drop (safety labels such
as spam, violence, gore; NSFW out of network; deleted posts)."""

from __future__ import annotations

import numpy as np

from filters.base import BaseFilter, FilterResult


class VisibilityFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        reason = cands.get("visibility_reason")
        drop = np.fromiter((bool(x) for x in reason), bool, len(cands))
        return self.partition(drop, lambda r: [f"visibility: {x}" for x in reason[r]])
