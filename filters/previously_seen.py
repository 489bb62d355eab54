"""PreviouslySeenPostsFilter: any related id (post, retweeted, replied-to) was already seen."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult, related_hit


class PreviouslySeenPostsFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        hit = related_hit(cands, queries, "seen_ids")
        return self.partition(hit != 0, lambda r: [f"post {x} already seen" for x in hit[r]])
