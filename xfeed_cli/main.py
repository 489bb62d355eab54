"""The `xfeed` root command: wires command groups together, nothing else.

Start-up stays light: command modules import JAX, haiku and pyarrow only inside the commands
that need them (`xfeed --help` and usage errors never load them; tests/test_startup.py checks).
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Annotated

import typer

from safeio.signals import handle_termination_as_interrupt
from xfeed_cli import device
from xfeed_cli.commands import audit, bench, ckpt, feed, params, phoenix, thunder, training, world
from xfeed_cli.console import XFeedGroup, debug_enabled, report_error, setup_logging

app = typer.Typer(
    name="xfeed",
    cls=XFeedGroup,
    rich_markup_mode=None,  # plain click help: rich help costs ~0.2 s of every --help
    help="Offline inference and checkpoint experiments with X's For You algorithm.\n\n"
    "Example: xfeed rank --user 1007",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    suggest_commands=False,  # click suggests close names itself (else said twice)
    add_completion=True,
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
app.command("params")(params.params_command)
app.add_typer(ckpt.app, name="ckpt")
app.add_typer(phoenix.app, name="phoenix")
app.add_typer(thunder.app, name="thunder")
app.add_typer(world.data_app, name="data")
app.add_typer(world.world_app, name="world")
app.add_typer(training.index_app, name="index")
app.command("train")(training.train)
app.command("eval")(training.eval_command)
app.command("bench")(bench.bench)
app.command("audit")(audit.audit)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            v = version("xfeed")
        except PackageNotFoundError:
            v = "unknown (not installed)"
        typer.echo(f"xfeed {v}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress on stderr.")
    ] = False,
    compile_cache: Annotated[
        bool,
        typer.Option(
            "--compile-cache/--no-compile-cache",
            help="Keep JAX's compiled executables in $XFEED_CACHE_DIR/jax (default "
            "~/.cache/xfeed/jax) for later processes; XFEED_COMPILE_CACHE=0 also turns it off.",
        ),
    ] = True,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """xfeed: the For You pipeline, Phoenix models and checkpoints, offline."""
    setup_logging(verbose)
    device.COMPILE_CACHE["on"] = compile_cache


def app_for(argv: list[str]) -> typer.Typer:
    """The root app with only the command `argv` names: building every command's parameters from
    its signature costs ~0.1 s of each start. The whole app where no known command is named (root
    help, a mistyped command that wants suggestions) and for shell completion."""
    name = next((a for a in argv if not a.startswith("-")), None)
    if name is None or "--" in argv[: argv.index(name)] or os.environ.get("_XFEED_COMPLETE"):
        return app
    commands = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    lean = copy.copy(app)
    lean.registered_commands, lean.registered_groups = commands, groups
    return lean


def run() -> None:
    """Console-script entry point: SIGTERM/SIGHUP interrupt like Ctrl-C (cleanup runs)."""
    handle_termination_as_interrupt()
    try:
        app_for(sys.argv[1:])()
    except KeyboardInterrupt:  # before a command started (building the CLI): nothing written
        if debug_enabled():
            raise
        report_error("interrupted")
        raise SystemExit(130) from None
    except SystemExit as done:
        # Typer turns an interrupt while it parses the arguments (an eager option such as
        # --version) into exit 130 without a word: say it, as everywhere else
        cause = getattr(done.__context__, "__cause__", None)
        if done.code == 130 and isinstance(cause, KeyboardInterrupt):
            report_error("interrupted")
        raise


if __name__ == "__main__":
    run()
