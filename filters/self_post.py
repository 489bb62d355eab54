"""SelfTweetFilter: remove the viewer's own posts."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult, per_row


class SelfPostFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        own = cands.get("author_id") == per_row(queries, cands.req, "user_id")
        return self.partition(own, lambda r: ["viewer's own post"] * len(r))
