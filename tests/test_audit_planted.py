"""The audit recovers a planted bias: on a world where accounts of one topic are followed 3× as
often, the chronological feed's amplification ratio for that topic (vs the same world without
the plant) is > 1 with an interval that excludes 1; on the control world (two random halves of
its users, the same algorithm) the intervals cover 1. The chrono arm serves 0 % out-of-network."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq

from audit.report import AuditSpec, audit
from pipeline.population import shard_of


def _amplification(result) -> dict:
    (c,) = result["segments"][0]["comparisons"].values()
    return c["amplification"]


def test_planted_follow_bias_is_recovered(planted_worlds):
    w = planted_worlds
    res = audit(AuditSpec((str(w["planted-chrono"]),), baseline=str(w["control-chrono"]),
                          group_by="topic"))  # fmt: skip
    amp = _amplification(res)
    assert amp["music"]["value"] > 1 and amp["music"]["lo"] > 1, amp["music"]
    others = [g for g, e in amp.items() if g != "music" and not e["lo"] <= 1 <= e["hi"]]
    assert others == []  # only the planted group moved (95 % intervals: chance misses possible)
    # the plant adds follows only: the same posts are created (deletes are drawn later)
    creates = [pq.read_table(w[k] / "posts.parquet").filter(pa.compute.equal(
        pa.compute.field("event"), "create")) for k in ("planted", "control")]  # fmt: skip
    assert creates[0].equals(creates[1])
    for arm in res["segments"][0]["arms"].values():
        assert arm["oon_share"]["value"] == 0 and set(arm["source_share"]) == {"thunder"}


def _half(run, h, out):
    """The rows of one random half of a run's users, as a run of its own."""
    table = pq.read_table(sorted(run.glob("part-*.parquet")))
    rows = shard_of(table.column("viewer_id").to_numpy(), 2) == h
    sub = table.filter(pa.array(rows))
    out.mkdir()
    pq.write_table(sub, out / "part.parquet")
    m = json.loads((run / "manifest.json").read_text())
    m.update(
        parts=[{"file": "part.parquet"}],
        users={"count": int(len(np.unique(sub.column("viewer_id").to_numpy())))},
    )
    (out / "manifest.json").write_text(json.dumps(m))
    return out


def test_control_world_intervals_cover_one(planted_worlds, tmp_path):
    run = planted_worlds["control-chrono"]
    a, b = _half(run, 0, tmp_path / "a"), _half(run, 1, tmp_path / "b")
    amp = _amplification(audit(AuditSpec((str(a),), baseline=str(b), group_by="topic")))
    assert amp["music"]["lo"] <= 1 <= amp["music"]["hi"]
    covered = sum(e["lo"] <= 1 <= e["hi"] for e in amp.values())
    assert covered == len(amp) == 16  # 95 % intervals: ~1 in 20 could miss by chance
