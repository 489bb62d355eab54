"""Same world, same commands, same seed -> the same checkpoint and corpus bytes (no timings)."""

from __future__ import annotations

import json
import shutil

from xfeed_cli.main import app


def _snapshot(*roots) -> dict[str, bytes]:
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        out.update({str(p.relative_to(root.parent)): p.read_bytes() for p in files})
    return out


def test_train_and_index_build_write_the_same_bytes_twice(tmp_path, runner):
    w, ck, corpus = tmp_path / "w", tmp_path / "ck", tmp_path / "corpus.safetensors"
    res = runner.invoke(app, ["data", "synth", "--out", str(w), "--users", "20", "--seed", "2"])
    assert res.exit_code == 0, res.output
    runs = []
    for _ in range(2):
        for model in ("retrieval", "ranker"):
            res = runner.invoke(app, ["train", model, "--world", str(w), "--out", str(ck),
                                      "--steps", "4", "--batch-size", "4", "--valid", "0.2",
                                      "--eval-every", "2", "--history", "8",
                                      "--device", "cpu"])  # fmt: skip
            assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["index", "build", "--checkpoint", str(ck), "--world", str(w),
                                  "--out", str(corpus), "--device", "cpu"])  # fmt: skip
        assert res.exit_code == 0, res.output
        runs.append(_snapshot(ck, corpus))
        shutil.rmtree(ck)
        corpus.unlink()
    assert sorted(runs[0]) == sorted(runs[1])
    assert "ck/ranker/config.json" in runs[0] and "ck/.xfeed-output" not in runs[0]
    for name in runs[0]:
        assert runs[0][name] == runs[1][name], name
    ranker = json.loads(runs[0]["ck/ranker/config.json"])
    assert ranker["sid_levels"] == 1 and len(ranker["sid_topics"]) > 1  # synthetic default
    assert json.loads(runs[0]["ck/retrieval/config.json"])["sid_levels"] == 1
    prov = ranker["provenance"]
    assert "seconds" not in prov and prov["validation"]["step"] == 4
