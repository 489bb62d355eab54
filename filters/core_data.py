"""CoreDataHydrationFilter: remove candidates whose core data did not hydrate (author_id == 0)."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class CoreDataHydrationFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        return self.partition(cands.get("author_id") == 0, lambda r: ["no core data"] * len(r))
