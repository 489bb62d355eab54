"""SelfTweetFilter: remove the viewer's own posts."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class SelfPostFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        return self.partition(
            candidates, lambda c: "viewer's own post" if c.author_id == query.user_id else None
        )
