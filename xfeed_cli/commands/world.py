"""`xfeed data synth`, `xfeed world import`: worlds (data.md tables)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from world.importer import PRESETS, ImportSpec, import_log
from world.synth import SynthConfig, synth_world
from xfeed_cli.console import InputError, err
from xfeed_cli.options import SeedOpt

data_app = typer.Typer(help="Synthetic worlds.", no_args_is_help=True)


@data_app.command()
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="World directory to write.")],
    users: Annotated[int, typer.Option(min=20, help="Number of accounts.")] = 2000,
    seed: SeedOpt = 0,
    days: Annotated[float, typer.Option(min=0.5, help="Days of posts.")] = 3.0,
    posts_per_user: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Mean posts per account over the period (500 with 2,000 users: a 1M-post world).",
        ),  # fmt: skip
    ] = SynthConfig.posts_per_user,
) -> None:
    """Write a synthetic world (data.md tables); the same seed gives the same bytes."""
    cfg = SynthConfig(users=users, seed=seed, days=days, posts_per_user=posts_per_user)
    with err.status(f"synthesising {users} users …"):
        meta = synth_world(out_dir, cfg)
    rows = ", ".join(f"{k} {v:,}" for k, v in meta["rows"].items())
    err.print(f"wrote {out_dir}: {rows}", highlight=False)


world_app = typer.Typer(help="Worlds: import an interaction log.", no_args_is_help=True)


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
) -> None:
    """Turn an interaction log into a world (data.md tables).

    Example: xfeed world import ratings.csv --items movies.csv --preset movielens --out ml-world
    """
    if preset is not None and preset not in PRESETS:
        raise InputError(f"--preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    spec = PRESETS[preset]() if preset else ImportSpec()
    given = {"user_col": user_col, "item_col": item_col, "time_col": time_col,
             "time_unit": time_unit, "rating_col": rating_col, "action_col": action_col,
             "author_col": author_col, "like_threshold": like_threshold,
             "item_text_col": item_text_col, "item_topics_col": item_topics_col}  # fmt: skip
    spec = dataclasses.replace(spec, **{k: v for k, v in given.items() if v is not None})
    with err.status(f"importing {log} …"):
        meta = import_log(log, out_dir, spec, items=items)
    rows = ", ".join(f"{k} {v:,}" for k, v in meta["rows"].items())
    err.print(f"wrote {out_dir}: {rows}", highlight=False)
    if meta["time_shift_ms"]:
        err.print(f"note: {meta['time_note']}", highlight=False)
