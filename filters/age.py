"""AgeFilter: remove posts older than 48 h by snowflake time, or whose age is not computable."""

from __future__ import annotations

import dataclasses

import numpy as np

from filters.base import SNOWFLAKE_EPOCH_MS, BaseFilter, FilterResult, per_row

MAX_POST_AGE_MS = 48 * 3_600_000


def snowflake_created_ms(post_id: int) -> int | None:
    """(id >> 22) + epoch, or None when the id cannot be a snowflake."""
    return (post_id >> 22) + SNOWFLAKE_EPOCH_MS if post_id > 0 else None


@dataclasses.dataclass(frozen=True)
class AgeFilter(BaseFilter):
    max_age_ms: int = MAX_POST_AGE_MS

    def filter(self, queries, cands) -> FilterResult:
        ids = cands.get("post_id")
        age = per_row(queries, cands.req, "now_ms") - ((ids >> 22) + SNOWFLAKE_EPOCH_MS)
        bad = ids <= 0
        limit = f"{self.max_age_ms / 3_600_000:g}"

        def why(rows: np.ndarray) -> list[str]:
            return ["age not computable" if bad[i]
                    else f"older than {limit} h ({age[i] / 3_600_000:.1f} h)"
                    for i in rows.tolist()]  # fmt: skip

        return self.partition(bad | (age > self.max_age_ms), why)
