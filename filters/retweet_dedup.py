"""RetweetDeduplicationFilter: an original and its retweets dedupe against each other
(key = retweeted post id, else post id; the first in the list wins)."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class RetweetDeduplicationFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        seen: set[int] = set()

        def why(c) -> str | None:
            key = c.source_post_id or c.post_id
            if key in seen:
                return f"duplicate of post {key} (retweet dedup)"
            seen.add(key)
            return None

        return self.partition(candidates, why)
