"""Worlds: `xfeed data synth`, `xfeed world import|info|users|check` (data.md tables)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from xfeed_cli.console import InputError, XFeedGroup, dumps, err, out, write_lines
from xfeed_cli.lazy import lazy
from xfeed_cli.options import ForceOpt, JsonOpt, SeedOpt

synth_mod = lazy("world.synth")
importer = lazy("world.importer")

data_app = typer.Typer(
    help="Synthetic worlds.", no_args_is_help=True, cls=XFeedGroup, rich_markup_mode=None
)


@data_app.command()
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="World directory to write.")],
    users: Annotated[
        int, typer.Option(min=20, max=200_000, help="Number of accounts (20 … 200,000).")
    ] = 2000,
    seed: SeedOpt = 0,
    days: Annotated[float, typer.Option(min=0.5, max=365, help="Days of posts.")] = 3.0,
    posts_per_user: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            max=10_000,
            help="Mean posts per account over the period (default 10; 500 with 2,000 users: "
            "a 1M-post world).",
        ),  # fmt: skip
    ] = None,
    plant_bias: Annotated[
        str | None,
        typer.Option(
            "--plant-bias",
            help="Plant a known bias for audits: follow:TOPIC:FACTOR (accounts of that primary "
            "topic are followed FACTOR× as often) or quality:TOPIC:FACTOR (their posts' quality "
            "× FACTOR). Off by default.",
        ),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Write a synthetic world (data.md tables); the same seed gives the same bytes.

    Example: xfeed data synth --out my-world --users 500 --seed 1
    """
    extra = {} if posts_per_user is None else {"posts_per_user": posts_per_user}
    if plant_bias is not None:
        try:
            synth_mod.parse_plant(plant_bias)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        extra["plant_bias"] = plant_bias
    cfg = synth_mod.SynthConfig(users=users, seed=seed, days=days, **extra)
    with err.status(f"synthesising {users} users …"):
        meta = synth_mod.synth_world(out_dir, cfg, force=force)
    rows = ", ".join(f"{k} {v:,}" for k, v in meta["rows"].items())
    err.print(f"wrote {out_dir}: {rows}", highlight=False)


world_app = typer.Typer(
    help="Worlds: info, users, check (the data contract: docs/data.md), import a log.",
    no_args_is_help=True,
    cls=XFeedGroup,
    rich_markup_mode=None,  # plain help (see main.py)
)
schema_mod = lazy("world.schema")
summary = lazy("world.summary")
WorldArg = Annotated[
    Path | None, typer.Argument(help="World directory (default: the bundled world).")
]


def _world_dir(world: Path | None) -> Path:
    if world is not None:
        return world
    from pipeline.feed import BUNDLED  # noqa: PLC0415

    return Path(BUNDLED.world)


@world_app.command()
def info(
    world: WorldArg = None,
    sample: Annotated[int, typer.Option(min=0, help="Sample users to list.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Counts, as-of time, id and time ranges, and a few of the most active users.

    Example: xfeed world info data/samples/world
    """
    from thunder.timespec import format_time_ms  # noqa: PLC0415

    i = summary.world_info(_world_dir(world), sample)
    if as_json:
        write_lines([dumps(i)], None)
        return
    table = Table(title=f"world {i['world']}", title_justify="left", show_header=False)
    table.add_column("what", no_wrap=True)
    table.add_column("value", overflow="fold")
    when = format_time_ms(i["as_of_ms"]) if i["as_of_ms"] is not None else "?"
    table.add_row("as of", f"{when} ({i['as_of_ms']})")
    table.add_row("made by", f"{i['generator'] or '?'} (seed {i['seed']})")
    for name, n in i["rows"].items():
        table.add_row(name, f"{n:,} rows")
    for key, label in (("user_ids", "user ids"), ("post_ids", "post ids")):
        if i[key]:
            table.add_row(label, f"{i[key][0]} … {i[key][1]}")
    if i["post_created_ms"]:
        lo, hi = i["post_created_ms"]
        table.add_row("posts created", f"{format_time_ms(lo)} … {format_time_ms(hi)}")
    table.add_row("corpus / snapshot", f"{'yes' if i['has_corpus'] else 'no'} / "
                  f"{'yes' if i['has_snapshot'] else 'no'}")  # fmt: skip
    out.print(table)
    if i["sample_users"]:
        _users_table(i["sample_users"], "most active users")


@world_app.command()
def users(
    world: WorldArg = None,
    min_engagements: Annotated[
        int, typer.Option(min=0, help="At least this many engagements.")
    ] = 0,
    min_follows: Annotated[int, typer.Option(min=0, help="Following at least this many.")] = 0,
    sort: Annotated[
        str, typer.Option(help="engagements, follows, followers, posts, seen or user_id.")
    ] = "engagements",
    limit: Annotated[int, typer.Option(min=0, help="At most this many (0: all).")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Users with their follows, followers, posts, engagements and seen impressions, so you can
    pick ids for `xfeed rank --user ID`.

    Example: xfeed world users --min-engagements 300 --sort follows --limit 10
    """
    rows = summary.world_users(_world_dir(world), min_engagements, min_follows, limit or None, sort)
    if as_json:
        write_lines([dumps({**r, "user_id": str(r["user_id"])}) for r in rows], None)
        return
    _users_table(rows, f"{len(rows)} users")


def _users_table(rows: list[dict], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("user_id", "screen_name", "follows", "followers", "posts", "engagements", "seen"):
        table.add_column(col.replace("_", " "), justify="left" if col == "screen_name" else "right",
                         no_wrap=True, overflow="ellipsis", max_width=18)  # fmt: skip
    for r in rows:
        table.add_row(str(r["user_id"]), str(r["screen_name"] or ""),
                      *(f"{r[c]:,}" for c in ("follows", "followers", "posts", "engagements",
                                              "seen")))  # fmt: skip
    out.print(table)


@world_app.command()
def check(
    world: Annotated[Path, typer.Argument(help="World directory to validate.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate a world directory against the data contract (docs/data.md): per table, which
    column is missing or has the wrong type. Exit 1 when the world cannot be used as is.

    Example: xfeed world check my-world/
    """
    report = schema_mod.check_world(world)
    if as_json:
        write_lines([dumps(report)], None)
    else:
        for name, t in report["tables"].items():
            problems = [f for f in t["findings"] if f["level"] == "problem"]
            rows = f"{t['rows']:,} rows" if t["rows"] is not None else "not read"
            mark = "[red]✗[/]" if problems else "[green]✓[/]"
            out.print(f"{mark} {name}.parquet ({rows})", highlight=False)
            for f in t["findings"]:
                where = f"{f['column']}: " if f["column"] else ""
                style = "red" if f["level"] == "problem" else "dim"
                out.print(f"    [{style}]{f['level']}[/]: {escape(where + f['message'])}",
                          highlight=False)  # fmt: skip
        for f in report["findings"]:
            if f["table"] in ("world", "world.json"):
                where = f"{f['column']}: " if f["column"] else ""
                out.print(
                    f"[red]✗[/] {f['table']}: {escape(where + f['message'])}", highlight=False
                )
        verdict = "ok" if report["ok"] else "problems found"
        err.print(f"{world}: {verdict} (contract: docs/data.md)", highlight=False)
    if not report["ok"]:
        raise typer.Exit(1)


@world_app.command("import")
def import_command(
    log: Annotated[Path, typer.Argument(help="Interaction log: CSV or Parquet, one row each.")],
    out_dir: Annotated[Path, typer.Option("--out", help="World directory to write.")],
    preset: Annotated[
        str | None, typer.Option(help="Named input layout: movielens (ratings.csv + movies.csv).")
    ] = None,
    items: Annotated[
        Path | None, typer.Option("--items", help="Item file: CSV or Parquet (text, topics).")
    ] = None,
    user_col: Annotated[str | None, typer.Option(help="User column [user_id].")] = None,
    item_col: Annotated[str | None, typer.Option(help="Item column [item_id].")] = None,
    time_col: Annotated[str | None, typer.Option(help="Time column [timestamp].")] = None,
    time_unit: Annotated[str | None, typer.Option(help="Unit of the time column: s or ms.")] = None,
    rating_col: Annotated[str | None, typer.Option(help="Rating column (optional).")] = None,
    action_col: Annotated[
        str | None, typer.Option(help="Action column: ActionName names or values (optional).")
    ] = None,
    author_col: Annotated[
        str | None, typer.Option(help="Author/creator column (optional).")
    ] = None,
    like_threshold: Annotated[
        float | None, typer.Option(help="Rating at or above which a row is a favorite [4.0].")
    ] = None,
    item_text_col: Annotated[str | None, typer.Option(help="Item file: title/text column.")] = None,
    item_topics_col: Annotated[
        str | None, typer.Option(help="Item file: topics column, '|'-separated.")
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Turn an interaction log into a world (data.md tables).

    Example: xfeed world import ratings.csv --items movies.csv --preset movielens --out ml-world
    """
    if preset is not None and preset not in importer.PRESETS:
        raise InputError(f"--preset must be one of {', '.join(importer.PRESETS)}, not {preset!r}")
    spec = importer.PRESETS[preset]() if preset else importer.ImportSpec()
    given = {"user_col": user_col, "item_col": item_col, "time_col": time_col,
             "time_unit": time_unit, "rating_col": rating_col, "action_col": action_col,
             "author_col": author_col, "like_threshold": like_threshold,
             "item_text_col": item_text_col, "item_topics_col": item_topics_col}  # fmt: skip
    spec = dataclasses.replace(spec, **{k: v for k, v in given.items() if v is not None})
    with err.status(f"importing {log} …"):
        meta = importer.import_log(log, out_dir, spec, items=items, force=force)
    rows = ", ".join(f"{k} {v:,}" for k, v in meta["rows"].items())
    err.print(f"wrote {out_dir}: {rows}", highlight=False)
    if meta["time_shift_ms"]:
        err.print(f"note: {meta['time_note']}", highlight=False)
