"""Experiments without scripting and readable output: tables at 80 columns, what-if slates,
re-scoring a saved retrieval under other weights."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from pipeline.candidates import parse_stream
from pipeline.feed import BUNDLED
from xfeed_cli.commands import feed as feed_cli
from xfeed_cli.main import app

USER = "1007"


def _ok(runner, argv, stdin=None) -> str:
    res = runner.invoke(app, argv, input=stdin)
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.fixture(scope="module")
def oon_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "oon.toml"
    path.write_text("oon_weight_factor = 0.05\n[weights]\nreply = 1.0\n")
    return path


@pytest.mark.parametrize("width", [80, 100])
def test_feed_table_rows_stay_one_line_at_narrow_widths(width, runner, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(feed_cli, "out", Console(file=buf, width=width))
    _ok(runner, ["rank", "--user", USER, "--device", "cpu"])
    lines = buf.getvalue().splitlines()
    assert max(len(x) for x in lines) <= width
    rows = [x for x in lines if x.startswith("│")]
    assert len(rows) == 35  # one line per served post
    assert all("…" in x or x.rstrip().endswith("│") for x in rows)


def test_whatif_shows_both_slates_and_what_entered_and_left(runner, oon_weights, monkeypatch):
    argv = ["whatif", "--user", USER, "--weights", str(oon_weights), "--device", "cpu"]
    w = json.loads(_ok(runner, [*argv, "--json"]))
    a = [c["post_id"] for c in w["a"]]
    b = [c["post_id"] for c in w["b"]]
    assert w["labels"] == {"a": "defaults", "b": "oon.toml"}
    assert w["entered"] == [p for p in b if p not in a] and w["entered"]
    assert w["left"] == [p for p in a if p not in b]
    assert all({"author_id", "score", "text"} <= set(c) for c in w["b"])
    buf = io.StringIO()
    monkeypatch.setattr(feed_cli, "out", Console(file=buf, width=100))
    _ok(runner, argv)
    text = buf.getvalue()
    assert "A: defaults" in text and "B: oon.toml" in text and "new" in text
    assert f"entered ({len(w['entered'])}): {w['entered'][0]}" in text.replace("\n", " ")


def test_whatif_against_another_checkpoint(runner):
    w = json.loads(_ok(runner, ["whatif", "--user", USER, "--checkpoint-b", BUNDLED.checkpoint,
                                "--device", "cpu", "--json"]))  # fmt: skip
    assert w["labels"]["b"] == "checkpoint"
    assert w["a"] == w["b"] and w["entered"] == w["left"] == w["moved"] == []
    res = runner.invoke(app, ["whatif", "--user", USER])
    assert res.exit_code == 2 and "--checkpoint-b" in res.output


def test_a_saved_retrieval_rescored_equals_rank_with_those_weights(runner, oon_weights):
    saved = _ok(runner, ["retrieve", "--user", USER, "--device", "cpu"])
    filtered = _ok(runner, ["filter"], saved)
    ranked = _ok(runner, ["rank", "--user", USER, "--weights", str(oon_weights), "--top-k", "10",
                          "--json", "--device", "cpu"])  # fmt: skip
    stream = _ok(runner, ["score", "--weights", str(oon_weights), "--device", "cpu"], filtered)
    stream = _ok(runner, ["select", "--top-k", "10"], stream)
    stream = _ok(runner, ["post-filter"], stream)
    assert stream == ranked
    q, cands = parse_stream(stream.splitlines())
    assert len(cands) == 10 and q["params"]["oon_weight_factor"] == 0.05
    default = _ok(runner, ["post-filter"], _ok(runner, ["select"], _ok(
        runner, ["score", "--device", "cpu"], filtered)))  # fmt: skip
    assert default != stream
    shorter = _ok(runner, ["post-filter", "--top-k", "5"], stream)
    assert len(parse_stream(shorter.splitlines())[1]) == 5


def test_a_synthesised_world_ranks_right_away(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("XFEED_CACHE_DIR", str(tmp_path / "cache"))
    w = tmp_path / "w"
    _ok(runner, ["data", "synth", "--out", str(w), "--users", "60", "--seed", "2"])
    users = _ok(runner, ["world", "users", str(w), "--limit", "1", "--json"])
    user = json.loads(users.splitlines()[0])["user_id"]
    res = runner.invoke(app, ["rank", "--user", user, "--world", str(w), "--device", "cpu",
                              "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "building the retrieval corpus" in " ".join(res.stderr.split())  # the progress line
    assert parse_stream(res.stdout.splitlines())[1]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not xfeed's")
    again = runner.invoke(app, ["data", "synth", "--out", str(mine), "--users", "60"])
    assert again.exit_code == 2 and "--force" in again.output
    assert (mine / "notes.txt").read_text() == "not xfeed's"
