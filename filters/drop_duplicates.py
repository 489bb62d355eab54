"""DropDuplicatesFilter: the first occurrence of a post id wins (so Thunder beats retrieval)."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class DropDuplicatesFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        seen: set[int] = set()

        def why(c) -> str | None:
            if c.post_id in seen:
                return "duplicate post id"
            seen.add(c.post_id)
            return None

        return self.partition(candidates, why)
