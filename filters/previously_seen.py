"""PreviouslySeenPostsFilter: any related id (post, retweeted, replied-to) was already seen."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult, related_ids


class PreviouslySeenPostsFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        seen = set(query.seen_ids)

        def why(c) -> str | None:
            hit = next((x for x in related_ids(c) if x in seen), None)
            return f"post {hit} already seen" if hit is not None else None

        return self.partition(candidates, why)
