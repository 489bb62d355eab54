"""Discoverability: `xfeed params`, nearest-key hints, `xfeed world info|users|check`."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.feed import BUNDLED
from pipeline.params import FeedParams, ParamsError, load_params, param_table, params_from_dict
from world.schema import TABLES, check_world
from xfeed_cli.main import app


def test_params_table_lists_every_switch_and_weight(runner):
    keys = {r["key"] for r in param_table()}
    fields = {f.name for f in dataclasses.fields(FeedParams)} - {"weights"}
    assert fields | {f"weights.{h}" for h in FeedParams().weights} == keys
    res = runner.invoke(app, ["params", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["key"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert rows["weights.favorite"]["default"] == 0.5
    assert rows["weights.favorite"]["action"] == "SERVER_TWEET_FAV"
    assert rows["oon_weight_factor"]["type"] == "float" and rows["oon_weight_factor"]["meaning"]


def test_params_toml_round_trips_and_edits_apply(runner, tmp_path):
    path = tmp_path / "p.toml"
    res = runner.invoke(app, ["params", "--toml", str(path)])
    assert res.exit_code == 0, res.output
    assert load_params(path) == FeedParams()
    text = path.read_text().replace("favorite = 0.5", "favorite = 2.0")
    path.write_text(text)
    assert load_params(path).weights["favorite"] == 2.0
    again = runner.invoke(app, ["params", "--toml", str(path)])
    assert again.exit_code == 2 and "--force" in again.output
    assert path.read_text() == text  # not overwritten
    shown = runner.invoke(app, ["params", "--weights", str(path)])
    assert shown.exit_code == 0 and "p.toml" in shown.stdout


@pytest.mark.parametrize(
    ("data", "hint"),
    [({"weights": {"favourite": 1.0}}, "did you mean 'favorite'"),
     ({"oon_weight": 0.5}, "did you mean 'oon_weight_factor'"),
     ({"zzzzzz": 1}, "see `xfeed params`")],
)  # fmt: skip
def test_unknown_keys_suggest_the_nearest_valid_one(data, hint):
    with pytest.raises(ParamsError, match="unknown") as exc:
        params_from_dict(data)
    assert hint in str(exc.value)


def test_world_info_and_users(runner):
    res = runner.invoke(app, ["world", "info", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["rows"]["users"] == 2000 and info["as_of_ms"] > 0
    assert info["user_ids"][0] <= 1007 <= info["user_ids"][1]
    assert len(info["sample_users"]) == 5
    res = runner.invoke(app, ["world", "users", "--min-engagements", "400", "--limit", "0",
                              "--json"])  # fmt: skip
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert rows and all(r["engagements"] >= 400 for r in rows)
    assert [r["engagements"] for r in rows] == sorted((r["engagements"] for r in rows),
                                                      reverse=True)  # fmt: skip
    assert all(isinstance(r["user_id"], str) for r in rows)
    table = runner.invoke(app, ["world", "users", "--limit", "3"])
    assert table.exit_code == 0 and "engagements" in table.stdout


def test_world_check_accepts_the_bundled_world():
    report = check_world(BUNDLED.world)
    assert report["ok"], report["findings"]
    assert set(report["tables"]) == set(TABLES)


def test_world_check_names_missing_and_mistyped_columns(runner, tmp_path):
    world = tmp_path / "w"
    shutil.copytree(BUNDLED.world, world, ignore=shutil.ignore_patterns("thunder", "*.safetensors"))
    users = pq.read_table(world / "users.parquet").drop_columns(["follower_count"])
    as_text = pa.array([str(x) for x in users.column("user_id").to_pylist()])
    users = users.set_column(users.schema.get_field_index("user_id"), "user_id", as_text)
    pq.write_table(users, world / "users.parquet")
    (world / "impressions.parquet").unlink()
    res = runner.invoke(app, ["world", "check", str(world), "--json"])
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    problems = {(f["table"], f["column"], f["message"].split(" (")[0])
                for f in report["findings"] if f["level"] == "problem"}  # fmt: skip
    assert ("users", "follower_count", "missing") in problems
    assert ("users", "user_id", "wrong type string") in problems
    assert ("impressions", None, "impressions.parquet missing") in problems
    assert not any(f["table"] == "posts" for f in report["findings"] if f["level"] == "problem")
    text = runner.invoke(app, ["world", "check", str(world)])
    assert text.exit_code == 1 and "follower_count" in text.stdout


def test_the_shipped_data_contract_matches_the_schema_checked():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "data.md").read_text()
    for table, columns in TABLES.items():
        section = doc.split(f"### `{table}.parquet`")[1].split("###")[0]
        for c in columns:
            line = next(x for x in section.splitlines() if x.startswith(f"| `{c.name}` |"))
            cells = [x.strip() for x in line.strip("|").split("|")]
            assert cells[2] == ("yes" if c.nullable else "no"), (table, c.name)
            assert cells[1] == str(c.type).replace("<item: string>", "<string>").replace(
                "float", "float32"
            ), (table, c.name)
    assert not re.search(r"\.\./|/specs/", doc)  # stands alone: no path outside the repository


def test_per_user_counts_are_streamed_and_equal_a_whole_table_count(monkeypatch):
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from world import summary

    world = Path(__file__).resolve().parent.parent / "data" / "samples" / "world"
    monkeypatch.setattr(summary, "COUNT_BATCH_ROWS", 5_000)  # many batches, keys split across
    a = summary.user_activity(world)
    eng = pq.read_table(world / "engagements.parquet", columns=["user_id"]).column("user_id")
    want = dict(zip(*np.unique(eng.to_numpy(), return_counts=True), strict=True))
    assert {int(u): int(n) for u, n in zip(a["user_id"], a["engagements"], strict=True) if n} \
        == {int(u): int(n) for u, n in want.items()}  # fmt: skip
    edges = pq.read_table(world / "edges.parquet", columns=["src_user_id", "kind"])
    follows = edges.filter(pc.equal(edges.column("kind"), "follow")).column("src_user_id")
    assert int(a["follows"].sum()) == len(follows)
