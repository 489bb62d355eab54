"""Candidate hydrators (homemixer_spec.md §5 and the post-selection VF hydrator, §8).

Each hydrator owns a set of fields (`fields`) and returns the candidates in the same order with
only those filled; the runner merges them. Data comes from the world's tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pyarrow.compute as pc

from phoenix.actions import ActionName as A
from pipeline.candidates import PostCandidate
from pipeline.framework import StageDefaults
from pipeline.query import FeedQuery
from pipeline.world import WorldData, read_table

SNOWFLAKE_EPOCH_MS = 1288834974657


def snowflake_ms(post_id: int) -> int | None:
    """Creation time encoded in a snowflake id; None when the id cannot be one."""
    if post_id <= 0:
        return None
    return (post_id >> 22) + SNOWFLAKE_EPOCH_MS


def _world_column(world: WorldData, cands: Sequence[PostCandidate], column: str) -> np.ndarray:
    """A core-data column of each candidate's post, read from the world (0 when unknown), so a
    hydrator does not depend on another hydrator's output."""
    rows = world.post_rows(np.array([c.post_id for c in cands], np.int64))
    return np.where(rows >= 0, world.posts[column][np.maximum(rows, 0)], 0)


@dataclasses.dataclass
class InNetworkHydrator(StageDefaults):
    fields = ("in_network",)

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        followed = set(query.followed_ids)
        return [dataclasses.replace(c, in_network=c.author_id == query.user_id or
                                    c.author_id in followed) for c in cands]  # fmt: skip


@dataclasses.dataclass
class CoreDataHydrator(StageDefaults):
    """Post core data: author, text, reply/retweet/quote fields, ancestor users, creation time."""

    world: WorldData
    fields = ("author_id", "text", "created_ms", "in_reply_to_post_id", "in_reply_to_user_id",
              "conversation_id", "source_post_id", "source_user_id", "quoted_post_id",
              "quoted_user_id", "ancestor_users", "core_hydrated")  # fmt: skip

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        rows = self.world.post_rows(np.array([c.post_id for c in cands], np.int64))
        p = self.world.posts
        out = []
        for c, row in zip(cands, rows.tolist(), strict=True):
            if row < 0:  # missing post: fields cleared, author kept
                out.append(dataclasses.replace(c, text="", core_hydrated=False))
                continue
            parent_user = int(p["in_reply_to_user_id"][row])
            root_user = 0
            if len(c.ancestors) == 2:
                root = self.world.post_rows(np.array([c.ancestors[1]]))[0]
                root_user = int(p["author_id"][root]) if root >= 0 else 0
            out.append(dataclasses.replace(
                c, author_id=c.author_id or int(p["author_id"][row]),
                text=self.world.text[row] or "", created_ms=int(p["created_ms"][row]),
                in_reply_to_post_id=int(p["in_reply_to_post_id"][row]),
                in_reply_to_user_id=parent_user,
                conversation_id=int(p["conversation_id"][row]),
                source_post_id=int(p["source_post_id"][row]),
                source_user_id=int(p["source_user_id"][row]),
                quoted_post_id=int(p["quoted_post_id"][row]),
                quoted_user_id=int(p["quoted_user_id"][row]),
                ancestor_users=tuple(x for x in (parent_user, root_user) if x),
                core_hydrated=True,
            ))  # fmt: skip
        return out


@dataclasses.dataclass
class MediaHydrator(StageDefaults):
    """has_media and the (min) video duration, of the original post for retweets."""

    world: WorldData
    fields = ("has_media", "video_duration_ms")

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        source = _world_column(self.world, cands, "source_post_id")
        ids = np.where(source != 0, source, [c.post_id for c in cands])
        rows = self.world.post_rows(ids.astype(np.int64))
        video = self.world.posts["video_duration_ms"]
        return [dataclasses.replace(
            c, has_media=bool(self.world.has_media[r]) if r >= 0 else None,
            video_duration_ms=int(video[r]) if r >= 0 and video[r] > 0 else None,
        ) for c, r in zip(cands, rows.tolist(), strict=True)]  # fmt: skip


@dataclasses.dataclass
class SubscriptionHydrator(StageDefaults):
    world: WorldData
    fields = ("subscription_author_id",)

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        rows = self.world.post_rows(np.array([c.post_id for c in cands], np.int64))
        return [dataclasses.replace(
            c, subscription_author_id=c.author_id if r >= 0 and self.world.subscription_only[r]
            else None) for c, r in zip(cands, rows.tolist(), strict=True)]  # fmt: skip


@dataclasses.dataclass
class AuthorHydrator(StageDefaults):
    """Author follower count and NSFW flag (upstream's Gizmoduck hydrator)."""

    world: WorldData
    fields = ("author_follower_count", "author_nsfw")

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        ids = self.world.user_ids
        out = []
        for c in cands:
            i = int(np.searchsorted(ids, c.author_id))
            known = i < len(ids) and ids[i] == c.author_id
            out.append(dataclasses.replace(
                c, author_follower_count=self.world.users["follower_count"][i] if known else None,
                author_nsfw=bool(self.world.users["is_nsfw"][i]) if known else None,
            ))  # fmt: skip
        return out


@dataclasses.dataclass
class SocialContextHydrator(StageDefaults):
    """author_blocks_viewer, quoted_author_blocks_viewer (BlockedBy/Quote hydrators) and
    author_follows_viewer / is_mutual_follow_author (BidirectionalFollow hydrator)."""

    world: WorldData
    fields = ("author_blocks_viewer", "quoted_author_blocks_viewer", "author_follows_viewer",
              "is_mutual_follow_author")  # fmt: skip

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        v = query.user_id
        authors = np.array([c.author_id for c in cands], np.int64)
        quoted = _world_column(self.world, cands, "quoted_user_id")  # as upstream's QuoteHydrator
        blocks = self.world.has_edge(authors, v, "block")
        q_blocks = self.world.has_edge(quoted, v, "block")
        follows_me = self.world.has_edge(authors, v, "follow")
        followed = set(query.followed_ids)
        return [dataclasses.replace(
            c, author_blocks_viewer=bool(b),
            quoted_author_blocks_viewer=bool(qb) if q else None,
            author_follows_viewer=bool(f),
            is_mutual_follow_author=bool(f) and c.author_id in followed,
        ) for c, b, qb, f, q in zip(cands, blocks, q_blocks, follows_me, quoted,
                                    strict=True)]  # fmt: skip


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

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        ids = sorted({c.original_post_id for c in cands})
        if not ids:
            return list(cands)
        e = read_table(self.world.path, "engagements", ["post_id", "action", "event_ms"],
                       filters=[("post_id", "in", ids)])  # fmt: skip
        e = e.filter(pc.less_equal(e.column("event_ms"), query.now_ms))
        post, action = e.column("post_id").to_numpy(), e.column("action").to_numpy()
        imp = read_table(self.world.path, "impressions", ["post_id", "kind", "event_ms"],
                         filters=[("post_id", "in", ids)])  # fmt: skip
        imp = imp.filter(pc.less_equal(imp.column("event_ms"), query.now_ms))
        views = dict(zip(*np.unique(imp.column("post_id").to_numpy(), return_counts=True),
                         strict=True))  # fmt: skip
        counts = {f: dict(zip(*np.unique(post[action == a], return_counts=True), strict=True))
                  for f, a in self._ACTIONS.items()}  # fmt: skip
        return [dataclasses.replace(
            c, **{f: int(counts[f].get(c.original_post_id, 0)) for f in self._ACTIONS},
            view_count=int(views.get(c.original_post_id, 0)),
        ) for c in cands]  # fmt: skip


@dataclasses.dataclass
class VisibilityHydrator(StageDefaults):
    """Post-selection visibility (upstream's VF hydrator): safety labels and deletion of the post
    itself -> `visibility_reason`; of its quoted, retweeted or ancestor posts ->
    `drop_ancillary`. NSFW drops only out-of-network posts (the stricter recommendations level)."""

    world: WorldData
    fields = ("labels", "deleted", "visibility_reason", "drop_ancillary")
    DROP_LABELS = ("spam", "violence", "gore")

    def _verdict(
        self, post_id: int, in_network: bool | None, now_ms: int
    ) -> tuple[tuple[str, ...], bool, str | None]:
        row = self.world.post_rows(np.array([post_id]))[0]
        labels = self.world.labels[row] if row >= 0 else ()
        deleted = self.world.delete_ms.get(post_id, np.inf) <= now_ms
        reason = None
        if deleted:
            reason = "deleted"
        elif any(lbl in self.DROP_LABELS for lbl in labels):
            reason = next(lbl for lbl in labels if lbl in self.DROP_LABELS)
        elif "nsfw" in labels and in_network is not True:
            reason = "nsfw"
        return labels, deleted, reason

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> list[PostCandidate]:
        out = []
        for c in cands:
            labels, deleted, reason = self._verdict(c.post_id, c.in_network, query.now_ms)
            related = [c.quoted_post_id, c.source_post_id, *c.ancestors]
            ancillary = any(self._verdict(x, c.in_network, query.now_ms)[2] for x in related if x)
            out.append(
                dataclasses.replace(
                    c,
                    labels=labels,
                    deleted=deleted,
                    visibility_reason=reason,
                    drop_ancillary=ancillary,
                )
            )
        return out
