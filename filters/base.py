"""What every filter shares: the result type and upstream's trait defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

C = TypeVar("C")
SNOWFLAKE_EPOCH_MS = 1288834974657


@dataclasses.dataclass(frozen=True)
class FilterResult(Generic[C]):
    kept: list[C]
    removed: list[tuple[C, str]]  # (candidate, reason)


class StageDefaults:
    """Upstream's trait defaults for every pipeline component: enabled, named after the class."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def enable(self, query: Any) -> bool:
        return True


class BaseFilter(StageDefaults):
    """A filter; `partition` applies one predicate."""

    @staticmethod
    def partition(candidates: list[C], why: Callable[[C], str | None]) -> FilterResult[C]:
        """Keep candidates for which `why` returns None; remove the others with that reason."""
        kept, removed = [], []
        for c in candidates:
            reason = why(c)
            if reason is None:
                kept.append(c)
            else:
                removed.append((c, reason))
        return FilterResult(kept, removed)


def related_ids(c: Any) -> tuple[int, ...]:
    """{post, retweeted post, replied-to post} (upstream related_post_ids_iter)."""
    return tuple(x for x in (c.post_id, c.source_post_id, c.in_reply_to_post_id) if x)
