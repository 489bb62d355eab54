"""Candidate hydrators (homemixer_spec.md §5 and the post-selection VF hydrator, §8).

Each hydrator owns a set of fields (`fields`) and returns the candidates in the same order with
only those filled; the runner merges them. Data comes from the world's tables.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from filters.base import member, per_row
from phoenix.actions import ActionName as A
from pipeline.columns import Cands, nonzero_tuples, object_array, tuple_lengths
from pipeline.framework import StageDefaults
from pipeline.query import FeedQuery

if TYPE_CHECKING:
    from world.data import WorldData

SNOWFLAKE_EPOCH_MS = 1288834974657


def snowflake_ms(post_id: int) -> int | None:
    """Creation time encoded in a snowflake id; None when the id cannot be one."""
    if post_id <= 0:
        return None
    return (post_id >> 22) + SNOWFLAKE_EPOCH_MS


def _world_column(world: WorldData, post_ids: np.ndarray, column: str) -> np.ndarray:
    """A core-data column of each candidate's post, read from the world (0 when unknown), so a
    hydrator does not depend on another hydrator's output."""
    rows = world.post_rows(post_ids)
    return np.where(rows >= 0, world.posts[column][np.maximum(rows, 0)], 0)


def _original_rows(world: WorldData, post_ids: np.ndarray, source_ids: np.ndarray) -> np.ndarray:
    """World rows of each candidate's original post: the retweeted post where `source_ids` is
    set, else the post itself (−1 when unknown). Only the retweets are looked up again."""
    rows = world.post_rows(post_ids).copy()  # [N]
    rt = source_ids != 0
    if rt.any():
        rows[rt] = world.post_rows(source_ids[rt])
    return rows


def _masked(values: np.ndarray, null: np.ndarray) -> np.ma.MaskedArray:
    return np.ma.array(values, mask=null)


@dataclasses.dataclass
class InNetworkHydrator(StageDefaults):
    fields = ("in_network",)

    def hydrate(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, np.ndarray]:
        authors = cands.get("author_id")
        own = authors == per_row(queries, cands.req, "user_id")
        return {"in_network": own | member(queries, "followed_ids", cands.req, authors)}


@dataclasses.dataclass
class CoreDataHydrator(StageDefaults):
    """Post core data: author, text, reply/retweet/quote fields, ancestor users, creation time."""

    world: WorldData
    fields = ("author_id", "text", "created_ms", "in_reply_to_post_id", "in_reply_to_user_id",
              "conversation_id", "source_post_id", "source_user_id", "quoted_post_id",
              "quoted_user_id", "ancestor_users", "core_hydrated")  # fmt: skip
    _COPIED = ("created_ms", "in_reply_to_post_id", "in_reply_to_user_id", "conversation_id",
               "source_post_id", "source_user_id", "quoted_post_id", "quoted_user_id")  # fmt: skip

    def hydrate(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        rows = self.world.post_rows(cands.get("post_id"))  # [N]
        known = rows >= 0
        safe = np.maximum(rows, 0)
        p = self.world.posts
        out: dict[str, object] = {  # a missing post keeps what it had
            f: np.where(known, p[f][safe], cands.get(f)) for f in self._COPIED
        }
        authors = cands.get("author_id")
        out["author_id"] = np.where(known & (authors == 0), p["author_id"][safe], authors)
        # the root's author, for candidates whose ancestors are (parent, root)
        anc = cands.get("ancestors")
        two = tuple_lengths(anc) == 2
        roots = np.zeros(len(anc), np.int64)
        roots[two] = np.fromiter(map(operator.itemgetter(1), anc[two]), np.int64, int(two.sum()))
        root_rows = self.world.post_rows(roots)
        root_users = np.where(root_rows >= 0, p["author_id"][np.maximum(root_rows, 0)], 0)
        text = self.world.texts(safe)  # [N] object
        text[~known] = ""
        out["text"] = text
        users = nonzero_tuples(out["in_reply_to_user_id"], root_users)  # [N] object
        out["ancestor_users"] = np.where(known, users, cands.get("ancestor_users"))
        out["core_hydrated"] = known
        return out


@dataclasses.dataclass
class MediaHydrator(StageDefaults):
    """has_media and the (min) video duration, of the original post for retweets."""

    world: WorldData
    fields = ("has_media", "video_duration_ms")

    def hydrate(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        post = cands.get("post_id")
        source = _world_column(self.world, post, "source_post_id")
        rows = _original_rows(self.world, post, source)  # [N]
        known = rows >= 0
        safe = np.maximum(rows, 0)
        video = self.world.posts["video_duration_ms"][safe]
        return {
            "has_media": _masked(self.world.has_media[safe].astype(bool), ~known),
            "video_duration_ms": _masked(video, ~(known & (video > 0))),
        }


@dataclasses.dataclass
class SubscriptionHydrator(StageDefaults):
    world: WorldData
    fields = ("subscription_author_id",)

    def hydrate(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        rows = self.world.post_rows(cands.get("post_id"))  # [N]
        only = (rows >= 0) & self.world.subscription_only[np.maximum(rows, 0)]
        return {"subscription_author_id": _masked(cands.get("author_id"), ~only)}


@dataclasses.dataclass
class AuthorHydrator(StageDefaults):
    """Author follower count and NSFW flag (upstream's Gizmoduck hydrator)."""

    world: WorldData
    fields = ("author_follower_count", "author_nsfw")

    def hydrate(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        rows = self.world.user_rows(cands.get("author_id"))  # [N]
        unknown, safe = rows < 0, np.maximum(rows, 0)
        followers, nsfw = (
            self.world.user_column("follower_count"),
            self.world.user_column("is_nsfw"),
        )
        return {
            "author_follower_count": _masked(followers[safe], unknown),
            "author_nsfw": _masked(nsfw[safe].astype(bool), unknown),
        }


@dataclasses.dataclass
class SocialContextHydrator(StageDefaults):
    """author_blocks_viewer, quoted_author_blocks_viewer (BlockedBy/Quote hydrators) and
    author_follows_viewer / is_mutual_follow_author (BidirectionalFollow hydrator)."""

    world: WorldData
    fields = ("author_blocks_viewer", "quoted_author_blocks_viewer", "author_follows_viewer",
              "is_mutual_follow_author")  # fmt: skip

    def hydrate(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        viewer = per_row(queries, cands.req, "user_id")  # [N]
        authors = cands.get("author_id")  # [N]
        quoted = _world_column(self.world, cands.get("post_id"), "quoted_user_id")  # as upstream
        now = per_row(queries, cands.req, "now_ms")  # edges made up to the request time
        blocks = self.world.has_edges(authors, viewer, "block", now)
        q_blocks = self.world.has_edges(quoted, viewer, "block", now)
        follows_me = self.world.has_edges(authors, viewer, "follow", now)
        mutual = follows_me & member(queries, "followed_ids", cands.req, authors)
        return {
            "author_blocks_viewer": blocks,
            "quoted_author_blocks_viewer": _masked(q_blocks, quoted == 0),
            "author_follows_viewer": follows_me,
            "is_mutual_follow_author": mutual,
        }


@dataclasses.dataclass
class EngagementCountsHydrator(StageDefaults):
    """fav/reply/repost/quote counts and views (impressions) of the original post, up to now."""

    world: WorldData
    fields = ("fav_count", "reply_count", "repost_count", "quote_count", "view_count")
    _ACTIONS = {
        "fav_count": A.SERVER_TWEET_FAV,
        "reply_count": A.SERVER_TWEET_REPLY,
        "repost_count": A.SERVER_TWEET_RETWEET,
        "quote_count": A.SERVER_TWEET_QUOTE,
    }

    def hydrate(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        rows = _original_rows(self.world, cands.get("post_id"), cands.get("source_post_id"))
        known = rows >= 0
        safe = np.maximum(rows, 0)
        now = per_row(queries, cands.req, "now_ms")
        out = {f: np.zeros(len(cands), np.int64) for f in self.fields}
        for t in np.unique(now).tolist():  # one set of counts per request time
            counts = self.world.activity.counts(t, {f: int(a) for f, a in self._ACTIONS.items()})
            at = now == t
            for f in self._ACTIONS:
                out[f][at] = np.where(known, counts[f][safe], 0)[at]
            out["view_count"][at] = np.where(known, counts["views"][safe], 0)[at]
        return out


@dataclasses.dataclass
class VisibilityHydrator(StageDefaults):
    """Post-selection visibility (upstream's VF hydrator): safety labels and deletion of the post
    itself -> `visibility_reason`; of its quoted, retweeted or ancestor posts ->
    `drop_ancillary`. NSFW drops only out-of-network posts (the stricter recommendations level)."""

    world: WorldData
    fields = ("labels", "deleted", "visibility_reason", "drop_ancillary")
    DROP_LABELS = ("spam", "violence", "gore")

    def _verdicts(
        self, post_ids: np.ndarray, in_network: np.ndarray, now_ms: np.ndarray
    ) -> tuple[list[tuple[str, ...]], np.ndarray, list[str | None]]:
        """Labels, deleted and the drop reason (None: visible) of each post."""
        rows = self.world.post_rows(post_ids)
        labels = [self.world.labels[r] if r >= 0 else () for r in rows.tolist()]
        deleted = self.world.deleted_before(post_ids, now_ms)
        reasons: list[str | None] = []
        for lab, gone, inn in zip(labels, deleted.tolist(), in_network.tolist(), strict=True):
            reason = None
            if gone:
                reason = "deleted"
            elif lab and any(x in self.DROP_LABELS for x in lab):
                reason = next(x for x in lab if x in self.DROP_LABELS)
            elif lab and "nsfw" in lab and not inn:
                reason = "nsfw"
            reasons.append(reason)
        return labels, deleted, reasons

    def hydrate(self, queries: Sequence[FeedQuery], cands: Cands) -> dict[str, object]:
        now = per_row(queries, cands.req, "now_ms")
        inn = cands.is_true("in_network")
        labels, deleted, reasons = self._verdicts(cands.get("post_id"), inn, now)
        related = [(i, x) for i, (q, s, anc) in enumerate(zip(
            cands.get("quoted_post_id").tolist(), cands.get("source_post_id").tolist(),
            cands.get("ancestors"), strict=True)) for x in (q, s, *anc) if x]  # fmt: skip
        ancillary = np.zeros(len(cands), bool)
        if related:
            owner = np.array([i for i, _ in related], np.int64)
            ids = np.array([x for _, x in related], np.int64)
            _, _, why = self._verdicts(ids, inn[owner], now[owner])
            ancillary[owner[[w is not None for w in why]]] = True
        return {
            "labels": object_array(labels),
            "deleted": deleted,
            "visibility_reason": reasons,
            "drop_ancillary": ancillary,
        }
