"""Every audit metric against a value computed by hand on a tiny hand-made pair of runs (the
numbers in the comments are the hand computation), the bootstrap's determinism, and bad input
as one error line."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.bootstrap import Bootstrap
from audit.report import AuditSpec, audit
from audit.runs import AuditError, read_run
from pipeline.population import FORMAT, schema
from xfeed_cli.main import app

HOUR = 3_600_000
NOW = 1_784_592_000_000
# post -> (author, topic or None, age in hours)
POSTS = {
    101: (10, "music", 1),
    102: (20, "art", 2),
    103: (10, "music", 3),
    104: (30, "tech", 4),
    105: (20, "art", 5),
    106: (40, "music", 0.5),
    107: (10, "tech", 6),
    108: (10, None, 10),
}
# arm A (for-you): viewer -> [(post, in_network, p_favorite, p_report)]
FEED_A = {
    1: [
        (101, True, 0.1, 0.01),
        (102, False, 0.2, 0.01),
        (103, True, 0.3, 0.01),
        (104, False, 0.4, 0.01),
    ],
    2: [(101, True, 0.5, 0.04), (105, False, 0.1, 0.0), (108, True, 0.2, 0.0)],
}
FEED_B = {1: [(103, True, 0.1, 0.0), (101, True, 0.1, 0.0), (106, True, 0.1, 0.0)],
          2: [(101, True, 0.1, 0.0), (107, True, 0.1, 0.0)]}  # fmt: skip
GROUPS = {10: "g1", 20: "g2", 30: "g2", 40: "g2"}


def write_world(path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    ids = sorted(POSTS)
    pq.write_table(pa.table({
        "event": ["create"] * len(ids), "post_id": pa.array(ids, pa.int64()),
        "author_id": pa.array([POSTS[p][0] for p in ids], pa.int64()),
        "topics": pa.array([[POSTS[p][1]] if POSTS[p][1] else None for p in ids],
                           pa.list_(pa.string())),
    }), path / "posts.parquet")  # fmt: skip
    users = [1, 2, 10, 20, 30, 40]
    pq.write_table(pa.table({"user_id": pa.array(users, pa.int64()),
                             "follower_count": pa.array([5, 50, 500, 5000, 50000, 1], pa.int64()),
                             "country": ["US", "GB", "US", "US", "GB", None]}),
                   path / "users.parquet")  # fmt: skip


def write_run(path, feeds: dict, arm: str, world, n_users: int | None = None) -> None:
    """A run directory in the population format (manifest + one part) from hand-made feeds."""
    path.mkdir(parents=True)
    rows = []
    for viewer, feed in feeds.items():
        for pos, (post, inn, fav, rep) in enumerate(feed, start=1):
            author, _, age = POSTS[post]
            row = {f.name: None for f in schema()}
            row.update(
                viewer_id=viewer,
                position=pos,
                post_id=post,
                author_id=author,
                in_network=inn,
                source="thunder" if inn else "phoenix_retrieval",
                created_ms=int(NOW - age * HOUR),
                request_ms=NOW,
                stage="served",
                p_favorite=fav,
                p_report=rep,
                is_reply=False,
                is_retweet=False,
            )
            rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema()), path / "part-0.parquet")
    manifest = {"format": FORMAT, "arm": arm, "world": {"path": str(world), "sha256": "w"},
                "users": {"count": n_users or len(feeds)}, "request_ms": NOW,
                "parts": [{"file": "part-0.parquet", "rows": len(rows)}]}  # fmt: skip
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    root = tmp_path_factory.mktemp("hand")
    write_world(root / "world")
    write_run(root / "a", FEED_A, "for-you", root / "world")
    write_run(root / "b", FEED_B, "chrono", root / "world")
    ids = sorted(GROUPS)
    pq.write_table(
        pa.table({"author_id": pa.array(ids, pa.int64()), "group": [GROUPS[i] for i in ids]}),
        root / "groups.parquet",
    )
    spec = AuditSpec((str(root / "a"), str(root / "b")), baseline=str(root / "b"),
                     group_by=str(root / "groups.parquet"), k=3, replicates=200)  # fmt: skip
    return root, audit(spec)


def _v(e):
    assert e["lo"] <= e["value"] + 1e-9 and e["value"] <= e["hi"] + 1e-9, e
    return e["value"]


def test_per_arm_metrics_equal_the_hand_computation(hand):
    _, res = hand
    a = res["segments"][0]["arms"]["for-you"]
    assert _v(a["oon_share"]) == pytest.approx((2 / 4 + 1 / 3) / 2, abs=1e-6)
    assert a["source_share"]["phoenix_retrieval"]["value"] == pytest.approx(3 / 7, abs=1e-6)
    assert _v(a["distinct_authors"]) == pytest.approx(2.5)  # {10,20,30}, {10,20}
    # impressions per author over the union {10,20,30,40}: A [4,2,1,0], B [4,0,0,1]
    assert _v(a["author_gini"]) == pytest.approx(13 / 28, abs=1e-6)
    assert _v(a["top1pct_author_share"]) == pytest.approx(4 / 7, abs=1e-6)
    b = res["segments"][0]["arms"]["chrono"]
    assert b["author_gini"]["value"] == pytest.approx(13 / 20, abs=1e-6)
    assert b["top1pct_author_share"]["value"] == pytest.approx(4 / 5, abs=1e-6)
    # topics: u1 music 2, art 1, tech 1 -> 1.5 bits; u2 music, art (108 has none) -> 1 bit
    assert _v(a["topic_entropy_bits"]) == pytest.approx(1.25, abs=1e-6)
    # ages 1,2,3,4 and 1,5,10 hours -> median 3
    assert _v(a["median_age_hours"]) == pytest.approx(3.0, abs=1e-6)
    assert _v(a["engagement_per_feed"]["favorite"]) == pytest.approx((1.0 + 0.8) / 2, abs=1e-6)
    assert _v(a["negative_exposure"]["report"]) == pytest.approx(0.08 / 7, abs=1e-6)
    assert (
        a["oon_share_distribution"]["users"][3] == 1
        and a["oon_share_distribution"]["users"][5] == 1
    )
    assert b["oon_share"]["value"] == 0.0


def test_between_arm_metrics_equal_the_hand_computation(hand):
    _, res = hand
    c = res["segments"][0]["comparisons"]["for-you"]
    assert c["baseline"] == "chrono" and c["paired_users"] == 2
    # reach g2: both users under A, user 1 only under B -> 1.0 / 0.5
    assert _v(c["amplification"]["g2"]) == pytest.approx(2.0)
    assert c["amplification"]["g1"]["value"] == pytest.approx(1.0)
    assert c["amplification"]["g2"]["reach_baseline"] == pytest.approx(0.5)
    assert _v(c["jaccard_at_k"]) == pytest.approx((2 / 4 + 1 / 4) / 2)  # K = 3
    p = 0.9
    rbo1 = 2 / 3 * p**3 + (1 - p) / p * (1 / 2 * p**2 + 2 / 3 * p**3)  # depth 3, X = 0, 1, 2
    rbo2 = 1 / 2 * p**2 + (1 - p) / p * (p + 1 / 2 * p**2)  # depth 2, X = 1, 1
    assert _v(c["rbo"]) == pytest.approx((rbo1 + rbo2) / 2, abs=1e-6)
    assert _v(c["rank_displacement"]) == pytest.approx((1.5 + 0) / 2)
    assert _v(c["posts_gained"]) == pytest.approx(2.0)
    assert _v(c["posts_lost"]) == pytest.approx(1.0)


def test_rbo_of_identical_feeds_is_one_and_of_disjoint_feeds_zero(tmp_path):
    write_world(tmp_path / "w")
    write_run(tmp_path / "x", FEED_A, "for-you", tmp_path / "w")
    write_run(tmp_path / "y", FEED_A, "for-you", tmp_path / "w")
    res = audit(AuditSpec((str(tmp_path / "x"), str(tmp_path / "y")), replicates=50))
    c = next(iter(res["segments"][0]["comparisons"].values()))
    assert c["rbo"]["value"] == pytest.approx(1.0) and c["jaccard_at_k"]["value"] == 1.0
    assert c["rank_displacement"]["value"] == 0 and c["posts_gained"]["value"] == 0
    assert all(e["value"] == pytest.approx(1.0) for e in c["amplification"].values())


def test_reach_is_divided_by_each_runs_number_of_users(tmp_path):
    write_world(tmp_path / "w")
    # the same feeds, but arm A's manifest counts 4 users (2 with an empty feed): reach halves
    write_run(tmp_path / "a", FEED_A, "for-you", tmp_path / "w", n_users=4)
    write_run(tmp_path / "b", FEED_A, "chrono", tmp_path / "w")
    res = audit(AuditSpec((str(tmp_path / "a"), str(tmp_path / "b")), replicates=50))
    amp = res["segments"][0]["comparisons"]["for-you"]["amplification"]
    assert {round(e["value"], 6) for e in amp.values()} == {0.5}


def test_segments_split_the_viewers(hand):
    root, _ = hand
    spec = AuditSpec((str(root / "a"), str(root / "b")), segment_by="country", replicates=20)
    res = audit(spec)
    segs = {s["segment"]: s for s in res["segments"]}
    assert set(segs) == {"all", "US", "GB"}  # viewer 1: US, viewer 2: GB
    assert segs["US"]["arms"]["for-you"]["oon_share"]["value"] == pytest.approx(0.5)
    assert segs["GB"]["arms"]["for-you"]["oon_share"]["value"] == pytest.approx(1 / 3)


def test_bootstrap_is_deterministic_and_resamples_users():
    a, b = Bootstrap(7, 30, seed=3), Bootstrap(7, 30, seed=3)
    assert np.array_equal(a.w, b.w) and np.all(a.w.sum(axis=1) == 7)
    assert not np.array_equal(a.w, Bootstrap(7, 30, seed=4).w)


def test_audit_output_is_deterministic(hand):
    root, res = hand
    again = audit(
        AuditSpec(
            (str(root / "a"), str(root / "b")),
            baseline=str(root / "b"),
            group_by=str(root / "groups.parquet"),
            k=3,
            replicates=200,
        )
    )
    assert json.dumps(again, sort_keys=True) == json.dumps(res, sort_keys=True)


def test_unfinished_or_damaged_runs_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AuditError, match="no manifest.json"):
        read_run(tmp_path / "empty")
    write_world(tmp_path / "w")
    write_run(tmp_path / "r", FEED_A, "for-you", tmp_path / "w")
    (tmp_path / "r" / "part-0.parquet").write_bytes(b"not parquet")
    with pytest.raises(AuditError, match="not a readable Parquet"):
        read_run(tmp_path / "r")


def test_audit_cli_bad_run_is_one_error_line(tmp_path, runner, monkeypatch):
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    res = runner.invoke(app, ["audit", str(tmp_path / "missing")])
    assert res.exit_code == 2
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "not a directory" in errors[0]


def test_counted_gini_and_top_share_equal_the_sorted_formula():
    from audit.arm import _sorted, concentration

    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, (70, 300)).astype(np.float32)  # bootstrap sums are integers
    g, t = concentration(x)
    g2, t2 = _sorted(x.astype(np.float64), 300, 3)
    assert np.allclose(g, g2, atol=1e-12) and np.allclose(t, t2, atol=1e-12)
    frac = rng.random((5, 40))  # non-integers take the sorted path
    assert np.allclose(concentration(frac)[0], _sorted(frac, 40, 1)[0])


def test_median_age_interval_holds_the_exact_median_where_ages_are_tied():
    import types  # noqa: PLC0415

    from audit.arm import _freshness  # noqa: PLC0415

    rng = np.random.default_rng(0)
    users, per = 2000, 35
    uidx = np.repeat(np.arange(users), per)
    age = rng.choice(np.arange(0, 72, 0.5), users * per) * HOUR  # bursts: many equal ages
    run = types.SimpleNamespace(request=np.full(len(age), NOW, np.int64),
                                created=(NOW - age).astype(np.int64))  # fmt: skip
    e = _freshness(run, uidx, users, Bootstrap(users, 200, 0))
    assert e.value == pytest.approx(np.median(age) / HOUR)
    assert e.lo <= e.value <= e.hi and e.hi - e.lo < 2.0, e
