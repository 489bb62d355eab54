"""AgeFilter: remove posts older than 48 h by snowflake time, or whose age is not computable."""

from __future__ import annotations

import dataclasses

from filters.base import SNOWFLAKE_EPOCH_MS, BaseFilter, FilterResult

MAX_POST_AGE_MS = 48 * 3_600_000


def snowflake_created_ms(post_id: int) -> int | None:
    """(id >> 22) + epoch, or None when the id cannot be a snowflake."""
    return (post_id >> 22) + SNOWFLAKE_EPOCH_MS if post_id > 0 else None


@dataclasses.dataclass(frozen=True)
class AgeFilter(BaseFilter):
    max_age_ms: int = MAX_POST_AGE_MS

    def _why(self, c, now_ms: int) -> str | None:
        created = snowflake_created_ms(c.post_id)
        if created is None:
            return "age not computable"
        age = now_ms - created
        if age > self.max_age_ms:
            return f"older than {self.max_age_ms / 3_600_000:g} h ({age / 3_600_000:.1f} h)"
        return None

    def filter(self, query, candidates: list) -> FilterResult:
        return self.partition(candidates, lambda c: self._why(c, query.now_ms))
