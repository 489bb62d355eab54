"""Candidate hydrators (homemixer_spec.md §5 and the post-selection VF hydrator, §8).

Each hydrator owns a set of fields (`fields`) and returns the candidates in the same order with
only those filled; the runner merges them. Data comes from the world's tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from phoenix.actions import ActionName as A
from pipeline.candidates import PostCandidate
from pipeline.framework import StageDefaults
from pipeline.query import FeedQuery
from world.data import WorldData

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

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> dict[str, list]:
        followed = set(query.followed_ids)
        followed.add(query.user_id)
        return {"in_network": [c.author_id in followed for c in cands]}


@dataclasses.dataclass
class CoreDataHydrator(StageDefaults):
    """Post core data: author, text, reply/retweet/quote fields, ancestor users, creation time."""

    world: WorldData
    fields = ("author_id", "text", "created_ms", "in_reply_to_post_id", "in_reply_to_user_id",
              "conversation_id", "source_post_id", "source_user_id", "quoted_post_id",
              "quoted_user_id", "ancestor_users", "core_hydrated")  # fmt: skip
    _COPIED = ("created_ms", "in_reply_to_post_id", "in_reply_to_user_id", "conversation_id",
               "source_post_id", "source_user_id", "quoted_post_id", "quoted_user_id")  # fmt: skip

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> dict[str, list]:
        rows = self.world.post_rows(np.array([c.post_id for c in cands], np.int64))  # [N]
        safe = np.maximum(rows, 0)
        p = self.world.posts
        cols = {f: p[f][safe].tolist() for f in self._COPIED}
        authors = p["author_id"][safe].tolist()
        # the root's author, for candidates whose ancestors are (parent, root)
        roots = np.array([c.ancestors[1] if len(c.ancestors) == 2 else 0 for c in cands], np.int64)
        root_rows = self.world.post_rows(roots)
        root_users = np.where(root_rows >= 0, p["author_id"][np.maximum(root_rows, 0)], 0).tolist()
        known = (rows >= 0).tolist()
        text = self.world.text
        out = {
            "author_id": [c.author_id or a for c, a in zip(cands, authors, strict=True)],
            "text": [text[r] or "" if k else "" for r, k in zip(rows.tolist(), known, strict=True)],
            "ancestor_users": [tuple(x for x in (p, r) if x) for p, r in
                               zip(cols["in_reply_to_user_id"], root_users, strict=True)],
            "core_hydrated": known,
            **cols,
        }  # fmt: skip
        missing = [i for i, k in enumerate(known) if not k]
        for f in ("author_id", *self._COPIED, "ancestor_users"):  # missing post: kept as is
            for i in missing:
                out[f][i] = getattr(cands[i], f)
        return out


@dataclasses.dataclass
class MediaHydrator(StageDefaults):
    """has_media and the (min) video duration, of the original post for retweets."""

    world: WorldData
    fields = ("has_media", "video_duration_ms")

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> dict[str, list]:
        source = _world_column(self.world, cands, "source_post_id")
        ids = np.where(source != 0, source, [c.post_id for c in cands])
        rows = self.world.post_rows(ids.astype(np.int64))  # [N]
        known = (rows >= 0).tolist()
        media = self.world.has_media[np.maximum(rows, 0)].tolist()
        video = self.world.posts["video_duration_ms"][np.maximum(rows, 0)].tolist()
        return {
            "has_media": [bool(m) if k else None for k, m in zip(known, media, strict=True)],
            "video_duration_ms": [v if k and v > 0 else None
                                  for k, v in zip(known, video, strict=True)],
        }  # fmt: skip


@dataclasses.dataclass
class SubscriptionHydrator(StageDefaults):
    world: WorldData
    fields = ("subscription_author_id",)

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> dict[str, list]:
        rows = self.world.post_rows(np.array([c.post_id for c in cands], np.int64))  # [N]
        only = ((rows >= 0) & self.world.subscription_only[np.maximum(rows, 0)]).tolist()
        return {"subscription_author_id": [c.author_id if o else None
                                           for c, o in zip(cands, only, strict=True)]}  # fmt: skip


@dataclasses.dataclass
class AuthorHydrator(StageDefaults):
    """Author follower count and NSFW flag (upstream's Gizmoduck hydrator)."""

    world: WorldData
    fields = ("author_follower_count", "author_nsfw")

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> dict[str, list]:
        rows = self.world.user_rows(np.array([c.author_id for c in cands], np.int64))  # [N]
        followers, nsfw = self.world.users["follower_count"], self.world.users["is_nsfw"]
        rows = rows.tolist()
        return {
            "author_follower_count": [followers[i] if i >= 0 else None for i in rows],
            "author_nsfw": [bool(nsfw[i]) if i >= 0 else None for i in rows],
        }


@dataclasses.dataclass
class SocialContextHydrator(StageDefaults):
    """author_blocks_viewer, quoted_author_blocks_viewer (BlockedBy/Quote hydrators) and
    author_follows_viewer / is_mutual_follow_author (BidirectionalFollow hydrator)."""

    world: WorldData
    fields = ("author_blocks_viewer", "quoted_author_blocks_viewer", "author_follows_viewer",
              "is_mutual_follow_author")  # fmt: skip

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> dict[str, list]:
        v = query.user_id
        authors = np.array([c.author_id for c in cands], np.int64)  # [N]
        quoted = _world_column(self.world, cands, "quoted_user_id")  # as upstream's QuoteHydrator
        now = query.now_ms
        blocks = self.world.has_edge(authors, v, "block", now).tolist()
        q_blocks = self.world.has_edge(quoted, v, "block", now).tolist()
        follows_me = self.world.has_edge(authors, v, "follow", now)
        mutual = (follows_me & np.isin(authors, np.asarray(query.followed_ids, np.int64))).tolist()
        return {
            "author_blocks_viewer": blocks,
            "quoted_author_blocks_viewer": [qb if q else None for qb, q in
                                            zip(q_blocks, quoted.tolist(), strict=True)],
            "author_follows_viewer": follows_me.tolist(),
            "is_mutual_follow_author": mutual,
        }  # fmt: skip


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

    def hydrate(self, query: FeedQuery, cands: Sequence[PostCandidate]) -> dict[str, list]:
        counts = self.world.activity.counts(query.now_ms, {f: int(a) for f, a in
                                                           self._ACTIONS.items()})  # fmt: skip
        rows = self.world.post_rows(np.array([c.original_post_id for c in cands], np.int64))
        known = rows >= 0
        safe = np.maximum(rows, 0)
        out = {f: np.where(known, counts[f][safe], 0).tolist() for f in self._ACTIONS}
        out["view_count"] = np.where(known, counts["views"][safe], 0).tolist()
        return out


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
                c.evolve(
                    labels=labels,
                    deleted=deleted,
                    visibility_reason=reason,
                    drop_ancillary=ancillary,
                )
            )
        return out
