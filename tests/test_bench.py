"""`xfeed bench`: the reports are well-formed and their correctness figures hold (timings are
measured, never asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks.core import Timing, measure
from benchmarks.plot import plot_ranking
from benchmarks.ranking import bench_ranking
from benchmarks.ranking_concurrency import bench as bench_concurrency
from benchmarks.retrieval import bench_retrieval
from benchmarks.thunder_store import bench_thunder
from phoenix.config import Preset
from xfeed_cli.main import app


def test_timing_percentiles_and_measure_counts_calls():
    t = Timing((1.0, 2.0, 3.0, 4.0, 100.0))
    assert t.p50 == 3.0 and 4.0 < t.p95 <= 100.0
    calls = []
    m = measure(lambda: calls.append(1), repeat=4, warmup=2)
    assert len(calls) == 6 and len(m.samples_ms) == 4


def test_ranking_bench_paths_agree_and_report_a_floor(tmp_path):
    r = bench_ranking(repeat=1, candidates=70, dtypes=("float32",), sweep=(8, 70),
                      preset=Preset.TINY, vocab=500)  # fmt: skip
    s = r.summary["float32"]
    assert s["max_abs_prob_diff"] < 1e-3
    assert s["cached_gflop"] > 0 and s["floor_ms"] > 0 and s["speedup_cached_vs_reference"] > 0
    assert [row.label for row in r.rows] == ["reference (float32)", "cached (float32)"]
    assert r.series["candidates"] == [8, 70] and len(r.series["cached_ms"]) == 2
    png = tmp_path / "rank.png"
    plot_ranking(r.series, r.info, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(r.to_json())


def test_ranking_concurrency_bench_reports_one_and_two_callers_against_the_floor():
    r = bench_concurrency([8, 70], "float32", rounds=1, calls=1, preset=Preset.TINY, vocab=500)
    assert [row["candidates"] for row in r["rows"]] == [8, 70]
    small, large = r["rows"]
    assert 0 < small["gflop"] < large["gflop"] and large["floor_core_ms"] > 0
    for row in r["rows"]:
        for callers in ("callers_1", "callers_2"):
            assert row[callers]["wall_ms"] > 0 and row[callers]["cpu_ms"] > 0
            assert row[callers]["cpu_vs_floor"] > 0
    json.dumps(r)


def test_retrieval_bench_compares_against_the_numpy_floor():
    r = bench_retrieval(repeat=1, corpus_size=3000, dim=16, k=50, batch=4, preset=Preset.TINY)
    labels = [row.label for row in r.rows]
    assert "numpy floor, 1 query" in labels and "xfeed search, 4 queries" in labels
    assert r.summary["single_vs_floor"] > 0 and r.summary["batch_vs_floor"] > 0


def test_thunder_bench_reports_build_and_fetch(tmp_path):
    r = bench_thunder(events=20_000, authors=500, follow=50, requests=5, workdir=tmp_path)
    assert r.summary["build_events_per_s"] > 0 and r.summary["fetch_p50_ms"] > 0
    assert r.info["posts_stored"] > 0
    assert list(tmp_path.iterdir()) == []  # the generated log is removed


def test_bench_cli_json_and_bad_plot_target(runner, tmp_path):
    res = runner.invoke(app, ["bench", "thunder", "--quick", "--repeat", "1", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])["reports"][0]
    assert report["name"] == "thunder" and report["summary"]["fetch_p50_ms"] > 0
    res = runner.invoke(app, ["bench", "thunder", "--plot", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "ranking" in res.output
    assert not (tmp_path / "x.png").exists()


def test_audit_bench_generates_two_arms_and_measures_a_fresh_audit(tmp_path):
    from benchmarks.audit_bench import bench_audit

    r = bench_audit(rows=35 * 300, workdir=tmp_path, replicates=20)
    assert r.info["users"] == 300 and r.info["served_rows_per_arm"] == 35 * 300
    assert r.summary["peak_rss_mb"] > 0 and r.summary["wall_s_p50"] > 0


def test_load_bench_measures_a_fresh_process(tmp_path):
    from benchmarks.loading import MODES, bench_load

    report = bench_load(vocab=300, workdir=tmp_path, repeat=1, candidates=8, modes=MODES[:1])
    (row,) = report.rows
    assert row.label == "load (mmap, cold cache)"
    assert row.timing.p50 > 0
    assert row.extra["peak_rss_mb"] >= row.extra["baseline_rss_mb"] > 0
    assert "ranks 8 candidates" in report.notes[0]


def test_the_hostile_sweep_flags_what_breaks_a_promise_and_passes_what_keeps_it(tmp_path):
    import numpy as np

    from benchmarks.hostile import run_case
    from benchmarks.hostile_cases import Case, drawn_cases, replace_with

    pristine, work = tmp_path / "p", tmp_path / "w"
    pristine.mkdir()
    work.mkdir()
    query = ('{"query": {"user_id": "1007", "now_ms": 1784592000000, "resources": '
             '{"world": "w", "checkpoint": "c"}}}')  # fmt: skip
    cand = '{"post_id": "11", "author_id": "12", "created_ms": 1784500000000, "score": 0.5}'
    (pristine / "scored.jsonl").write_text(query + "\n" + cand + "\n")
    (pristine / "mine.toml").write_text("# my notes\n")
    rng = np.random.default_rng(0)
    ok = run_case(Case("valid", ["select", "--in", "scored.jsonl", "-o", "o"], out="o"),
                  pristine, work, rng, 60)  # fmt: skip
    assert ok.rc == 0 and ok.problems == []
    to_fifo = replace_with("scored.jsonl", "fifo")
    fifo = run_case(Case("fifo", ["select", "--in", "scored.jsonl"], to_fifo), pristine, work,
                    rng, 60)  # fmt: skip
    assert fifo.rc == 2 and fifo.problems == [] and fifo.error_line.startswith("error:")
    # writing over a file the case may not touch is caught (--force makes xfeed do it)
    bad = run_case(Case("overwrite", ["params", "--toml", "mine.toml", "--force"]), pristine,
                   work, rng, 60)  # fmt: skip
    assert any("changed outside the output: mine.toml" in p for p in bad.problems)
    assert (pristine / "mine.toml").read_text() == "# my notes\n"  # sandboxes are copies
    names = [c.name for c in drawn_cases(40, np.random.default_rng(5))]
    assert names == [c.name for c in drawn_cases(40, np.random.default_rng(5))] and len(names) == 40


def test_population_bench_floor_counts_each_sampled_users_ranked_candidates():
    from benchmarks.population import bench_population

    s = bench_population(users=6).summary
    assert s["floor_sample_users"] == 6
    # the floor counts what the ranker must score; the engine pads each user to a shape bucket
    assert 0 < s["ranked_candidates_per_user"] <= s["bucket_candidates_per_user"]
    assert 0 < s["phoenix_gflop_per_user"] <= s["phoenix_gflop_per_user_at_buckets"]
    assert s["floor_ms_per_user"] == pytest.approx(
        s["phoenix_floor_ms_per_user"] + s["sources_ms_per_user"], abs=2e-3
    )
    # the floor's matmul rate is the one of the model's compute dtype (bundled: float32)
    assert s["compute_dtype"] == "float32" and s["matmul_gflops"] == s["matmul_gflops_float32"]
    assert s["phoenix_floor_ms_per_user"] == s["phoenix_floor_ms_per_user_at_float32_rate"]
