"""RetweetDeduplicationFilter: an original and its retweets dedupe against each other
(key = retweeted post id, else post id; the first in the list wins)."""

from __future__ import annotations

import numpy as np

from filters.base import BaseFilter, FilterResult, first_per_request


class RetweetDeduplicationFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        src = cands.get("source_post_id")
        key = np.where(src != 0, src, cands.get("post_id"))
        first = first_per_request(cands.req, key)
        return self.partition(
            ~first, lambda r: [f"duplicate of post {k} (retweet dedup)" for k in key[r]]
        )
