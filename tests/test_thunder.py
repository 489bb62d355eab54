"""Thunder: each rule, the store against a simple reference on random logs, snapshots, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import thunder_reference as ref
from tests.conftest import write_post_log
from thunder import rules
from thunder.config import DEFAULT_CONFIG, ThunderConfig
from thunder.errors import ThunderError
from thunder.fetch import InNetworkRequest, in_network_posts
from thunder.log import read_logs
from thunder.rules import Kind, ReplyClass
from thunder.snapshot import load_snapshot, save_snapshot, snapshot_stats
from thunder.store import build_store
from thunder.timespec import parse_duration_ms, parse_time_ms

NOW = 1_780_000_000_000
H = 3_600_000


def post(pid, author, age_h, **kw):
    created = NOW - int(age_h * H)
    return {
        "event": "create",
        "event_ms": created,
        "post_id": pid,
        "author_id": author,
        "created_ms": created,
        **kw,
    }


def delete(pid, at_h):
    return {"event": "delete", "event_ms": NOW - int(at_h * H), "post_id": pid}


def store_of(tmp_path, events, now=NOW, cfg=DEFAULT_CONFIG):
    log = read_logs([write_post_log(tmp_path / "posts.parquet", events)])
    return build_store(log, now, cfg)


def fetch_ids(store, viewer, following, exclude=(), video=False, cfg=DEFAULT_CONFIG):
    req = InNetworkRequest(
        viewer, np.array(following, np.int64), np.array(exclude, np.int64), video
    )
    return store.posts["post_id"][in_network_posts(store, req, cfg)].tolist()


# ---- rules, one by one ----------------------------------------------------------------------


def test_retention_keeps_the_last_two_days_and_drops_future_posts():
    created = np.array([NOW - 49 * H, NOW - 48 * H, NOW - 1, NOW, NOW + 5])
    np.testing.assert_array_equal(
        rules.within_retention(created, NOW, 48 * H), [False, True, True, False, False]
    )


def test_first_occurrence_ignores_duplicate_ids():
    np.testing.assert_array_equal(
        rules.first_occurrence(np.array([5, 3, 5, 3, 9])), [True, True, False, False, True]
    )


def test_kinds_quotes_are_originals_replies_and_retweets_are_secondary():
    reply = rules.is_reply(np.array([0, 7, 0, 0]), np.array([0, 0, 3, 0]))
    retweet = rules.is_retweet(np.array([0, 0, 0, 11]))
    np.testing.assert_array_equal(reply, [False, True, True, False])
    np.testing.assert_array_equal(rules.is_original(reply, retweet), [True, False, False, False])


def test_video_needs_five_seconds_and_replies_never_qualify():
    video = rules.has_video(np.array([4999, 5000, 60000, 0]), 5000)
    np.testing.assert_array_equal(video, [False, True, True, False])
    original = np.array([True, True, False, False, False])
    reply = np.array([False, False, True, False, False])
    retweet = np.array([False, False, False, True, True])
    own_video = np.array([True, False, True, False, False])
    src_in = np.array([False, False, False, True, False])
    src_video = np.array([False, False, False, True, False])
    np.testing.assert_array_equal(
        rules.video_eligible(original, reply, retweet, own_video, src_in, src_video),
        [True, False, False, True, False],
    )


def test_reply_class_rule():
    reply = np.array([True, True, True, True, False, False])
    retweet = np.array([False, False, False, False, True, False])
    parent_in = np.array([True, True, True, False, False, False])
    parent_orig = np.array([True, False, False, False, False, False])
    parent_reply_to = np.array([0, 100, 55, 0, 0, 0])
    conversation = np.array([100, 100, 100, 100, 0, 0])
    np.testing.assert_array_equal(
        rules.reply_class(reply, retweet, parent_in, parent_orig, parent_reply_to, conversation),
        [
            ReplyClass.PASS,
            ReplyClass.IF_FOLLOWS,
            ReplyClass.FAIL,
            ReplyClass.FAIL,
            ReplyClass.RETWEET,
            ReplyClass.PASS,
        ],
    )


def test_cap_per_author_keeps_the_newest():
    authors = np.array([1, 1, 1, 2, 2])
    np.testing.assert_array_equal(rules.cap_per_author(authors, 2), [1, 1, 0, 1, 1])


def test_time_and_duration_parsing():
    assert parse_time_ms("1780000000000") == 1780000000000
    assert parse_time_ms("2026-05-28T20:26:40Z") == 1780000000000
    assert parse_duration_ms("2d") == 172_800_000 and parse_duration_ms("90m") == 5_400_000
    with pytest.raises(ThunderError):
        parse_duration_ms("soon")
    with pytest.raises(ThunderError):
        parse_time_ms("yesterday")


# ---- the store and fetch --------------------------------------------------------------------


def test_deleted_ids_never_come_back_and_duplicates_are_ignored(tmp_path):
    events = [
        post(1, 10, 5),
        delete(1, 4),
        {**post(1, 10, 3)},
        post(2, 10, 2),
        post(2, 11, 1),
        delete(3, 6),
        post(3, 10, 5),
    ]
    store = store_of(tmp_path, events)
    assert store.posts["post_id"].tolist() == [2]
    assert store.posts["author_id"].tolist() == [10]  # the first create of id 2 wins
    assert store.counts["dropped_deleted"] == 2 and store.counts["dropped_duplicate"] == 2


def test_events_after_now_are_not_applied(tmp_path):
    store = store_of(tmp_path, [post(1, 10, 5), delete(1, -1)], now=NOW)
    assert store.posts["post_id"].tolist() == [1] and store.counts["events_after_now"] == 1


def test_fetch_merges_newest_first_and_caps_per_author(tmp_path):
    cfg = ThunderConfig(max_originals=2, max_secondary=1)
    events = [post(i, 10, i) for i in range(1, 6)] + [post(100 + i, 20, i + 0.5) for i in range(3)]
    events += [post(200, 20, 0.2, source_post_id=1, source_user_id=10)]
    events += [post(201, 20, 0.1, source_post_id=2, source_user_id=10)]
    store = store_of(tmp_path, events, cfg=cfg)
    got = fetch_ids(store, 1, [10, 20], cfg=cfg)
    assert got == [201, 100, 1, 101, 2]  # 2 originals each, 1 secondary for author 20


def test_fetch_skips_excluded_and_retweets_of_the_viewers_posts(tmp_path):
    events = [post(1, 10, 1), post(2, 10, 2), post(3, 10, 3, source_post_id=50, source_user_id=7)]
    store = store_of(tmp_path, events)
    assert fetch_ids(store, 7, [10], exclude=[2]) == [1]
    assert fetch_ids(store, 8, [10]) == [1, 2, 3]


def test_reply_rule_end_to_end(tmp_path):
    events = [
        post(1, 30, 5),  # root, by someone not followed
        post(2, 10, 4, in_reply_to_post_id=1, in_reply_to_user_id=30, conversation_id=1),
        post(3, 10, 3, in_reply_to_post_id=2, in_reply_to_user_id=10, conversation_id=1),
        post(4, 10, 2, in_reply_to_post_id=3, in_reply_to_user_id=10, conversation_id=1),
        post(5, 10, 1, in_reply_to_post_id=999, in_reply_to_user_id=30, conversation_id=999),
        post(6, 11, 1, in_reply_to_post_id=2, in_reply_to_user_id=99, conversation_id=1),
    ]
    store = store_of(tmp_path, events)
    # 2: parent is an original -> pass. 3: 2nd-level reply, replying to user 10 (followed).
    # 4: parent 3's parent is not the root -> fail. 5: parent not in store. 6: user 99 not followed.
    assert fetch_ids(store, 1, [10, 11]) == [3, 2]


def test_video_requests_use_the_video_lists(tmp_path):
    events = [
        post(1, 10, 1, video_duration_ms=8000),
        post(2, 10, 2, video_duration_ms=3000),
        post(3, 10, 3),
        post(4, 11, 1, source_post_id=1, source_user_id=10),
        post(
            5,
            10,
            1.5,
            video_duration_ms=9000,
            in_reply_to_post_id=3,
            in_reply_to_user_id=10,
            conversation_id=3,
        ),
    ]
    store = store_of(tmp_path, events)
    assert fetch_ids(store, 1, [10, 11], video=True) == [4, 1]


def test_following_and_blacklist_limits(tmp_path):
    grok = 1720665183188922368
    store = store_of(tmp_path, [post(1, grok, 1), post(2, 10, 2)])
    assert fetch_ids(store, 1, [grok, 10]) == [2]
    cfg = ThunderConfig(max_input_list=1)
    assert fetch_ids(store, 1, [99, 10], cfg=cfg) == []


def test_posting_lists_are_capped_oldest_evicted(tmp_path):
    cfg = ThunderConfig(max_posting_list=3)
    store = store_of(tmp_path, [post(i, 10, i) for i in range(1, 6)], cfg=cfg)
    assert store.lists[Kind.ORIGINAL].post_id.tolist() == [1, 2, 3]
    assert store.counts["evicted_original"] == 2


# ---- property test against the reference ----------------------------------------------------

ids = st.integers(min_value=1, max_value=40)
authors = st.integers(min_value=1, max_value=6)


@st.composite
def event_logs(draw):
    events = []
    for _ in range(draw(st.integers(0, 60))):
        pid = draw(ids)
        if draw(st.integers(0, 9)) == 0:
            events.append(
                {"event": "delete", "event_ms": NOW - draw(st.integers(-5, 60)) * H, "post_id": pid}
            )
            continue
        created = NOW - draw(st.integers(-3, 60)) * H
        ev = {
            "event": "create",
            "event_ms": created + draw(st.integers(0, 2)) * H,
            "post_id": pid,
            "author_id": draw(authors),
            "created_ms": created,
        }
        shape = draw(st.sampled_from(["orig", "reply", "retweet", "quote"]))
        if shape == "reply":
            parent = draw(ids)
            ev.update(
                in_reply_to_post_id=parent,
                in_reply_to_user_id=draw(authors),
                conversation_id=draw(st.sampled_from([parent, draw(ids)])),
            )
        elif shape == "retweet":
            ev.update(source_post_id=draw(ids), source_user_id=draw(authors))
        elif shape == "quote":
            ev.update(quoted_post_id=draw(ids), quoted_user_id=draw(authors))
        if draw(st.booleans()):
            ev["video_duration_ms"] = draw(st.sampled_from([1000, 5000, 20000]))
        events.append(ev)
    return events


SMALL = ThunderConfig(
    max_posting_list=4,
    scan_per_author=3,
    max_originals=2,
    max_secondary=2,
    max_video=2,
    max_results=7,
    max_results_video=5,
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=event_logs(),
    cfg=st.sampled_from([ThunderConfig(), SMALL]),
    viewer=authors,
    following=st.lists(authors, max_size=6),
    exclude=st.lists(ids, max_size=6),
    video=st.booleans(),
)
def test_store_and_fetch_equal_the_simple_reference(
    tmp_path, events, cfg, viewer, following, exclude, video
):
    if not events:
        return
    log_path = write_post_log(tmp_path / "p.parquet", events)
    store = build_store(read_logs([log_path]), NOW, cfg)
    posts, lists = ref.build(events, NOW, cfg)
    assert sorted(store.posts["post_id"].tolist()) == sorted(posts)
    for kind in Kind:
        name = kind.name.lower()
        want = [p["post_id"] for a in sorted(lists[name]) for p in lists[name][a]]
        assert store.lists[kind].post_id.tolist() == want
    got = fetch_ids(store, viewer, following, exclude, video, cfg)
    assert got == ref.fetch(posts, lists, viewer, following, exclude, video, cfg)


# ---- snapshots and bad input ----------------------------------------------------------------


def test_snapshot_round_trip_is_memory_mapped_and_identical(tmp_path):
    events = [post(i, 10 + i % 3, i * 0.5, video_duration_ms=6000 * (i % 2)) for i in range(1, 30)]
    log = read_logs([write_post_log(tmp_path / "posts.parquet", events)])
    store = build_store(log, NOW)
    manifest = save_snapshot(tmp_path / "snap", store, log)
    loaded, m2 = load_snapshot(tmp_path / "snap")
    assert m2 == manifest and m2["source_hash"] == log.source_hash
    for k, v in store.posts.items():
        assert np.array_equal(loaded.posts[k], v) and loaded.posts[k].dtype == v.dtype
    for kind in Kind:
        for f in ("authors", "offsets", *store.lists[kind].ENTRY_FIELDS):
            assert np.array_equal(getattr(loaded.lists[kind], f), getattr(store.lists[kind], f))
    assert not loaded.posts["post_id"].flags.owndata  # a view of the mapped file
    assert fetch_ids(loaded, 1, [10, 11, 12]) == fetch_ids(store, 1, [10, 11, 12])
    stats = snapshot_stats(loaded, m2)
    assert stats["posts"] == 29 and sum(stats["age_histogram"].values()) == 29
    assert np.array_equal(loaded.fetch_index.table, store.fetch_index.table)
    assert np.array_equal(loaded.fetch_index.time_points, store.fetch_index.time_points)


def test_fetch_index_counts_and_snapshots_without_one(tmp_path):
    # author 10: posts 1..20 h old (originals); the index counts entries at or after each point
    events = [post(i, 10, i) for i in range(1, 21)] + [
        post(100 + i, 11, 0.1 * (i + 1)) for i in range(5)
    ]
    log = read_logs([write_post_log(tmp_path / "posts.parquet", events)])
    store = build_store(log, NOW)
    index = store.fetch_index
    cols = index.kind_columns(index.rows(np.array([10, 11])), Kind.ORIGINAL)
    created = store.lists[Kind.ORIGINAL].created_ms
    for row, author in zip(cols, (10, 11), strict=True):
        mine = created[row[0] : row[0] + row[1]]
        assert row[1] == (20 if author == 10 else 5)
        assert row[3:].tolist() == [int((mine >= t).sum()) for t in index.time_points]
    save_snapshot(tmp_path / "snap", store, log)
    (tmp_path / "snap" / "fetch_index.arrow").unlink()  # as written before the index existed
    old, _ = load_snapshot(tmp_path / "snap")
    assert old.fetch_index is None
    for cfg in (ThunderConfig(), SMALL):
        assert fetch_ids(old, 1, [10, 11], cfg=cfg) == fetch_ids(store, 1, [10, 11], cfg=cfg)
    assert old.fetch_index is not None  # built on first use


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda t: t.drop_columns(["created_ms"]), "missing column(s) created_ms"),
        (lambda t: t.set_column(2, "post_id", pa.array([-1, 2], pa.int64())), "post_id <= 0"),
        (lambda t: t.set_column(3, "author_id", pa.array([0, 5], pa.int64())), "author_id <= 0"),
        (lambda t: t.set_column(2, "post_id", pa.array(["a", "b"])), "must be an integer"),
        (lambda t: t.set_column(0, "event", pa.array(["create", "edit"])), "neither 'create'"),
    ],
)
def test_bad_logs_raise_one_clear_error(tmp_path, mutate, needle):
    path = write_post_log(tmp_path / "p.parquet", [post(1, 5, 1), post(2, 5, 2)])
    pq.write_table(mutate(pq.read_table(path)), path)
    with pytest.raises(ThunderError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        read_logs([path])


def test_non_parquet_and_missing_files(tmp_path):
    (tmp_path / "x.parquet").write_text("hello")
    with pytest.raises(ThunderError, match="not a Parquet file"):
        read_logs([tmp_path / "x.parquet"])
    with pytest.raises(ThunderError, match="not found"):
        read_logs([tmp_path / "nope.parquet"])


def test_multiple_logs_are_merged_in_event_order(tmp_path):
    a = write_post_log(tmp_path / "a.parquet", [post(1, 5, 3)])
    b = write_post_log(tmp_path / "b.parquet", [delete(1, 2), post(2, 5, 1)])
    store = build_store(read_logs([a, b]), NOW)
    assert store.posts["post_id"].tolist() == [2]


def test_default_now_is_the_newest_event(tmp_path):
    store = store_of(tmp_path, [post(1, 5, 3), post(2, 5, 1)], now=None)
    assert store.as_of_ms == NOW - H
    assert dataclasses.asdict(ThunderConfig())["retention_ms"] == 172_800_000
