"""`xfeed thunder`: build a snapshot from post logs, show its stats, query a viewer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from safeio.atomic import check_target
from safeio.kinds import CANDIDATE_STREAM
from thunder.config import DEFAULT_CONFIG, ThunderConfig
from thunder.timespec import format_time_ms, parse_duration_ms, parse_time_ms
from xfeed_cli.console import InputError, XFeedGroup, dumps, err, out, write_lines
from xfeed_cli.lazy import lazy
from xfeed_cli.options import ForceOpt, JsonOpt, OutOpt, UserIdOpt

if TYPE_CHECKING:
    import numpy as np

np_ = lazy("numpy")
candidates = lazy("pipeline.candidates")
fetch = lazy("thunder.fetch")
log_mod = lazy("thunder.log")
snap = lazy("thunder.snapshot")
store_mod = lazy("thunder.store")
tables = lazy("world.tables")

app = typer.Typer(
    help="Thunder: the in-network post store.",
    no_args_is_help=True,
    cls=XFeedGroup,
    rich_markup_mode=None,
)

SnapshotOpt = Annotated[Path, typer.Option("--snapshot", help="Snapshot directory.")]


def parse_ids(text: str | None, what: str) -> np.ndarray:
    """Comma-separated positive ids."""
    if not text:
        return np_.zeros(0, np_.int64)
    try:
        ids = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError as exc:
        raise InputError(f"--{what}: expected comma-separated integer ids") from exc
    if any(i <= 0 for i in ids):
        raise InputError(f"--{what}: ids must be positive")
    return np_.array(ids, np_.int64)


def _default_now(posts: list[Path]) -> int | None:
    """The world's as_of_ms when the first log sits in a world directory."""
    world = posts[0].parent
    if not (world / "world.json").exists():
        return None
    return int(tables.read_world_json(world)["as_of_ms"])


@app.command()
def build(
    posts: Annotated[list[Path], typer.Option("--posts", help="posts.parquet log (repeatable).")],
    snapshot_out: Annotated[Path, typer.Option("--out", help="Snapshot directory to write.")],
    now: Annotated[str | None, typer.Option(help="Request time: ms or ISO-8601.")] = None,
    retention: Annotated[str, typer.Option(help="Retention window, e.g. 2d, 36h.")] = "2d",
    force: ForceOpt = False,
) -> None:
    """Build a snapshot from post logs (atomically; nothing is written on bad input).

    Example: xfeed thunder build --posts my-world/posts.parquet --out my-world/thunder
    """
    check_target(snapshot_out, snap.SNAPSHOT_OUTPUT, force, posts)  # before reading the logs
    now_ms = parse_time_ms(now) if now is not None else _default_now(posts)
    config = ThunderConfig(retention_ms=parse_duration_ms(retention))
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("thunder build", total=len(posts) + 5)
        steps = {"read": 0, "sort": len(posts), "filter": len(posts) + 1}

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(
                task, completed=steps.get(stage, len(posts)) + done, description=f"thunder {stage}"
            )

        log = log_mod.read_logs(posts, progress)
        store = store_mod.build_store(log, now_ms, config, progress)
        manifest = snap.save_snapshot(snapshot_out, store, log, config, force=force)
        bar.update(task, completed=len(posts) + 5)
    c = manifest["counts"]
    err.print(
        f"wrote {snapshot_out}: {c['posts']:,} posts by {c['authors']:,} authors from "
        f"{c['events']:,} events as of {format_time_ms(manifest['as_of_ms'])} "
        f"({store.counts.get('build_ms', 0):.0f} ms build)",
        highlight=False,
    )


@app.command()
def stats(
    snapshot: Annotated[Path, typer.Argument(help="Snapshot directory.")], as_json: JsonOpt = False
) -> None:
    """Posts, authors, deletes, per-kind counts and the age histogram of a snapshot.

    Example: xfeed thunder stats data/samples/world/thunder
    """
    store, manifest = snap.load_snapshot(snapshot)
    s = snap.snapshot_stats(store, manifest)
    if as_json:
        write_lines([dumps(s)], None)
        return
    table = Table(title=f"Thunder snapshot {snapshot}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("as of", format_time_ms(s["as_of_ms"]))
    table.add_row("retention", f"{s['retention_ms'] / 3_600_000:g} h")
    table.add_row("posts", f"{s['posts']:,}")
    table.add_row("authors", f"{s['authors']:,}")
    table.add_row("delete events", f"{s['deletes']:,}")
    for group in ("kinds", "lists", "dropped", "evicted", "age_histogram"):
        table.add_section()
        for k, v in s[group].items():
            table.add_row(f"{group.replace('_', ' ')}: {k}", f"{v:,}")
    out.print(table)


@app.command()
def query(
    snapshot: SnapshotOpt,
    user: UserIdOpt,
    world: Annotated[Path | None, typer.Option(help="World directory (following list).")] = None,
    following: Annotated[str | None, typer.Option(help="Comma-separated followed ids.")] = None,
    exclude: Annotated[str | None, typer.Option(help="Comma-separated post ids to skip.")] = None,
    video: Annotated[bool, typer.Option("--video", help="A video request.")] = False,
    max_results: Annotated[int, typer.Option(min=0, help="0 = 1200 (600 video).")] = 0,
    as_json: JsonOpt = False,
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """In-network candidates for a viewer: a table, or candidate JSONL (data.md).

    Example: xfeed thunder query --snapshot W/thunder --user 1007 --world W
    """
    if (world is None) == (following is None):
        raise InputError("give exactly one of --world or --following")
    if user <= 0:
        raise InputError("--user must be a positive id")
    if world is not None:
        tables.require_user(world, user)
        follow_ids = tables.edges_of(world, user, "follow")
    else:
        follow_ids = parse_ids(following, "following")
    store, manifest = snap.load_snapshot(snapshot)
    excluded = parse_ids(exclude, "exclude")
    request = fetch.InNetworkRequest(user, follow_ids, excluded, video, max_results)
    rows = fetch.in_network_posts(store, request, DEFAULT_CONFIG)
    cands = candidates.candidates_from_columns(store.posts, rows, in_network=True, source="thunder")
    if as_json or out_path:
        q = {"user_id": str(user), "now_ms": store.as_of_ms, "following_count": len(follow_ids)}
        write_lines(candidates.dump_stream(q, cands), out_path, CANDIDATE_STREAM, force)
        return
    table = Table(
        title=f"In-network posts for user {user} ({len(cands)} of max "
        f"{max_results or ('600' if video else '1200')})",
        title_justify="left",
    )
    for col in ("#", "post id", "author", "age", "kind"):
        table.add_column(col, justify="right" if col in ("#", "age") else "left")
    for i, c in enumerate(cands, start=1):
        kind = "retweet" if c.source_post_id else "reply" if c.in_reply_to_post_id else "original"
        age = (store.as_of_ms - c.created_ms) / 3_600_000
        table.add_row(
            str(i),
            str(c.post_id),
            str(c.author_id),
            f"{age:.1f} h",
            kind + (" +video" if c.has_video else ""),
        )
    out.print(table)
    err.print(
        f"snapshot as of {format_time_ms(manifest['as_of_ms'])}; following {len(follow_ids):,}",
        highlight=False,
    )
