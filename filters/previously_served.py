"""PreviouslyServedPostsFilter: any related id was served in the last 10 minutes."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult, related_ids


class PreviouslyServedPostsFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        served = set(query.served_ids)

        def why(c) -> str | None:
            hit = next((x for x in related_ids(c) if x in served), None)
            return f"post {hit} served recently" if hit is not None else None

        return self.partition(candidates, why)
