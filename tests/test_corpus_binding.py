"""A corpus is bound to the retrieval checkpoint and world it was built from (content hashes in
its header): `rank` never uses another one silently."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from checkpoints import safetensors_io
from checkpoints.corpus import corpus_header
from pipeline import feed
from world import corpus as wc
from xfeed_cli.main import app

BUNDLED_CKPT, BUNDLED_WORLD = feed.BUNDLED.checkpoint, feed.BUNDLED.world


def test_the_bundled_corpus_records_both_hashes():
    header = corpus_header(f"{BUNDLED_WORLD}/corpus.safetensors")
    assert header["checkpoint_hash"] == wc.checkpoint_hash(BUNDLED_CKPT)
    assert header["world_hash"] == wc.world_hash(BUNDLED_WORLD)
    assert wc.resolve(BUNDLED_CKPT, BUNDLED_WORLD) == f"{BUNDLED_WORLD}/corpus.safetensors"


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory):
    """The bundled checkpoint with different retrieval weights (same shapes)."""
    out = tmp_path_factory.mktemp("ckpt") / "other"
    shutil.copytree(BUNDLED_CKPT, out)
    path = out / "retrieval" / "model.safetensors"
    tensors, meta = safetensors_io.load(path, mmap=False)
    path.unlink()  # a copy: write the changed weights afresh
    safetensors_io.save(path, {k: np.asarray(v) * np.float32(-0.5) for k, v in tensors.items()},
                        meta)  # fmt: skip
    return out


def _rank(runner, *argv):
    return runner.invoke(app, ["rank", "--user", "1007", "--json", *argv])


def test_another_checkpoint_gets_its_own_corpus_built_into_the_cache(
    other_checkpoint, runner, tmp_path, monkeypatch
):
    monkeypatch.setenv("XFEED_CACHE_DIR", str(tmp_path / "cache"))
    res = _rank(runner, "--checkpoint", str(other_checkpoint))
    assert res.exit_code == 0, res.output
    assert "building the retrieval corpus" in res.stderr
    built = list((tmp_path / "cache" / "corpora").rglob("corpus.safetensors"))
    assert len(built) == 1
    header = corpus_header(built[0])
    assert header["checkpoint_hash"] == wc.checkpoint_hash(other_checkpoint)
    assert header["checkpoint_hash"] != corpus_header(f"{BUNDLED_WORLD}/corpus.safetensors")[
        "checkpoint_hash"]  # fmt: skip
    again = _rank(runner, "--checkpoint", str(other_checkpoint))
    assert again.exit_code == 0 and "building" not in again.stderr  # reused
    assert again.stdout == res.stdout


def test_a_mismatched_corpus_given_explicitly_is_refused(other_checkpoint, runner, monkeypatch):
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    res = _rank(runner, "--checkpoint", str(other_checkpoint),
                "--corpus", f"{BUNDLED_WORLD}/corpus.safetensors")  # fmt: skip
    assert res.exit_code == 2, res.output
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "xfeed index build --checkpoint" in errors[0]
    assert "another checkpoint" in errors[0]


def test_a_world_without_corpus_and_no_writable_cache_names_the_fix(tmp_path, runner, monkeypatch):
    monkeypatch.delenv("XFEED_DEBUG", raising=False)
    world = tmp_path / "world"
    res = runner.invoke(app, ["data", "synth", "--out", str(world), "--users", "40", "--seed", "3"])
    assert res.exit_code == 0, res.output
    (world / "corpus.safetensors").unlink(missing_ok=True)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XFEED_CACHE_DIR", str(blocker / "cache"))  # cannot be a directory
    user = wc.read_table(world, "users", ["user_id"]).column("user_id")[0].as_py()
    res = runner.invoke(app, ["rank", "--user", str(user), "--world", str(world)])
    assert res.exit_code == 2, res.output
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1
    assert f"xfeed index build --checkpoint {BUNDLED_CKPT} --world {world}" in errors[0]
