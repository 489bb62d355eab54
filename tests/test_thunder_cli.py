"""`xfeed thunder build|stats|query`: outputs, exit codes, atomic writes."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.candidates import parse_stream
from tests.conftest import write_post_log
from tests.test_thunder import NOW, delete, post
from xfeed_cli.main import app


@pytest.fixture
def log(tmp_path):
    events = [
        post(i, 10 + i % 4, i * 0.7, video_duration_ms=7000 if i % 5 == 0 else None)
        for i in range(1, 40)
    ] + [delete(3, 0.5), post(99, 10, 60)]
    return write_post_log(tmp_path / "posts.parquet", events)


def _world(tmp_path, follows):
    world = tmp_path / "world"
    world.mkdir()
    (world / "world.json").write_text(json.dumps({"as_of_ms": NOW}))
    pq.write_table(pa.table({"user_id": pa.array([1, 2], pa.int64())}), world / "users.parquet")
    pq.write_table(pa.table({
        "src_user_id": pa.array([1] * len(follows) + [2], pa.int64()),
        "dst_user_id": pa.array([*follows, 10], pa.int64()),
        "kind": ["follow"] * len(follows) + ["block"],
        "created_ms": pa.array(range(len(follows) + 1), pa.int64()),
    }), world / "edges.parquet")  # fmt: skip
    return world


def test_build_stats_and_query_round_trip(tmp_path, log, runner):
    snap = tmp_path / "snap"
    res = runner.invoke(
        app, ["thunder", "build", "--posts", str(log), "--out", str(snap), "--now", str(NOW)]
    )
    assert res.exit_code == 0, res.output
    assert "38 posts" in res.stderr  # 40 creates, minus deleted id 3, minus the 60 h old one
    res = runner.invoke(app, ["thunder", "stats", str(snap), "--json"])
    stats = json.loads(res.stdout)
    assert stats["posts"] == 38 and stats["deletes"] == 1 and stats["dropped"]["expired"] == 1
    res = runner.invoke(app, ["thunder", "stats", str(snap)])
    assert "age histogram" in res.stdout
    res = runner.invoke(
        app,
        [
            "thunder",
            "query",
            "--snapshot",
            str(snap),
            "--user",
            "1",
            "--following",
            "10,11",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    query, cands = parse_stream(res.stdout.splitlines())
    assert query["user_id"] == "1" and len(cands) == 19
    assert all(c.in_network and c.author_id in (10, 11) for c in cands)
    assert [c.created_ms for c in cands] == sorted((c.created_ms for c in cands), reverse=True)


def test_query_reads_the_following_list_from_a_world(tmp_path, log, runner):
    snap = tmp_path / "snap"
    runner.invoke(
        app, ["thunder", "build", "--posts", str(log), "--out", str(snap), "--now", str(NOW)]
    )
    world = _world(tmp_path, [12])
    res = runner.invoke(
        app,
        [
            "thunder",
            "query",
            "--snapshot",
            str(snap),
            "--user",
            "1",
            "--world",
            str(world),
            "--video",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    _, cands = parse_stream(res.stdout.splitlines())
    assert {c.author_id for c in cands} == {12} and all(c.has_video for c in cands)
    res = runner.invoke(
        app, ["thunder", "query", "--snapshot", str(snap), "--user", "777", "--world", str(world)]
    )
    assert res.exit_code == 2 and "unknown user 777" in res.stderr


def test_default_now_comes_from_world_json(tmp_path, runner):
    world = _world(tmp_path, [10])
    log = write_post_log(world / "posts.parquet", [post(1, 10, 1), post(2, 10, -1)])
    res = runner.invoke(
        app, ["thunder", "build", "--posts", str(log), "--out", str(tmp_path / "s")]
    )
    assert res.exit_code == 0, res.output
    stats = json.loads(
        runner.invoke(app, ["thunder", "stats", str(tmp_path / "s"), "--json"]).stdout
    )
    assert stats["as_of_ms"] == NOW and stats["posts"] == 1 and stats["dropped"]["future"] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--posts", "{missing}"],
        ["--posts", "{notparquet}"],
        ["--posts", "{log}", "--retention", "forever"],
        ["--posts", "{log}", "--now", "tomorrow-ish"],
    ],
)
def test_bad_build_input_exits_2_and_writes_nothing(tmp_path, log, runner, args):
    (tmp_path / "bad.parquet").write_text("not parquet")
    paths = {
        "missing": tmp_path / "nope.parquet",
        "notparquet": tmp_path / "bad.parquet",
        "log": log,
    }
    argv = ["thunder", "build", "--out", str(tmp_path / "snap")]
    argv += [a.format(**paths) for a in args]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert len([x for x in res.stderr.splitlines() if x.startswith("error:")]) == 1
    assert not (tmp_path / "snap").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".snap")]


@pytest.mark.parametrize(
    "extra",
    [["--following", "1,x"], ["--following", "0,5"], [], ["--following", "1", "--world", "w"]],
)
def test_bad_query_input_exits_2(tmp_path, log, runner, extra):
    snap = tmp_path / "snap"
    runner.invoke(app, ["thunder", "build", "--posts", str(log), "--out", str(snap)])
    res = runner.invoke(app, ["thunder", "query", "--snapshot", str(snap), "--user", "1", *extra])
    assert res.exit_code == 2 and "error:" in res.stderr


def test_query_on_a_missing_snapshot_exits_2(tmp_path, runner):
    res = runner.invoke(
        app,
        [
            "thunder",
            "query",
            "--snapshot",
            str(tmp_path / "none"),
            "--user",
            "1",
            "--following",
            "2",
        ],
    )
    assert res.exit_code == 2 and "no such snapshot" in res.stderr


def test_the_bundled_snapshot_is_what_the_readme_command_builds(tmp_path, runner, monkeypatch):
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    bundled = repo / "data" / "samples" / "world" / "thunder"
    monkeypatch.chdir(repo)  # the README command's relative --posts path is in the manifest
    res = runner.invoke(app, ["thunder", "build", "--posts", "data/samples/world/posts.parquet",
                              "--out", str(tmp_path / "snap")])  # fmt: skip
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in bundled.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "snap").iterdir())
    assert ".xfeed-output" in names and "content_sha256" in json.loads(
        (bundled / "manifest.json").read_text())  # fmt: skip
    for name in names:  # same bytes: content hash, marker, no timings
        assert (bundled / name).read_bytes() == (tmp_path / "snap" / name).read_bytes(), name
