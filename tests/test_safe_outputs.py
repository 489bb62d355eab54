"""Outputs never delete or replace what xfeed did not write: refusals, --force, markers,
file-vs-directory mismatches, targets containing the inputs, the user's umask."""

from __future__ import annotations

import os
import stat

import pytest

from safeio.atomic import atomic_path, check_target
from safeio.errors import OutputRefused
from safeio.kinds import CANDIDATE_STREAM, MARKER, OutputKind
from tests.conftest import write_post_log
from tests.test_thunder import post
from xfeed_cli.main import app

DIR_KIND = OutputKind("test output", True)


def _one_error(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "Traceback" not in res.output
    return lines[0]


def _fake(out, *extra):
    return ["ckpt", "fake", "--out", str(out), "--preset", "test", "--vocab", "50",
            "--corpus-size", "20", "--history-len", "5", *extra]  # fmt: skip


@pytest.fixture
def precious(tmp_path):
    d = tmp_path / "precious"
    d.mkdir()
    (d / "thesis.txt").write_text("years of work")
    return d


@pytest.mark.parametrize("command", ["fake", "synth", "thunder"])
def test_non_empty_foreign_directory_is_refused_without_force(command, precious, tmp_path, runner):
    log = write_post_log(tmp_path / "posts.parquet", [post(i, 10, i) for i in range(1, 5)])
    argv = {
        "fake": _fake(precious),
        "synth": ["data", "synth", "--out", str(precious), "--users", "20", "--days", "0.5"],
        "thunder": ["thunder", "build", "--posts", str(log), "--out", str(precious)],
    }[command]
    line = _one_error(runner.invoke(app, argv))
    assert str(precious) in line and "--force" in line
    assert sorted(p.name for p in precious.iterdir()) == ["thesis.txt"]


def test_force_replaces_and_a_previous_output_is_replaced_without_it(precious, runner):
    assert runner.invoke(app, _fake(precious, "--force")).exit_code == 0
    assert not (precious / "thesis.txt").exists() and (precious / MARKER).exists()
    res = runner.invoke(app, _fake(precious, "--seed", "1"))  # same kind: no --force needed
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in precious.parent.iterdir()) == ["precious"]


def test_an_output_of_another_kind_is_refused(tmp_path, runner):
    ckpt = tmp_path / "ckpt"
    assert runner.invoke(app, _fake(ckpt)).exit_code == 0
    log = write_post_log(tmp_path / "posts.parquet", [post(i, 10, i) for i in range(1, 5)])
    line = _one_error(runner.invoke(app, ["thunder", "build", "--posts", str(log),
                                          "--out", str(ckpt)]))  # fmt: skip
    assert "not a previous xfeed thunder snapshot" in line
    assert (ckpt / "ranker" / "config.json").exists()


def test_a_file_where_a_directory_is_wanted_and_the_reverse(tmp_path, runner):
    f = tmp_path / "file"
    f.write_text("mine")
    line = _one_error(runner.invoke(app, _fake(f, "--force")))
    assert "is a file, expected a directory" in line and f.read_text() == "mine"
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(OutputRefused, match="is a directory, expected a file"):
        check_target(d, CANDIDATE_STREAM, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]


def test_a_target_containing_the_inputs_is_refused_even_with_force(tmp_path, runner):
    world = tmp_path / "W"
    world.mkdir()
    log = write_post_log(world / "posts.parquet", [post(i, 10, i) for i in range(1, 5)])
    before = log.read_bytes()
    for extra in ([], ["--force"]):
        argv = ["thunder", "build", "--posts", str(log), "--out", str(world), "--now", "1", *extra]
        assert "contains the input" in _one_error(runner.invoke(app, argv))
    assert log.read_bytes() == before
    assert sorted(p.name for p in world.iterdir()) == ["posts.parquet"]


def test_a_foreign_file_is_not_overwritten_by_out(tmp_path, runner, fake_artifacts):
    target = tmp_path / "notes.jsonl"
    target.write_text("my notes\n")
    argv = ["phoenix", "rank", "--artifacts", str(fake_artifacts), "--out", str(target)]
    assert "--force" in _one_error(runner.invoke(app, argv))
    assert target.read_text() == "my notes\n"
    assert runner.invoke(app, [*argv, "--force"]).exit_code == 0
    assert runner.invoke(app, argv).exit_code == 0  # now a previous output of the same kind


def test_outputs_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "d", kind=DIR_KIND) as tmp:
            (tmp / "x").write_text("x")
        with atomic_path(tmp_path / "f") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_unwritable_place_gives_one_line(runner):
    line = _one_error(runner.invoke(app, _fake("/proc/xfeed-no-such-place/ckpt")))
    assert "/proc/xfeed-no-such-place" in line


def test_disk_full_while_writing_gives_one_line_and_no_leftovers(tmp_path, runner, monkeypatch):
    import errno

    import checkpoints.fake as fake

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fake, "save_upstream_corpus", full)
    line = _one_error(runner.invoke(app, _fake(tmp_path / "ckpt")))
    assert str(tmp_path / "ckpt") in line and "space" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("directory", [True, False])
def test_a_symlink_target_is_refused_and_kept_even_to_a_previous_output(directory, tmp_path):
    kind = OutputKind("test output", directory)
    real = tmp_path / "real"
    with atomic_path(real, kind=kind) as tmp:  # a previous output of the same kind
        (tmp / "a").write_text("old") if directory else tmp.write_text("old")
    link = tmp_path / "latest"
    link.symlink_to(real)
    with pytest.raises(OutputRefused, match="symbolic link"):
        check_target(link, kind)
    assert link.is_symlink() and os.readlink(link) == str(real)
    with atomic_path(link, kind=kind, force=True) as tmp:  # --force replaces the link itself
        (tmp / "a").write_text("new") if directory else tmp.write_text("new")
    assert not link.is_symlink()
    assert ((real / "a") if directory else real).read_text() == "old"
