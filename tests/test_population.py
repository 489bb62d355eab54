"""Population runs: `rank --users … --out DIR` equals `rank --user U --json` per user, shards
partition the users, a killed run resumes to the same dataset, bad input is one error line."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import feed
from pipeline import population as pop
from pipeline.candidates import parse_stream
from xfeed_cli.main import app

USERS = [1007, 5007, 9007]  # a sample of the bundled world's users


def _ok(runner, argv):
    res = runner.invoke(app, argv)
    assert res.exit_code == 0, res.output
    return res.stdout


def _dataset(path):
    return pq.read_table(sorted(path.glob("part-*.parquet"))).to_pylist()


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("feeds") / "all"
    argv = ["rank", "--users", ",".join(map(str, USERS)), "--out", str(out), "--keep", "all",
            "--device", "cpu"]  # fmt: skip
    _ok(CliRunner(), argv)
    return out


def test_population_rows_equal_rank_user_json(population, runner):
    rows = _dataset(population)
    for u in USERS:
        _, cands = parse_stream(_ok(runner, ["rank", "--user", str(u), "--json"]).splitlines())
        served = sorted((r for r in rows if r["viewer_id"] == u and r["stage"] == "served"),
                        key=lambda r: r["position"])  # fmt: skip
        assert [r["post_id"] for r in served] == [c.post_id for c in cands]
        assert [r["position"] for r in served] == list(range(1, len(cands) + 1))
        for r, c in zip(served, cands, strict=True):
            assert r["score"] == pytest.approx(c.score, rel=1e-6, abs=1e-9)
            assert r["author_id"] == c.author_id and r["in_network"] == c.in_network
            assert r["p_favorite"] == pytest.approx(c.probs["favorite"], abs=1e-6)


def test_keep_all_keeps_every_candidate_with_its_stage_and_reason(population):
    rows = _dataset(population)
    assert {r["stage"] for r in rows} >= {"served", "not_selected", "filter"}
    for r in rows:
        if r["stage"] in ("filter", "post_selection_filter"):
            assert r["component"] and r["reason"] and r["position"] is None
        elif r["stage"] == "not_selected":
            assert r["score"] is not None and r["position"] is None
    manifest = json.loads((population / "manifest.json").read_text())
    assert manifest["arm"] == "for-you" and manifest["counts"]["users"] == len(USERS)
    assert manifest["counts"]["rows"] == len(rows)
    assert len(manifest["world"]["sha256"]) == 64 and manifest["checkpoint"]["sha256"]
    assert manifest["request_ms"] == rows[0]["request_ms"]


def test_shards_partition_the_users_deterministically():
    ids = np.arange(1, 5001, dtype=np.int64) * 1000 + 7
    shard = pop.shard_of(ids, 4)
    assert set(np.unique(shard).tolist()) == {0, 1, 2, 3}
    assert np.array_equal(shard, pop.shard_of(ids.copy(), 4))
    assert min(np.bincount(shard)) > 1000  # roughly even
    assert pop.parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(pop.PopulationError):
            pop.parse_shard(bad)


def test_killed_run_resumes_to_the_same_dataset(tmp_path, monkeypatch, population):
    monkeypatch.setattr(pop, "PART_USERS", 1)
    spec = pop.RunSpec(*_spec_parts())
    users = np.array(USERS, np.int64)
    full = tmp_path / "full"
    pop.run_population(users, spec, full)

    class Kill(Exception):
        pass

    def kill_after_one(done, total):
        if done == 1:
            raise Kill

    part = tmp_path / "part"
    with pytest.raises(Kill):
        pop.run_population(users, spec, part, progress=kill_after_one)
    assert len(list(part.glob("part-*.parquet"))) == 1 and not (part / "manifest.json").exists()
    assert not [p for p in part.iterdir() if p.name.startswith(".")]  # no partial files
    with pytest.raises(pop.PopulationError, match="not empty"):
        pop.run_population(users, spec, part)  # never overwrites without --resume
    manifest = pop.run_population(users, spec, part, resume=True)
    assert manifest["time"]["users_skipped_on_resume"] == 1
    names = sorted(p.name for p in full.glob("part-*"))
    assert names == sorted(p.name for p in part.glob("part-*")) and len(names) == 3
    for name in names:
        assert pq.read_table(full / name).equals(pq.read_table(part / name))


def _spec_parts():
    from pipeline import feed

    r = feed.BUNDLED
    return r, feed.FeedParams(), pop.request_time(r.world, None), "scored"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["rank", "--users", "1007,424242", "--out", "{out}"], "not in world"),
        (["rank", "--users", "1007"], "needs --out"),
        (["rank", "--users", "1007", "--out", "{out}", "--shard", "3/2"], "0 <= I < N"),
        (["rank", "--users", "1007", "--out", "{out}", "--keep", "some"], "--keep"),
        (["rank"], "give --user"),
    ],
)
def test_bad_population_input_is_one_error_line(argv, needle, runner, tmp_path, monkeypatch):
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    argv = [a.replace("{out}", str(tmp_path / "o")) for a in argv]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0]


def test_batches_in_threads_give_the_same_rows_as_one_at_a_time(monkeypatch):
    spec = pop.RunSpec(*_spec_parts())
    users = pop.world_user_ids(spec.resources.world)[:12]
    monkeypatch.setattr(pop, "BATCH_USERS", 4)  # three batches
    monkeypatch.setattr(pop, "BATCH_THREADS", 1)
    one, _ = pop.rank_users(users, spec)
    monkeypatch.setattr(pop, "BATCH_THREADS", 2)
    two, _ = pop.rank_users(users, spec)
    assert one.num_rows > 12 * 10 and one.equals(two)


def test_non_finite_ranker_output_is_the_same_error_for_users_as_for_user(runner, tmp_path):
    import shutil

    from checkpoints import safetensors_io

    bad = tmp_path / "ckpt"
    shutil.copytree("data/samples/checkpoint", bad)
    emb = bad / "ranker" / "embeddings.safetensors"
    tables, meta = safetensors_io.load(emb, mmap=False)
    tables = {k: np.full_like(v, np.inf) for k, v in tables.items()}
    safetensors_io.save(emb, tables, metadata=meta, force=True)
    errors = []
    for argv in (
        ["rank", "--user", str(USERS[0]), "--json"],
        ["rank", "--users", ",".join(map(str, USERS)), "--out", str(tmp_path / "o")],
    ):
        res = runner.invoke(app, [*argv, "--checkpoint", str(bad), "--device", "cpu"])
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        errors.append(lines[0])
    assert errors[0] == errors[1]
    assert "ranker produced non-finite values (head " in errors[0]
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_batches_are_larger_on_a_gpu(monkeypatch):
    monkeypatch.setattr(pop, "current_platform", lambda: "cpu")
    assert pop.batch_users() == pop.BATCH_USERS
    monkeypatch.setattr(pop, "current_platform", lambda: "gpu")
    assert pop.batch_users() == pop.GPU_BATCH_USERS > pop.BATCH_USERS


@pytest.mark.gpu
def test_a_gpu_serves_the_feeds_the_cpu_serves(tmp_path, runner):
    """Full-precision float32 products on the GPU (phoenix.device.full_precision): the same posts
    are served as on the CPU, scores within 1e-3 (near-ties may swap places). With XLA's TF32
    default, 94 of the bundled world's 2,000 feeds served other posts on an H200."""
    users = pop.world_user_ids(feed.BUNDLED.world)[:128]
    (tmp_path / "users.txt").write_text("\n".join(map(str, users)) + "\n")
    feeds = {}
    for device in ("cpu", "gpu"):
        _ok(runner, ["rank", "--users", str(tmp_path / "users.txt"), "--out",
                     str(tmp_path / device), "--device", device])  # fmt: skip
        feeds[device] = {(r["viewer_id"], r["post_id"]): r["score"]
                         for r in _dataset(tmp_path / device)}  # fmt: skip
    assert feeds["cpu"].keys() == feeds["gpu"].keys()
    assert len({v for v, _ in feeds["gpu"]}) == len(users)
    for key, score in feeds["cpu"].items():
        assert feeds["gpu"][key] == pytest.approx(score, abs=1e-3)


def test_ray_options_need_the_ray_engine(tmp_path, runner):
    argv = ["rank", "--users", "1007", "--out", str(tmp_path / "o"), "--ray-gpus-per-actor", "1"]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2 and "need --engine ray" in res.stderr
    assert not (tmp_path / "o").exists()


def test_population_compare_finds_a_user_served_another_post(population, tmp_path):
    from benchmarks.population_compare import compare, main

    same = compare(population, population)
    assert same["users_serving_other_posts"] == 0 and same["score"]["max_abs"] == 0.0
    assert same["slots_equal"] == same["rows"][0] > 0
    table = pq.read_table(sorted(population.glob("part-*.parquet")))
    post = table["post_id"].to_numpy().copy()
    served = np.flatnonzero(np.asarray(table["stage"].to_pylist()) == "served")
    post[served[0]] += 1  # one served slot of the first viewer now holds another post
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(table.set_column(table.schema.get_field_index("post_id"), "post_id",
                                    pa.array(post)), other / "part-0.parquet")  # fmt: skip
    diff = compare(population, other)
    assert diff["users_serving_other_posts"] == 1 and diff["slots_equal"] == diff["rows"][0] - 1
    assert main([str(population), str(other)]) == 1


def test_ray_engine_refuses_a_gpu_device_without_gpus_per_actor(tmp_path, runner):
    argv = ["rank", "--users", "1007", "--out", str(tmp_path / "o"), "--engine", "ray",
            "--device", "gpu"]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == 2 and "--ray-gpus-per-actor > 0" in res.stderr
    assert not (tmp_path / "o").exists()


def test_a_long_id_list_is_read_as_ids_not_as_a_file_name():
    from pipeline.population import resolve_users, world_user_ids

    world = str(feed.BUNDLED.world)
    ids = world_user_ids(world)[:300]
    spec = ",".join(map(str, ids))
    assert len(spec.encode()) > 255  # longer than any file name the OS accepts
    assert np.array_equal(resolve_users(spec, world), np.sort(ids))
