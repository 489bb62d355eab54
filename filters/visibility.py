"""VFFilter (post-selection): remove posts whose visibility verdict is a drop (safety labels such
as spam, violence, gore; NSFW out of network; deleted posts)."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class VisibilityFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        return self.partition(
            candidates,
            lambda c: f"visibility: {c.visibility_reason}" if c.visibility_reason else None,
        )
