"""`xfeed phoenix`: upstream's run_pipeline flow (retrieve, rank) on an artifacts directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from phoenix.actions import UPSTREAM_DEMO_COLUMNS
from safeio.kinds import OutputKind, first_json_line_has
from xfeed_cli.console import XFeedGroup, dumps, err, out, write_lines
from xfeed_cli.device import use_device
from xfeed_cli.lazy import lazy
from xfeed_cli.options import DeviceOpt, DtypeOpt, ForceOpt, JsonOpt, OutOpt

if TYPE_CHECKING:
    from upstream.run_pipeline import FlowResult

flow = lazy("upstream.run_pipeline")

app = typer.Typer(
    help="Upstream's Phoenix flow: retrieval then ranking.",
    no_args_is_help=True,
    cls=XFeedGroup,
    rich_markup_mode=None,  # plain help (see main.py)
)

ArtifactsOpt = Annotated[
    Path, typer.Option("--artifacts", help="Artifacts directory with ranker/ and retrieval/.")
]
SequenceOpt = Annotated[
    Path | None,
    typer.Option("--sequence", help="User sequence JSON (default: example_sequence.json)."),
]
CorpusOpt = Annotated[
    Path | None, typer.Option("--corpus", help="Corpus (.npz or corpus.safetensors).")
]
TopKOpt = Annotated[int, typer.Option("--top-k", min=1, help="Posts to retrieve.")]
DisplayOpt = Annotated[int, typer.Option("--top-k-display", min=1, help="Rows in the table.")]


def _lines(res: FlowResult) -> list[str]:
    rows = []
    for i in range(len(res.post_ids)):
        row: dict = {
            "rank": i + 1,
            "post_id": str(int(res.post_ids[i])),
            "author_id": str(int(res.author_ids[i])),
            "retrieval_score": float(res.retrieval_scores[i]),
        }
        if res.topics[i]:
            row["topics"] = res.topics[i]
        if res.probs is not None:
            row["probs"] = {h: float(p) for h, p in zip(res.head_names, res.probs[i], strict=True)}
            row["weighted_score"] = float(res.weighted[i])
        rows.append(dumps(row))
    return rows


def _render(res: FlowResult, display: int) -> None:
    ranked = res.probs is not None
    title = (
        f"PIPELINE RESULTS — User {res.user_id}\n"
        f"History: {res.history_len} items | Corpus: {res.corpus_size:,} posts\n"
        f"Retrieved top {len(res.post_ids)}"
        + (" → Ranked by engagement model" if ranked else " by two-tower similarity")
    )
    table = Table(title=title, title_justify="left")
    table.add_column("Rank", justify="right")
    if ranked:
        table.add_column("Score", justify="right")
    table.add_column("Ret", justify="right")
    heads = {h: i for i, h in enumerate(res.head_names)}
    columns = (
        [(a, label) for a, label in UPSTREAM_DEMO_COLUMNS if a.name in heads] if ranked else []
    )
    for _, label in columns:
        table.add_column(label, justify="right")
    table.add_column("Topics")
    table.add_column("Post URL", no_wrap=True)
    for i in range(min(display, len(res.post_ids))):
        cells = [str(i + 1)]
        if ranked:
            cells.append(f"{res.weighted[i]:.4f}")
        cells.append(f"{res.retrieval_scores[i]:.4f}")
        cells += [f"{res.probs[i, heads[a.name]]:.3f}" for a, _ in columns]
        cells += [res.topics[i], f"https://x.com/a/status/{int(res.post_ids[i])}"]
        table.add_row(*cells)
    out.print(table)
    if ranked and len(res.weighted):
        out.print(
            f"Weighted score range: [{res.weighted.min():.4f}, {res.weighted.max():.4f}]",
            highlight=False,
        )
    if res.missing_weight_heads:
        err.print(
            f"heads missing from the ranker (weight 0): {', '.join(res.missing_weight_heads)}"
        )
    timing = ", ".join(f"{k} {v:.0f} ms" for k, v in res.timings_ms.items())
    err.print(f"user repr norm {res.user_norm:.4f}; {timing}", highlight=False)


RESULTS_OUTPUT = OutputKind("phoenix results", False, first_json_line_has("rank"))


def _run(artifacts, sequence, corpus, top_k, rank, device, dtype, as_json, out_path, display,
         force=False):  # fmt: skip
    use_device(device)
    res = flow.run_phoenix_flow(
        artifacts,
        sequence=sequence,
        corpus=corpus,
        top_k_retrieval=top_k,
        rank=rank,
        dtype=str(dtype) if dtype else None,
    )
    if as_json or out_path:
        write_lines(_lines(res), out_path, RESULTS_OUTPUT, force)
    else:
        _render(res, display)


@app.command()
def retrieve(
    artifacts: ArtifactsOpt,
    sequence: SequenceOpt = None,
    corpus: CorpusOpt = None,
    top_k: TopKOpt = 200,
    top_k_display: DisplayOpt = 30,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = None,
    as_json: JsonOpt = False,
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Two-tower retrieval: encode the user, dot-product top-K over the corpus.

    Example: xfeed phoenix retrieve --artifacts /tmp/fake --top-k 50
    """
    _run(artifacts, sequence, corpus, top_k, False, device, dtype, as_json, out_path, top_k_display,
         force)  # fmt: skip


@app.command()
def rank(
    artifacts: ArtifactsOpt,
    sequence: SequenceOpt = None,
    corpus: CorpusOpt = None,
    top_k: TopKOpt = 200,
    top_k_display: DisplayOpt = 30,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = None,
    as_json: JsonOpt = False,
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Retrieval, then Phoenix ranking in chunks, sorted by upstream's weighted score.

    Example: xfeed phoenix rank --artifacts /tmp/fake --dtype float32
    """
    _run(artifacts, sequence, corpus, top_k, True, device, dtype, as_json, out_path, top_k_display,
         force)  # fmt: skip
