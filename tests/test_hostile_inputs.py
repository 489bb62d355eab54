"""Hostile candidate JSONL, world tables and command-line values: one error line naming the file
(and line) and exit 2, or a correct result — never a traceback, a hang or an absurd allocation."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.candidates import CandidateStreamError, parse_stream
from tests.conftest import REPO
from world.tables import WorldError, read_table, read_world_json
from xfeed_cli.main import app

QUERY = '{"query": {"user_id": "1007", "now_ms": 1784592000000}}'
GOOD = '{"post_id": "11", "author_id": "12", "created_ms": 1784500000000, "score": 0.5}'


def _one_error(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "Traceback" not in res.output
    return lines[0]


@pytest.mark.parametrize(
    "line, needle",
    [
        ('{"post_id": "11", "author_id": "12", "created_ms": "yesterday"}', "created_ms must be"),
        ('{"post_id": "abc", "author_id": "12"}', "post_id must be"),
        ('{"post_id": "1' + "0" * 30 + '", "author_id": "12"}', "post_id must be"),
        ('{"post_id": 1' + "0" * 5000 + ', "author_id": 12}', "number too large"),
        ('{"post_id": "11", "author_id": "12", "score": NaN}', "NaN is not a JSON number"),
        ('{"post_id": "11", "author_id": "12", "score": Infinity}', "Infinity is not"),
        ('{"post_id": "11", "author_id": "12", "probs": [1, 2]}', "probs must map"),
        ('{"post_id": "11", "author_id": "12", "probs": {"fav": 1e999}}', "probs must map"),
        ('{"post_id": "11", "author_id": "12", "labels": "spam"}', "labels must be a list"),
        ('{"post_id": "11", "author_id": "12", "has_video": 1}', "has_video must be"),
        ('{"post_id": "11", "author_id": "12", "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
         "nested too deeply"),
    ],
)  # fmt: skip
def test_bad_candidate_lines_name_the_line(line, needle):
    with pytest.raises(CandidateStreamError, match=needle) as info:
        parse_stream([QUERY, GOOD, line])
    assert str(info.value).startswith("line 3")


def test_a_valid_stream_parses_and_output_is_always_json(tmp_path):
    q, cands = parse_stream([QUERY, GOOD])
    assert cands[0].post_id == 11 and cands[0].score == 0.5


def test_fifo_and_directory_inputs_are_refused_without_hanging(tmp_path, runner):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad in (fifo, tmp_path):
        line = _one_error(runner.invoke(app, ["select", "--in", str(bad)]))
        assert str(bad) in line


def test_world_json_as_of_out_of_range_is_refused(tmp_path):
    (tmp_path / "world.json").write_text(json.dumps({"as_of_ms": 1e30}))
    with pytest.raises(WorldError, match="as_of_ms must be an integer"):
        read_world_json(tmp_path)
    (tmp_path / "world.json").write_text("[1]")
    with pytest.raises(WorldError, match="expected a JSON object"):
        read_world_json(tmp_path)


def test_world_tables_missing_or_mistyped_columns_are_named(tmp_path):
    pq.write_table(pa.table({"user_id": ["a", "b"]}), tmp_path / "users.parquet")
    with pytest.raises(WorldError, match="column 'user_id' must be integer"):
        read_table(tmp_path, "users", ["user_id"])
    with pytest.raises(WorldError, match="missing column"):
        read_table(tmp_path, "users", ["follower_count"])
    (tmp_path / "edges.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(WorldError, match="edges.parquet"):
        read_table(tmp_path, "edges")


def test_only_the_needed_columns_are_read(tmp_path, monkeypatch):
    import world.tables as tables

    seen = []
    real = tables.read_parquet

    def spy(path, columns=None):
        seen.append(columns)
        return real(path, columns)

    monkeypatch.setattr(tables, "read_parquet", spy)
    from world.data import WorldData

    WorldData(REPO / "data" / "samples" / "world")
    assert seen and all(cols is not None for cols in seen)
    assert all("screen_name" not in cols and "bio" not in cols for cols in seen)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["rank", "--user", "100000000000000000000"], "--user"),
        (["rank", "--user", "0"], "--user"),
        (["rank", "--user", "1007", "--now", "99999999999999999999"], "out of range"),
        (["thunder", "build", "--posts", "data/samples/world/posts.parquet", "--out", "/tmp/never",
          "--retention", "99999999999999d"], "duration"),
        (["ckpt", "fake", "--out", "/tmp/never", "--vocab", "1000000000000"], "--vocab"),
        (["data", "synth", "--out", "/tmp/never", "--users", "1000000000"], "--users"),
    ],
)  # fmt: skip
def test_out_of_range_values_are_refused_at_the_edge(argv, needle):
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert needle in res.output
    assert not os.path.exists("/tmp/never")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    cut=st.one_of(st.just(1.0), st.floats(0, 1)),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 127)), max_size=4),
)
def test_fuzzed_candidate_streams_exit_0_or_2(tmp_path_factory, cut, flips):
    root = tmp_path_factory.mktemp("jsonl")
    lines = [QUERY, GOOD, GOOD.replace('"11"', '"13"')]
    data = bytearray("\n".join(lines).encode())
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    data = data[: int(len(data) * cut)] if cut < 1 else data
    src = root / "in.jsonl"
    src.write_bytes(bytes(data))
    res = CliRunner().invoke(app, ["select", "--in", str(src), "--out", str(root / "out.jsonl")])
    assert res.exit_code in (0, 2), res.output
    assert "Traceback" not in res.output
    if res.exit_code == 0:
        for line in (root / "out.jsonl").read_text().splitlines():
            json.loads(line)  # valid JSON, no NaN/Infinity
    assert sorted(p.name for p in root.iterdir()) in (["in.jsonl"], ["in.jsonl", "out.jsonl"])


def test_a_single_training_step_has_a_valid_schedule():
    import dataclasses

    import jax.numpy as jnp

    from training.steps import TrainConfig, _optimizer

    opt = _optimizer(dataclasses.replace(TrainConfig(), steps=1))
    params = {"w": jnp.ones(3)}
    updates, _ = opt.update({"w": jnp.ones(3)}, opt.init(params), params)
    assert bool(jnp.isfinite(updates["w"]).all())


@pytest.mark.parametrize("argv", [["world", "info"], ["world", "check"]])
def test_a_fifo_world_table_is_refused_without_hanging(argv, tmp_path, runner):
    world = tmp_path / "w"
    shutil.copytree(
        REPO / "data" / "samples" / "world",
        world,
        ignore=shutil.ignore_patterns("thunder", "*.safetensors"),
    )
    (world / "users.parquet").unlink()
    os.mkfifo(world / "users.parquet")
    res = runner.invoke(app, [*argv, str(world)])
    assert res.exit_code in (1, 2) and "Traceback" not in res.output
    assert "users.parquet" in res.output and "regular file" in res.output


@pytest.mark.parametrize("what", ["file", "link", "bad_run_json"])
def test_a_population_output_that_is_not_a_run_directory_is_refused(what, tmp_path, runner):
    out = tmp_path / "o"
    argv = ["rank", "--users", "1007", "--out", str(out), "--device", "cpu"]
    if what == "file":
        out.write_text("mine\n")
    elif what == "link":
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
    else:
        out.mkdir()
        (out / "run.json").write_text("[1, 2")
        argv.append("--resume")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    line = _one_error(runner.invoke(app, argv))
    assert {"file": "is a file", "link": "symbolic link", "bad_run_json": "run.json"}[what] in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_candidate_stream_errors_name_the_file(tmp_path, runner):
    src = tmp_path / "in.jsonl"
    src.write_text("")
    assert f"{src}: empty candidate stream" in _one_error(
        runner.invoke(app, ["select", "--in", str(src)])
    )
    src.write_text(QUERY + "\n" + GOOD.replace("0.5", "NaN") + "\n")
    assert f"{src}: line 2" in _one_error(runner.invoke(app, ["select", "--in", str(src)]))


def test_an_import_header_of_binary_garbage_is_shown_escaped(tmp_path, runner):
    log = tmp_path / "log.csv"
    log.write_bytes(bytes(range(256)) * 4)
    line = _one_error(
        runner.invoke(app, ["world", "import", str(log), "--out", str(tmp_path / "w")])
    )
    assert "no column 'user_id'" in line and line.isprintable() and len(line) < 1200
