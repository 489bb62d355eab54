"""`xfeed data synth --plant-bias`: off by default (the same bytes), a factor of 1 plants
nothing, follow plants add follows of the topic's accounts, quality plants change engagement,
and a bad spec is one error line."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from world.synth import TOPICS, SynthConfig, parse_plant, synth_world
from xfeed_cli.main import app

TABLES = ("posts", "users", "edges", "engagements", "impressions")


def _world(tmp_path, name, plant=None):
    synth_world(tmp_path / name, SynthConfig(users=40, seed=2, days=1.0, plant_bias=plant))
    return tmp_path / name


def _same(a, b, table):
    return (a / f"{table}.parquet").read_bytes() == (b / f"{table}.parquet").read_bytes()


def test_plants_change_what_they_say_and_nothing_when_off(tmp_path):
    off = _world(tmp_path, "off")
    one = _world(tmp_path, "one", "follow:music:1")
    assert all(_same(off, one, t) for t in TABLES)
    assert "plant_bias" not in (off / "world.json").read_text()  # the bundled world's bytes
    follow = _world(tmp_path, "follow", "follow:music:4")
    edges = [pq.read_table(w / "edges.parquet") for w in (off, follow)]
    assert edges[1].num_rows > edges[0].num_rows
    # the extra edges are follows of accounts whose primary topic is music
    cols = ("src_user_id", "dst_user_id", "kind")
    before = {(s, d) for s, d, _ in zip(*(edges[0].column(c).to_pylist() for c in cols),
                                        strict=True)}  # fmt: skip
    extra = [d for s, d, k in zip(*(edges[1].column(c).to_pylist() for c in cols), strict=True)
             if k == "follow" and (s, d) not in before]  # fmt: skip
    posts = pq.read_table(off / "posts.parquet")
    posts = posts.filter(pc.equal(posts.column("event"), "create"))
    topics = [t[0] for a, t in zip(posts.column("author_id").to_pylist(),
                                   posts.column("topics").to_pylist(), strict=True)
              if a in set(extra)]  # fmt: skip
    # the extra follows go to accounts whose primary topic is music (most of their posts;
    # replies and retweets take their target's topic): far above music's 1/16 overall
    assert extra and topics and topics.count("music") / len(topics) > 0.4
    quality = _world(tmp_path, "quality", "quality:music:3")
    assert _same(off, quality, "edges") and not _same(off, quality, "engagements")


def test_bad_plant_specs_are_refused(runner, tmp_path, monkeypatch):
    assert parse_plant("follow:music:3") == ("follow", TOPICS.index("music"), 3.0)
    assert parse_plant("quality:0:2")[1] == 0
    for bad in (
        "follow:music",
        "push:music:2",
        "follow:jazz:2",
        "follow:music:0",
        "follow:music:x",
    ):
        with pytest.raises(ValueError):
            parse_plant(bad)
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    res = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "w"), "--users", "20",
                              "--plant-bias", "follow:jazz:2"])  # fmt: skip
    assert res.exit_code == 2 and not (tmp_path / "w").exists()
    assert [x for x in res.stderr.splitlines() if x.startswith("error:")][0].count("jazz") == 1
