"""VideoFilter: when the request excludes videos, remove posts with a video."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class VideoFilter(BaseFilter):
    def enable(self, query) -> bool:
        return bool(query.params.exclude_videos)

    def filter(self, queries, cands) -> FilterResult:
        has = ~cands.null("video_duration_ms")
        return self.partition(has, lambda r: ["has video"] * len(r))
