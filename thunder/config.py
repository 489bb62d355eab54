"""Thunder's limits, defined once (homemixer_spec.md §10; thunder/config.rs upstream)."""

from __future__ import annotations

import dataclasses

DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True)
class ThunderConfig:
    retention_ms: int = 2 * DAY_MS  # --post-retention-seconds 172800
    max_posting_list: int = 5_000  # MAX_POSTING_LIST_SIZE, per author and kind
    max_input_list: int = 10_000  # MAX_INPUT_LIST_SIZE: following and exclude lists
    scan_per_author: int = 500  # MAX_TINY_POSTS_PER_USER_SCAN (non-excluded entries)
    max_originals: int = 50  # MAX_ORIGINAL_POSTS_PER_AUTHOR
    max_secondary: int = 30  # MAX_REPLY_POSTS_PER_AUTHOR
    max_video: int = 100  # MAX_VIDEO_POSTS_PER_AUTHOR
    max_results: int = 1_200  # MAX_POSTS_TO_RETURN
    max_results_video: int = 600
    min_video_ms: int = 5_000  # has_video: a video of at least 5 s
    # Accounts never served from the following list (@grok, @gork, products experimentation).
    blacklist: tuple[int, ...] = (1720665183188922368, 1909390269533011968, 1999031187604717568)


DEFAULT_CONFIG = ThunderConfig()
