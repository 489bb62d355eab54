"""DedupConversationFilter (post-selection): one post per conversation, the highest-scored.

Conversation key = min(ancestors) when there are ancestors, else the retweeted post id, else the
post id (so retweets of a post and the post itself collapse). Input is score-sorted, so the
first wins; a strictly higher later score replaces it in the earlier slot. It runs on the
selected few per request, so it walks them in Python.
"""

from __future__ import annotations

import numpy as np

from filters.base import BaseFilter, FilterResult


def conversation_key(c) -> int:
    return min(c.ancestors) if c.ancestors else (c.source_post_id or c.post_id)


class DedupConversationFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        anc = cands.get("ancestors").tolist()
        src, post = cands.get("source_post_id").tolist(), cands.get("post_id").tolist()
        score = np.where(cands.null("score"), -np.inf, cands.get("score"))
        score = np.where(score == 0, -np.inf, score).tolist()  # `score or -inf`, as upstream
        req = cands.req.tolist()
        slot: dict[tuple[int, int], int] = {}
        kept: list[int] = []
        removed: list[int] = []
        reasons: list[str] = []
        for i in range(len(req)):
            key = min(anc[i]) if anc[i] else (src[i] or post[i])
            if (req[i], key) not in slot:
                slot[(req[i], key)] = len(kept)
                kept.append(i)
                continue
            j = slot[(req[i], key)]
            if score[i] > score[kept[j]]:
                removed.append(kept[j])
                reasons.append(f"conversation {key}: a higher-scored post replaced it")
                kept[j] = i
            else:
                removed.append(i)
                reasons.append(f"conversation {key} already has a post")
        return FilterResult(np.array(kept, np.int64), np.array(removed, np.int64), reasons)
