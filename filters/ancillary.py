"""AncillaryVFFilter (post-selection): remove posts whose quoted, retweeted or ancestor post got
a drop verdict."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class AncillaryVisibilityFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        return self.partition(
            cands.is_true("drop_ancillary"),
            lambda rows: ["quoted/retweeted/ancestor post dropped"] * len(rows),
        )
