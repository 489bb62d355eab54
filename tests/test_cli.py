"""The CLI: exit codes, tables, JSON(L), and the one-line error funnel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from checkpoints.formats import load_model
from xfeed_cli.main import app


def test_ckpt_fake_then_phoenix_rank_prints_a_ranked_table(tmp_path, runner):
    out = tmp_path / "art"
    res = runner.invoke(
        app,
        [
            "ckpt",
            "fake",
            "--out",
            str(out),
            "--vocab",
            "200",
            "--seed",
            "1",
            "--corpus-size",
            "150",
            "--history-len",
            "10",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "phoenix",
            "rank",
            "--artifacts",
            str(out),
            "--top-k",
            "70",
            "--top-k-display",
            "5",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "PIPELINE RESULTS" in res.stdout and "Ranked by engagement model" in res.stdout
    assert "Retrieved top 70" in res.stdout and "Weighted score range" in res.stdout
    for col in ("Rank", "Score", "Ret", "Fav", "Reply", "RT", "Dwell", "VQV"):
        assert col in res.stdout
    assert res.stdout.count("https://x.com/a/status/") == 5
    assert "device: cpu" in res.stderr


def test_phoenix_rank_json_lines_are_sorted_by_weighted_score(fake_artifacts, runner):
    res = runner.invoke(
        app,
        [
            "phoenix",
            "rank",
            "--artifacts",
            str(fake_artifacts),
            "--json",
            "--top-k",
            "20",
            "--dtype",
            "float32",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 20 and [r["rank"] for r in rows] == list(range(1, 21))
    scores = [r["weighted_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    probs = rows[0]["probs"]
    assert len(probs) == 19 and "SERVER_TWEET_FAV" in probs
    want = (
        1.0 * probs["SERVER_TWEET_FAV"]
        + 0.5 * probs["SERVER_TWEET_REPLY"]
        + 0.3 * probs["SERVER_TWEET_RETWEET"]
        + 0.2 * probs["CLIENT_TWEET_RECAP_DWELLED"]
    )
    assert rows[0]["weighted_score"] == pytest.approx(want, rel=1e-5)
    assert len({p for p in probs.values()}) > 5  # varied, not all 0.5


def test_phoenix_retrieve_out_file_matches_corpus_dot_products(fake_artifacts, tmp_path, runner):
    target = tmp_path / "ret.jsonl"
    res = runner.invoke(
        app,
        [
            "phoenix",
            "retrieve",
            "--artifacts",
            str(fake_artifacts),
            "--top-k",
            "15",
            "--out",
            str(target),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 15 and "probs" not in rows[0]
    scores = [r["retrieval_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    with np.load(fake_artifacts / "sports_corpus.npz") as z:
        assert int(rows[0]["post_id"]) in set(z["post_ids"].astype(np.int64).tolist())


def test_ckpt_inspect_table_and_json(fake_artifacts, runner):
    res = runner.invoke(app, ["ckpt", "inspect", str(fake_artifacts)])
    assert res.exit_code == 0, res.output
    assert "807,104" in res.stdout and "833,921" in res.stdout
    assert "transformer/decoder_layer_0/linear_v/w" in res.stdout
    res = runner.invoke(app, ["ckpt", "inspect", str(fake_artifacts / "ranker"), "--json"])
    report = json.loads(res.stdout)
    assert report["models"]["ranker"]["num_param_arrays"] == 55


def test_ckpt_convert_and_diff_exit_codes(fake_artifacts, tmp_path, runner):
    res = runner.invoke(app, ["ckpt", "convert", str(fake_artifacts), str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["ckpt", "diff", str(fake_artifacts), str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    other = tmp_path / "other"
    assert (
        runner.invoke(
            app,
            [
                "ckpt",
                "fake",
                "--out",
                str(other),
                "--vocab",
                "300",
                "--seed",
                "99",
                "--corpus-size",
                "10",
            ],
        ).exit_code
        == 0
    )
    res = runner.invoke(app, ["ckpt", "diff", str(fake_artifacts), str(other), "--json"])
    assert res.exit_code == 1
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["max_abs"] for r in rows] == sorted((r["max_abs"] for r in rows), reverse=True)
    assert (
        sum(r["max_abs"] > 0 for r in rows) == len(rows) - 1
    )  # all but the zero ~/log_temperature
    res = runner.invoke(app, ["ckpt", "diff", str(fake_artifacts), str(other), "--atol", "1e9"])
    assert res.exit_code == 0


def test_ckpt_convert_to_upstream_loads_back(fake_artifacts, tmp_path, runner):
    res = runner.invoke(app, ["ckpt", "convert", str(fake_artifacts), str(tmp_path / "x")])
    res = runner.invoke(
        app, ["ckpt", "convert", str(tmp_path / "x"), str(tmp_path / "u"), "--to", "upstream"]
    )
    assert res.exit_code == 0, res.output
    ckpt, prov = load_model(tmp_path / "u", "retrieval")
    assert prov["format"] == "upstream" and ckpt.config.model_type == "retrieval"


@pytest.mark.parametrize(
    "argv",
    [
        ["phoenix", "rank", "--artifacts", "/nonexistent/dir"],
        ["ckpt", "inspect", "/nonexistent/dir"],
        ["ckpt", "diff", "/nonexistent/a", "/nonexistent/b"],
    ],
)
def test_missing_inputs_exit_2_with_one_error_line(argv, runner, monkeypatch):
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    res = runner.invoke(app, argv)
    assert res.exit_code == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "/nonexistent" in errors[0]
    assert "Traceback" not in res.output


def test_corrupt_checkpoint_exit_2_and_debug_shows_traceback(
    fake_artifacts, tmp_path, runner, monkeypatch
):
    bad = tmp_path / "bad"
    (bad / "ranker").mkdir(parents=True)
    for name in ("config.json", "embedding_tables.npz"):
        (bad / "ranker" / name).write_bytes((fake_artifacts / "ranker" / name).read_bytes())
    (bad / "ranker" / "model_params.npz").write_bytes(b"garbage")
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    res = runner.invoke(app, ["ckpt", "inspect", str(bad)])
    assert res.exit_code == 2 and "not a valid .npz" in res.stderr
    monkeypatch.setenv("XFEED_DEBUG", "1")
    res = runner.invoke(app, ["ckpt", "inspect", str(bad)])
    assert res.exit_code != 0 and res.exception is not None  # raised, with its traceback


def test_bad_sequence_file_exit_2(fake_artifacts, tmp_path, runner):
    seq = tmp_path / "seq.json"
    seq.write_text('{"history": []}')
    res = runner.invoke(
        app, ["phoenix", "retrieve", "--artifacts", str(fake_artifacts), "--sequence", str(seq)]
    )
    assert res.exit_code == 2 and "bad sequence file" in res.stderr


def test_failed_run_leaves_no_out_file(tmp_path, runner):
    target = tmp_path / "o.jsonl"
    res = runner.invoke(
        app, ["phoenix", "rank", "--artifacts", str(tmp_path / "missing"), "--out", str(target)]
    )
    assert res.exit_code == 2 and not target.exists() and list(tmp_path.iterdir()) == []


def test_gpu_request_without_gpu_exits_2(fake_artifacts, runner):
    import jax

    try:
        has_gpu = bool(jax.devices("gpu"))
    except RuntimeError:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is present; the error path cannot be exercised")
    res = runner.invoke(
        app, ["phoenix", "retrieve", "--artifacts", str(fake_artifacts), "--device", "gpu"]
    )
    assert res.exit_code == 2 and "no gpu device" in res.stderr


@pytest.mark.gpu
def test_phoenix_rank_runs_on_gpu(fake_artifacts, runner):
    res = runner.invoke(
        app,
        [
            "phoenix",
            "rank",
            "--artifacts",
            str(fake_artifacts),
            "--device",
            "gpu",
            "--top-k",
            "10",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "device: gpu" in res.stderr
