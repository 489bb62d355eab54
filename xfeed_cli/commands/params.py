"""`xfeed params`: every pipeline parameter and head weight with its default, type and meaning;
`--toml FILE` writes them as an editable weights file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline.params import load_params, param_table, params_toml
from safeio.atomic import atomic_path
from safeio.kinds import OutputKind
from xfeed_cli.console import dumps, err, out, write_lines
from xfeed_cli.options import JsonOpt

PARAMS_TOML = OutputKind("params file", False)  # an existing file needs --force


def params_command(
    weights: Annotated[
        Path | None, typer.Option("--weights", help="Show this TOML file's values beside defaults.")
    ] = None,
    toml: Annotated[
        Path | None, typer.Option("--toml", help="Write every parameter as an editable TOML file.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --toml file.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every pipeline parameter and head weight: default, type and meaning (heads: the model
    output they weigh). A weights file (`--weights F.toml`) overrides any of them.

    Example: xfeed params --toml mine.toml && xfeed rank --user 1007 --weights mine.toml
    """
    params = load_params(weights)
    if toml is not None:
        with atomic_path(toml, kind=PARAMS_TOML, force=force) as tmp:
            tmp.write_text(params_toml(params))
        err.print(f"wrote {toml}", highlight=False)
        return
    rows = param_table(params)
    if as_json:
        write_lines([dumps(r) for r in rows], None)
        return
    table = Table(title="pipeline parameters (TOML keys)", title_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("default", justify="right", no_wrap=True)
    if weights is not None:
        table.add_column(weights.name, justify="right", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("meaning", ratio=1)
    for r in rows:
        cells = [r["key"], _fmt(r["default"])]
        if weights is not None:
            changed = r["value"] != r["default"]
            cells.append(f"[bold]{_fmt(r['value'])}[/]" if changed else _fmt(r["value"]))
        cells += [r["type"], r["meaning"]]
        table.add_row(*cells)
    out.print(table)


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
