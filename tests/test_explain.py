"""`explain` agrees with `rank` for every candidate of several users' feeds."""

from __future__ import annotations

import json

import pytest

from pipeline import feed
from xfeed_cli.main import app

USERS = (1007, 2007, 1500007)  # users of the bundled world


@pytest.mark.parametrize("user", USERS)
def test_explain_agrees_with_rank_for_every_candidate(user):
    res = feed.rank(feed.new_query(user))
    ids = list(dict.fromkeys(c.post_id for c in res.retrieved))
    explained = {int(e["post_id"]): e for e in feed.explain(feed.new_query(user), ids)}
    served = [c.post_id for c in res.selected]
    scored = {c.post_id for c in res.scored}
    dup_noted = 0
    for pid in ids:
        e = explained[pid]
        records = [(r.stage, r.component, r.reason) for r in res.removed
                   if r.candidate.post_id == pid]  # fmt: skip
        if pid in served:
            assert e["outcome"] == "served", (pid, e)
            assert e["feed_position"] == served.index(pid) + 1
            got = [(r["stage"], r["component"], r["reason"]) for r in e["removed_copies"]]
            assert got == records
            dup_noted += bool(records)
        elif pid in scored and not any(r[0] != "filter" for r in records):
            assert e["outcome"] == "not selected", (pid, e)
            assert e["feed_position"] is None
        else:
            assert e["outcome"] == "removed", (pid, e)
            got = [(r["stage"], r["component"], r["reason"]) for r in e["removals"]]
            assert got == records and records
    if user == 2007:  # served posts retrieved by both sources: a duplicate copy was removed
        assert dup_noted > 0


def test_explain_several_posts_and_top_in_one_call(runner):
    res = feed.rank(feed.new_query(1007))
    gone = res.removed[-1].candidate.post_id
    argv = ["explain", "--user", "1007", "--post", str(gone), "--post", "1", "--top", "3",
            "--json"]  # fmt: skip
    r = runner.invoke(app, argv)
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["post_id"] for x in lines] == [str(gone), "1"] + [
        str(c.post_id) for c in res.selected[:3]
    ]
    assert [x["outcome"] for x in lines[:2]] == ["removed", "not retrieved"]
    assert [x["feed_position"] for x in lines[2:]] == [1, 2, 3]
    text = runner.invoke(app, ["explain", "--user", "1007", "--top", "2"]).stdout
    assert "feed position 1" in text and "feed position 2" in text
    r = runner.invoke(app, ["explain", "--user", "1007"])
    assert r.exit_code == 2 and "--post" in r.stderr
