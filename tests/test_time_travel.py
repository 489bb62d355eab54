"""`--now T` sees the world as it was at T: no post created after T from any source, and no
delete, engagement, impression, edge or served history after T in query or candidate
hydration. A property test over random request times inside the bundled world."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from phoenix.actions import ActionName as A
from pipeline import feed
from world.tables import read_table

WORLD = feed.BUNDLED.world
HOUR = 3_600_000


@pytest.fixture(scope="module")
def tables():
    t = {n: read_table(WORLD, n) for n in ("posts", "edges", "engagements", "impressions")}
    creates = t["posts"].filter(pc.equal(t["posts"].column("event"), "create"))
    created = dict(zip(creates.column("post_id").to_pylist(),
                       creates.column("created_ms").to_pylist(), strict=True))  # fmt: skip
    deletes = t["posts"].filter(pc.equal(t["posts"].column("event"), "delete"))
    deleted = dict(zip(deletes.column("post_id").to_pylist(),
                       deletes.column("event_ms").to_pylist(), strict=True))  # fmt: skip
    return t, created, deleted


def _cases(n: int):
    rng = np.random.default_rng(13)
    as_of = feed.new_query(1007).now_ms
    users = [1007, 2007, 5007, 77007, 1500007, 123007]
    return [(int(users[i % len(users)]), int(as_of - rng.integers(1, 60) * HOUR
             - rng.integers(0, HOUR))) for i in range(n)]  # fmt: skip


@pytest.mark.parametrize(("user", "now"), _cases(5))
def test_nothing_in_any_stage_postdates_the_request_time(user, now, tables):
    t, created, deleted = tables
    res = feed.rank(feed.new_query(user, now_ms=now))
    q = res.query
    everything = [*res.retrieved, *(r.candidate for r in res.removed), *res.scored, *res.selected]
    assert res.retrieved
    for c in everything:
        for pid in (c.post_id, c.source_post_id, c.quoted_post_id, c.in_reply_to_post_id):
            assert created.get(pid, 0) <= now, (pid, created.get(pid) - now)
        assert c.created_ms <= now
        # deleted only when deleted by now
        if c.deleted is not None:
            assert c.deleted == (deleted.get(c.post_id, np.inf) <= now)
    # social graph: exactly the edges made by now
    e = t["edges"]
    for kind, field in (("follow", "followed_ids"), ("block", "blocked_ids"),
                        ("mute", "muted_ids"), ("subscribe", "subscribed_ids")):  # fmt: skip
        mask = (pc.equal(e.column("src_user_id"), user).to_numpy(zero_copy_only=False)
                & pc.equal(e.column("kind"), kind).to_numpy(zero_copy_only=False)
                & (e.column("created_ms").to_numpy() <= now))  # fmt: skip
        assert set(getattr(q, field)) == set(e.column("dst_user_id").to_numpy()[mask].tolist())
    # impressions and served history up to now
    imp = t["impressions"]
    mine = imp.filter(pc.equal(imp.column("user_id"), user))
    ms = mine.column("event_ms").to_numpy()
    seen = mine.column("kind").to_numpy(zero_copy_only=False) == "seen"
    pid = mine.column("post_id").to_numpy()
    assert set(q.seen_ids) == set(pid[seen & (ms <= now)].tolist())
    served_ok = set(pid[~seen & (ms <= now)].tolist())
    assert set(q.served_ids) <= served_ok
    # engagement history and counts up to now
    assert all(x <= now for x in q.history.get("time_ms", []))
    eng = t["engagements"]
    upto = eng.filter(pc.less_equal(eng.column("event_ms"), now))
    favs = upto.filter(pc.equal(upto.column("action"), int(A.SERVER_TWEET_FAV)))
    fav_count = {}
    for p in favs.column("post_id").to_numpy().tolist():
        fav_count[p] = fav_count.get(p, 0) + 1
    for c in res.scored[:50]:
        assert c.fav_count == fav_count.get(c.original_post_id, 0)


def test_the_request_time_changes_what_is_served():
    """A request 12 h before the world's time is served from the log at that time, not from
    the snapshot built later."""
    as_of = feed.new_query(1007).now_ms
    early = feed.rank(feed.new_query(1007, now_ms=as_of - 12 * HOUR))
    assert early.selected
    assert max(c.created_ms for c in early.retrieved) <= as_of - 12 * HOUR
