"""AuthorSocialgraphFilter: muted or blocked author, author blocks viewer, quoted author blocks
viewer, quoted or retweeted user blocked by the viewer. Mutes apply to the author only."""

from __future__ import annotations

import numpy as np

from filters.base import BaseFilter, FilterResult, member


class AuthorSocialgraphFilter(BaseFilter):
    def filter(self, queries, cands) -> FilterResult:
        req = cands.req
        author, quoted, source = (cands.get(f) for f in
                                  ("author_id", "quoted_user_id", "source_user_id"))  # fmt: skip
        rules = [  # in order: the first that applies gives the reason
            (member(queries, "muted_ids", req, author), "author {a} muted"),
            (member(queries, "blocked_ids", req, author), "author {a} blocked"),
            (cands.is_true("author_blocks_viewer"), "author {a} blocks the viewer"),
            (cands.is_true("quoted_author_blocks_viewer"), "quoted author {q} blocks the viewer"),
            ((quoted != 0) & member(queries, "blocked_ids", req, quoted),
             "quoted user {q} blocked"),
            ((source != 0) & member(queries, "blocked_ids", req, source),
             "retweeted user {s} blocked"),
        ]  # fmt: skip
        rule = np.full(len(cands), -1)
        for k in range(len(rules) - 1, -1, -1):
            rule = np.where(rules[k][0], k, rule)

        def why(rows: np.ndarray) -> list[str]:
            return [rules[rule[i]][1].format(a=author[i], q=quoted[i], s=source[i])
                    for i in rows.tolist()]  # fmt: skip

        return self.partition(rule >= 0, why)
