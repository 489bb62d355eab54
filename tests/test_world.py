"""Synthetic worlds, the time split, metrics, training and evaluation (on tiny worlds)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from checkpoints.formats import load_model
from training import metrics
from training.examples import ranker_examples, retrieval_examples
from training.steps import TrainConfig
from training.trainer import default_train_config, model_config, train_model
from world.sequences import load_sequences, split_points
from world.synth import SynthConfig, synth_world
from xfeed_cli.main import app

SCHEMA = {
    "posts": ["event", "event_ms", "post_id", "author_id", "created_ms", "in_reply_to_post_id",
              "in_reply_to_user_id", "conversation_id", "source_post_id", "source_user_id",
              "quoted_post_id", "quoted_user_id", "video_duration_ms", "has_media",
              "subscription_only", "text", "language", "topics", "labels"],
    "users": ["user_id", "screen_name", "created_ms", "follower_count", "is_nsfw",
              "muted_keywords", "allow_for_you", "country", "language"],
    "edges": ["src_user_id", "dst_user_id", "kind", "created_ms"],
    "engagements": ["user_id", "post_id", "author_id", "action", "event_ms", "dwell_s",
                    "product_surface"],
    "impressions": ["user_id", "post_id", "kind", "event_ms"],
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "w"
    synth_world(out, SynthConfig(users=120, seed=3))
    return out


def test_synth_is_deterministic_byte_for_byte(tmp_path):
    a = synth_world(tmp_path / "a", SynthConfig(users=40, seed=7))
    b = synth_world(tmp_path / "b", SynthConfig(users=40, seed=7))
    c = synth_world(tmp_path / "c", SynthConfig(users=40, seed=8))
    assert a["content_hash"] == b["content_hash"] != c["content_hash"]
    for name in SCHEMA:
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (
            tmp_path / "b" / f"{name}.parquet"
        ).read_bytes()


def test_world_tables_follow_the_data_contract(tiny_world):
    for name, cols in SCHEMA.items():
        schema = pq.read_schema(tiny_world / f"{name}.parquet")
        assert schema.names == cols, name
    assert pq.read_schema(tiny_world / "engagements.parquet").field("action").type == "int16"
    meta = json.loads((tiny_world / "world.json").read_text())
    assert {"as_of_ms", "seed", "rows", "content_hash"} <= meta.keys()


def test_world_has_data_for_every_filter_and_scorer(tiny_world):
    posts = pq.read_table(tiny_world / "posts.parquet")
    creates = posts.filter(pc.equal(posts.column("event"), "create"))
    col = lambda n: creates.column(n)  # noqa: E731
    assert pc.sum(pc.is_valid(col("in_reply_to_post_id"))).as_py() > 0
    assert pc.sum(pc.is_valid(col("source_post_id"))).as_py() > 0
    assert pc.sum(pc.is_valid(col("quoted_post_id"))).as_py() > 0
    video = col("video_duration_ms").drop_null().to_numpy()
    assert (video < 5000).any() and (video > 10000).any()
    assert pc.sum(col("subscription_only")).as_py() > 0
    assert posts.filter(pc.equal(posts.column("event"), "delete")).num_rows > 0
    labels = {x for row in col("labels").to_pylist() for x in row}
    assert labels & {"spam", "violence", "gore"}
    kinds = set(pq.read_table(tiny_world / "edges.parquet").column("kind").to_pylist())
    assert kinds == {"follow", "block", "mute", "subscribe"}
    users = pq.read_table(tiny_world / "users.parquet")
    assert any(users.column("muted_keywords").to_pylist())
    imp = set(pq.read_table(tiny_world / "impressions.parquet").column("kind").to_pylist())
    assert imp == {"seen", "served"}
    actions = set(pq.read_table(tiny_world / "engagements.parquet").column("action").to_pylist())
    assert {
        1,
        4,
        6,
        11,
        12,
        17,
    } <= actions  # fav, reply, retweet, dwelled, not dwelled, not interested


def test_split_never_puts_a_held_out_item_in_training(tiny_world):
    cfg = model_config("ranker")
    seq = load_sequences(tiny_world, cfg.num_actions)
    split = split_points(seq)
    from phoenix import hashing

    held_rows = set()
    for u in range(len(seq.user_ids)):
        for i in range(split[u], seq.offsets[u + 1]):
            held_rows.add((u, tuple(hashing.item_rows(seq.post_id[i], cfg.hash).tolist())))
    ex = ranker_examples(seq, cfg, split)
    user_of = {int(hashing.user_rows(uid, cfg.hash)[0]): u for u, uid in enumerate(seq.user_ids)}
    for k in range(len(ex["labels"])):
        u = user_of[int(ex["user_hashes"][k, 0])]
        for rows in (ex["candidate_post_hashes"][k], ex["history_post_hashes"][k]):
            for r in rows[rows[:, 0] != 0]:  # both hashes: a collision of both is negligible
                assert (u, tuple(r.tolist())) not in held_rows
    rex = retrieval_examples(seq, cfg, split)
    for k in range(len(rex["pos_post"])):
        u = user_of[int(rex["user_hashes"][k, 0])]
        assert (u, tuple(rex["pos_post"][k].tolist())) not in held_rows


def test_metrics_against_hand_computed_values():
    assert metrics.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert metrics.auc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)  # ties count half
    assert np.isnan(metrics.auc([0.1, 0.2], [1, 1]))
    assert metrics.log_loss([0.9, 0.2], [1, 0]) == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2)
    # relevant at ranks 2 and 3: DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3)
    ndcg = metrics.ndcg_at_k(np.array([3.0, 2.0, 1.0]), np.array([0, 1, 1]), 10)
    assert ndcg == pytest.approx((1 / np.log2(3) + 0.5) / (1 + 1 / np.log2(3)))
    assert metrics.hit_rate_at_k(np.array([3.0, 2.0, 1.0]), np.array([0, 0, 1]), 2) == 0.0
    assert metrics.hit_rate_at_k(np.array([3.0, 2.0, 1.0]), np.array([0, 0, 1]), 3) == 1.0
    assert metrics.recall_at_k(np.array([5, 6, 7]), np.array([6, 9])) == 0.5


def test_a_few_training_steps_lower_the_loss(tiny_world, tmp_path):
    tc = TrainConfig(steps=60, batch_size=16, learning_rate=1e-2)
    meta = train_model("ranker", tiny_world, tmp_path / "ck", train_config=tc)
    assert meta["final_loss"] < meta["initial_loss"] * 0.8
    meta = train_model("retrieval", tiny_world, tmp_path / "ck", train_config=tc)
    assert meta["final_loss"] < meta["initial_loss"]
    cfg = json.loads((tmp_path / "ck" / "ranker" / "config.json").read_text())
    assert cfg["provenance"]["world_hash"] and cfg["provenance"]["steps"] == 60


def test_ranker_default_keeps_post_ids_penalised_and_drops_user_ids(tiny_world, tmp_path):
    tc = dataclasses.replace(default_train_config("ranker"), steps=60, batch_size=16,
                             learning_rate=1e-2)  # fmt: skip
    assert set(tc.unused_tables()) == {"user"} and tc.id_l2 > 0 and tc.post_dropout < 1
    assert tc.valid_fraction > 0 and tc.select_by == "auc"
    meta = train_model("ranker", tiny_world, tmp_path / "ck", train_config=tc)
    assert meta["final_loss"] < meta["initial_loss"] * 0.8
    assert meta["selected"]["by"] == "auc" and meta["selected"]["step"] == 60
    ckpt, _ = load_model(tmp_path / "ck", "ranker")
    assert not ckpt.tables.user.any() and ckpt.tables.item.any()
    assert ckpt.tables.author.any() and ckpt.config.right_anchored_rope
    assert ckpt.config.history_seq_len == 128


def test_synth_with_fewer_posts_than_impressions_per_user(tmp_path, runner):
    res = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "w"), "--users", "30",
                              "--posts-per-user", "1", "--days", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    posts = pq.read_table(tmp_path / "w" / "posts.parquet")
    imps = pq.read_table(tmp_path / "w" / "impressions.parquet")
    assert 0 < posts.num_rows < 60 and imps.num_rows > 0


def test_cli_synth_train_index_eval(tmp_path, runner):
    w, ck = tmp_path / "w", tmp_path / "ck"
    assert runner.invoke(app, ["data", "synth", "--out", str(w), "--users", "60", "--seed", "1"]
                         ).exit_code == 0  # fmt: skip
    for model in ("ranker", "retrieval"):
        res = runner.invoke(app, ["train", model, "--world", str(w), "--out", str(ck),
                                  "--steps", "5", "--device", "cpu"])  # fmt: skip
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["index", "build", "--checkpoint", str(ck), "--world", str(w)])
    assert res.exit_code == 0 and (w / "corpus.safetensors").exists()
    res = runner.invoke(app, ["eval", "--checkpoint", str(ck), "--world", str(w), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert {"model", "random", "popularity", "recency"} == set(report["ranker"]["ranking"])
    assert "author-follow" in report["retrieval"]["recall"]
    assert report["ranker"]["protocol"]["split"].startswith("last 20%")
    res = runner.invoke(app, ["eval", "--checkpoint", str(ck), "--world", str(w)])
    assert "NDCG@10" in res.stdout and "recall@100" in res.stdout
    heads = {h["action"]: h["head"] for h in report["ranker"]["heads"]}
    assert heads["SERVER_TWEET_FAV"] == "favorite"  # one name per head, proto name beside it
    assert "favorite" in res.stdout and "SERVER_TWEET_FAV" in res.stdout
    out = tmp_path / "ab.json"
    res = runner.invoke(app, ["eval", "--checkpoint", str(ck), "--checkpoint", str(ck),
                              "--world", str(w), "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Δ AUC" in res.stdout and "+0.000" in res.stdout
    both = json.loads(out.read_text())
    assert both["checkpoints"] == [str(ck), str(ck)] and both["reports"][0] == report


def test_ranker_example_histories_are_built_on_demand_and_equal_the_stacked_arrays(tiny_world):
    from training.examples import HISTORY_FIELDS, _history_block

    cfg = model_config("ranker")
    seq = load_sequences(tiny_world, cfg.num_actions)
    split = split_points(seq)
    ex = ranker_examples(seq, cfg, split)
    blocks = ex[HISTORY_FIELDS[0]].blocks
    n = len(ex["labels"])
    assert len(ex["history_actions"]) == n and n > 10
    full = {k: np.stack([_history_block(seq, cfg, int(blocks.lo[e]), int(blocks.cut[e]))[k]
                         for e in range(n)]) for k in HISTORY_FIELDS}  # fmt: skip
    idx = np.array([3, 0, n - 1, 3])
    for k in HISTORY_FIELDS:
        np.testing.assert_array_equal(ex[k][idx], full[k][idx])
        np.testing.assert_array_equal(ex[k][2:7], full[k][2:7])
        np.testing.assert_array_equal(ex[k][5], full[k][5])
        assert ex[k][idx].dtype == full[k].dtype
    # the history ends right before the candidates: its last item is the one before the cut
    e = int(np.flatnonzero(blocks.cut - blocks.lo >= 2)[0])
    last = int(min(blocks.cut[e] - blocks.lo[e], cfg.history_seq_len)) - 1
    assert ex["history_post_hashes"][e][last].tolist() == hashing_rows(seq, cfg, blocks.cut[e] - 1)


def hashing_rows(seq, cfg, i):
    from phoenix import hashing

    return hashing.item_rows(np.array([seq.post_id[i]]), cfg.hash)[0].astype(np.int32).tolist()


def test_retrieval_bounds_name_each_scorer_with_a_recall(tiny_world):
    from benchmarks.retrieval_bounds import bounds

    got = bounds(tiny_world)
    assert list(got)[:3] == ["author-follow", "follows, no time", "history authors"]
    assert len(got) == 5 and all(0.0 <= v <= 1.0 for v in got.values())


def test_retrieval_slots_agree_with_the_eval_and_split_the_top_100(tiny_world, tmp_path):
    from benchmarks.retrieval_slots import NEW_SLOTS, slots
    from training.evaluation import evaluate_retrieval

    tc = TrainConfig(steps=20, batch_size=16, post_dropout=0.8)
    train_model("retrieval", tiny_world, tmp_path / "ck", train_config=tc)
    got = slots(tmp_path / "ck", tiny_world)
    want = evaluate_retrieval(tmp_path / "ck", tiny_world)["recall"]["model"]
    assert got["model recall@100"] == pytest.approx(want, abs=1e-9)  # the eval's protocol
    assert 0.0 < got["held-out favorites new share"] < 1.0
    assert 0.0 <= got["model top 100 new share"] <= 1.0
    mixed = [got[f"recall@100, best {a} new + best {100 - a} older"] for a in NEW_SLOTS]
    assert all(0.0 <= v <= 1.0 for v in mixed) and len(set(mixed)) > 1


def test_ranker_bounds_score_held_out_items_with_the_generators_truth(tiny_world):
    from benchmarks.ranker_bounds import bounds

    got = bounds(tiny_world)
    aucs = {
        k: v
        for k, v in got.items()
        if k not in ("held-out items", "topic differs from the author's")
    }
    assert list(aucs) == [
        "oracle",
        "post topic, author quality",
        "author level",
        "author level, retweets as their source",
        "author level x post quality",
    ]
    assert got["oracle"] > 0.6 and all(0.0 <= v <= 1.0 for v in aucs.values())
    assert got["held-out items"] > 0 and 0.0 < got["topic differs from the author's"] < 1.0


def test_retrieval_bounds_oracle_replays_the_generator_or_refuses(tiny_world, tmp_path):
    import shutil

    from benchmarks.retrieval_bounds import bounds

    got = bounds(tiny_world, oracle=True)
    assert list(got)[5:] == ["oracle, author level", "oracle, author level + history author shares",
                             "oracle, author level + follows", "oracle, post level"]  # fmt: skip
    assert all(0.0 <= v <= 1.0 for v in got.values())
    other = tmp_path / "w"
    shutil.copytree(tiny_world, other)
    meta = json.loads((other / "world.json").read_text())
    meta["params"]["seed"] += 1  # its posts are no longer the replay of its params
    (other / "world.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not the replay"):
        bounds(other, oracle=True)
