"""IneligibleSubscriptionFilter: subscriber-only posts of creators the viewer is not subscribed
to."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class IneligibleSubscriptionFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        subscribed = set(query.subscribed_ids)

        def why(c) -> str | None:
            a = c.subscription_author_id
            return f"subscriber-only post of {a}" if a is not None and a not in subscribed else None

        return self.partition(candidates, why)
