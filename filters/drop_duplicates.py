"""DropDuplicatesFilter: the first occurrence of a post id wins (so Thunder beats retrieval)."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult, first_per_request


class DropDuplicatesFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        first = first_per_request(cands.req, cands.get("post_id"))
        return self.partition(~first, lambda r: ["duplicate post id"] * len(r))
