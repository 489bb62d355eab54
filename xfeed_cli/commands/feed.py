"""`xfeed rank`, the stage commands (`retrieve`, `hydrate`, `filter`, `score`, `select`,
`post-filter`), `explain` and `whatif`."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.params import CHOICES, HEADS, load_params
from safeio.inputs import regular_file
from safeio.kinds import CANDIDATE_STREAM
from thunder.timespec import parse_time_ms
from xfeed_cli.console import InputError, dumps, err, out, write_lines
from xfeed_cli.device import use_device
from xfeed_cli.lazy import lazy
from xfeed_cli.options import MAX_ID, DeviceOpt, ForceOpt, JsonOpt, OutOpt, UserIdOpt
from xfeed_cli.render import Col, fitted_table

if TYPE_CHECKING:
    from pipeline.candidates import PostCandidate
    from pipeline.query import FeedQuery, Resources

feed = lazy("pipeline.feed")
candidates = lazy("pipeline.candidates")
query_mod = lazy("pipeline.query")

UserOpt = UserIdOpt
WorldOpt = Annotated[Path | None, typer.Option("--world", help="World (default: bundled).")]
CkptOpt = Annotated[Path | None, typer.Option("--checkpoint", help="Checkpoint bundle.")]
SnapOpt = Annotated[Path | None, typer.Option("--snapshot", help="Thunder snapshot.")]
CorpusOpt = Annotated[Path | None, typer.Option("--corpus", help="Retrieval corpus.")]
NowOpt = Annotated[str | None, typer.Option("--now", help="Request time: ms or ISO-8601.")]
WeightsOpt = Annotated[Path | None, typer.Option("--weights", help="TOML overrides of params.")]
TopKOpt = Annotated[int | None, typer.Option("--top-k", min=1, help="Feed size (default 35).")]
LenientOpt = Annotated[bool, typer.Option("--lenient", help="Fail open, as upstream.")]
RankerOpt = Annotated[
    str | None,
    typer.Option(
        "--ranker", help="Phoenix path: cached (default) or reference (upstream's chunks)."
    ),
]
ArmOpt = Annotated[
    str | None,
    typer.Option(
        "--arm",
        help="for-you (default: the pipeline) or chrono (followed accounts, newest first).",
    ),
]
InOpt = Annotated[Path | None, typer.Option("--in", help="Candidate JSONL (default: stdin).")]


def _resources(world, checkpoint, snapshot, corpus) -> Resources:
    b = feed.BUNDLED
    if world is not None and snapshot is None:
        snap = world / "thunder"
        snapshot = snap if snap.exists() else None
        snapshot_str = str(snapshot) if snapshot else None
    else:
        snapshot_str = str(snapshot) if snapshot is not None else b.snapshot
    return query_mod.Resources(
        world=str(world) if world else b.world,
        checkpoint=str(checkpoint) if checkpoint else b.checkpoint,
        snapshot=snapshot_str,
        corpus=str(corpus) if corpus else None,
    )


def _query(user, world, checkpoint, snapshot, corpus, now, weights, top_k, lenient,
           ranker=None, arm=None) -> FeedQuery:  # fmt: skip
    params = load_params(weights)
    for name, value in (("ranker", ranker), ("arm", arm)):
        if value is not None:
            if value not in CHOICES[name]:
                raise InputError(f"--{name} must be {' or '.join(CHOICES[name])}")
            params = dataclasses.replace(params, **{name: value})
    params = _with_top_k(params, top_k)
    if user <= 0:
        raise InputError("--user must be a positive id")
    res = _resources(world, checkpoint, snapshot, corpus)
    return feed.new_query(user, res, params, parse_time_ms(now) if now else None, lenient)


def _stream_out(
    query: FeedQuery, cands: list[PostCandidate], path: Path | None, force: bool = False
) -> None:
    write_lines(candidates.dump_stream(query.to_json(), cands), path, CANDIDATE_STREAM, force)


def _stream_in(path: Path | None) -> tuple[FeedQuery, list[PostCandidate]]:
    if path is not None:
        regular_file(path, "candidate file")  # not a FIFO or a directory
    lines = path.read_text().splitlines() if path else sys.stdin.read().splitlines()
    where = path if path is not None else "<stdin>"
    try:
        q, cands = candidates.parse_stream(lines)
    except candidates.CandidateStreamError as exc:
        raise InputError(f"{where}: {exc}") from exc
    try:
        return query_mod.FeedQuery.from_json(q), cands
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: bad query line: {exc}") from exc


def _summary(result, label: str) -> None:
    counts = ", ".join(f"{k.split(':')[1]} {v}" for k, v in result.counts.items() if v)
    total = sum(v for k, v in result.timings_ms.items() if k != "total")
    err.print(f"{label}: {counts or 'nothing removed'} ({total:.0f} ms)", highlight=False)


def _ago(ms: int) -> str:
    """A post's age at the request: '42m', '3h 05m', '2d 04h'."""
    m = max(int(ms), 0) // 60_000
    if m < 60:
        return f"{m}m"
    return f"{m // 60}h {m % 60:02d}m" if m < 1440 else f"{m // 1440}d {m // 60 % 24:02d}h"


def _render(result, query: FeedQuery) -> None:
    chrono = query.params.arm == "chrono"  # ordered by time: the age, not a score, is the key
    cols = [Col("#", "right"), Col("post id"), Col("author", drop=4), Col("net", drop=3),
            Col("source", drop=1), Col("age" if chrono else "score", "right"),
            Col("top actions", drop=2), Col("text", flex=True)]  # fmt: skip
    rows = []
    for i, c in enumerate(result.selected, start=1):
        probs = sorted((c.probs or {}).items(), key=lambda kv: -kv[1])[:3]
        top = " ".join(f"{k} {v:.2f}" for k, v in probs)
        text = c.text or (f"RT of {c.source_post_id}" if c.source_post_id else "")
        key = _ago(query.now_ms - c.created_ms) if chrono else f"{c.score:.4g}"
        rows.append([str(i), str(c.post_id), str(c.author_id), "in" if c.in_network else "out",
                     c.source, key, top, escape(" ".join(text.split()))])  # fmt: skip
    title = "Chronological" if chrono else "For You"
    table = fitted_table(f"{title} — user {query.user_id}", cols, rows, out.width)
    out.print(table)
    sources = ", ".join(f"{k.split(':')[1]} {v}" for k, v in result.counts.items()
                        if k.startswith("source:"))  # fmt: skip
    removed = len(result.removed)
    have = set(result.scored[0].probs or {}) if result.scored else set()
    lacking = [k for k, w in query.params.weights.items() if w and k in HEADS and k not in have]
    if lacking:
        err.print(f"heads the checkpoint lacks (contribute 0): {', '.join(lacking)}")
    stages = ", ".join(f"{k.split(':')[0].replace('_', ' ')} {v:.0f} ms"
                       for k, v in _stage_times(result.timings_ms).items())  # fmt: skip
    err.print(f"timings: {stages}", highlight=False)
    err.print(
        f"retrieved {len(result.retrieved)} ({sources}); removed {removed}; scored "
        f"{len(result.scored)}; served {len(result.selected)}; {result.timings_ms['total']:.0f} ms",
        highlight=False,
    )


def _stage_times(timings: dict[str, float]) -> dict[str, float]:
    """Per-stage sums of the component timings."""
    out: dict[str, float] = {}
    for k, v in timings.items():
        if k != "total":
            stage = k.split(":")[0]
            out[stage] = out.get(stage, 0.0) + v
    return out


def rank(
    user: Annotated[
        int | None, typer.Option("--user", min=1, max=MAX_ID, help="Viewer user id.")
    ] = None,
    users: Annotated[
        str | None,
        typer.Option(
            "--users",
            help="A population run: all, ID,ID,… or a FILE (text or "
            "Parquet with user_id); needs --out DIR.",
        ),
    ] = None,
    world: WorldOpt = None,
    checkpoint: CkptOpt = None,
    snapshot: SnapOpt = None,
    corpus: CorpusOpt = None,
    now: NowOpt = None,
    weights: WeightsOpt = None,
    top_k: TopKOpt = None,
    lenient: LenientOpt = False,
    ranker: RankerOpt = None,
    arm: ArmOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="--user: write the JSONL here; --users: the dataset directory."
        ),
    ] = None,
    keep: Annotated[
        str, typer.Option("--keep", help="--users: served (default), scored, or all rows.")
    ] = "served",
    shard: Annotated[
        str | None, typer.Option("--shard", help="--users: this run's slice I/N (hash of id).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="--users: skip the parts already written.")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="--users: local (default) or ray (Ray Data).")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="--engine ray: join this cluster.")
    ] = None,
    ray_actors: Annotated[
        int | None,
        typer.Option("--ray-actors-per-node", help="--engine ray: actors per node (default 2)."),
    ] = None,
    ray_cpus: Annotated[
        float | None,
        typer.Option("--ray-cpus-per-actor", help="--engine ray: CPUs per actor (default 0.5)."),
    ] = None,
    ray_gpus: Annotated[
        float | None,
        typer.Option("--ray-gpus-per-actor", help="--engine ray: GPUs per actor (default 0)."),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """The For You feed for one user (a ranked table, or candidate JSONL with --json), or for a
    population of users as a Parquet dataset (--users … --out DIR). --arm chrono is the
    reverse-chronological control (posts of followed accounts, newest first, same filters).

    Example: xfeed rank --user 1007 --top-k 20; xfeed rank --users all --arm chrono --out chrono/
    """
    if (user is None) == (users is None):
        raise InputError("give --user ID or --users all|ID,ID,…|FILE")
    if users is None or engine != "ray":  # Ray's actors pick their own device (RayOptions)
        use_device(device)
    if users is not None:
        from xfeed_cli.commands import population

        if force:
            raise InputError("--force does not apply to --users (use a new --out or --resume)")
        q = _query(
            1, world, checkpoint, snapshot, corpus, now, weights, top_k, lenient, ranker, arm
        )
        ray = {"address": ray_address, "actors_per_node": ray_actors,
               "cpus_per_actor": ray_cpus, "gpus_per_actor": ray_gpus}  # fmt: skip
        population.run(users, out_path, q.resources, q.params,
                       parse_time_ms(now) if now else None, lenient, keep, shard, resume, engine,
                       {k: v for k, v in ray.items() if v is not None}, device)  # fmt: skip
        return
    q = _query(user, world, checkpoint, snapshot, corpus, now, weights, top_k, lenient, ranker, arm)
    result = feed.rank(q)
    if as_json or out_path:
        _stream_out(result.query, result.selected, out_path, force)
    else:
        _render(result, result.query)


def retrieve(
    user: UserOpt,
    world: WorldOpt = None,
    checkpoint: CkptOpt = None,
    snapshot: SnapOpt = None,
    corpus: CorpusOpt = None,
    now: NowOpt = None,
    weights: WeightsOpt = None,
    top_k: TopKOpt = None,
    lenient: LenientOpt = False,
    ranker: RankerOpt = None,
    device: DeviceOpt = "auto",
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Query hydration, sources and candidate hydration -> candidate JSONL.

    Example: xfeed retrieve --user 1007 -o cands.jsonl
    """
    use_device(device)
    q = _query(user, world, checkpoint, snapshot, corpus, now, weights, top_k, lenient, ranker)
    q, cands, result = feed.retrieve(q)
    _summary(result, f"retrieve: {len(cands)} candidates")
    _stream_out(q, cands, out_path, force)


def _with_top_k(params, top_k: int | None):
    """--top-k N: the feed size (the selector keeps at least N for the post-selection filters)."""
    if top_k is None:
        return params
    return dataclasses.replace(params, result_size=top_k, top_k=max(params.top_k, top_k))


def _stage(fn, label: str, src: Path | None, out_path: Path | None, force: bool,
           weights: Path | None = None, top_k: int | None = None) -> None:  # fmt: skip
    q, cands = _stream_in(src)
    if weights is not None or top_k is not None:
        # re-score a saved stream under other settings: the file overrides the stream's params
        params = _with_top_k(load_params(weights, q.params), top_k)
        q = dataclasses.replace(q, params=params)
    res, result = fn(q, cands)
    kept = res.selected if hasattr(res, "selected") else res
    _summary(result, f"{label}: {len(cands)} -> {len(kept)}")
    _stream_out(q, kept, out_path, force)


def hydrate(src: InOpt = None, out_path: OutOpt = None, force: ForceOpt = False) -> None:
    """Candidate hydration of a candidate stream.

    Example: xfeed hydrate --in cands.jsonl -o hydrated.jsonl
    """
    _stage(feed.hydrate, "hydrate", src, out_path, force)


def filter_command(src: InOpt = None, out_path: OutOpt = None, force: ForceOpt = False) -> None:
    """Pre-scoring filters of a candidate stream.

    Example: xfeed retrieve --user 1007 | xfeed filter | xfeed score | xfeed select
    """
    _stage(feed.filter_stage, "filter", src, out_path, force)


def score(
    src: InOpt = None,
    weights: WeightsOpt = None,
    top_k: TopKOpt = None,
    device: DeviceOpt = "auto",
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Phoenix, weighted, diversity and out-of-network scoring of a candidate stream.

    Example: xfeed score --in filtered.jsonl --weights mine.toml | xfeed select --top-k 10
    """
    use_device(device)
    _stage(feed.score, "score", src, out_path, force, weights, top_k)


def select(
    src: InOpt = None,
    weights: WeightsOpt = None,
    top_k: TopKOpt = None,
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Top-K selection of a scored candidate stream.

    Example: xfeed select --in scored.jsonl --top-k 20
    """
    _stage(feed.select, "select", src, out_path, force, weights, top_k)


def post_filter(
    src: InOpt = None,
    weights: WeightsOpt = None,
    top_k: TopKOpt = None,
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Visibility, ancillary and conversation filters, then truncation to the feed size.

    Example: xfeed post-filter --in selected.jsonl --top-k 10
    """
    _stage(feed.post_filter, "post-filter", src, out_path, force, weights, top_k)


def explain(
    user: UserOpt,
    post: Annotated[
        list[int] | None,
        typer.Option("--post", min=1, max=MAX_ID, help="Post id (repeatable: --post A --post B)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Also explain the feed's first N.")] = 0,
    world: WorldOpt = None,
    checkpoint: CkptOpt = None,
    snapshot: SnapOpt = None,
    corpus: CorpusOpt = None,
    now: NowOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Why posts rank where they do, or which stages removed them and why (one pipeline run
    for all of them).

    Example: xfeed explain --user 1007 --post 2079327159096200380 --top 3
    """
    use_device(device)
    if not post and not top:
        raise InputError("give --post ID (repeatable) or --top N")
    q = _query(user, world, checkpoint, snapshot, corpus, now, weights, None, False)
    explained = feed.explain(q, post or (), top)
    if as_json:
        write_lines([dumps(e) for e in explained], None)
        return
    for e in explained:
        _render_explanation(e, user)


def _render_explanation(e: dict, user: int) -> None:
    post = e["post_id"]
    if e["outcome"] == "not retrieved":
        out.print(f"post {post}: not retrieved: {e['reason']}", highlight=False)
        return
    if e["outcome"] == "removed":
        for r in e["removals"]:
            out.print(f"post {post}: removed by {r['component']} ({r['stage']}, {r['source']} "
                      f"copy): {r['reason']}", highlight=False)  # fmt: skip
        return
    table = Table(
        "head",
        "probability",
        "weight",
        "contribution",
        title=f"post {post} for user {user}: {e['outcome']}",
        title_justify="left",
    )
    for hd in e["heads"]:
        p = "—" if hd["probability"] is None else f"{hd['probability']:.4f}"
        table.add_row(hd["head"], p, f"{hd['weight']:g}", f"{hd['contribution']:+.4f}")
    out.print(table)
    pos = f"feed position {e['feed_position']}" if e["feed_position"] else e["reason"]
    out.print(
        f"positive {e['positive']:.4f} − negative {e['negative']:.4f} = {e['combined']:+.4f} → "
        f"weighted (offset) {e['weighted_score']:.4g}; diversity ×{e['diversity_multiplier']:.4g}; "
        f"out-of-network ×{e['oon_multiplier'] or 1:g}; final {e['final_score']:.4g}; "
        f"pool rank {e['pool_rank']} of {e['pool_size']}; {pos}",
        highlight=False,
    )
    for r in e["removed_copies"]:
        out.print(f"note: a {r['source']} copy was removed by {r['component']} ({r['stage']}): "
                  f"{r['reason']}", highlight=False)  # fmt: skip
    if e["missing_heads"]:
        err.print(f"heads the checkpoint lacks (contribute 0): {', '.join(e['missing_heads'])}")


def whatif(
    user: Annotated[
        int | None, typer.Option("--user", min=1, max=MAX_ID, help="Viewer user id.")
    ] = None,
    users: Annotated[
        str | None,
        typer.Option(
            "--users",
            help="A population what-if: all, ID,ID,… or a FILE; both arms "
            "are ranked for these users and audited (B vs A).",
        ),
    ] = None,  # fmt: skip
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            "--weights", help="A.toml [--weights B.toml]: B vs A (one file: vs defaults)."
        ),
    ] = None,
    checkpoint_b: Annotated[
        Path | None, typer.Option("--checkpoint-b", help="Slate B from this checkpoint instead.")
    ] = None,
    world: WorldOpt = None,
    checkpoint: CkptOpt = None,
    snapshot: SnapOpt = None,
    corpus: CorpusOpt = None,
    now: NowOpt = None,
    top_k: TopKOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="--users: keep both runs here (A-…, B-…; default: a temporary directory)."
        ),
    ] = None,  # fmt: skip
    group_by: Annotated[
        str | None, typer.Option("--group-by", help="--users: author groups of the audit.")
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, max=100_000, help="--users: bootstrap replicates.")
    ] = 500,
) -> None:
    """Two slates for one user: A (defaults, or the first --weights) vs B (the last --weights,
    and/or --checkpoint-b), each with author, score and text, then what moved, entered and left.
    With --users: both arms for a population and their audit (xfeed audit B --baseline A).

    Example: xfeed whatif --user 1007 --weights mine.toml; xfeed whatif --users all --weights B.toml
    """
    weights = weights or []
    if len(weights) > 2:
        raise InputError("give at most two --weights files")
    if not weights and checkpoint_b is None:
        raise InputError("give --weights B.toml (or A.toml B.toml) and/or --checkpoint-b C")
    if (user is None) == (users is None):
        raise InputError("give --user ID or --users all|ID,ID,…|FILE")
    use_device(device)
    a = _with_top_k(load_params(weights[0] if len(weights) == 2 else None), top_k)
    b = _with_top_k(load_params(weights[-1] if weights else None), top_k)
    q = _query(user or 1, world, checkpoint, snapshot, corpus, now, None, None, False)
    res_b = dataclasses.replace(q.resources, checkpoint=str(checkpoint_b)) if checkpoint_b else None
    label_a = weights[0].name if len(weights) == 2 else "defaults"
    label_b = " + ".join(
        [*(p.name for p in weights[-1:]), *([checkpoint_b.name] if checkpoint_b else [])]
    )
    if users is not None:
        from xfeed_cli.commands import audit as audit_cmd
        from xfeed_cli.commands import population

        arms = [(label_a, a, q.resources), (label_b, b, res_b or q.resources)]
        result = population.whatif(
            users,
            out_dir,
            q.resources,
            arms,
            parse_time_ms(now) if now else None,
            group_by,
            bootstrap,
        )
        if as_json:
            write_lines([dumps(result)], None)
        else:
            audit_cmd.print_audit(result)
        return
    w = feed.whatif(q, a, b, res_b)
    w["labels"] = {"a": label_a, "b": label_b}
    if as_json:
        write_lines([dumps(w)], None)
        return
    ia = [c["post_id"] for c in w["a"]]
    cols = [Col("#", "right"), Col("post id"), Col("author", drop=2), Col("score", "right"),
            Col("change", drop=3), Col("text", flex=True)]  # fmt: skip
    for key, label in (("a", label_a), ("b", label_b)):
        rows = []
        for i, c in enumerate(w[key], start=1):
            change = ""
            if key == "b":
                change = "new" if c["post_id"] not in ia else _moved(ia.index(c["post_id"]) + 1, i)
            elif c["post_id"] in w["left"]:
                change = "leaves"
            text = " ".join((c.get("text") or "").split())
            rows.append([str(i), str(c["post_id"]), str(c["author_id"]),
                         f"{c.get('score') or 0:.4g}", change, escape(text)])  # fmt: skip
        title = f"what-if {key.upper()}: {label} — user {user}"
        out.print(fitted_table(title, cols, rows, out.width))
    out.print(f"entered ({len(w['entered'])}): {' '.join(w['entered']) or '—'}", highlight=False)
    out.print(f"left ({len(w['left'])}): {' '.join(w['left']) or '—'}", highlight=False)
    err.print(f"moved {len(w['moved'])}, entered {len(w['entered'])}, left {len(w['left'])}")


def _moved(before: int, now: int) -> str:
    if before == now:
        return ""
    return (
        f"↑{before - now} (was #{before})" if now < before else f"↓{now - before} (was #{before})"
    )
