"""Each pre-scoring and post-selection filter rule (homemixer_spec.md §6, §8)."""

from __future__ import annotations

import dataclasses

import pytest

from filters import (
    AgeFilter,
    AncillaryVisibilityFilter,
    AuthorSocialgraphFilter,
    CoreDataHydrationFilter,
    DedupConversationFilter,
    DropDuplicatesFilter,
    IneligibleSubscriptionFilter,
    MutedKeywordFilter,
    OONRetweetReplyFilter,
    PreviouslySeenPostsFilter,
    PreviouslyServedPostsFilter,
    RetweetDeduplicationFilter,
    SelfPostFilter,
    VideoFilter,
    VisibilityFilter,
)
from filters.muted_keywords import matches
from pipeline.candidates import PostCandidate
from pipeline.columns import Cands
from pipeline.params import FeedParams
from pipeline.query import FeedQuery, Resources

NOW = 1_784_592_000_000
EPOCH = 1288834974657


def pid(age_h: float, seq: int = 0) -> int:
    return ((NOW - int(age_h * 3_600_000) - EPOCH) << 22) | seq


def cand(post_id: int, author: int = 5, **kw) -> PostCandidate:
    return PostCandidate(post_id=post_id, author_id=author, **kw)


def query(**kw) -> FeedQuery:
    return FeedQuery(user_id=1, now_ms=NOW, resources=Resources("w", "c"), **kw)


def run_filter(f, q, cands: list[PostCandidate]):
    """A filter over one request's candidate objects: (kept, [(removed, reason)])."""
    res = f.filter([q], Cands.from_candidates(cands))
    return ([cands[i] for i in res.kept],
            [(cands[i], why) for i, why in zip(res.removed, res.reasons, strict=True)])  # fmt: skip


def kept(f, cands, q=None) -> list[int]:
    return [c.post_id for c in run_filter(f, q or query(), cands)[0]]


def test_drop_duplicates_keeps_the_first():
    res_kept, removed = run_filter(
        DropDuplicatesFilter(),
        query(),
        [cand(1, source="thunder"), cand(2), cand(1, source="phoenix_retrieval")],
    )
    assert [c.source for c in res_kept] == ["thunder", ""]
    assert removed[0][1] == "duplicate post id"


def test_core_data_removes_author_zero():
    assert kept(CoreDataHydrationFilter(), [cand(1, 0), cand(2, 3)]) == [2]


def test_age_uses_snowflake_time_and_removes_uncomputable():
    f = AgeFilter()
    assert kept(f, [cand(pid(47.9)), cand(pid(48.1)), cand(-5)]) == [pid(47.9)]


def test_self_post_filter():
    assert kept(SelfPostFilter(), [cand(1, 1), cand(2, 9)]) == [2]


def test_oon_retweets_replies_and_ancestorless_replies_go():
    cands = [
        cand(1, in_network=False, source_post_id=7),
        cand(2, in_network=False, in_reply_to_post_id=8, ancestors=(8,)),
        cand(3, in_network=True, in_reply_to_post_id=8),  # reply without ancestors
        cand(4, in_network=True, in_reply_to_post_id=8, ancestors=(8,)),
        cand(5, in_network=False),
        cand(6, in_network=True, source_post_id=7),
    ]
    assert kept(OONRetweetReplyFilter(), cands) == [4, 5, 6]


def test_retweet_dedup_original_and_retweets_collapse():
    cands = [cand(10, source_post_id=1), cand(1), cand(11, source_post_id=1), cand(2)]
    assert kept(RetweetDeduplicationFilter(), cands) == [10, 2]


def test_ineligible_subscription():
    q = query(subscribed_ids=(5,))
    cands = [cand(1, 5, subscription_author_id=5), cand(2, 6, subscription_author_id=6), cand(3)]
    assert kept(IneligibleSubscriptionFilter(), cands, q) == [1, 3]


@pytest.mark.parametrize("field", ["post_id", "source_post_id", "in_reply_to_post_id"])
def test_previously_seen_and_served_check_every_related_id(field):
    c = cand(100, **({field: 50} if field != "post_id" else {}))
    target = 100 if field == "post_id" else 50
    assert kept(PreviouslySeenPostsFilter(), [c], query(seen_ids=(target,))) == []
    assert kept(PreviouslyServedPostsFilter(), [c], query(served_ids=(target,))) == []
    assert kept(PreviouslySeenPostsFilter(), [c], query(seen_ids=(999,))) == [100]


@pytest.mark.parametrize(
    ("keyword", "text", "hit"),
    [
        ("café", "Best CAFE in town", True),  # accent-folded, case-insensitive
        ("cafe", "un café, s'il vous plaît", True),
        ("crypto scam", "beware: Crypto-Scam ahead!", True),  # punctuation ignored, contiguous
        ("crypto scam", "crypto is great, scam later", False),  # not contiguous
        ("launch", "#launch day", True),  # plain keyword matches hashtags
        ("launch", "@launch said hi", True),
        ("#launch", "LAUNCH day", False),  # hashtag keyword matches only hashtags
        ("#launch", "big #LAUNCH today", True),
        ("spoilers", "no spoiler here", False),  # whole tokens only
    ],
)
def test_muted_keyword_matching(keyword, text, hit):
    assert matches(keyword, text) is hit
    # the filter (substring pre-check, then the token match) agrees, among other texts
    others = [cand(1, text="nothing to see"), cand(3, text="concatenated cafeteria launches")]
    want = [1, 3] if hit else [1, 2, 3]
    got = kept(MutedKeywordFilter(), [others[0], cand(2, text=text), others[1]],
               query(muted_keywords=(keyword,)))  # fmt: skip
    assert got == want


def test_muted_keyword_filter_is_off_without_keywords_and_checks_own_text():
    f = MutedKeywordFilter()
    assert not f.enable(query())
    q = query(muted_keywords=("giveaway",))
    assert kept(f, [cand(1, text="A GIVEAWAY!"), cand(2, text="nothing")], q) == [2]


def test_author_socialgraph_rules():
    q = query(muted_ids=(7,), blocked_ids=(8,))
    cands = [
        cand(1, 7), cand(2, 8), cand(3, 9, author_blocks_viewer=True),
        cand(4, 9, quoted_user_id=10, quoted_author_blocks_viewer=True),
        cand(5, 9, quoted_user_id=8), cand(6, 9, source_user_id=8), cand(7, 9, source_user_id=7),
    ]  # fmt: skip
    assert kept(AuthorSocialgraphFilter(), cands, q) == [7]  # mutes apply to the author only


def test_video_filter_only_when_requested():
    f = VideoFilter()
    assert not f.enable(query())
    q = query(params=dataclasses.replace(FeedParams(), exclude_videos=True))
    assert f.enable(q) and kept(f, [cand(1, video_duration_ms=3000), cand(2)], q) == [2]


def test_visibility_and_ancillary_filters():
    cands = [cand(1, visibility_reason="spam"), cand(2, drop_ancillary=True), cand(3)]
    assert kept(VisibilityFilter(), cands) == [2, 3]
    assert kept(AncillaryVisibilityFilter(), cands) == [1, 3]


def test_dedup_conversation_keeps_the_best_per_conversation():
    cands = [
        cand(10, score=0.9, ancestors=(5, 3)),  # conversation 3
        cand(11, score=0.8, source_post_id=20),  # conversation 20
        cand(20, score=0.7),  # the retweeted post itself: same conversation as 11
        cand(12, score=0.95, ancestors=(3,)),  # higher score replaces 10 in its slot
        cand(13, score=0.5),
    ]
    res_kept, removed = run_filter(DedupConversationFilter(), query(), cands)
    assert [c.post_id for c in res_kept] == [12, 11, 13]
    assert sorted(c.post_id for c, _ in removed) == [10, 20]
