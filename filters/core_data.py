"""CoreDataHydrationFilter: remove candidates whose core data did not hydrate (author_id == 0)."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class CoreDataHydrationFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        return self.partition(candidates, lambda c: "no core data" if c.author_id == 0 else None)
