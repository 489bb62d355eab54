"""PreviouslyServedPostsFilter: any related id was served in the last 10 minutes."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult, related_hit


class PreviouslyServedPostsFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        hit = related_hit(cands, queries, "served_ids")
        return self.partition(hit != 0, lambda r: [f"post {x} served recently" for x in hit[r]])
