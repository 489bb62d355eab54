"""`xfeed bench [ranking|retrieval|thunder|e2e|load|all]`: measure, print tables (or JSON)."""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from safeio.kinds import JSON_REPORT
from xfeed_cli.console import InputError, dumps, err, out, write_lines
from xfeed_cli.device import use_device
from xfeed_cli.lazy import lazy
from xfeed_cli.options import DeviceOpt, ForceOpt, JsonOpt, OutOpt

if TYPE_CHECKING:
    from benchmarks.core import Report

audit_bench = lazy("benchmarks.audit_bench")
core = lazy("benchmarks.core")
e2e = lazy("benchmarks.e2e")
loading = lazy("benchmarks.loading")
plot_mod = lazy("benchmarks.plot")
population = lazy("benchmarks.population")
ranking = lazy("benchmarks.ranking")
retrieval = lazy("benchmarks.retrieval")
startup = lazy("benchmarks.startup")
thunder_store = lazy("benchmarks.thunder_store")


class Target(enum.StrEnum):
    RANKING = "ranking"
    RETRIEVAL = "retrieval"
    THUNDER = "thunder"
    E2E = "e2e"
    POPULATION = "population"
    LOAD = "load"
    STARTUP = "startup"
    AUDIT = "audit"
    ALL = "all"


SWEEP = (64, 256, 512, 1024, 1536, 2048)
QUICK_SWEEP = (64, 256, 512)


def bench(
    what: Annotated[
        Target, typer.Argument(help="Which benchmark (all: every one but startup and audit).")
    ] = Target.ALL,
    repeat: Annotated[
        int | None,
        typer.Option(min=1, help="Timed calls per measurement (default 20; startup: 5 runs)."),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            help="A smoke run in under 30 s: 3 timed calls, float32 only, 256 candidates, "
            "20k corpus, 200k events, the bundled world, 64 users, one cold load of 20k-row "
            "tables."
        ),  # fmt: skip
    ] = False,
    candidates: Annotated[int, typer.Option(min=1, help="Ranking: candidates.")] = 1536,
    corpus_size: Annotated[int, typer.Option(min=1, help="Retrieval: corpus rows.")] = 1_000_000,
    events: Annotated[int, typer.Option(min=1000, help="Thunder: log events.")] = 10_000_000,
    posts: Annotated[int, typer.Option(min=1000, help="e2e: world posts.")] = 1_000_000,
    world: Annotated[
        Path | None, typer.Option(help="e2e, population: use this world instead.")
    ] = None,
    users: Annotated[
        int | None, typer.Option(min=1, help="population: rank the first N users (default all).")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="population: this checkpoint (e.g. `xfeed ckpt fake --preset mini`)."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(help="population: local, or ray (local and a local Ray, and their ratio)."),
    ] = "local",
    vocab: Annotated[int, typer.Option(min=2, help="load: rows per table.")] = 1_000_000,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Where generated inputs are kept (default $XFEED_BENCH_DIR, else "
            "~/.cache/xfeed/bench)."
        ),  # fmt: skip
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Ranking: PNG of latency vs candidates, both paths.")
    ] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Measure the ranking paths, retrieval, Thunder, the whole pipeline and checkpoint loading
    on the same inputs in one process; progress on stderr, tables on stdout. `startup` times
    whole processes instead (--help, a usage error, rank and the stage chain with the compile
    cache cold and warm) beside the in-process figure; run it on a quiet machine.

    Example: xfeed bench startup   (or: xfeed bench all --quick)
    """
    skip = (Target.ALL, Target.STARTUP, Target.AUDIT)
    targets = [t for t in Target if t not in skip] if what is Target.ALL else [what]
    if repeat is None:
        repeat = (2 if quick else 5) if what is Target.STARTUP else (3 if quick else 20)
    if engine not in ("local", "ray"):
        raise InputError(f"--engine {engine!r}: expected local or ray")
    if plot is not None and Target.RANKING not in targets:
        raise InputError("--plot draws the ranking benchmark: use `xfeed bench ranking --plot`")
    if plot is not None:
        try:
            plot_mod.require_matplotlib()  # before minutes of measuring, not after
        except plot_mod.PlotUnavailableError as exc:
            raise InputError(str(exc)) from None
    dev = use_device(device, quiet=True)
    logging.getLogger("xfeed.bench").setLevel(logging.INFO)
    err.print(f"device: {dev.platform}:{dev.id} ({dev.device_kind})", highlight=False)
    workdir = workdir or core.DEFAULT_WORKDIR
    reports: list[Report] = []
    import jax  # noqa: PLC0415

    with jax.default_device(dev):
        for t in targets:
            if t is Target.POPULATION:
                reports.append(population.bench_population(
                    64 if quick and users is None else users, world,
                    str(checkpoint) if checkpoint else None, engine))  # fmt: skip
            else:
                reports.append(_run(t, dev, repeat, quick, candidates, corpus_size, events,
                                    posts, world, vocab, workdir, plot is not None))  # fmt: skip
            if not as_json:
                render(reports[-1])
    if plot is not None:
        ranked = next(r for r in reports if r.name == "ranking")
        try:
            plot_mod.plot_ranking(ranked.series, ranked.info, plot, force=force)
        except plot_mod.PlotUnavailableError as exc:
            raise InputError(str(exc)) from None
        err.print(f"wrote {plot}", highlight=False)
    if as_json or out_path is not None:
        report = dumps({"reports": [r.to_json() for r in reports]})
        write_lines([report], out_path, JSON_REPORT, force)


def _run(t: Target, dev, repeat, quick, candidates, corpus_size, events, posts, world, vocab,
         workdir, sweep) -> Report:  # fmt: skip
    if t is Target.RANKING:
        dtypes = ("float32",) if quick else ("float32", "bfloat16")
        return ranking.bench_ranking(
            repeat,
            256 if quick else candidates,
            dtypes,
            device=dev,
            sweep=(QUICK_SWEEP if quick else SWEEP) if sweep else (),
        )
    if t is Target.RETRIEVAL:
        return retrieval.bench_retrieval(repeat, 20_000 if quick else corpus_size, device=dev)
    if t is Target.THUNDER:
        n = 200_000 if quick else events
        authors, requests = max(1000, n // 50), min(200, repeat * 10)
        return thunder_store.bench_thunder(n, authors=authors, requests=requests)
    if t is Target.STARTUP:
        return startup.bench_startup(repeat, device="gpu" if dev.platform == "gpu" else "cpu")
    if t is Target.E2E:
        from pipeline.feed import BUNDLED  # noqa: PLC0415

        w = Path(BUNDLED.world) if quick and world is None else world
        return e2e.bench_e2e(repeat, posts, w, workdir=workdir)
    if t is Target.AUDIT:
        return audit_bench.bench_audit(100_000 if quick else 1_000_000, workdir,
                                       repeat=1 if quick else min(repeat, 3))  # fmt: skip
    if quick:
        return loading.bench_load(20_000, workdir, 1, 256, modes=loading.MODES[:1])
    return loading.bench_load(vocab, workdir, repeat=min(repeat, 3))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.1e}"
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render(report: Report) -> None:
    """One table of measured rows, then the derived figures."""
    info = ", ".join(f"{k} {_fmt(v)}" for k, v in report.info.items())
    table = Table(title=f"xfeed bench {report.name}", caption=info, caption_justify="left")
    for col, just in (("what", "left"), ("p50 ms", "right"), ("p95 ms", "right"),
                      ("throughput", "right"), ("", "left")):  # fmt: skip
        table.add_column(col, justify=just)
    for row in report.rows:
        t = row.timing
        table.add_row(
            row.label,
            _fmt(t.p50) if t else "",
            _fmt(t.p95) if t and len(t.samples_ms) > 1 else "",
            f"{row.throughput:,.0f} {row.unit}" if row.throughput is not None else "",
            ", ".join(f"{k} {_fmt(v)}" for k, v in row.extra.items()),
        )
    out.print(table)
    for key, value in report.summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
        out.print(f"  {key}: {_fmt(value) if not isinstance(value, str) else value}",
                  highlight=False)  # fmt: skip
    for note in report.notes:
        out.print(f"  [dim]{note}[/]")
    out.print()
