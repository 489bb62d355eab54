"""DedupConversationFilter (post-selection): one post per conversation, the highest-scored.

Conversation key = min(ancestors) when there are ancestors, else the retweeted post id, else the
post id (so retweets of a post and the post itself collapse). Input is score-sorted, so the
first wins; a strictly higher later score replaces it in the earlier slot.
"""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


def conversation_key(c) -> int:
    return min(c.ancestors) if c.ancestors else (c.source_post_id or c.post_id)


class DedupConversationFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        slot: dict[int, int] = {}
        kept: list = []
        removed: list = []
        for c in candidates:
            key = conversation_key(c)
            if key not in slot:
                slot[key] = len(kept)
                kept.append(c)
                continue
            i = slot[key]
            if (c.score or float("-inf")) > (kept[i].score or float("-inf")):
                removed.append((kept[i], f"conversation {key}: a higher-scored post replaced it"))
                kept[i] = c
            else:
                removed.append((c, f"conversation {key} already has a post"))
        return FilterResult(kept, removed)
