"""The For You pipeline end to end on the bundled world and checkpoint."""

from __future__ import annotations

import json

import pytest

from pipeline import feed
from pipeline.candidates import parse_stream
from xfeed_cli.main import app

USER = 1007  # a user of the bundled world


@pytest.fixture(scope="module")
def result():
    return feed.rank(feed.new_query(USER))


def test_rank_serves_a_sensible_feed(result):
    q = result.query
    final = result.selected
    assert len(final) == q.params.result_size
    assert {c.source for c in final} == {"thunder", "phoenix_retrieval"}
    assert any(c.in_network for c in final) and any(c.in_network is False for c in final)
    blocked, muted, seen = set(q.blocked_ids), set(q.muted_ids), set(q.seen_ids)
    for c in final:
        assert c.author_id not in blocked | muted and c.author_id != q.user_id
        assert not set(c.related_ids()) & (seen | set(q.served_ids))
        assert c.visibility_reason is None and not c.drop_ancillary
    scores = [c.score for c in final]
    assert scores == sorted(scores, reverse=True)


def test_removed_candidates_keep_filter_and_reason(result):
    names = {r.component for r in result.removed}
    assert {"DropDuplicatesFilter", "OONRetweetReplyFilter"} <= names
    assert all(r.reason for r in result.removed)


def _invoke(runner, argv, stdin=None):
    res = runner.invoke(app, argv, input=stdin)
    assert res.exit_code == 0, res.output
    return res.stdout


def test_stage_chain_equals_rank_json(runner):
    ranked = _invoke(runner, ["rank", "--user", str(USER), "--json", "--device", "cpu"])
    stream = _invoke(runner, ["retrieve", "--user", str(USER), "--device", "cpu"])
    for stage in (["filter"], ["score", "--device", "cpu"], ["select"], ["post-filter"]):
        stream = _invoke(runner, stage, stream)
    assert stream == ranked
    q, cands = parse_stream(ranked.splitlines())
    assert q["user_id"] == str(USER) and len(cands) == 35


def test_hydrate_stage_is_idempotent(runner):
    stream = _invoke(runner, ["retrieve", "--user", str(USER)])
    assert _invoke(runner, ["hydrate"], stream) == stream


def test_explain_served_and_removed_posts(result, runner):
    top = result.selected[0].post_id
    argv = ["explain", "--user", str(USER), "--post", str(top), "--json"]
    out = json.loads(_invoke(runner, argv))
    assert out["outcome"] == "served" and out["feed_position"] == 1
    assert out["combined"] == pytest.approx(out["positive"] - out["negative"])
    heads = {h["head"] for h in out["heads"]}
    assert {"favorite", "reply", "report"} <= heads
    text = _invoke(runner, ["explain", "--user", str(USER), "--post", str(top)])
    assert "favorite" in text and "feed position 1" in text


def test_whatif_reports_moves(tmp_path, runner):
    w = tmp_path / "oon.toml"
    w.write_text("oon_weight_factor = 0.01\n")
    argv = ["whatif", "--user", str(USER), "--weights", str(w), "--json"]
    out = json.loads(_invoke(runner, argv))
    assert out["entered"] or out["moved"]
    assert all(c["in_network"] for c in out["b"][:10])
    text = _invoke(runner, ["whatif", "--user", str(USER), "--weights", str(w)])
    assert "what-if" in text


@pytest.mark.parametrize(
    ("argv", "stdin", "needle"),
    [
        (["rank", "--user", "424242"], None, "unknown user 424242"),
        (["rank", "--user", "1007", "--weights", "{bad}"], None, "unknown parameter"),
        (["filter"], '{"query": {}}\nnot json\n', "line 2: not valid JSON"),
        (["score"], '{"post_id": 1, "author_id": 2}\n', "first line must be"),
        (["select"], "", "empty candidate stream"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, stdin, needle, runner, tmp_path, monkeypatch):
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("nope = 1\n")
    argv = [a.replace("{bad}", str(bad)) for a in argv]
    res = runner.invoke(app, argv, input=stdin)
    assert res.exit_code == 2, res.output
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0]
