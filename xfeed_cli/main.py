"""The `xfeed` root command: wires command groups together, nothing else."""

from __future__ import annotations

from typing import Annotated

import typer

from xfeed_cli.commands import bench, ckpt, feed, phoenix, thunder, training, world
from xfeed_cli.console import XFeedGroup, setup_logging

app = typer.Typer(
    name="xfeed",
    cls=XFeedGroup,
    help="Offline inference and checkpoint experiments with X's For You algorithm.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command("rank")(feed.rank)
app.command("retrieve")(feed.retrieve)
app.command("hydrate")(feed.hydrate)
app.command("filter")(feed.filter_command)
app.command("score")(feed.score)
app.command("select")(feed.select)
app.command("post-filter")(feed.post_filter)
app.command("explain")(feed.explain)
app.command("whatif")(feed.whatif)
app.add_typer(ckpt.app, name="ckpt")
app.add_typer(phoenix.app, name="phoenix")
app.add_typer(thunder.app, name="thunder")
app.add_typer(world.data_app, name="data")
app.add_typer(world.world_app, name="world")
app.add_typer(training.index_app, name="index")
app.command("train")(training.train)
app.command("eval")(training.eval_command)
app.command("bench")(bench.bench)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress on stderr.")
    ] = False,
) -> None:
    """xfeed: the For You pipeline, Phoenix models and checkpoints, offline."""
    setup_logging(verbose)


def run() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    run()
