"""An audit of runs (arms) against a baseline: per-arm metrics, amplification per author group
and slate overlap, for all viewers and per viewer segment, as one JSON-able dict
(`format: xfeed-audit/1`; the `xfeed audit` table, `--plot` and `--html` render it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from audit.arm import arm_metrics
from audit.bootstrap import LEVEL, REPLICATES, SEED, Bootstrap
from audit.compare import JACCARD_K, RBO_P, amplification, as_json, overlap
from audit.groups import UNKNOWN, Groups, load_groups
from audit.runs import AuditError, Run, read_runs

FORMAT = "xfeed-audit/1"
DEFAULT_GROUP_BY = "topic"


@dataclasses.dataclass(frozen=True)
class AuditSpec:
    """What to audit: run directories, the baseline (None: the first chrono run, else the first
    run), author groups (a field or a Parquet file), an optional viewer segmentation, K of
    Jaccard@K, and the bootstrap."""

    runs: tuple[str, ...]
    baseline: str | None = None
    group_by: str | None = None  # field or FILE.parquet; None: topic when the world is readable
    segment_by: str | None = None
    k: int = JACCARD_K
    replicates: int = REPLICATES
    seed: int = SEED


def _index(runs: list[Run], ids: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Dense indices of (world, id) over all runs: per run [N] int64, and the total count.
    Ids of runs on the same world share indices; other worlds' ids never do."""
    worlds = sorted({r.world_key for r in runs})
    per_world = {w: np.unique(np.concatenate([i for r, i in zip(runs, ids, strict=True)
                                              if r.world_key == w] or [np.zeros(0, np.int64)]))
                 for w in worlds}  # fmt: skip
    offset, start = {}, 0
    for w in worlds:
        offset[w] = start
        start += len(per_world[w])
    out = [offset[r.world_key] + np.searchsorted(per_world[r.world_key], i)
           for r, i in zip(runs, ids, strict=True)]  # fmt: skip
    return [o.astype(np.int64) for o in out], start


def _group_codes(runs: list[Run], spec: str) -> tuple[list[np.ndarray], list[str]]:
    """Per run the author group code of each row, over one list of group names."""
    per_run: list[Groups] = [load_groups(spec, r.world) for r in runs]
    names = sorted({n for g in per_run for n in g.names} - {UNKNOWN}) + [UNKNOWN]
    codes = []
    for r, g in zip(runs, per_run, strict=True):
        remap = np.array([names.index(n) for n in g.names], np.int32)
        codes.append(remap[g.codes(r.author)])
    return codes, names


def _world_readable(run: Run) -> bool:
    return bool(run.world) and (Path(run.world) / "posts.parquet").is_file()


def _pick_baseline(runs: list[Run], baseline: str | None) -> int | None:
    if baseline is not None:
        want = Path(baseline).resolve()
        for i, r in enumerate(runs):
            if want in {p.resolve() for p in (r.path, *r.shard_paths)}:
                return i
        raise AuditError(f"{baseline}: the baseline is not among the runs")  # pragma: no cover
    if len(runs) < 2:
        return None
    chrono = [i for i, r in enumerate(runs) if r.arm == "chrono"]
    return chrono[0] if chrono else 0


def audit(spec: AuditSpec, runs: list[Run] | None = None) -> dict[str, Any]:
    """The whole audit as a dict (deterministic for the same runs and spec)."""
    paths = list(spec.runs)
    if spec.baseline is not None and all(Path(p).resolve() != Path(spec.baseline).resolve()
                                         for p in paths):  # fmt: skip
        paths.append(spec.baseline)
    if not paths:
        raise AuditError("give at least one run directory")
    if spec.k < 1 or spec.replicates < 0:
        raise AuditError("--k must be ≥ 1 and --bootstrap ≥ 0")
    runs = runs if runs is not None else read_runs(paths)
    b = _pick_baseline(runs, spec.baseline)
    notes: list[str] = []
    group_by = spec.group_by
    if group_by is None:
        if all(_world_readable(r) for r in runs):
            group_by = DEFAULT_GROUP_BY
        else:
            notes.append("no author groups: a run's world is not readable (give --groups)")
    groups = _group_codes(runs, group_by) if group_by else None
    segments: list[tuple[str, list[np.ndarray]]] = [("all", [np.arange(len(r.viewer))
                                                             for r in runs])]  # fmt: skip
    if spec.segment_by:
        seg_codes, seg_names = _viewer_segments(runs, spec.segment_by)
        for j, name in enumerate(seg_names):
            rows = [np.flatnonzero(c == j) for c in seg_codes]
            if any(len(x) for x in rows):
                segments.append((name, rows))
    result = {
        "format": FORMAT,
        "runs": [_run_info(r) for r in runs],
        "baseline": runs[b].label if b is not None else None,
        "group_by": group_by,
        "segment_by": spec.segment_by,
        "bootstrap": {"replicates": spec.replicates, "seed": spec.seed, "level": LEVEL,
                      "over": "users"},
        "k": spec.k,
        "rbo_p": RBO_P,
        "notes": notes,
        "segments": [],
    }  # fmt: skip
    for name, rows in segments:
        sub = runs if name == "all" else [r.take(x) for r, x in zip(runs, rows, strict=True)]
        sub_groups = (
            None
            if groups is None
            else ([g[x] for g, x in zip(groups[0], rows, strict=True)], groups[1])
        )
        result["segments"].append(_segment(name, sub, b, sub_groups, spec))
    return result


def _run_info(r: Run) -> dict[str, Any]:
    path = " + ".join(map(str, r.shard_paths)) if r.shard_paths else str(r.path)
    return {"label": r.label, "arm": r.arm, "path": path, "users": r.n_users,
            "served_rows": int(len(r.viewer)), "world": r.world,
            "request_ms": r.manifest.get("request_ms")}  # fmt: skip


def _viewer_segments(runs: list[Run], spec: str) -> tuple[list[np.ndarray], list[str]]:
    per_run = [load_groups(spec, r.world) for r in runs]
    names = sorted({n for g in per_run for n in g.names} - {UNKNOWN}) + [UNKNOWN]
    codes = []
    for r, g in zip(runs, per_run, strict=True):
        remap = np.array([names.index(n) for n in g.names], np.int32)
        codes.append(remap[g.codes(r.viewer)])
    return codes, names


def _segment(name: str, runs: list[Run], b: int | None, groups, spec: AuditSpec) -> dict:
    uidx, n_users = _index(runs, [r.viewer for r in runs])
    acodes, n_authors = _index(runs, [r.author for r in runs])
    boot = Bootstrap(n_users, spec.replicates, spec.seed)
    arms = {r.label: arm_metrics(r, u, n_users, boot, a, n_authors)
            for r, u, a in zip(runs, uidx, acodes, strict=True)}  # fmt: skip
    comparisons = {}
    if b is not None:
        for i, r in enumerate(runs):
            if i == b:
                continue
            c: dict[str, Any] = {"baseline": runs[b].label}
            if groups is not None:
                codes, names = groups
                c["amplification"] = amplification(boot, (r, uidx[i], codes[i]),
                                                   (runs[b], uidx[b], codes[b]), names)  # fmt: skip
            c.update(overlap(boot, (r, uidx[i]), (runs[b], uidx[b]), spec.k))
            comparisons[r.label] = c
    return {"segment": name, "users": int(n_users), "arms": as_json(arms),
            "comparisons": as_json(comparisons)}  # fmt: skip
