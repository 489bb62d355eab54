"""Training recipe: the retrieval loss and labels against hand-computed values on tiny inputs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from phoenix.actions import ActionName as A
from phoenix.config import ModelType
from training.examples import item_labels, retrieval_examples
from training.steps import TrainConfig, _own_masks, contrastive_loss
from training.trainer import holdout_points, model_config
from world.sequences import Sequences


def _ce(logits: list[float], label: int) -> float:
    m = max(logits)
    return -(logits[label] - m - math.log(sum(math.exp(x - m) for x in logits)))


def test_contrastive_loss_by_hand():
    rep = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    cand = np.array([[0.6, 0.8], [0.0, 1.0]], np.float32)
    gcand = np.array([[1.0, 0.0]], np.float32)
    ncand = np.array([[[-1.0, 0.0]], [[1.0, 0.0]]], np.float32)
    pos_id, pos_count = np.array([0, 1]), np.array([4.0, 1.0], np.float32)
    g_id, g_count = np.array([1]), np.array([2.0], np.float32)  # row 1's own item: left out there
    mask = np.array([[1.0], [0.0]], np.float32)  # row 1 has no hard negative
    t, w = 0.5, 2.0
    got = float(contrastive_loss(rep, cand, gcand, ncand, pos_id, pos_count, g_id, g_count, mask,
                                 np.float32(t), w))  # fmt: skip
    lq = [w * math.log(4.0), w * math.log(1.0)]
    glq = w * math.log(2.0)
    row0 = [0.6 / t - lq[0], 0.0 / t - lq[1], 1.0 / t - glq, -1.0 / t]
    row1 = [0.8 / t - lq[0], 1.0 / t - lq[1]]  # global is its own item, hard is padding
    want = (_ce(row0, 0) + _ce(row1, 1)) / 2
    assert got == pytest.approx(want, rel=1e-5)


def test_duplicate_positives_are_not_negatives():
    rep = np.eye(2, dtype=np.float32)
    cand = np.eye(2, dtype=np.float32)
    args = (np.zeros((1, 2), np.float32), np.zeros((2, 1, 2), np.float32))
    same = contrastive_loss(rep, cand, *args, np.array([5, 5]), np.ones(2, np.float32),
                            np.array([9]), np.ones(1, np.float32), np.zeros((2, 1), np.float32),
                            np.float32(1.0), 0.0)  # fmt: skip
    want = _ce([1.0, 0.0], 0)  # row 0 against the global negative (score 0) only
    assert float(same) == pytest.approx(want, rel=1e-5)


def test_own_items_are_not_negatives_by_hand():
    rep = np.eye(2, dtype=np.float32)
    cand = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
    gcand = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    args = (np.zeros((2, 1, 2), np.float32), np.array([0, 1]), np.ones(2, np.float32),
            np.array([2, 3]), np.ones(2, np.float32), np.zeros((2, 1), np.float32),
            np.float32(0.5), 0.0)  # fmt: skip
    own_b = np.array([[True, True], [False, True]])  # row 0's user also consumed item 1
    own_g = np.array([[False, False], [False, True]])  # row 1's user consumed global item 3
    got = float(contrastive_loss(rep, cand, gcand, *args, own_b, own_g))
    row0 = [1.0 / 0.5, 0.0, 1.0 / 0.5]  # itself, global 2, global 3; item 1 left out
    row1 = [0.0, 0.8 / 0.5, 1.0 / 0.5]  # row 0's item, itself, global 2; global 3 left out
    want = (_ce(row0, 0) + _ce(row1, 1)) / 2
    assert got == pytest.approx(want, rel=1e-5)
    plain = float(contrastive_loss(rep, cand, gcand, *args))
    assert plain != pytest.approx(got, rel=1e-3)


def test_own_masks_mark_each_users_training_items():
    seq = _seq([[A.SERVER_TWEET_FAV]] * 6)
    seq = dataclasses.replace(seq, user_ids=np.array([7, 8]), offsets=np.array([0, 3, 6]),
                              post_id=np.array([10, 11, 12, 12, 13, 14]))  # fmt: skip
    cfg = model_config(ModelType.RETRIEVAL)
    tc = TrainConfig(mask_own_items=True)
    ex = retrieval_examples(seq, cfg, np.array([3, 5]), tc)  # user 8's item 14 held out
    cat = [10, 11, 12, 13]  # the training catalogue: catalogue rows 0..3
    assert ex["own_offsets"].tolist() == [0, 3, 5]
    assert [cat[r] for r in ex["own_rows"]] == [10, 11, 12, 12, 13]
    own_b, own_g = _own_masks(ex, np.array([0, 1]), np.array([1, 3]), np.array([0, 2, 3]))
    assert own_b.tolist() == [[True, False], [False, True]]
    assert own_g.tolist() == [[True, True, False], [False, True, True]]
    assert "own_rows" not in retrieval_examples(seq, cfg, np.array([3, 5]))


def _seq(actions: list[list[int]]) -> Sequences:
    n = len(actions)
    acts = np.zeros((n, 64), np.float32)
    for i, a in enumerate(actions):
        acts[i, a] = 1.0
    return Sequences(
        user_ids=np.array([7]), offsets=np.array([0, n]), post_id=np.arange(1, n + 1),
        author_id=np.ones(n, np.int64), time_ms=np.arange(n), actions=acts,
        dwell_s=np.zeros(n, np.float32), surface=np.ones(n, np.int32),
    )  # fmt: skip


def test_positives_exclude_items_with_hard_or_soft_negatives():
    seq = _seq([[A.SERVER_TWEET_FAV], [A.SERVER_TWEET_FAV, A.CLIENT_TWEET_REPORT],
                [A.CLIENT_TWEET_RECAP_DWELLED], [A.CLIENT_TWEET_RECAP_NOT_DWELLED],
                [A.SERVER_TWEET_REPLY]])  # fmt: skip
    pos, neg = item_labels(seq, "favorite")
    assert pos.tolist() == [True, False, False, False, False]
    assert neg.tolist() == [False, True, False, True, False]
    pos, _ = item_labels(seq, "any")
    assert pos.tolist() == [True, False, True, False, True]


def test_loo_holdout_is_the_last_positive():
    seq = _seq([[A.SERVER_TWEET_FAV], [A.SERVER_TWEET_FAV], [A.CLIENT_TWEET_CLICK]])
    assert holdout_points(seq, TrainConfig(holdout="loo", positives="favorite")).tolist() == [1]
    assert holdout_points(seq, TrainConfig(holdout="loo", positives="any")).tolist() == [2]
    assert holdout_points(seq, TrainConfig(holdout="fraction")).tolist() == [3]  # < 5 items


@pytest.fixture(scope="module")
def log_world(tmp_path_factory):
    """A small imported log: 40 users, 60 items, 20 interactions each, ratings 1..5."""
    from world.importer import ImportSpec, import_log

    root = tmp_path_factory.mktemp("log")
    rng = np.random.default_rng(0)
    lines = ["user_id,item_id,rating,timestamp"]
    for u in range(1, 41):
        for i, m in enumerate(rng.choice(60, 20, replace=False)):
            lines.append(f"{u},{m + 1},{rng.integers(1, 6)},{1_700_000_000 + 60 * i + u}")
    (root / "log.csv").write_text("\n".join(lines) + "\n")
    import_log(root / "log.csv", root / "w", ImportSpec(rating_col="rating"))
    return root / "w"


def test_sampled_negatives_are_items_the_user_never_touched(log_world):
    from training.examples import ranker_examples
    from training.trainer import model_config
    from world.sequences import load_sequences

    cfg = model_config("ranker")
    seq = load_sequences(log_world, cfg.num_actions)
    split = holdout_points(seq, TrainConfig(holdout="loo", positives="any"))
    tc = TrainConfig(sampled_negatives=8)
    ex = ranker_examples(seq, cfg, split, tc)
    c = cfg.candidate_seq_len
    real = ex["weights"] > 0  # [E, C]
    labels = ex["labels"].any(-1)  # [E, C]
    # every example has 8 zero-label sampled slots after its real candidates
    n_pos = (labels & real).sum(1)
    assert ((real.sum(1) - n_pos) == 8).all() and real.sum(1).max() <= c
    assert ex["weights"][real].min() == 1.0
    logq = ranker_examples(seq, cfg, split, TrainConfig(sampled_negatives=8, ranker_logq=True))
    assert 0 < logq["weights"][logq["weights"] > 0].min() < 1.0


def test_validation_keeps_the_best_state_and_stops_early(log_world, tmp_path, runner):
    from xfeed_cli.main import app

    log = tmp_path / "valid.jsonl"
    args = ["train", "ranker", "--world", str(log_world), "--out", str(tmp_path / "ck"),
            "--steps", "40", "--valid", "0.2", "--eval-every", "5", "--patience", "2",
            "--holdout", "loo", "--log", str(log), "--device", "cpu"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    import json

    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records and all({"step", "train_loss", "valid_loss"} <= r.keys() for r in records)
    assert [r["step"] for r in records] == list(range(5, 5 * len(records) + 1, 5))
    meta = json.loads((tmp_path / "ck" / "ranker" / "config.json").read_text())
    prov = meta.get("provenance", meta)
    best = min(r["valid_loss"] for r in records)
    assert prov["best_valid_loss"] == pytest.approx(best)
    if len(records) < 8:  # stopped early: the last `patience` records did not improve
        assert min(r["valid_loss"] for r in records[-2:]) >= best


def test_retrieval_trains_with_validation_on_an_imported_log(log_world, tmp_path):
    from training.steps import TrainConfig as TC
    from training.trainer import default_train_config, train_model

    tc = dataclasses.replace(default_train_config("retrieval", imported=True), steps=20,
                             batch_size=16, global_negatives=8, holdout="loo",
                             valid_fraction=0.2, eval_every=10)  # fmt: skip
    assert isinstance(tc, TC) and tc.positives == "any" and tc.post_dropout == 0.0
    assert tc.mask_own_items and not default_train_config("retrieval").mask_own_items
    records = []
    meta = train_model("retrieval", log_world, tmp_path / "ck", train_config=tc,
                       log=records.append)  # fmt: skip
    assert [r["step"] for r in records] == [10, 20]
    assert meta["best_valid_loss"] == pytest.approx(min(r["valid_loss"] for r in records))
    assert all(np.isfinite(r["valid_loss"]) for r in records)
    from checkpoints.formats import load_model

    cfg = load_model(tmp_path / "ck", ModelType.RETRIEVAL)[0].config
    assert cfg.sid_levels == 6 and cfg.sid_topics == ()  # the imported default; no topics here


def test_imported_worlds_size_id_tables_to_their_ids():
    from training.trainer import TINY_VOCAB, world_vocab

    # MovieLens latest-small: 9,724 movies x 8 = 77,792 -> 131,072 rows; 611 users -> 8,192
    assert world_vocab({"users": 611, "posts": 9724}) == {"user": 8192, "item": 131072,
                                                          "author": 4096}  # fmt: skip
    assert world_vocab({"users": 10, "posts": 60}) == TINY_VOCAB  # never below the tiny sizes
    assert world_vocab({"users": 4096, "posts": 4096})["user"] == 32768
    assert world_vocab({"users": 10, "posts": 10**7})["item"] == 1 << 20  # capped
    cfg = model_config(ModelType.RETRIEVAL, vocab=world_vocab({"users": 611, "posts": 9724}))
    assert (cfg.hash.user.vocab_size, cfg.hash.item.vocab_size) == (8192, 131072)


def test_retrieval_tables_are_world_sized_so_new_posts_read_untrained_rows():
    from phoenix import hashing
    from training.trainer import table_vocab
    from world.sequences import load_sequences, split_points
    from world.tables import read_world_json

    world = "data/samples/world"
    rows = read_world_json(world)["rows"]  # 2,000 users, 20,462 posts
    vocab = table_vocab(ModelType.RETRIEVAL, rows)
    assert vocab == {"user": 16384, "item": 262144, "author": 4096}
    assert table_vocab(ModelType.RANKER, rows) is None  # the ranker keeps the tiny sizes
    seq = load_sequences(world, 2)
    split = split_points(seq)
    train = np.zeros(len(seq.post_id), bool)
    for u in range(len(seq.user_ids)):
        train[seq.offsets[u] : split[u]] = True
    new = np.setdiff1d(seq.post_id[~train], seq.post_id[train])  # held-out posts no training
    fresh = {}  # item touched; the share of them whose every hashed row no training item reads
    for name, v in (("tiny", None), ("world", vocab)):
        h = model_config(ModelType.RETRIEVAL, vocab=v).hash
        trained = np.unique(hashing.item_rows(np.unique(seq.post_id[train]), h))
        fresh[name] = (~np.isin(hashing.item_rows(new, h), trained)).all(axis=1).mean()
    assert fresh["tiny"] < 0.15 and fresh["world"] > 0.7, fresh


def test_unread_id_rows_are_exported_as_zeros():
    from training.steps import unread_rows_zeroed

    table = np.arange(1, 13, dtype=np.float32).reshape(4, 3)  # rows at unified 10..13
    out = unread_rows_zeroed(table, np.array([[11, 0], [13, 11]]), offset=10)  # 0 = padding
    assert out.tolist() == [[0, 0, 0], [4, 5, 6], [0, 0, 0], [10, 11, 12]]
    assert out.dtype == np.float32 and table[0, 0] == 1  # the input is not modified


class _OneHotRetriever:
    """A stand-in retrieval model: item i's embedding is one-hot at i % D, every user's
    representation prefers dimensions 0..D-1 in decreasing order (scores = catalogue order)."""

    def __init__(self, d: int = 8):
        from types import SimpleNamespace

        self.d = d
        self.config = SimpleNamespace(history_seq_len=4)

    def encode_posts(self, post_ids, author_ids):
        out = np.zeros((len(post_ids), self.d), np.float32)
        out[np.arange(len(post_ids)), np.arange(len(post_ids)) % self.d] = 1.0
        return out * (1.0 + np.arange(len(post_ids), 0, -1)[:, None])  # earlier rows score higher

    def encode_users(self, histories):
        return np.ones((len(histories), self.d), np.float32)


def test_retrieval_negatives_come_from_the_retrieval_top_and_never_the_users_items(log_world):
    from training.examples import ranker_examples, retrieval_pool, training_catalogue
    from training.trainer import model_config
    from world.sequences import load_sequences

    cfg = model_config("ranker")
    seq = load_sequences(log_world, cfg.num_actions)
    split = holdout_points(seq, TrainConfig(holdout="loo", positives="any"))
    cat_id, cat_author, _ = training_catalogue(seq, split)
    cuts = [(0, 5), (3, 9)]
    pool = retrieval_pool(_OneHotRetriever(), seq, cuts, split, (cat_id, cat_author), top=6)
    for (u, _), rows in zip(cuts, pool, strict=True):
        mine = seq.post_id[int(seq.offsets[u]) : int(split[u])]
        want = [r for r in range(len(cat_id)) if cat_id[r] not in mine][:6]  # best-scored rows
        assert sorted(rows.tolist()) == want
    tc = TrainConfig(retrieval_negatives=5, retrieval_top=6, sampled_negatives=2)
    ex = ranker_examples(seq, cfg, split, tc, retriever=_OneHotRetriever())
    labels = ex["labels"].any(-1)
    real = ex["weights"] > 0
    assert ((real & ~labels).sum(1) == 7).all()  # 5 from retrieval + 2 sampled per example
    from phoenix import hashing

    row_of = {int(f): r for r, f in enumerate(hashing.item_rows(cat_id, cfg.hash)[:, 0])}
    user_of = {int(hashing.user_rows(uid, cfg.hash)[0]): u for u, uid in enumerate(seq.user_ids)}
    for e in range(len(labels)):
        u = user_of[int(ex["user_hashes"][e, 0])]
        mine = seq.post_id[int(seq.offsets[u]) : int(split[u])]
        best = [r for r in range(len(cat_id)) if cat_id[r] not in mine][:6]
        neg = np.flatnonzero(real[e] & ~labels[e])
        rows = [row_of[int(ex["candidate_post_hashes"][e, j, 0])] for j in neg]
        assert set(rows[:5]) <= set(best) and len(set(rows[:5])) == 5
        assert not set(cat_id[rows].tolist()) & set(mine.tolist())


def test_cli_ranker_logq_and_retrieval_negatives_reach_the_training(log_world, tmp_path, runner):
    import json

    from xfeed_cli.main import app

    ck = tmp_path / "ck"
    base = ["--world", str(log_world), "--out", str(ck), "--holdout", "loo", "--device", "cpu"]
    res = runner.invoke(app, ["train", "retrieval", *base, "--steps", "2", "--batch-size", "8",
                              "--global-negatives", "24"])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((ck / "retrieval" / "config.json").read_text())
    assert meta.get("provenance", meta)["train"]["global_negatives"] == 24
    res = runner.invoke(app, ["train", "ranker", *base, "--steps", "2", "--global-negatives", "8"])
    assert res.exit_code == 2 and "--global-negatives is for retrieval" in res.output
    res = runner.invoke(app, ["train", "ranker", *base, "--steps", "2", "--batch-size", "4",
                              "--ranker-logq", "--negatives-from", str(ck),
                              "--id-l2", "1e-5", "--no-logq-shift"])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((ck / "ranker" / "config.json").read_text())
    prov = meta.get("provenance", meta)
    assert prov["train"]["ranker_logq"] is True and prov["train"]["id_l2"] == 1e-5
    assert prov["train"]["ranker_logq_shift"] is False
    assert prov["train"]["retrieval_negatives"] == 14 and prov["train"]["sampled_negatives"] == 14
    assert prov["negatives_from"] == str(ck)
    res = runner.invoke(app, ["train", "ranker", *base, "--steps", "2", "--force",
                              "--retrieval-negatives", "4"])  # fmt: skip
    assert res.exit_code == 2 and "--negatives-from" in res.output


def test_user_sampling_draws_each_batch_row_from_a_different_user():
    import jax.numpy as jnp

    from training.steps import _fit

    groups = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3], np.int32)  # user 0 has 8 examples
    seen = []

    def examples(idx):
        seen.append(idx.copy())
        return jnp.asarray(idx, jnp.float32)

    tc = TrainConfig(steps=40, batch_size=4, sample_by="user")
    _fit(lambda state, x: jnp.sum(state["w"] * x), {"w": jnp.ones(())}, examples, len(groups),
         tc, None, groups=groups)  # fmt: skip
    for idx in seen:
        assert sorted(groups[idx].tolist()) == [0, 1, 2, 3]  # every user once per batch
    rows = np.concatenate(seen)
    assert len(set(rows[groups[rows] == 0].tolist())) > 4  # user 0's examples all take turns


def test_selection_key_prefers_low_loss_or_high_auc_and_never_nan():
    from training.steps import selection_key

    a, b = {"valid_loss": 0.3, "valid_auc": 0.7}, {"valid_loss": 0.2, "valid_auc": 0.6}
    assert selection_key(b, "loss") < selection_key(a, "loss")
    assert selection_key(a, "auc") < selection_key(b, "auc")
    assert selection_key({"valid_loss": 0.1, "valid_auc": None}, "auc") == float("inf")
    assert selection_key({"valid_loss": float("nan")}, "loss") == float("inf")
    with pytest.raises(ValueError, match="select_by"):
        selection_key(a, "recall")


def test_ranker_keeps_the_state_with_the_best_validation_auc(log_world, tmp_path):
    from training.trainer import default_train_config, train_model

    tc = dataclasses.replace(default_train_config("ranker", imported=True), steps=15,
                             batch_size=8, holdout="loo", valid_fraction=0.2, eval_every=5,
                             select_by="auc")  # fmt: skip
    records = []
    meta = train_model("ranker", log_world, tmp_path / "ck", train_config=tc, log=records.append)
    assert [r["step"] for r in records] == [5, 10, 15]
    assert all(r["valid_auc"] is not None for r in records)
    best = max(records, key=lambda r: r["valid_auc"])
    assert meta["selected"] == {"by": "auc", "step": best["step"], "valid_loss": best["valid_loss"],
                                "valid_auc": best["valid_auc"]}  # fmt: skip


def test_id_penalty_by_hand_covers_user_and_post_ids_not_authors():
    from training.steps import id_penalty

    tables = {"user": np.array([[1.0, 2.0], [0.0, 1.0]], np.float32),
              "item": np.array([[3.0, 0.0]], np.float32),
              "author": np.array([[5.0, 5.0]], np.float32)}  # fmt: skip
    assert float(id_penalty(tables, 0.1)) == pytest.approx(0.1 * (1 + 4 + 0 + 1 + 9))
    assert float(id_penalty(tables, 0.0)) == 0.0


def test_id_l2_adds_its_penalty_to_the_ranker_training_loss(log_world):
    from training.examples import ranker_examples
    from training.steps import init_state, train_ranker
    from training.trainer import model_config
    from world.sequences import load_sequences

    cfg = model_config("ranker", history=8)
    seq = load_sequences(log_world, cfg.num_actions)
    tc = TrainConfig(steps=2, batch_size=4, holdout="loo", positives="any")
    ex = ranker_examples(seq, cfg, holdout_points(seq, tc), tc)
    lam = 1e-5
    plain = train_ranker(cfg, ex, tc)[2]
    penalised = train_ranker(cfg, ex, dataclasses.replace(tc, id_l2=lam))[2]
    tables = init_state(cfg, tc)["tables"]
    by_hand = lam * sum(float(np.sum(tables[e].astype(np.float64) ** 2)) for e in ("user", "item"))
    assert by_hand > 1e-3  # the step's data and dropout draws are the same: only the term differs
    assert penalised[0] - plain[0] == pytest.approx(by_hand, rel=1e-3)


def test_reorder_metrics_by_hand():
    from training.reorder import reorder_metrics

    # user 0: candidates in two rows, the target (score 0.5) behind 0.9 and tied with 0.5 -> rank 3;
    # user 1: the target first -> rank 1; a third user's target was not retrieved (a miss)
    scores = np.array([[0.9, 0.5, 0.1], [0.5, 0.2, 0.0], [0.3, 0.8, 0.0]])
    ex = {"weights": np.array([[1, 1, 1], [1, 1, 0], [1, 1, 0]], np.float32),
          "is_target": np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], bool),
          "group": np.array([0, 0, 1]), "users": np.int64(3)}  # fmt: skip
    got = reorder_metrics(scores, ex, k=2)
    assert got["reorder_hr@2"] == pytest.approx(1 / 3)  # only user 1 within the top 2
    assert got["reorder_ndcg@2"] == pytest.approx((1 / math.log2(2)) / 3)
    # AUC: user 0 target 0.5 vs {0.9, 0.5, 0.1, 0.2}: (0 + 0.5 + 1 + 1) / 4; user 1: 1
    assert got["reorder_auc"] == pytest.approx((2.5 / 4 + 1.0) / 2)
    assert reorder_metrics(scores, ex, k=3)["reorder_hr@3"] == pytest.approx(2 / 3)


def test_reorder_validation_holds_out_the_last_training_item(log_world):
    from training.examples import reorder_validation, training_catalogue
    from training.reorder import reorder_points
    from world.sequences import load_sequences

    cfg = model_config("ranker")
    seq = load_sequences(log_world, cfg.num_actions)
    split = holdout_points(seq, TrainConfig(holdout="loo", positives="any"))
    target = reorder_points(seq, split)
    assert (target == split - 1).all()  # every user has >= 3 training items
    cat = training_catalogue(seq, split)[:2]
    ex = reorder_validation(seq, cfg, target, split, _OneHotRetriever(), top=40, surface=1)
    c = cfg.candidate_seq_len
    assert ex["is_target"].sum() == len(np.unique(ex["group"])) and int(ex["users"]) == 40
    from phoenix import hashing

    row_of = {int(f): r for r, f in enumerate(hashing.item_rows(cat[0], cfg.hash)[:, 0])}
    user_of = {int(hashing.user_rows(uid, cfg.hash)[0]): u for u, uid in enumerate(seq.user_ids)}
    for g in np.unique(ex["group"]):
        at = np.flatnonzero(ex["group"] == g)
        u = user_of[int(ex["user_hashes"][at[0], 0])]
        real = ex["weights"][at] > 0
        rows = [row_of[int(h)] for h in ex["candidate_post_hashes"][at][real][:, 0]]
        history = seq.post_id[int(seq.offsets[u]) : int(target[u])]
        best = [r for r in range(len(cat[0])) if cat[0][r] not in history][:40]
        assert sorted(rows) == best and len(at) == -(-40 // c)  # retrieval's top 40, in rows of C
        hit = ex["candidate_post_hashes"][at][ex["is_target"][at]][0, 0]
        assert cat[0][row_of[int(hit)]] == seq.post_id[target[u]]
        assert (ex["history_post_hashes"][at[0]][:, 0] != 0).sum() == min(len(history), 128)


def test_cli_ranker_selected_by_the_reorder(log_world, tmp_path, runner):
    import json

    from xfeed_cli.main import app

    ck = tmp_path / "ck"
    base = ["--world", str(log_world), "--out", str(ck), "--holdout", "loo", "--device", "cpu"]
    res = runner.invoke(app, ["train", "retrieval", *base, "--steps", "2", "--batch-size", "8"])
    assert res.exit_code == 0, res.output
    log = tmp_path / "v.jsonl"
    res = runner.invoke(app, ["train", "ranker", *base, "--steps", "4", "--batch-size", "4",
                              "--negatives-from", str(ck), "--select-by", "reorder",
                              "--eval-every", "2", "--log", str(log)])  # fmt: skip
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4] and all("reorder_auc" in r for r in records)
    prov = json.loads((ck / "ranker" / "config.json").read_text())["provenance"]
    best = max(records, key=lambda r: r["reorder_ndcg@10"])
    assert prov["selected"]["by"] == "reorder" and prov["selected"]["step"] == best["step"]
    res = runner.invoke(app, ["train", "ranker", *base, "--steps", "2", "--force",
                              "--select-by", "reorder"])  # fmt: skip
    assert res.exit_code == 2 and "--negatives-from" in res.output


def test_reorder_analysis_summary_by_hand():
    from benchmarks.reorder_analysis import _summary

    # user 0: target (col 2) behind col 0 and tied with col 1, which retrieval put first -> rank 3;
    # user 1: the target first; user 2: retrieval missed it (no row holds it)
    score = np.array([[0.9, 0.5, 0.5, 0.1], [0.8, 0.2, 0.1, 0.0], [0.4, 0.3, 0.2, 0.1]])
    target = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
    pop = np.arange(12, dtype=np.float64).reshape(3, 4)
    got = _summary(score, target, pop)
    assert got["hits@10"] == 2 and got["hr@10"] == pytest.approx(2 / 3)
    assert got["ndcg@10"] == pytest.approx((1 / math.log2(4) + 1.0) / 3)
    assert (got["mean_rank"], got["median_rank"]) == (2.0, 2.0)
    assert got["auc"] == pytest.approx((1.5 / 3 + 1.0) / 2)  # 0.5 beats 0.1, ties 0.5, loses 0.9
    assert got["top10_pop_median"] == pytest.approx(5.5)
    assert got["top10_pop_under_10"] == pytest.approx(10 / 12)


def test_ranker_loss_logq_shift_by_hand():
    from training.steps import ranker_loss

    logits = np.array([[[1.0, -2.0], [0.5, 0.0]]], np.float32)  # [B=1, C=2, A=2]
    labels = np.array([[[1.0, 0.0], [0.0, 0.0]]], np.float32)
    weights = np.array([[1.0, 1.0]], np.float32)
    logq = np.array([[math.log(0.01), math.log(0.2)]], np.float32)

    def bce(z, y):
        return -(y * math.log(1 / (1 + math.exp(-z))) + (1 - y) * math.log(1 / (1 + math.exp(z))))

    shifted = [[1.0 - math.log(0.01), -2.0 - math.log(0.01)], [0.5 - math.log(0.2), -math.log(0.2)]]
    want = sum(bce(z, y) for zs, ys in zip(shifted, labels[0], strict=True)
               for z, y in zip(zs, ys, strict=True)) / 4  # fmt: skip
    assert float(ranker_loss(logits, labels, weights, logq)) == pytest.approx(want, rel=1e-5)
    plain = sum(bce(z, y) for zs, ys in zip(logits[0], labels[0], strict=True)
                for z, y in zip(zs, ys, strict=True)) / 4  # fmt: skip
    assert float(ranker_loss(logits, labels, weights)) == pytest.approx(plain, rel=1e-5)


def test_ranker_logq_shift_is_each_candidates_sampling_density_by_hand(log_world):
    from phoenix import hashing
    from training.examples import ranker_examples, training_catalogue
    from world.sequences import load_sequences

    cfg = model_config("ranker")
    seq = load_sequences(log_world, cfg.num_actions)
    split = holdout_points(seq, TrainConfig(holdout="loo", positives="any"))
    cat_id, _, counts = training_catalogue(seq, split)
    tc = TrainConfig(retrieval_negatives=5, retrieval_top=6, sampled_negatives=2,
                     ranker_logq_shift=True)  # fmt: skip
    ex = ranker_examples(seq, cfg, split, tc, retriever=_OneHotRetriever())
    assert "logq" not in ranker_examples(seq, cfg, split, TrainConfig(sampled_negatives=2))
    real, labels = ex["weights"] > 0, ex["labels"].any(-1)
    row_of = {int(f): r for r, f in enumerate(hashing.item_rows(cat_id, cfg.hash)[:, 0])}
    user_of = {int(hashing.user_rows(uid, cfg.hash)[0]): u for u, uid in enumerate(seq.user_ids)}
    cut_of = ex["history_post_hashes"].blocks.cut
    for e in range(len(labels)):
        u = user_of[int(ex["user_hashes"][e, 0])]
        lo = int(seq.offsets[u])
        before = set(seq.post_id[lo : int(cut_of[e])].tolist())  # the pool leaves out the history
        pool = [r for r in range(len(cat_id)) if int(cat_id[r]) not in before][:6]
        mine = set(seq.post_id[lo : int(split[u])].tolist())
        drawable = [r for r in pool if int(cat_id[r]) not in mine]
        n_ret = min(5, len(drawable))
        n_pop = int((real[e] & ~labels[e]).sum()) - n_ret
        for j in np.flatnonzero(real[e]):
            r = row_of[int(ex["candidate_post_hashes"][e, j, 0])]
            q = (n_ret / len(drawable) if r in pool else 0.0) + n_pop * counts[r] / counts.sum()
            assert ex["logq"][e, j] == pytest.approx(math.log(q), rel=1e-5)
        assert (ex["logq"][e][~real[e]] == 0).all()


def test_ranker_softmax_loss_by_hand():
    from training.steps import ranker_softmax_loss

    # [B=1, C=4, A=2]; candidate 3 is padding (weight 0), never a negative
    logits = np.array([[[2.0, 0.0], [1.0, 1.0], [0.0, 3.0], [5.0, 5.0]]], np.float32)
    labels = np.array([[[1, 0], [0, 1], [0, 0], [0, 0]]], np.float32)
    weights = np.array([[1.0, 1.0, 1.0, 0.0]], np.float32)
    # head 0: candidate 0 against 1 and 2; head 1: candidate 1 against 0 and 2
    want = (_ce([2.0, 1.0, 0.0], 0) + _ce([1.0, 0.0, 3.0], 0)) / 2
    assert float(ranker_softmax_loss(logits, labels, weights)) == pytest.approx(want, rel=1e-5)
    # the log-Q correction: every candidate's logit minus its log q
    logq = np.array([[math.log(0.5), math.log(0.1), math.log(0.2), 0.0]], np.float32)
    z = logits[0] - logq[0][:, None]
    want = (_ce([z[0, 0], z[1, 0], z[2, 0]], 0) + _ce([z[1, 1], z[0, 1], z[2, 1]], 0)) / 2
    got = float(ranker_softmax_loss(logits, labels, weights, logq))
    assert got == pytest.approx(want, rel=1e-5)
    # two positives of one head: each against the negatives only, not the other positive;
    # weights weigh the positives
    labels2 = np.array([[[1, 0], [1, 0], [0, 0], [0, 0]]], np.float32)
    w2 = np.array([[3.0, 1.0, 1.0, 0.0]], np.float32)
    want = (3 * _ce([2.0, 0.0], 0) + _ce([1.0, 0.0], 0)) / 4
    assert float(ranker_softmax_loss(logits, labels2, w2)) == pytest.approx(want, rel=1e-5)
    # a head without negatives (or without positives) adds nothing
    labels3 = np.array([[[1, 0], [1, 0], [1, 0], [0, 0]]], np.float32)
    assert float(ranker_softmax_loss(logits, labels3, weights)) == pytest.approx(0.0, abs=1e-6)


def test_ranker_positives_are_the_next_n_items_cut_every_item(log_world):
    from training.examples import ranker_examples
    from world.sequences import load_sequences

    cfg = model_config("ranker")
    seq = load_sequences(log_world, cfg.num_actions)
    split = holdout_points(seq, TrainConfig(holdout="loo", positives="any"))
    base = ranker_examples(seq, cfg, split, TrainConfig(sampled_negatives=2))
    ex = ranker_examples(seq, cfg, split, TrainConfig(sampled_negatives=2, ranker_positives=4))
    pos = ex["labels"].any(-1) & (ex["weights"] > 0)
    assert pos.sum(1).max() == 4 and (pos[:, 4:] == 0).all()
    cut = ex["history_post_hashes"].blocks.cut
    user = ex["user_row"]
    for u in np.unique(user):  # one example per item from the fifth to the last training item
        lo = int(seq.offsets[u])
        assert cut[user == u].tolist() == list(range(lo + 4, int(split[u])))
    assert len(ex["labels"]) > len(base["labels"])


def test_cli_ranker_loss_and_positives_reach_the_checkpoint(log_world, tmp_path, runner):
    import json

    from training.trainer import default_train_config
    from xfeed_cli.main import app

    ck = tmp_path / "ck"
    base = ["--world", str(log_world), "--out", str(ck), "--holdout", "loo", "--device", "cpu",
            "--steps", "2", "--batch-size", "4"]  # fmt: skip

    def train_prov() -> dict:
        meta = json.loads((ck / "ranker" / "config.json").read_text())
        return meta.get("provenance", meta)["train"]

    res = runner.invoke(app, ["train", "ranker", *base])  # an imported log: the softmax
    assert res.exit_code == 0, res.output
    assert train_prov()["ranker_loss"] == "softmax" and train_prov()["ranker_positives"] == 4
    res = runner.invoke(app, ["train", "ranker", *base, "--force", "--ranker-loss", "bce",
                              "--ranker-positives", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "ranker_loss" not in train_prov() and train_prov()["ranker_positives"] == 2
    res = runner.invoke(app, ["train", "ranker", *base, "--force", "--ranker-positives", "0"])
    assert res.exit_code == 0, res.output
    assert train_prov()["ranker_loss"] == "softmax" and "ranker_positives" not in train_prov()
    res = runner.invoke(app, ["train", "ranker", *base, "--force", "--ranker-loss", "hinge"])
    assert res.exit_code == 2 and "--ranker-loss" in res.output
    res = runner.invoke(app, ["train", "retrieval", *base, "--force", "--ranker-loss", "softmax"])
    assert res.exit_code == 2 and "for the ranker" in res.output
    # synthetic worlds keep upstream's BCE, and their checkpoints' provenance keeps its fields
    for model in ("ranker", "retrieval"):
        tc = default_train_config(model)
        assert tc.ranker_loss == "bce" and tc.ranker_positives == 0
        want = {k: v for k, v in dataclasses.asdict(tc).items()
                if k not in ("ranker_loss", "ranker_positives")}  # fmt: skip
        assert tc.provenance() == want
