"""`xfeed world import`: interaction logs become worlds that follow the data contract."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from phoenix.actions import ActionName as A
from tests.test_world import SCHEMA
from world.importer import SNOWFLAKE_EPOCH_MS, ImportSpec, import_log
from xfeed_cli.main import app

# A MovieLens-shaped log: times in seconds in 1997 (before the snowflake epoch).
RATINGS = """userId,movieId,rating,timestamp
1,10,4.0,852000000
1,20,2.5,852000100
1,30,5.0,852000200
2,10,3.0,852000050
2,30,4.5,852000300
3,40,1.0,852000400
3,10,4.0,852000500
"""
MOVIES = """movieId,title,genres
10,"Heat, The (1995)",Action|Crime
20,Toy Story (1995),Animation|Children
30,Up (2009),Animation
40,Alien (1979),Horror|Sci-Fi
50,Never Rated (2001),Drama
"""


@pytest.fixture
def ml_files(tmp_path):
    (tmp_path / "ratings.csv").write_text(RATINGS)
    (tmp_path / "movies.csv").write_text(MOVIES)
    return tmp_path


def _import(files, out="w"):
    meta = import_log(files / "ratings.csv", files / out, ImportSpec.movielens(),
                      items=files / "movies.csv")  # fmt: skip
    return files / out, meta


def test_imported_world_follows_the_data_contract(ml_files):
    world, meta = _import(ml_files)
    for name, cols in SCHEMA.items():
        assert pq.read_schema(world / f"{name}.parquet").names == cols, name
    assert pq.read_schema(world / "engagements.parquet").field("action").type == "int16"
    on_disk = json.loads((world / "world.json").read_text())
    assert on_disk == meta and meta["imported"] is True
    assert meta["rows"] == {"posts": 4, "users": 4, "edges": 0, "engagements": 11,
                            "impressions": 7}  # fmt: skip


def test_every_interaction_round_trips_to_an_impression_and_engagements(ml_files):
    world, meta = _import(ml_files)
    posts = pq.read_table(world / "posts.parquet")
    title = dict(zip(posts.column("text").to_pylist(), posts.column("post_id").to_pylist(),
                     strict=True))  # fmt: skip
    movie_post = {10: title["Heat, The (1995)"], 20: title["Toy Story (1995)"],
                  30: title["Up (2009)"], 40: title["Alien (1979)"]}  # fmt: skip
    imp = pq.read_table(world / "impressions.parquet").to_pylist()
    got = {(r["user_id"], r["post_id"], r["event_ms"]) for r in imp}
    want = set()
    for line in RATINGS.splitlines()[1:]:
        u, m, _, ts = line.split(",")
        want.add((int(u), movie_post[int(m)], int(ts) * 1000 + meta["time_shift_ms"]))
    assert got == want and all(r["kind"] == "seen" for r in imp)
    eng = pq.read_table(world / "engagements.parquet")
    fav = eng.filter(pc.equal(eng.column("action"), int(A.SERVER_TWEET_FAV)))
    liked = {(1, movie_post[10]), (1, movie_post[30]), (2, movie_post[30]), (3, movie_post[10])}
    assert set(zip(fav.column("user_id").to_pylist(), fav.column("post_id").to_pylist(),
                   strict=True)) == liked  # fmt: skip
    dwelled = eng.filter(pc.equal(eng.column("action"), int(A.CLIENT_TWEET_RECAP_DWELLED)))
    assert dwelled.num_rows == 7


def test_post_ids_are_snowflakes_of_their_creation_time_after_the_shift(ml_files):
    world, meta = _import(ml_files)
    assert meta["time_shift_ms"] > 0 and meta["time_shift_ms"] % 86_400_000 == 0
    assert "shifted" in meta["time_note"]
    posts = pq.read_table(world / "posts.parquet")
    ids = posts.column("post_id").to_numpy()
    created = posts.column("created_ms").to_numpy()
    assert np.array_equal((ids >> 22) + SNOWFLAKE_EPOCH_MS, created)
    assert len(set(ids.tolist())) == len(ids)
    eng = pq.read_table(world / "engagements.parquet")
    first = {}
    for p, t in zip(eng.column("post_id").to_pylist(), eng.column("event_ms").to_pylist(),
                    strict=True):  # fmt: skip
        first[p] = min(first.get(p, t), t)
    for p, c in zip(ids.tolist(), created.tolist(), strict=True):
        assert c < first[p]  # a post exists before anyone engages with it
    assert meta["as_of_ms"] > eng.column("event_ms").to_numpy().max()


def test_item_metadata_becomes_text_and_topics(ml_files):
    world, _ = _import(ml_files)
    posts = pq.read_table(world / "posts.parquet").to_pylist()
    by_text = {p["text"]: p for p in posts}
    assert by_text["Heat, The (1995)"]["topics"] == ["Action", "Crime"]
    assert "Never Rated (2001)" not in by_text  # nobody interacted with it
    catalogue = json.loads((world / "world.json").read_text())["catalogue_author_id"]
    assert {p["author_id"] for p in posts} == {catalogue}


def test_import_is_deterministic_byte_for_byte(ml_files):
    a, ma = _import(ml_files, "a")
    b, mb = _import(ml_files, "b")
    assert ma["content_hash"] == mb["content_hash"]
    for name in SCHEMA:
        assert (a / f"{name}.parquet").read_bytes() == (b / f"{name}.parquet").read_bytes()


def test_string_ids_authors_and_actions_from_a_parquet_log(tmp_path):
    log = pa.table({
        "who": ["ann", "bob", "ann"], "what": ["x", "y", "y"],
        "when": pa.array([1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000], pa.int64()),
        "act": ["server_tweet_reply", "CLIENT_TWEET_CLICK", "server_tweet_fav"],
        "by": ["carol", "carol", "dave"],
    })  # fmt: skip
    pq.write_table(log, tmp_path / "log.parquet")
    spec = ImportSpec(user_col="who", item_col="what", time_col="when", time_unit="ms",
                      action_col="act", author_col="by")  # fmt: skip
    meta = import_log(tmp_path / "log.parquet", tmp_path / "w", spec)
    assert meta["time_shift_ms"] == 0
    users = pq.read_table(tmp_path / "w" / "users.parquet").to_pylist()
    assert {u["screen_name"] for u in users} >= {"ann", "bob"}
    eng = pq.read_table(tmp_path / "w" / "engagements.parquet")
    assert set(eng.column("action").to_pylist()) == {
        int(A.CLIENT_TWEET_RECAP_DWELLED), int(A.SERVER_TWEET_REPLY), int(A.CLIENT_TWEET_CLICK),
        int(A.SERVER_TWEET_FAV)}  # fmt: skip
    assert len(set(eng.column("author_id").to_pylist())) == 2
    user_ids = {u["user_id"] for u in users if u["screen_name"] in ("ann", "bob")}
    assert not user_ids & set(eng.column("author_id").to_pylist())


def test_cli_import_and_its_errors(ml_files, runner):
    res = runner.invoke(app, ["world", "import", str(ml_files / "ratings.csv"), "--items",
                              str(ml_files / "movies.csv"), "--preset", "movielens", "--out",
                              str(ml_files / "cli")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (ml_files / "cli" / "world.json").exists()
    res = runner.invoke(app, ["world", "import", str(ml_files / "ratings.csv"), "--out",
                              str(ml_files / "bad")])  # fmt: skip
    assert res.exit_code == 2
    assert "no column 'user_id'" in res.output and "ratings.csv" in res.output
    assert not (ml_files / "bad").exists()
    res = runner.invoke(app, ["world", "import", str(ml_files / "ratings.csv"), "--preset",
                              "netflix", "--out", str(ml_files / "bad")])  # fmt: skip
    assert res.exit_code == 2 and "movielens" in res.output
