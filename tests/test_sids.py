"""Post semantic ids (phoenix.sids): codes from topics, the model input, one path for serving,
`xfeed eval` and training, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.compute as pc
import pytest

from checkpoints.formats import load_model, save_xfeed
from phoenix.config import ModelType, PhoenixConfig
from phoenix.inputs import UserHistory
from phoenix.runtime import Ranker
from phoenix.sids import PostSids, build_vocab, topic_codes
from tests.conftest import tiny_checkpoint
from world.sequences import attach_post_inputs, load_sequences, post_topics
from world.tables import read_table

SID_KEYS = ("sid_levels", "sid_codebook", "sid_topics")


def test_sid_codes_from_topics_by_hand():
    # b on 3 posts, a on 2, c on 1: the vocabulary keeps the 2 most frequent
    assert build_vocab(np.array(["b", "a", "b", "c", "a", "b"]), 2) == ("b", "a")
    assert build_vocab(np.array(["z", "y"]), 5) == ("y", "z")  # ties by name
    # posts: [b, c], [], [a, b, a]; level k = the k-th topic's code, 0 = none / unknown
    codes = topic_codes(np.array(["b", "c", "a", "b", "a"]), np.array([0, 2, 2, 5]), ("b", "a"), 2)
    np.testing.assert_array_equal(codes, [[1, 0], [0, 0], [2, 1]])
    sids = PostSids.of(np.array([30, 10, 20]), codes)
    np.testing.assert_array_equal(sids.codes_of(np.array([10, 0, 99, 30, 20])),
                                  [[0, 0], [0, 0], [0, 0], [1, 0], [2, 1]])  # fmt: skip
    assert sids.codes_of(np.zeros((2, 3), np.int64)).shape == (2, 3, 2)


def test_post_topics_and_retweet_sources_come_from_the_posts_table(sid_world):
    world, _ = sid_world
    ids, values, offsets = post_topics(world)
    posts = read_table(world, "posts", ["event", "post_id", "topics", "source_post_id",
                                        "source_user_id"])  # fmt: skip
    creates = posts.filter(pc.equal(posts.column("event"), "create"))
    assert ids.tolist() == creates.column("post_id").to_pylist()
    got = [values[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    assert got == [t or [] for t in creates.column("topics").to_pylist()]
    cfg = load_model(sid_world[1], ModelType.RANKER)[0].config
    seq = attach_post_inputs(load_sequences(world, 64), world, cfg)
    rt = creates.filter(pc.is_valid(creates.column("source_post_id"))).slice(0, 3).to_pylist()
    assert rt, "the synthetic world has retweets"
    posts_, authors = seq.as_served(np.array([r["post_id"] for r in rt] + [ids[0]]),
                                    np.array([7, 7, 7, 8][: len(rt) + 1]))  # fmt: skip
    assert posts_.tolist() == [r["source_post_id"] for r in rt] + [ids[0]]
    assert authors.tolist() == [r["source_user_id"] for r in rt] + [8]


def test_a_config_without_sids_writes_the_config_json_it_wrote_before():
    cfg = tiny_checkpoint("ranker").config
    data = cfg.to_dict()
    assert not set(SID_KEYS) & set(data)  # existing checkpoints' config.json: the same bytes
    assert PhoenixConfig.from_dict(data) == cfg
    on = cfg.replace(sid_levels=2, sid_codebook=4, sid_topics=("x", "y"))
    assert PhoenixConfig.from_dict(json.loads(json.dumps(on.to_dict()))) == on
    with pytest.raises(ValueError):
        cfg.replace(sid_levels=1, sid_codebook=1, sid_topics=("x", "y"))  # more than the codebook


def test_checkpoint_round_trip_keeps_the_sid_fields(tmp_path):
    ckpt = tiny_checkpoint("ranker", sid_levels=2, sid_codebook=8, sid_topics=("a", "b", "c"))
    assert ckpt.params["phoenix_model/sid_embedding_table"].shape == (2 * 9, ckpt.config.emb_size)
    save_xfeed(tmp_path / "ranker", ckpt, {"source": "test"})
    back, _ = load_model(tmp_path / "ranker", ModelType.RANKER)
    assert back.config == ckpt.config and back.config.sid_topics == ("a", "b", "c")
    for name, value in ckpt.params.items():
        np.testing.assert_array_equal(back.params[name], value)


def _history() -> UserHistory:
    rng = np.random.default_rng(0)
    return UserHistory(user_id=5, post_ids=np.arange(101, 109, dtype=np.int64),
                       author_ids=np.arange(1, 9, dtype=np.int64) % 3 + 1,
                       actions=(rng.random((8, 19)) < 0.2).astype(np.float32))  # fmt: skip


def test_without_sids_the_ranker_ignores_any_post_lookup():
    ckpt = tiny_checkpoint("ranker", fprop_dtype="float32")
    assert not any("sid" in name for name in ckpt.params)
    posts = np.array([11, 12, 13], np.int64)
    sids = PostSids.of(np.array([11, 12, 101]), np.array([[1], [2], [3]]))
    plain = Ranker(ckpt).rank(_history(), posts, posts % 5 + 1)
    np.testing.assert_array_equal(Ranker(ckpt, sids=sids).rank(_history(), posts, posts % 5 + 1),
                                  plain)  # fmt: skip


@pytest.mark.parametrize("path", ["reference", "cached"])
def test_with_sids_a_candidates_score_depends_on_its_topics(path):
    ckpt = tiny_checkpoint("ranker", fprop_dtype="float32", sid_levels=1, sid_codebook=4,
                           sid_topics=("a", "b"))  # fmt: skip
    with pytest.raises(ValueError, match="semantic ids"):
        Ranker(ckpt)  # a SID model without the world's post topics is refused
    posts = np.array([11, 12], np.int64)
    authors = np.array([3, 3], np.int64)

    def probs(codes: dict[int, int]) -> np.ndarray:
        ids = np.array(sorted(codes), np.int64)
        sids = PostSids.of(ids, np.array([[codes[i]] for i in ids.tolist()]))
        return Ranker(ckpt, path=path, sids=sids).rank(_history(), posts, authors)

    base = probs({11: 1, 12: 1})
    other = probs({11: 2, 12: 1})  # post 11's topic changed
    assert not np.allclose(base[0], other[0])
    np.testing.assert_allclose(base[1], other[1], rtol=1e-6, atol=1e-7)  # isolated candidates
    missing = probs({12: 1})  # no topic for 11: code 0
    assert not np.allclose(base[0], missing[0])
    history_topic = probs({11: 1, 12: 1, 101: 2})  # a history post's topic
    assert not np.allclose(base, history_topic)


def test_serving_and_eval_score_a_post_alike_topics_and_retweets_included(sid_world):
    from pipeline import feed  # noqa: PLC0415
    from pipeline.candidates import PostCandidate  # noqa: PLC0415
    from pipeline.columns import Cands  # noqa: PLC0415
    from pipeline.query import FeedQuery, Resources  # noqa: PLC0415
    from pipeline.scorers import PhoenixScorer  # noqa: PLC0415
    from training.evaluation import user_history  # noqa: PLC0415

    world, ck = sid_world
    ckpt = load_model(ck, ModelType.RANKER)[0]
    cfg = ckpt.config
    assert cfg.sid_levels == 1 and len(cfg.sid_topics) > 1  # the synthetic default reads SIDs
    # xfeed eval's path: the world's sequences, the eval's history and candidates as served
    seq = attach_post_inputs(load_sequences(world, cfg.num_actions), world, cfg)
    u = int(np.argmax(np.diff(seq.offsets)))
    hi = int(seq.offsets[u + 1])
    history = user_history(seq, u, hi - 5, cfg.history_seq_len)
    posts = read_table(world, "posts", ["event", "post_id", "author_id", "source_post_id",
                                        "source_user_id"])  # fmt: skip
    posts = posts.filter(pc.equal(posts.column("event"), "create")).to_pylist()
    rts = [p for p in posts if p["source_post_id"]][:3]
    plain = [p for p in posts if not p["source_post_id"]][:5]
    cand = rts + plain
    ids = np.array([p["post_id"] for p in cand], np.int64)
    authors = np.array([p["author_id"] for p in cand], np.int64)
    expect = Ranker(ckpt, sids=seq.sids).rank(history, *seq.as_served(ids, authors))
    # serving's path: the pipeline's ranker and scorer, the same history as a query's
    res = Resources(world=str(world), checkpoint=str(ck))
    q = FeedQuery(user_id=int(seq.user_ids[u]), now_ms=0, resources=res, history={
        "post_id": history.post_ids, "author_id": history.author_ids,
        "actions": history.actions.astype(np.float32), "surface": history.product_surface,
        "dwell_s": history.dwell_s})  # fmt: skip
    cands = Cands.from_candidates([PostCandidate(
        post_id=p["post_id"], author_id=p["author_id"], source_post_id=p["source_post_id"] or 0,
        source_user_id=p["source_user_id"] or 0) for p in cand])  # fmt: skip
    scorer = PhoenixScorer(feed._ranker(str(ck), "reference", str(world)))
    heads, got = scorer.score([q], cands)["probs"]
    col = list(cfg.head_names).index("SERVER_TWEET_FAV")
    np.testing.assert_array_equal(got[:, heads.index("favorite")],
                                  np.round(expect[:, col].astype(np.float64), 6))  # fmt: skip


def test_with_sids_a_posts_retrieval_embedding_depends_on_its_topics():
    from phoenix.runtime import Retriever  # noqa: PLC0415

    ckpt = tiny_checkpoint("retrieval", seed=1, fprop_dtype="float32", sid_levels=1,
                           sid_codebook=4, sid_topics=("a", "b"))  # fmt: skip
    with pytest.raises(ValueError, match="semantic ids"):
        Retriever(ckpt)
    posts, authors = np.array([11, 12], np.int64), np.array([3, 3], np.int64)

    def emb(codes: dict[int, int]) -> np.ndarray:
        ids = np.array(sorted(codes), np.int64)
        sids = PostSids.of(ids, np.array([[codes[i]] for i in ids.tolist()]))
        r = Retriever(ckpt, sids=sids)
        return r.encode_posts(posts, authors), r.encode_users([_history()])[0]

    (base, user), (other, user_b) = emb({11: 1, 12: 1}), emb({11: 2, 12: 1, 101: 2})
    assert not np.allclose(base[0], other[0]) and not np.allclose(user, user_b)
    np.testing.assert_array_equal(base[1], other[1])


def test_the_feed_runs_on_models_that_read_sids(sid_world):
    from pipeline import feed  # noqa: PLC0415
    from pipeline.query import Resources  # noqa: PLC0415

    world, ck = sid_world
    assert load_model(ck, ModelType.RETRIEVAL)[0].config.sid_levels == 1
    seq = load_sequences(world, 64)
    res = Resources(world=str(world), checkpoint=str(ck), corpus=str(world / "corpus.safetensors"))
    out = feed.rank(feed.new_query(int(seq.user_ids[0]), res))
    assert len(out.selected) > 0
    assert "phoenix_retrieval" in {c.source for c in out.selected}
