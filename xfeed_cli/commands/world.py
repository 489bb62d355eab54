"""`xfeed data synth`: worlds (data.md tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from world.synth import SynthConfig, synth_world
from xfeed_cli.console import err
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
