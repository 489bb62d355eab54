"""`xfeed ckpt pull` against a fake hub on 127.0.0.1 (no network)."""

from __future__ import annotations

import filecmp

import pytest

from checkpoints.errors import CheckpointError
from checkpoints.hub import pull
from tests.fake_hub import FakeHub
from xfeed_cli.main import app

REPO_ID = "xfeed-test/mini-fake"


@pytest.fixture
def hub_root(tmp_path):
    root = tmp_path / "hubrepo"
    (root / "ranker").mkdir(parents=True)
    (root / "ranker" / "config.json").write_text('{"model_type": "ranker"}')
    (root / "README.md").write_text("fake repo\n")
    return root


def test_pull_downloads_every_file_into_the_cache(hub_root, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub(hub_root, REPO_ID) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        path = pull(REPO_ID, cache_dir=tmp_path / "cache")
    assert path.is_relative_to(tmp_path / "cache")
    assert "models--xfeed-test--mini-fake" in str(path)
    for name in ("ranker/config.json", "README.md"):
        assert filecmp.cmp(hub_root / name, path / name, shallow=False)


def test_pull_offline_uses_the_cache_and_fails_cleanly_when_absent(hub_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    with FakeHub(hub_root, REPO_ID) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        first = pull(REPO_ID, cache_dir=cache)
        seen = len(hub.requests)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        again = pull(REPO_ID, cache_dir=cache)
        assert len(hub.requests) == seen  # offline: no request reached the server
    assert again == first
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        pull("xfeed-test/never-pulled", cache_dir=cache)


def test_pull_cli_local_dir_and_unknown_repo_exit_2(hub_root, tmp_path, monkeypatch, runner):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub(hub_root, REPO_ID) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        res = runner.invoke(app, ["ckpt", "pull", REPO_ID, "--local-dir", str(tmp_path / "local")])
        assert res.exit_code == 0, res.output
        assert (
            tmp_path / "local" / "ranker" / "config.json"
        ).read_text() == '{"model_type": "ranker"}'
        res = runner.invoke(
            app, ["ckpt", "pull", "nobody/nothing", "--cache-dir", str(tmp_path / "c")]
        )
    assert res.exit_code == 2
    assert "error:" in res.output and "Traceback" not in res.output
