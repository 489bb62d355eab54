"""Checkpoint I/O: upstream layout, xfeed format, lossless conversion, strict loading."""

from __future__ import annotations

import filecmp
import json
import mmap

import numpy as np
import pytest

from checkpoints import safetensors_io
from checkpoints.corpus import load_corpus
from checkpoints.errors import CheckpointError
from checkpoints.formats import load_model, save_xfeed
from checkpoints.tools import convert, diff, inspect
from phoenix.config import ModelType, PhoenixConfig

UPSTREAM_FILES = ("config.json", "model_params.npz", "embedding_tables.npz")


def test_fake_artifacts_have_the_exact_upstream_layout(fake_artifacts, upstream_dir):
    for model in ("ranker", "retrieval"):
        assert sorted(p.name for p in (fake_artifacts / model).iterdir()) == sorted(UPSTREAM_FILES)
        fake_cfg = json.loads((fake_artifacts / model / "config.json").read_text())
        real_cfg = json.loads((upstream_dir / f"{model}_config.json").read_text())
        assert list(fake_cfg) == list(real_cfg)  # same keys, same order
        assert list(fake_cfg["hash_params"]) == list(real_cfg["hash_params"])
        assert fake_cfg["hash_params"] == real_cfg["hash_params"]
        with np.load(fake_artifacts / model / "embedding_tables.npz") as z:
            assert sorted(z.files) == ["author_embeddings", "item_embeddings", "user_embeddings"]
    with np.load(fake_artifacts / "sports_corpus.npz") as z:
        assert {"post_ids", "candidate_representations", "author_ids"} <= set(z.files)
    seq = json.loads((fake_artifacts / "example_sequence.json").read_text())
    assert {"user_id", "history"} <= seq.keys() and seq["history"][0]["actions"]


def test_upstream_config_json_parses_with_the_implicit_numbers_explicit(upstream_dir):
    cfg = PhoenixConfig.from_upstream_json(
        json.loads((upstream_dir / "ranker_config.json").read_text())
    )
    t = cfg.transformer
    assert (t.emb_size, t.num_layers, t.num_q_heads, t.num_kv_heads, t.key_size) == (
        128,
        4,
        4,
        4,
        32,
    )
    assert (t.widening_factor, t.attn_output_multiplier) == (2.0, 0.125)
    assert (
        cfg.hash.item.scales == (2161410491, 1754358832) and cfg.hash.user.vocab_size == 1_000_000
    )
    assert cfg.post_age_vocab_size == 82 and len(cfg.head_names) == 19
    assert cfg.to_upstream_json() == json.loads((upstream_dir / "ranker_config.json").read_text())
    assert PhoenixConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_fake_load_convert_load_round_trip_is_exact(fake_artifacts, tmp_path):
    convert(fake_artifacts, tmp_path / "x", "xfeed")
    convert(tmp_path / "x", tmp_path / "u", "upstream")
    for model in ("ranker", "retrieval"):
        a, _ = load_model(fake_artifacts, model)
        b, prov = load_model(tmp_path / "x", model)
        assert prov["format"] == "xfeed" and a.config == b.config
        assert a.params.keys() == b.params.keys()
        for k in a.params:
            assert (
                np.array_equal(a.params[k], b.params[k]) and a.params[k].shape == b.params[k].shape
            )
        for e in ("user", "item", "author"):
            assert np.array_equal(a.tables.table(e), b.tables.table(e))
        for name in UPSTREAM_FILES:  # and back to upstream byte for byte
            assert filecmp.cmp(
                fake_artifacts / model / name, tmp_path / "u" / model / name, shallow=False
            )
    assert all(r.max_abs == 0 for r in diff(fake_artifacts, tmp_path / "x"))


def test_xfeed_tables_are_memory_mapped_and_equal_eager_load(fake_artifacts, tmp_path):
    convert(fake_artifacts, tmp_path / "x", "xfeed")
    lazy, _ = load_model(tmp_path / "x", "ranker", mmap=True)
    eager, _ = load_model(tmp_path / "x", "ranker", mmap=False)
    assert _is_mapped(lazy.tables.item) and not lazy.tables.item.flags.writeable
    assert not _is_mapped(eager.tables.item)
    assert np.array_equal(lazy.tables.item, eager.tables.item)


def _is_mapped(a: np.ndarray) -> bool:
    """Is the array a view into a memory-mapped file?"""
    while a is not None:
        if isinstance(a, mmap.mmap):
            return True
        a = getattr(a, "base", None) if not isinstance(a, memoryview) else a.obj
    return False


def test_our_safetensors_files_read_with_the_safetensors_library(tmp_path):
    from safetensors.numpy import load_file

    tensors = {"a/w": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.arange(4)}
    safetensors_io.save(tmp_path / "t.safetensors", tensors, {"k": "v"})
    theirs = load_file(tmp_path / "t.safetensors")
    ours, meta = safetensors_io.load(tmp_path / "t.safetensors")
    for k, v in tensors.items():
        assert np.array_equal(theirs[k], v) and np.array_equal(ours[k], v)
    assert meta == {"k": "v"}


def test_scalar_params_keep_their_zero_dim_shape(tmp_path):
    safetensors_io.save(tmp_path / "s.safetensors", {"~/log_temperature": np.float32(0.5)})
    loaded, _ = safetensors_io.load(tmp_path / "s.safetensors")
    assert loaded["~/log_temperature"].shape == () and float(loaded["~/log_temperature"]) == 0.5


def _copy_model(src, dst):
    dst.mkdir(parents=True)
    for name in UPSTREAM_FILES:
        (dst / name).write_bytes((src / name).read_bytes())


def test_mismatched_params_give_one_two_sided_error(fake_artifacts, tmp_path):
    bad = tmp_path / "bad"
    _copy_model(fake_artifacts / "ranker", bad)
    with np.load(bad / "model_params.npz") as z:
        params = {k: z[k] for k in z.files}
    params.pop("phoenix_model/proj_mat_1")
    params["phoenix_model/extra_thing"] = np.zeros(3, np.float32)
    params["phoenix_model/unembeddings"] = np.zeros((128, 7), np.float32)
    np.savez(bad / "model_params.npz", **params)
    with pytest.raises(CheckpointError) as info:
        load_model(bad)
    msg = str(info.value)
    assert "params missing in checkpoint: phoenix_model/proj_mat_1" in msg
    assert "params missing in code: phoenix_model/extra_thing" in msg
    assert "phoenix_model/unembeddings (128, 7) != expected (128, 19)" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: (d / "model_params.npz").write_bytes(b"not a zip"), "not a valid .npz"),
        (lambda d: (d / "config.json").write_text("{"), "not valid JSON"),
        (lambda d: (d / "config.json").write_text('{"model_type": "ranker"}'), "bad config"),
        (lambda d: (d / "embedding_tables.npz").unlink(), "file not found"),
    ],
)
def test_corrupt_checkpoints_raise_checkpoint_error(fake_artifacts, tmp_path, damage, needle):
    bad = tmp_path / "bad"
    _copy_model(fake_artifacts / "ranker", bad)
    damage(bad)
    with pytest.raises(CheckpointError, match=needle):
        load_model(bad)


def test_pickled_npz_is_refused(fake_artifacts, tmp_path):
    bad = tmp_path / "bad"
    _copy_model(fake_artifacts / "ranker", bad)
    np.savez(bad / "model_params.npz", evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="holds Python objects; xfeed never loads those"):
        load_model(bad)


def test_embedding_tables_must_fit_the_hash_vocab(fake_artifacts, tmp_path):
    bad = tmp_path / "bad"
    _copy_model(fake_artifacts / "ranker", bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["item_vocab_size"] = 999
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="item table is"):
        load_model(bad)


def test_truncated_safetensors_is_rejected(fake_artifacts, tmp_path):
    ckpt, _ = load_model(fake_artifacts, ModelType.RANKER)
    save_xfeed(tmp_path / "m", ckpt, {"source": "test"})
    data = (tmp_path / "m" / "model.safetensors").read_bytes()
    (tmp_path / "m" / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(tmp_path / "m")


def test_failed_conversion_leaves_no_output(fake_artifacts, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    _copy_model(fake_artifacts / "ranker", bad / "ranker")
    (bad / "retrieval").mkdir()  # present but empty -> error after ranker was written
    with pytest.raises(CheckpointError):
        convert(bad, tmp_path / "out", "xfeed")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad"]


def test_inspect_reports_mini_totals(fake_artifacts):
    report = inspect(fake_artifacts)
    assert report["models"]["ranker"]["num_params"] == 807_104
    assert report["models"]["retrieval"]["num_param_arrays"] == 51
    names = {t["name"] for t in report["models"]["ranker"]["tensors"]}
    assert "embeddings/user" in names and "transformer/decoder_layer_3/linear_1/w" in names


def test_diff_finds_and_sorts_changed_tensors(fake_artifacts, tmp_path):
    convert(fake_artifacts, tmp_path / "x", "xfeed")
    ckpt, prov = load_model(tmp_path / "x", "ranker", mmap=False)
    params = dict(ckpt.params)
    params["phoenix_model/proj_mat_2"] = params["phoenix_model/proj_mat_2"] + 0.5
    params["phoenix_model/unembeddings"] = params["phoenix_model/unembeddings"] + 1e-3
    from dataclasses import replace

    save_xfeed(tmp_path / "x" / "ranker", replace(ckpt, params=params), {})
    rows = diff(fake_artifacts, tmp_path / "x")
    assert [r.name for r in rows[:2]] == [
        "ranker:phoenix_model/proj_mat_2",
        "ranker:phoenix_model/unembeddings",
    ]
    assert rows[0].max_abs == pytest.approx(0.5) and rows[1].max_abs == pytest.approx(
        1e-3, rel=1e-3
    )
    assert rows[2].max_abs == 0


def test_corpus_loads_from_upstream_npz(fake_artifacts):
    corpus = load_corpus(fake_artifacts / "sports_corpus.npz")
    assert len(corpus) == 300 and corpus.dim == 128
    np.testing.assert_allclose(np.linalg.norm(corpus.embeddings, axis=1), 1.0, atol=1e-5)
    assert corpus.post_ids.dtype == np.int64 and corpus.post_ids.min() > 0


def test_segment_lookup_equals_indexing_upstreams_unified_table(fake_artifacts):
    from phoenix import hashing
    from phoenix.inputs import UserHistory, embed_batch, make_batch

    ckpt, _ = load_model(fake_artifacts, "ranker")
    cfg = ckpt.config
    unified = ckpt.tables.unified()  # zeros(65 + U + I + A, D) filled as upstream does
    assert unified.shape == (cfg.hash.total_rows, cfg.emb_size)
    assert not unified[:65].any()
    rng = np.random.default_rng(0)
    hist = UserHistory(
        12345, rng.integers(1, 2**62, 5), rng.integers(1, 10**8, 5), np.ones((5, 19), np.float32)
    )
    posts = rng.integers(1, 2**62, 4)
    posts[2] = 0
    batch = make_batch(hist, cfg, posts, rng.integers(1, 10**8, 4))
    emb = embed_batch(batch, ckpt.tables, cfg)
    for rows, got in [
        (batch.user_hashes, emb.user_embeddings),
        (batch.history_post_hashes, emb.history_post_embeddings),
        (batch.candidate_post_hashes, emb.candidate_post_embeddings),
        (batch.candidate_author_hashes, emb.candidate_author_embeddings),
    ]:
        assert np.array_equal(unified[rows], got)
    assert np.array_equal(batch.user_hashes[0], hashing.user_rows(12345, cfg.hash))
    assert not emb.candidate_post_embeddings[0, 2].any()  # padding slot -> zero vectors


def test_cli_reports_the_two_sided_param_error_and_exits_2(fake_artifacts, tmp_path, runner):
    from xfeed_cli.main import app

    bad = tmp_path / "bad"
    _copy_model(fake_artifacts / "ranker", bad)
    with np.load(bad / "model_params.npz") as z:
        params = {k: z[k] for k in z.files if k != "phoenix_model/proj_mat_2"}
    params["phoenix_model/surprise"] = np.zeros(2, np.float32)
    np.savez(bad / "model_params.npz", **params)
    res = runner.invoke(app, ["ckpt", "inspect", str(bad)])
    assert res.exit_code == 2
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert "params missing in checkpoint: phoenix_model/proj_mat_2" in line
    assert "params missing in code: phoenix_model/surprise" in line
