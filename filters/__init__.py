"""Pre- and post-selection filters of the For You pipeline, one small module each
(homemixer_spec.md §6, §8). Filters read candidate and query attributes by name, so they depend
on nothing in `pipeline/`; each returns a FilterResult keeping the removed with a reason.
"""

from filters.age import AgeFilter
from filters.ancillary import AncillaryVisibilityFilter
from filters.author_socialgraph import AuthorSocialgraphFilter
from filters.base import FilterResult
from filters.core_data import CoreDataHydrationFilter
from filters.dedup_conversation import DedupConversationFilter
from filters.drop_duplicates import DropDuplicatesFilter
from filters.muted_keywords import MutedKeywordFilter
from filters.oon_retweet_reply import OONRetweetReplyFilter
from filters.previously_seen import PreviouslySeenPostsFilter
from filters.previously_served import PreviouslyServedPostsFilter
from filters.retweet_dedup import RetweetDeduplicationFilter
from filters.self_post import SelfPostFilter
from filters.subscription import IneligibleSubscriptionFilter
from filters.video import VideoFilter
from filters.visibility import VisibilityFilter


def pre_scoring_filters(max_age_ms: int) -> list:
    """The pre-scoring filters in upstream's order (January list plus OON retweet/reply and
    video; the filters that need data xfeed has no source for are left out, see README)."""
    return [
        DropDuplicatesFilter(),
        CoreDataHydrationFilter(),
        AgeFilter(max_age_ms),
        SelfPostFilter(),
        OONRetweetReplyFilter(),
        RetweetDeduplicationFilter(),
        IneligibleSubscriptionFilter(),
        PreviouslySeenPostsFilter(),
        PreviouslyServedPostsFilter(),
        MutedKeywordFilter(),
        AuthorSocialgraphFilter(),
        VideoFilter(),
    ]


def post_selection_filters() -> list:
    return [VisibilityFilter(), AncillaryVisibilityFilter(), DedupConversationFilter()]


__all__ = [
    "AgeFilter",
    "AncillaryVisibilityFilter",
    "AuthorSocialgraphFilter",
    "CoreDataHydrationFilter",
    "DedupConversationFilter",
    "DropDuplicatesFilter",
    "FilterResult",
    "IneligibleSubscriptionFilter",
    "MutedKeywordFilter",
    "OONRetweetReplyFilter",
    "PreviouslySeenPostsFilter",
    "PreviouslyServedPostsFilter",
    "RetweetDeduplicationFilter",
    "SelfPostFilter",
    "VideoFilter",
    "VisibilityFilter",
    "post_selection_filters",
    "pre_scoring_filters",
]
