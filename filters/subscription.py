"""IneligibleSubscriptionFilter: subscriber-only posts of creators the viewer is not subscribed
to."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult, member


class IneligibleSubscriptionFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        a = cands.get("subscription_author_id")
        only = ~cands.null("subscription_author_id")
        bad = only & ~member(queries, "subscribed_ids", cands.req, a)
        return self.partition(bad, lambda r: [f"subscriber-only post of {x}" for x in a[r]])
