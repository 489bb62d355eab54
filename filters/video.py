"""VideoFilter: when the request excludes videos, remove posts with a video."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class VideoFilter(BaseFilter):
    def enable(self, query) -> bool:
        return bool(query.params.exclude_videos)

    def filter(self, query, candidates: list) -> FilterResult:
        return self.partition(
            candidates, lambda c: "has video" if c.video_duration_ms is not None else None
        )
