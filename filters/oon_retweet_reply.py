"""OONRetweetReplyFilter: remove out-of-network retweets and replies, and replies without
ancestors (every retrieval-sourced reply)."""

from __future__ import annotations

import numpy as np

from filters.base import BaseFilter, FilterResult


class OONRetweetReplyFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        retweet = cands.get("source_post_id") != 0
        reply = (cands.get("in_reply_to_post_id") != 0) | (cands.get("in_reply_to_user_id") != 0)
        oon = ~cands.get("in_network").astype(bool) & ~cands.null("in_network")
        anc = cands.get("ancestors")
        no_anc = np.fromiter(map(len, anc), np.int64, len(anc)) == 0
        oon_hit = oon & (retweet | reply)

        def why(rows: np.ndarray) -> list[str]:
            return [("out-of-network " + ("retweet" if retweet[i] else "reply")) if oon_hit[i]
                    else "reply without ancestors" for i in rows.tolist()]  # fmt: skip

        return self.partition(oon_hit | (reply & no_anc), why)
