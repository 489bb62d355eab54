"""`xfeed ckpt`: inspect, diff, convert, fake, pull."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from checkpoints.format_names import Format
from phoenix.config import Preset
from xfeed_cli.console import XFeedGroup, dumps, err, out, write_lines
from xfeed_cli.lazy import lazy
from xfeed_cli.options import ForceOpt, JsonOpt, SeedOpt

hub = lazy("checkpoints.hub")
tools = lazy("checkpoints.tools")
fake_mod = lazy("checkpoints.fake")

app = typer.Typer(
    help="Checkpoint tools: inspect, diff, convert, fake, pull.",
    no_args_is_help=True,
    cls=XFeedGroup,
    rich_markup_mode=None,  # plain help (see main.py)
)

PathArg = Annotated[Path, typer.Argument(help="Checkpoint directory (model or bundle).")]


@app.command()
def inspect(path: PathArg, as_json: JsonOpt = False) -> None:
    """Tensors (name, shape, dtype, count, non-finite values), totals and config of a checkpoint.

    Example: xfeed ckpt inspect data/samples/checkpoint
    """
    report = tools.inspect(path)
    if as_json:
        write_lines([dumps(report)], None)
        return
    for key, model in report["models"].items():
        table = Table(title=f"{key} — {path}", title_justify="left")
        for col, just in (
            ("tensor", "left"),
            ("shape", "left"),
            ("dtype", "left"),
            ("count", "right"),
            ("non-finite", "right"),
        ):
            table.add_column(col, justify=just)
        for t in model["tensors"]:
            shape = "×".join(map(str, t["shape"])) or "scalar"
            bad = f"{t['non_finite']:,}" if t["non_finite"] else ""
            style = "red" if t["non_finite"] else None
            table.add_row(t["name"], shape, t["dtype"], f"{t['count']:,}", bad, style=style)
        table.add_section()
        table.add_row(
            f"model params ({model['num_param_arrays']} arrays)", "", "", f"{model['num_params']:,}"
        )
        table.add_row("all values (params + tables)", "", "", f"{model['total_values']:,}")
        out.print(table)
        if model["non_finite_tensors"]:
            names = ", ".join(model["non_finite_tensors"])
            err.print(f"warning: {key} has non-finite values (NaN/inf) in: {names}")
        cfg = model["config"]
        t = cfg["transformer"]
        out.print(
            f"  {cfg['model_type']}: emb {t['emb_size']}, layers {t['num_layers']}, "
            f"heads {t['num_q_heads']}/{t['num_kv_heads']}, key {t['key_size']}, "
            f"widening {t['widening_factor']}, attn×{t['attn_output_multiplier']}, "
            f"history {cfg['history_seq_len']}, candidates {cfg['candidate_seq_len']}, "
            f"actions {cfg['num_actions']}, vocab {cfg['hash']['user']['vocab_size']:,}/"
            f"{cfg['hash']['item']['vocab_size']:,}/{cfg['hash']['author']['vocab_size']:,}, "
            f"dtype {cfg['fprop_dtype']}; source: {model['provenance'].get('format')}",
            highlight=False,
        )


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="First checkpoint.")],
    b: Annotated[Path, typer.Argument(help="Second checkpoint.")],
    atol: Annotated[float, typer.Option(help="Tolerance on max |Δ| per tensor.")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Per-tensor max |Δ| and relative norm, largest first. Exit 1 if any exceeds --atol.

    Example: xfeed ckpt diff ckpt-a ckpt-b --atol 1e-6
    """
    rows = tools.diff(a, b)
    bad = [r for r in rows if not r.max_abs <= atol]
    if as_json:
        lines = (
            dumps(
                {
                    "tensor": r.name,
                    "max_abs": _finite(r.max_abs),
                    "rel_norm": _finite(r.rel_norm),
                    "note": r.note,
                }
            )
            for r in rows
        )
        write_lines(lines, None)
    else:
        table = Table(title=f"{a} vs {b}", title_justify="left")
        table.add_column("tensor")
        table.add_column("max |Δ|", justify="right")
        table.add_column("rel. norm", justify="right")
        table.add_column("note")
        for r in rows:
            style = "red" if r in bad else None
            table.add_row(r.name, f"{r.max_abs:.3g}", f"{r.rel_norm:.3g}", r.note, style=style)
        out.print(table)
        verdict = f"{len(bad)} of {len(rows)} tensors differ beyond atol={atol:g}"
        err.print(verdict if bad else f"identical within atol={atol:g} ({len(rows)} tensors)")
    if bad:
        raise typer.Exit(1)


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else "inf"


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="Source checkpoint (either format).")],
    dst: Annotated[Path, typer.Argument(help="Destination directory.")],
    to: Annotated[Format, typer.Option("--to", help="Target format.")] = Format.XFEED,
    force: ForceOpt = False,
) -> None:
    """Convert losslessly between upstream's npz artifacts and xfeed's safetensors format.

    Example: xfeed ckpt convert oss-phoenix-artifacts ckpt --to xfeed
    """
    written = tools.convert(src, dst, to, force=force)
    err.print(f"wrote {to} checkpoint {dst}: {', '.join(written)}")


@app.command()
def fake(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to create.")],
    vocab: Annotated[
        int, typer.Option(min=2, max=10_000_000, help="Rows per embedding table (2 … 10M).")
    ] = 1000,
    seed: SeedOpt = 0,
    corpus_size: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="Posts in the corpus (1 … 10M).")
    ] = 2000,
    history_len: Annotated[
        int, typer.Option(min=1, max=100_000, help="Items in the example sequence.")
    ] = 40,
    preset: Annotated[Preset, typer.Option(help="Architecture.")] = Preset.MINI,
    force: ForceOpt = False,
) -> None:
    """Random-weight checkpoint in upstream's exact artifacts layout (+ corpus, sequence).

    Example: xfeed ckpt fake --out /tmp/fake --vocab 1000
    """
    with err.status(f"writing fake artifacts to {out_dir} …"):
        fake_mod.write_fake_artifacts(
            out_dir,
            vocab=vocab,
            seed=seed,
            corpus_size=corpus_size,
            history_len=history_len,
            preset=preset,
            force=force,
        )
    err.print(f"wrote fake {preset} artifacts (vocab {vocab:,}, seed {seed}) to {out_dir}")


@app.command()
def pull(
    repo_id: Annotated[str, typer.Argument(help="Hub repo id, e.g. org/name.")],
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit.")] = None,
    local_dir: Annotated[Path | None, typer.Option(help="Copy files here, not the cache.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="HF cache directory.")] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, max=86_400, help="Give up after this many seconds.")
    ] = 60.0,
) -> None:
    """Download a checkpoint repo via huggingface_hub (HF_ENDPOINT, HF_HUB_OFFLINE respected).

    Example: xfeed ckpt pull org/name --revision main
    """
    path = hub.pull(repo_id, revision=revision, local_dir=local_dir, cache_dir=cache_dir,
                    timeout_s=timeout)  # fmt: skip
    out.print(str(path), highlight=False)
