"""`xfeed audit RUN [RUN …]`: what the algorithm does to a population (audit/): per-arm metrics,
amplification per author group and slate overlap against a baseline, with bootstrap intervals;
a table, `--json`, `--plot DIR`, `--html FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from xfeed_cli.console import InputError, dumps, err, out, write_lines
from xfeed_cli.lazy import lazy
from xfeed_cli.options import ForceOpt, JsonOpt

report = lazy("audit.report")
render = lazy("audit.render")

GroupByOpt = Annotated[
    str | None,
    typer.Option("--group-by", help="Author groups: topic (default), interest, followers, "
                 "activity or country (from the run's world)."),
]  # fmt: skip
GroupsOpt = Annotated[
    Path | None,
    typer.Option("--groups", help="Author groups from a Parquet file (author_id, group)."),
]
SegmentOpt = Annotated[
    str | None,
    typer.Option("--segment-by", help="Split viewers: a field as for --group-by, or a Parquet "
                 "file (user_id, group)."),
]  # fmt: skip
KOpt = Annotated[int, typer.Option("--k", min=1, help="K of Jaccard@K.")]
BootOpt = Annotated[int, typer.Option("--bootstrap", min=0, max=100_000,
                                      help="Bootstrap replicates over users.")]  # fmt: skip
SeedOpt = Annotated[int, typer.Option("--seed", help="Bootstrap seed.")]


def audit(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories (xfeed rank --users … --out).")
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", help="The baseline run (default: the chrono run, else the first)."
        ),
    ] = None,  # fmt: skip
    group_by: GroupByOpt = None,
    groups: GroupsOpt = None,
    segment_by: SegmentOpt = None,
    k: KOpt = 10,
    bootstrap: BootOpt = 500,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write PNG plots into this directory.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write one self-contained HTML report.")
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Audit population runs (arms): out-of-network share, sources, author diversity and
    inequality, topic entropy, freshness, predicted engagement and negative signals per arm;
    amplification per author group, Jaccard@K, rank-biased overlap, rank displacement and posts
    gained/lost against the baseline; 95 % bootstrap intervals over users.

    Example: xfeed audit runs/for-you runs/chrono --group-by topic --html audit.html
    """
    if group_by is not None and groups is not None:
        raise InputError("give --group-by FIELD or --groups FILE, not both")
    if plot is not None or html is not None:
        try:
            render.require_matplotlib()  # before reading the runs, not after
        except render.PlotUnavailableError as exc:
            raise InputError(str(exc)) from None
    spec = report.AuditSpec(
        runs=tuple(str(r) for r in runs), baseline=str(baseline) if baseline else None,
        group_by=str(groups) if groups is not None else group_by, segment_by=segment_by, k=k,
        replicates=bootstrap, seed=seed,
    )  # fmt: skip
    with err.status("auditing …"):
        result = report.audit(spec)
    if plot is not None:
        names = render.write_plots(result, plot, force=force)
        err.print(f"wrote {', '.join(names)} into {plot}", highlight=False)
    if html is not None:
        render.write_html(result, html, force=force)
        err.print(f"wrote {html}", highlight=False)
    if as_json:
        write_lines([dumps(result)], None)
        return
    print_audit(result)


def _table(title: str, head: list[str], rows: list[tuple[str, list[str]]]) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column(head[0], no_wrap=True)
    for h in head[1:]:
        t.add_column(h, justify="right", no_wrap=True)
    for name, vals in rows:
        t.add_row(name, *vals)
    return t


def print_audit(result: dict[str, Any]) -> None:
    b = result["bootstrap"]
    out.print(f"runs: {', '.join(r['label'] + ' = ' + r['path'] for r in result['runs'])}; "
              f"baseline: {result['baseline']}; author groups: {result['group_by']}; "
              f"value [{int(b['level'] * 100)} % bootstrap interval over users, "
              f"{b['replicates']} replicates, seed {b['seed']}]", highlight=False)  # fmt: skip
    for note in result["notes"]:
        err.print(f"note: {note}", highlight=False)
    for seg in result["segments"]:
        who = f"viewers: {seg['segment']} ({seg['users']} users)"
        out.print(_table(f"per arm — {who}", ["metric", *seg["arms"]], render.metric_rows(seg)))
        comps = seg["comparisons"]
        if not comps:
            continue
        out.print(_table(f"vs baseline {result['baseline']} — {who}", ["metric", *comps],
                         render.overlap_rows(seg)))  # fmt: skip
        names = sorted({g for c in comps.values() for g in c.get("amplification", {})})
        if names:
            rows = [(g, [_amp(c.get("amplification", {}).get(g)) for c in comps.values()])
                    for g in names]  # fmt: skip
            out.print(_table(f"amplification ratio per author group ({result['group_by']}) — "
                             f"{who}", ["group", *comps], rows))  # fmt: skip


def _amp(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "—"
    lo, hi = e.get("lo"), e.get("hi")
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    return f"{e['value']:.3f}{ci} (reach {e['reach_arm']:.3f} vs {e['reach_baseline']:.3f})"
