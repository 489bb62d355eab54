"""AuthorSocialgraphFilter: muted or blocked author, author blocks viewer, quoted author blocks
viewer, quoted or retweeted user blocked by the viewer. Mutes apply to the author only."""

from __future__ import annotations

from filters.base import BaseFilter, FilterResult


class AuthorSocialgraphFilter(BaseFilter):
    def filter(self, query, candidates: list) -> FilterResult:
        muted, blocked = set(query.muted_ids), set(query.blocked_ids)

        def why(c) -> str | None:
            if c.author_id in muted:
                return f"author {c.author_id} muted"
            if c.author_id in blocked:
                return f"author {c.author_id} blocked"
            if c.author_blocks_viewer:
                return f"author {c.author_id} blocks the viewer"
            if c.quoted_author_blocks_viewer:
                return f"quoted author {c.quoted_user_id} blocks the viewer"
            if c.quoted_user_id and c.quoted_user_id in blocked:
                return f"quoted user {c.quoted_user_id} blocked"
            if c.source_user_id and c.source_user_id in blocked:
                return f"retweeted user {c.source_user_id} blocked"
            return None

        return self.partition(candidates, why)
