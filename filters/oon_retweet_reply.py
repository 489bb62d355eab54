"""OONRetweetReplyFilter: remove out-of-network retweets and replies, and replies without
ancestors (every retrieval-sourced reply)."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


def _why(c) -> str | None:
    if c.in_network is False and (c.is_retweet or c.is_reply):
        return "out-of-network " + ("retweet" if c.is_retweet else "reply")
    if c.is_reply and not c.ancestors:
        return "reply without ancestors"
    return None


class OONRetweetReplyFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        return self.partition(candidates, _why)
