"""The action taxonomy: proto `ActionName` values, defined once.

Output i of a Phoenix model is `ActionName` value i (phoenix_spec.md §1.6, §4.2). Everything
that needs an action index (history multi-hot slots, head names, scoring weights, table columns)
derives it from `ActionName`; there are no hand-written index constants elsewhere.
"""

from __future__ import annotations

import enum


class ActionName(enum.IntEnum):
    """Proto `ActionName` enum values 0..63 (phoenix_spec.md §4.2)."""

    INVALID_NAME = 0
    SERVER_TWEET_FAV = 1
    SERVER_TWEET_UNFAV = 2
    SERVER_TWEET_CREATE = 3
    SERVER_TWEET_REPLY = 4
    SERVER_TWEET_QUOTE = 5
    SERVER_TWEET_RETWEET = 6
    SERVER_TWEET_UNREPLY = 7
    SERVER_TWEET_UNQUOTE = 8
    SERVER_TWEET_UNRETWEET = 9
    SERVER_TWEET_REPORT = 10
    CLIENT_TWEET_RECAP_DWELLED = 11
    CLIENT_TWEET_RECAP_NOT_DWELLED = 12
    CLIENT_TWEET_VIDEO_QUALITY_VIEW = 13
    CLIENT_TWEET_PHOTO_EXPAND = 14
    CLIENT_TWEET_CLICK_MENTION_SCREEN_NAME = 15
    CLIENT_TWEET_REPORT = 16
    CLIENT_TWEET_NOT_INTERESTED_IN = 17
    CLIENT_TWEET_UNDO_NOT_INTERESTED_IN = 18
    CLIENT_TWEET_SEE_FEWER = 19
    CLIENT_TWEET_UNDO_SEE_FEWER = 20
    CLIENT_TWEET_FOLLOW_AUTHOR = 21
    CLIENT_TWEET_UNFOLLOW_AUTHOR = 22
    CLIENT_TWEET_BLOCK_AUTHOR = 23
    CLIENT_TWEET_UNBLOCK_AUTHOR = 24
    CLIENT_TWEET_MUTE_AUTHOR = 25
    CLIENT_TWEET_UNMUTE_AUTHOR = 26
    CLIENT_TWEET_MUTE_CONVERSATION = 27
    CLIENT_TWEET_UNMUTE_CONVERSATION = 28
    CLIENT_TWEET_CLICK = 29
    CLIENT_TWEET_CLICK_PROFILE = 30
    CLIENT_TWEET_CLICK_SHARE = 31
    CLIENT_TWEET_SHARE_VIA_COPY_LINK = 32
    CLIENT_TWEET_CLICK_SEND_VIA_DIRECT_MESSAGE = 33
    CLIENT_TWEET_UNBOOKMARK = 34
    CLIENT_TWEET_CLICK_HASHTAG = 35
    CLIENT_TWEET_BOOKMARK = 36
    CLIENT_TWEET_SHARE = 37
    CLIENT_QUOTED_TWEET_CLICK = 38
    CLIENT_TWEET_OPEN_LINK = 39
    CLIENT_TWEET_TAKE_SCREENSHOT = 40
    CLIENT_TWEET_TRANSLATE_CLICK = 41
    CLIENT_TWEET_NOT_RELEVANT = 42
    CLIENT_TWEET_UNDO_NOT_RELEVANT = 43
    CLIENT_CARD_CLICK = 44
    CLIENT_TWEET_SHOW_MORE_EXPAND = 45
    CLIENT_TWEET_CLICK_GROK_ANALYZE = 46
    CLIENT_TWEET_VIDEO_OPEN = 47
    CLIENT_QUOTED_TWEET_VIDEO_QUALITY_VIEW = 48
    CLIENT_QUOTED_TWEET_PHOTO_EXPAND = 49
    CLIENT_NOTIFICATION_OPEN = 50
    CLIENT_NOTIFICATION_CLICK = 51
    CLIENT_NOTIFICATION_SEE_LESS_OFTEN = 52
    CLIENT_NOTIFICATION_DISMISS = 53
    CLIENT_APP_ENTER = 54
    CLIENT_APP_EXIT = 55
    CLIENT_NOTIFICATION_IMPRESSION = 56
    CLIENT_PROFILE_CLICK = 57
    CLIENT_NOTIFICATION_SENT = 58
    SERVER_TWEET_POST_UNEXPLORED = 59
    CLIENT_TWEET_EXTERNAL_LINK_LONG_DWELLED = 60
    SERVER_PROFILE_FOLLOW = 61
    SERVER_PROFILE_UNFOLLOW = 62
    SERVER_PROFILE_BLOCK = 63


MAX_HEADS = 64  # xfeed checkpoints may have up to 64 outputs (ActionName 0..63).


class ContinuousActionName(enum.IntEnum):
    """Slots of `history_continuous_actions` [B, S, 8] (phoenix_spec.md §4.2)."""

    INVALID = 0
    DWELL_TIME = 1
    CLICK_DWELL_TIME = 2
    ACTIVE_SECS_5M_RESIDUAL_NORM = 3
    BRIDGE_PROBABILITY = 4


def head_names(num_actions: int) -> tuple[str, ...]:
    """Head names of a model with `num_actions` outputs: output i is `ActionName(i)`."""
    if not 1 <= num_actions <= MAX_HEADS:
        raise ValueError(f"num_actions must be in [1, {MAX_HEADS}], got {num_actions}")
    return tuple(ActionName(i).name for i in range(num_actions))


def short_name(action: ActionName | str) -> str:
    """A compact display name: `SERVER_TWEET_FAV` -> `fav`,
    `CLIENT_TWEET_RECAP_DWELLED` -> `recap_dwelled`."""
    name = action.name if isinstance(action, ActionName) else action
    for prefix in ("SERVER_TWEET_", "CLIENT_TWEET_", "CLIENT_", "SERVER_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.lower()


# One name per action head, used everywhere a head is shown or keyed (rank, explain, eval, weights
# files): the For You scorer's names for the heads it weighs (home-mixer's weights), the short
# proto name (`short_name`) for the others. The proto name goes beside it where useful.
HEAD_NAMES: dict[ActionName, str] = {
    ActionName.SERVER_TWEET_FAV: "favorite",
    ActionName.SERVER_TWEET_REPLY: "reply",
    ActionName.SERVER_TWEET_RETWEET: "retweet",
    ActionName.CLIENT_TWEET_PHOTO_EXPAND: "photo_expand",
    ActionName.CLIENT_TWEET_VIDEO_OPEN: "video_open",
    ActionName.CLIENT_TWEET_CLICK: "click",
    ActionName.CLIENT_TWEET_OPEN_LINK: "open_link",
    ActionName.CLIENT_TWEET_CLICK_PROFILE: "profile_click",
    ActionName.CLIENT_TWEET_VIDEO_QUALITY_VIEW: "vqv",
    ActionName.CLIENT_TWEET_SHARE: "share",
    ActionName.CLIENT_TWEET_CLICK_SEND_VIA_DIRECT_MESSAGE: "share_via_dm",
    ActionName.CLIENT_TWEET_SHARE_VIA_COPY_LINK: "share_via_copy_link",
    ActionName.CLIENT_TWEET_RECAP_DWELLED: "dwell",
    ActionName.SERVER_TWEET_QUOTE: "quote",
    ActionName.CLIENT_QUOTED_TWEET_CLICK: "quoted_click",
    ActionName.CLIENT_QUOTED_TWEET_VIDEO_QUALITY_VIEW: "quoted_vqv",
    ActionName.CLIENT_TWEET_FOLLOW_AUTHOR: "follow_author",
    ActionName.SERVER_TWEET_POST_UNEXPLORED: "post_unexplored",
    ActionName.CLIENT_TWEET_NOT_INTERESTED_IN: "not_interested",
    ActionName.CLIENT_TWEET_BLOCK_AUTHOR: "block_author",
    ActionName.CLIENT_TWEET_MUTE_AUTHOR: "mute_author",
    ActionName.CLIENT_TWEET_REPORT: "report",
    ActionName.CLIENT_TWEET_RECAP_NOT_DWELLED: "not_dwelled",
}


def head_name(action: ActionName | str) -> str:
    """The one display name of a head: `SERVER_TWEET_FAV` -> `favorite`."""
    a = action if isinstance(action, ActionName) else ActionName[action]
    return HEAD_NAMES.get(a) or short_name(a)


# The run_pipeline.py weighted score for the upstream mini flow (phoenix_spec.md §3.2 step 9),
# keyed by action: 1.0·P[fav] + 0.5·P[reply] + 0.3·P[retweet] + 0.2·P[recap dwelled].
UPSTREAM_DEMO_WEIGHTS: dict[ActionName, float] = {
    ActionName.SERVER_TWEET_FAV: 1.0,
    ActionName.SERVER_TWEET_REPLY: 0.5,
    ActionName.SERVER_TWEET_RETWEET: 0.3,
    ActionName.CLIENT_TWEET_RECAP_DWELLED: 0.2,
}

# Columns (and their headers) of the upstream run_pipeline table, in that order.
UPSTREAM_DEMO_COLUMNS: tuple[tuple[ActionName, str], ...] = (
    (ActionName.SERVER_TWEET_FAV, "Fav"),
    (ActionName.SERVER_TWEET_REPLY, "Reply"),
    (ActionName.SERVER_TWEET_RETWEET, "RT"),
    (ActionName.CLIENT_TWEET_RECAP_DWELLED, "Dwell"),
    (ActionName.CLIENT_TWEET_VIDEO_QUALITY_VIEW, "VQV"),
)
