"""The chronological control arm (`--arm chrono`): posts of followed accounts only (0 %
out-of-network), newest first, through the same query hydration and filters as For You, and the
run's manifest names the arm."""

from __future__ import annotations

import dataclasses
import json

import pyarrow.parquet as pq
import pytest

from pipeline import feed
from pipeline.params import FeedParams, ParamsError, params_from_dict
from xfeed_cli.main import app

USERS = [1007, 5007]


@pytest.fixture(scope="module")
def chrono_run(tmp_path_factory):
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("chrono") / "run"
    argv = ["rank", "--users", ",".join(map(str, USERS)), "--arm", "chrono", "--keep", "all",
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    return out


def _rows(path):
    return pq.read_table(sorted(path.glob("part-*.parquet"))).to_pylist()


def test_chrono_serves_only_in_network_thunder_posts(chrono_run):
    rows = _rows(chrono_run)
    served = [r for r in rows if r["stage"] == "served"]
    assert len(served) == 35 * len(USERS)
    assert all(r["in_network"] and r["source"] == "thunder" for r in rows)
    manifest = json.loads((chrono_run / "manifest.json").read_text())
    assert manifest["arm"] == "chrono" and manifest["params"]["arm"] == "chrono"


def test_chrono_serves_the_newest_posts_first(chrono_run):
    rows = _rows(chrono_run)
    for u in USERS:
        served = sorted((r for r in rows if r["viewer_id"] == u and r["stage"] == "served"),
                        key=lambda r: r["position"])  # fmt: skip
        created = [r["created_ms"] for r in served]
        assert created == sorted(created, reverse=True)
        later = [r["created_ms"] for r in rows if r["viewer_id"] == u
                 and r["stage"] == "not_selected"]  # fmt: skip
        assert later and max(later) <= min(created)  # nothing newer was left out unfiltered
        # the model's probabilities are recorded but do not order the feed
        assert all(r["p_favorite"] is not None for r in served)


def test_chrono_applies_the_same_filters_as_for_you():
    queries = [feed.new_query(u) for u in USERS]
    chrono = [dataclasses.replace(q, params=FeedParams(arm="chrono")) for q in queries]
    a, b = feed.rank_batch(queries), feed.rank_batch(chrono)

    def removed_thunder(res):
        gone = res.removed
        src, post, req = gone.get("source"), gone.get("post_id"), gone.req
        return {(int(req[i]), int(post[i]), res.removed_info[i][1])
                for i in range(len(gone)) if src[i] == "thunder"
                and res.removed_info[i][0] == "filter"}  # fmt: skip

    assert removed_thunder(a) == removed_thunder(b) and removed_thunder(a)
    assert not any(s == "phoenix_retrieval" for s in b.selected.get("source"))
    assert any(s == "phoenix_retrieval" for s in a.selected.get("source"))


def test_arm_is_a_checked_param():
    assert params_from_dict({"arm": "chrono"}).arm == "chrono"
    with pytest.raises(ParamsError, match="arm must be"):
        params_from_dict({"arm": "random"})


def test_unknown_arm_is_one_error_line(runner, monkeypatch):
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    res = runner.invoke(app, ["rank", "--user", "1007", "--arm", "random"])
    assert res.exit_code == 2
    assert [x for x in res.stderr.splitlines() if x.startswith("error:")] == [
        "error: --arm must be for-you or chrono"
    ]


def test_the_chrono_table_shows_each_posts_age_where_for_you_shows_the_score(runner):
    from xfeed_cli.commands.feed import _ago

    assert [_ago(ms) for ms in (0, 59_999, 42 * 60_000, 185 * 60_000, 2 * 86_400_000 + 3_600_000)] \
        == ["0m", "0m", "42m", "3h 05m", "2d 01h"]  # fmt: skip
    res = runner.invoke(app, ["rank", "--user", "1007", "--arm", "chrono", "--top-k", "5",
                              "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("│")]
    header = [ln for ln in res.stdout.splitlines() if "post id" in ln][0]
    assert " age " in header and " score " not in header
    ages = [ln.split("│")[6].strip() for ln in lines]
    assert len(ages) == 5 and all(a.endswith(("m", "h")) for a in ages)
