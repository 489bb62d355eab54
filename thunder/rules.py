"""Thunder's rules as small vectorised functions, one rule each (homemixer_spec.md §10).

Every function takes and returns numpy arrays; none loops over events in Python.
"""

from __future__ import annotations

import enum

import numpy as np


class Kind(enum.IntEnum):
    """Per-author posting lists."""

    ORIGINAL = 0  # not a reply, not a retweet (quotes are originals)
    SECONDARY = 1  # replies and retweets
    VIDEO = 2  # video-eligible posts


class ReplyClass(enum.IntEnum):
    """How a secondary entry passes the in-network reply rule, decided once at build time."""

    FAIL = 0  # a reply whose parent is not in the store, or not an eligible parent
    PASS = 1  # an original, or a reply to an original post in the store
    IF_FOLLOWS = 2  # a reply to a reply to the root: passes iff in_reply_to_user is followed
    RETWEET = 3  # retweets pass (unless of the viewer's own post)


def applied(event_ms: np.ndarray, now_ms: int) -> np.ndarray:
    """Events that happened by the request time: event_ms <= now."""
    return event_ms <= now_ms


def within_retention(created_ms: np.ndarray, now_ms: int, retention_ms: int) -> np.ndarray:
    """Posts kept on insert: created before now and no older than the retention window."""
    return (created_ms < now_ms) & (created_ms >= now_ms - retention_ms)


def first_occurrence(ids: np.ndarray) -> np.ndarray:
    """Mask of each id's first occurrence (duplicate inserts are ignored)."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    keep = np.zeros(len(ids), bool)
    keep[order[np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]] if len(ids) else order] = True
    return keep


def is_retweet(source_post_id: np.ndarray) -> np.ndarray:
    return source_post_id != 0


def is_reply(in_reply_to_post_id: np.ndarray, in_reply_to_user_id: np.ndarray) -> np.ndarray:
    """v2 rule: a reply if any in_reply_to field is set."""
    return (in_reply_to_post_id != 0) | (in_reply_to_user_id != 0)


def is_original(reply: np.ndarray, retweet: np.ndarray) -> np.ndarray:
    return ~reply & ~retweet


def has_video(video_duration_ms: np.ndarray, min_video_ms: int) -> np.ndarray:
    return video_duration_ms >= min_video_ms


def video_eligible(
    original: np.ndarray,
    reply: np.ndarray,
    retweet: np.ndarray,
    video: np.ndarray,  # the post's own has_video
    source_in_store: np.ndarray,
    source_video: np.ndarray,  # has_video of the source post (False when absent)
) -> np.ndarray:
    """An original with video, or a retweet whose source is in the store, that is not a reply
    and has video (its own or its source's). Replies never."""
    return (original & video) | (retweet & ~reply & source_in_store & (video | source_video))


def reply_class(
    reply: np.ndarray,
    retweet: np.ndarray,
    parent_in_store: np.ndarray,
    parent_original: np.ndarray,
    parent_reply_to_post: np.ndarray,  # the parent's in_reply_to_post_id (0 when absent)
    conversation_id: np.ndarray,
) -> np.ndarray:
    """ReplyClass of every post (int8): originals PASS, retweets RETWEET, replies by the rule."""
    out = np.full(len(reply), ReplyClass.FAIL, np.int8)
    out[~reply & ~retweet] = ReplyClass.PASS
    out[retweet & ~reply] = ReplyClass.RETWEET
    ok = reply & parent_in_store
    out[ok & parent_original] = ReplyClass.PASS
    second_level = ok & ~parent_original & (parent_reply_to_post == conversation_id)
    out[second_level & (conversation_id != 0)] = ReplyClass.IF_FOLLOWS
    return out


def newest_first(author_id: np.ndarray, created_ms: np.ndarray, post_id: np.ndarray) -> np.ndarray:
    """Order grouping by author, newest first within an author (ties: larger post id first)."""
    return np.lexsort((-post_id, -created_ms, author_id))


def rank_within_groups(sorted_keys: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal keys (keys already grouped)."""
    n = len(sorted_keys)
    if n == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.arange(n) - run_start


def cap_per_author(sorted_authors: np.ndarray, cap: int) -> np.ndarray:
    """Keep the newest `cap` entries of each author (input grouped, newest first)."""
    return rank_within_groups(sorted_authors) < cap
