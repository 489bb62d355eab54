"""Hostile checkpoint files: safetensors headers, npz members, config values and non-finite
weights are refused (one line, exit 2) before anything large is allocated; fuzzed files never
give a traceback."""

from __future__ import annotations

import json
import resource
import shutil
import socket
import struct
import threading
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpoints import safetensors_io
from checkpoints.errors import CheckpointError
from checkpoints.formats import load_model, save_xfeed
from checkpoints.hub import pull
from tests.conftest import tiny_checkpoint
from xfeed_cli.main import app


def _one_error(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "Traceback" not in res.output
    return lines[0]


@pytest.fixture(scope="module")
def xfeed_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "model"
    save_xfeed(out, tiny_checkpoint("ranker", fprop_dtype="float32"), {"source": "test"})
    return out


def _copy(src, tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(src, dst)
    return dst


def _st_file(path, header: dict, data: bytes) -> None:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


@pytest.mark.parametrize(
    "header, data, needle",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, b"\0" * 8, "outside"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "overlaps",
        ),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "bad shape"),
        (
            {"a": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]}},
            b"\0" * 8,
            "does not fit",
        ),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "outside"),
        ({"a": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, "dtype"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "after"),
        ({"a": [1, 2]}, b"", "bad header entry"),
    ],
)
def test_hostile_safetensors_headers_are_refused(tmp_path, header, data, needle):
    path = tmp_path / "x.safetensors"
    _st_file(path, header, data)
    with pytest.raises(CheckpointError, match=needle):
        safetensors_io.load(path)


def test_duplicate_keys_and_oversized_header_length_are_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    blob = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32",' \
           b'"shape":[1],"data_offsets":[0,4]}}'  # fmt: skip
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 4)
    with pytest.raises(CheckpointError, match="duplicate key 'a'"):
        safetensors_io.load(path)
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(CheckpointError, match="bad header length"):
        safetensors_io.load(path)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_npz_member_declaring_gigabytes_is_refused_before_reading(fake_artifacts, tmp_path):
    bad = _copy(fake_artifacts / "ranker", tmp_path)
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (1 << 20, 1 << 12)  # 16 GB declared
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(bad / "embedding_tables.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("user_embeddings.npy", buf.getvalue() + b"\0" * 4096)
    before = _rss_mb()
    with pytest.raises(CheckpointError, match="declares shape"):
        load_model(bad)
    assert _rss_mb() - before < 200


def test_random_bytes_npz_is_not_called_pickled_data(fake_artifacts, tmp_path, runner):
    bad = _copy(fake_artifacts / "ranker", tmp_path)
    (bad / "model_params.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    line = _one_error(runner.invoke(app, ["ckpt", "inspect", str(bad)]))
    assert "not a valid .npz" in line and "pickle" not in line.lower()


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"emb_size": "128"}, "emb_size must be an integer"),
        ({"num_heads": 0}, "num_q_heads must be in"),
        ({"post_age_granularity_mins": 0}, "post_age_granularity_mins must be in"),
        ({"emb_size": 10**9}, "emb_size must be in"),
        ({"history_seq_len": 10**9}, "history_seq_len must be in"),
        ({"user_vocab_size": 10**30}, "vocab_size must be in"),
        ({"hash_params": [1, 2]}, "bad config"),
    ],
)
def test_bad_config_values_are_refused_before_allocating(fake_artifacts, tmp_path, change, needle):
    bad = _copy(fake_artifacts / "ranker", tmp_path)
    cfg = json.loads((bad / "config.json").read_text())
    cfg.update(change)
    (bad / "config.json").write_text(json.dumps(cfg))
    before = _rss_mb()
    with pytest.raises(CheckpointError, match=needle):
        load_model(bad)
    assert _rss_mb() - before < 200


@pytest.mark.parametrize("content", ["[1, 2, 3]", "{" * 100_000, "not json", None])
def test_config_that_is_not_an_object_gives_one_line(fake_artifacts, tmp_path, runner, content):
    bad = _copy(fake_artifacts / "ranker", tmp_path)
    (bad / "config.json").unlink()
    if content is None:
        (bad / "config.json").mkdir()
    else:
        (bad / "config.json").write_text(content)
    assert "config.json" in _one_error(runner.invoke(app, ["ckpt", "inspect", str(bad)]))


def test_non_finite_weights_are_refused_and_inspect_reports_them(xfeed_model, tmp_path, runner):
    bad = _copy(xfeed_model, tmp_path)
    tensors, _ = safetensors_io.load(bad / "model.safetensors", mmap=False)
    name = sorted(tensors)[3]
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan
    safetensors_io.save(bad / "model.safetensors", tensors, force=True)
    with pytest.raises(CheckpointError, match=f"tensor '{name}' has 1 non-finite"):
        load_model(bad)
    res = runner.invoke(app, ["ckpt", "inspect", str(bad), "--json"])
    assert res.exit_code == 0, res.output
    model = json.loads(res.stdout)["models"]["ranker"]
    assert model["non_finite_tensors"] == [name]


def test_nan_embedding_rows_make_the_ranker_fail_loudly(xfeed_model, tmp_path):
    from phoenix.inputs import UserHistory
    from phoenix.runtime import NonFiniteOutputError, Ranker

    bad = _copy(xfeed_model, tmp_path)
    tables, _ = safetensors_io.load(bad / "embeddings.safetensors", mmap=False)
    tables = {k: np.full_like(v, np.inf) for k, v in tables.items()}
    safetensors_io.save(bad / "embeddings.safetensors", tables, force=True)
    ckpt, _ = load_model(bad)
    actions = np.zeros((1, ckpt.config.num_actions), np.float32)
    history = UserHistory(5, np.array([7]), np.array([8]), actions)
    with pytest.raises(NonFiniteOutputError, match="ranker produced non-finite values"):
        Ranker(ckpt).rank(history, np.array([11, 12]), np.array([3, 4]))


def test_eval_of_a_missing_checkpoint_exits_2(runner, tmp_path):
    res = runner.invoke(app, ["eval", "--checkpoint", str(tmp_path / "missing"), "--device",
                              "cpu"])  # fmt: skip
    assert "missing" in _one_error(res)


def test_pull_gives_up_on_an_endpoint_that_never_answers(monkeypatch, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(CheckpointError, match="no answer within 1 s"):
        pull("org/name", cache_dir=tmp_path, timeout_s=1)
    server.close()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    which=st.sampled_from(["config.json", "model.safetensors", "embeddings.safetensors"]),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4),
)
def test_fuzzed_checkpoints_exit_0_or_2_with_one_line(xfeed_model, tmp_path_factory, which, cut,
                                                       flips):  # fmt: skip
    from typer.testing import CliRunner

    bad = _copy(xfeed_model, tmp_path_factory.mktemp("fuzz"))
    data = bytearray((bad / which).read_bytes())
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    data = data[: max(1, int(len(data) * (1 - cut / 2)))] if cut > 0.5 else data
    (bad / which).write_bytes(bytes(data))
    before = sorted(p.name for p in bad.iterdir())
    res = CliRunner().invoke(app, ["ckpt", "inspect", str(bad), "--json"])
    assert res.exit_code in (0, 2), res.output  # an unexpected exception would be exit 1
    assert "Traceback" not in res.output
    if res.exit_code == 2:
        assert len([ln for ln in res.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert sorted(p.name for p in bad.iterdir()) == before  # nothing written or removed


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_corpus_with_non_finite_embeddings_is_refused(tmp_path, runner, monkeypatch, value):
    from checkpoints import corpus as corpus_mod
    from pipeline.feed import BUNDLED

    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    tensors, meta = safetensors_io.load(f"{BUNDLED.world}/corpus.safetensors", mmap=False)
    emb = np.array(tensors["embeddings"])
    emb[70_000 % len(emb), 3] = value  # a row past the first scan block when the corpus is big
    bad = tmp_path / "corpus.safetensors"
    safetensors_io.save(bad, {**tensors, "embeddings": emb}, meta)
    monkeypatch.setattr(corpus_mod, "SCAN_ROWS", 1000)  # several scan blocks
    with pytest.raises(CheckpointError, match=f"row {70_000 % len(emb):,}"):
        corpus_mod.load_corpus(bad)
    err = _one_error(runner.invoke(app, ["rank", "--user", "1007", "--corpus", str(bad)]))
    assert str(bad) in err and "non-finite" in err
