"""`xfeed rank --users …  --out DIR`: a population run (pipeline/population.py) with a progress
bar on stderr (users/s and ETA) and a one-line summary."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipeline import population as pop
from xfeed_cli.console import InputError, err


def run(
    users_spec: str,
    out_dir: Path | None,
    resources,
    params,
    now_ms: int | None,
    lenient: bool,
    keep: str,
    shard: str | None,
    resume: bool,
    engine: str,
    ray: dict | None = None,
    device: str = "auto",
) -> None:
    """Validate, run with a progress bar, print the summary. `ray`: the `--ray-…` options given
    (`pipeline.ray_engine.RayOptions` fields); `device`: what the Ray actors compute on."""
    if out_dir is None:
        raise InputError("--users needs --out DIR (the dataset directory)")
    if keep not in pop.KEEP:
        raise InputError(f"--keep must be one of {', '.join(pop.KEEP)}")
    if engine not in ("local", "ray"):
        raise InputError("--engine must be local or ray")
    if ray and engine != "ray":
        given = ", ".join("--ray-" + k.replace("_", "-") for k in sorted(ray))
        raise InputError(f"{given}: these options need --engine ray")
    try:
        users = pop.resolve_users(users_spec, resources.world)
        spec = pop.RunSpec(resources, params, pop.request_time(resources.world, now_ms), keep,
                           pop.parse_shard(shard), lenient)  # fmt: skip
    except pop.PopulationError as exc:
        raise InputError(str(exc)) from exc
    ray = {**(ray or {}), "device": str(device)} if engine == "ray" else {}
    _ranked(users, spec, out_dir, resume, engine, ray)


def _ranked(users, spec, out_dir: Path, resume: bool = False, engine: str = "local",
            ray: dict | None = None, label: str = "ranking") -> dict:  # fmt: skip
    """One population run with a progress bar and its summary line; returns the manifest."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("users"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("rank", total=None, rate="")
        t0 = time.perf_counter()

        def tick(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f} users/s")

        try:
            if engine == "ray":
                from pipeline.ray_engine import RayOptions, run_population_ray

                options = RayOptions(**(ray or {}))
                manifest = run_population_ray(users, spec, out_dir, resume, options, tick)
            else:
                manifest = pop.run_population(users, spec, out_dir, resume, tick)
        except pop.PopulationError as exc:
            raise InputError(str(exc)) from exc
    c, t = manifest["counts"], manifest["time"]
    err.print(
        f"{c['users']} users -> {c['served_rows']} served rows ({c['rows']} rows) in "
        f"{len(manifest['parts'])} part(s) at {out_dir}; {t['elapsed_s']:.1f} s, "
        f"{t['users_per_s'] or 0:.1f} users/s ({t['users_skipped_on_resume']} resumed)",
        highlight=False,
    )
    return manifest


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "arm"


def whatif(
    users_spec: str,
    out_dir: Path | None,
    resources,
    arms: list[tuple[str, object, object]],
    now_ms: int | None,
    group_by: str | None,
    replicates: int,
) -> dict:
    """The population what-if: each arm (label, params, resources) ranked for the users into
    OUT/A-label and OUT/B-label (a temporary directory without --out), then audited, B against
    A. Returns the audit."""
    from audit.report import AuditSpec, audit  # noqa: PLC0415

    try:
        users = pop.resolve_users(users_spec, resources.world)
    except pop.PopulationError as exc:
        raise InputError(str(exc)) from exc
    base = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="xfeed-whatif-"))
    try:
        dirs = []
        for tag, (label, params, res) in zip("ab", arms, strict=True):
            d = base / f"{tag}-{_slug(label)}"
            spec = pop.RunSpec(res, params, pop.request_time(res.world, now_ms))
            _ranked(users, spec, d, label=f"ranking {tag.upper()} ({label})")
            dirs.append(str(d))
        with err.status("auditing …"):
            return audit(AuditSpec((dirs[1],), baseline=dirs[0], group_by=group_by,
                                   replicates=replicates))  # fmt: skip
    finally:
        if out_dir is None:
            shutil.rmtree(base, ignore_errors=True)
