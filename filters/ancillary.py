"""AncillaryVFFilter (post-selection): remove posts whose quoted, retweeted or ancestor post got
a drop verdict."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class AncillaryVisibilityFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        return self.partition(
            candidates,
            lambda c: "quoted/retweeted/ancestor post dropped" if c.drop_ancillary else None,
        )
