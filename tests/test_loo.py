"""Leave-one-out full-ranking protocol: ranks, metrics and baselines checked by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from training.loo import baseline_scores, loo_split, ranks, summarize
from world.importer import ImportSpec, import_log
from xfeed_cli.main import app

# user: items in time order (the last one is held out; user 5 has one item: not evaluated)
LOG = {1: [10, 20, 30], 2: [10, 30], 3: [20, 40], 4: [30, 10], 5: [20]}


@pytest.fixture
def loo_world(tmp_path):
    lines = ["user_id,item_id,timestamp"]
    for u, items in LOG.items():
        lines += [f"{u},{m},{1_700_000_000 + 10 * i + u}" for i, m in enumerate(items)]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    import_log(tmp_path / "log.csv", tmp_path / "w", ImportSpec())
    return tmp_path / "w"


def test_rank_counts_higher_scores_and_breaks_ties_by_the_fixed_order():
    scores = np.array([0.5, 0.9, 0.5, 0.1])
    assert ranks(scores, 2, np.array([1]), np.array([1, 0, 2, 3])) == 2
    assert ranks(scores, 2, np.array([1]), np.array([3, 0, 2, 1])) == 1
    assert ranks(scores, 3, np.array([], np.int64), np.arange(4)) == 4


def test_summary_metrics_by_hand():
    m = summarize(np.array([1, 3, 12]), 10)
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert m["median_rank"] == 3 and m["users"] == 3


def test_split_holds_out_each_users_last_item(loo_world):
    split = loo_split(loo_world, 2, None)
    seq = split.seq
    held = {int(seq.user_ids[u]): int(seq.post_id[t])
            for u, t in zip(split.users, split.target, strict=True)}  # fmt: skip
    posts = {int(c): int(p) for c, p in zip(_item_keys(loo_world), split.catalogue, strict=True)}
    assert held == {u: posts[items[-1]] for u, items in LOG.items() if len(items) > 1}


def _item_keys(world):
    import pyarrow.parquet as pq

    t = pq.read_table(world / "posts.parquet").sort_by("post_id")
    return [int(x.split()[-1]) for x in t.column("text").to_pylist()]


def test_popularity_and_item_knn_by_hand(loo_world):
    split = loo_split(loo_world, 2, None)
    col = {k: i for i, k in enumerate(_item_keys(loo_world))}
    s = baseline_scores(split)
    # training interactions: u1 {10, 20}, u2 {10}, u3 {20}, u4 {30}, u5 {20}
    pop = s["popularity"][0]
    assert [pop[col[m]] for m in (10, 20, 30, 40)] == [2, 3, 1, 0]
    # cosine(10, 20) = |{u1}| / sqrt(2 * 3); user 1's history is {10, 20}
    knn = s["item-knn"]
    order = [int(split.seq.user_ids[u]) for u in split.users]
    u1 = knn[order.index(1)]
    assert u1[col[10]] == pytest.approx(1 + 1 / math.sqrt(6))
    assert u1[col[30]] == pytest.approx(0.0) and u1[col[40]] == pytest.approx(0.0)
    u4 = knn[order.index(4)]  # history {30}: only 30 itself is similar
    assert u4[col[30]] == pytest.approx(1.0) and u4[col[10]] == pytest.approx(0.0)


def test_cli_loo_reports_the_hand_computed_popularity_ranks(loo_world, runner):
    res = runner.invoke(app, ["eval", "--protocol", "loo", "--world", str(loo_world), "--json",
                              "--k", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(next(ln for ln in res.output.splitlines() if ln.startswith("{")))
    assert report["protocol"]["users"] == 4
    # held out: u1 30 (among 30, 40) -> 1; u2 30 (20, 30, 40) -> 2; u3 40 (10, 30, 40) -> 3;
    # u4 10 (10, 20, 40) -> 2
    pop = report["systems"]["popularity"]
    assert pop["hr@2"] == pytest.approx(0.75)
    assert pop["median_rank"] == 2
    want = (1 + 1 / math.log2(3) + 0 + 1 / math.log2(3)) / 4
    assert pop["ndcg@2"] == pytest.approx(want)
    bad = runner.invoke(app, ["eval", "--protocol", "kfold", "--world", str(loo_world)])
    assert bad.exit_code == 2
