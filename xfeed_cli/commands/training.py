"""`xfeed train`, `xfeed index build`, `xfeed eval`: training and evaluation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from phoenix.actions import ActionName
from phoenix.config import ModelType, Preset
from xfeed_cli.console import InputError, XFeedGroup, dumps, err, out, write_lines
from xfeed_cli.device import use_device
from xfeed_cli.lazy import lazy
from xfeed_cli.options import DeviceOpt, ForceOpt, JsonOpt, OutOpt, SeedOpt

evaluation = lazy("training.evaluation")
loo = lazy("training.loo")
tables = lazy("world.tables")
timespec = lazy("thunder.timespec")
corpora = lazy("world.corpus")
trainer = lazy("training.trainer")

index_app = typer.Typer(
    help="Retrieval corpora.", no_args_is_help=True, cls=XFeedGroup, rich_markup_mode=None
)
WorldOpt = Annotated[Path, typer.Option("--world", help="World directory.")]
CkptOpt = Annotated[Path, typer.Option("--checkpoint", help="Checkpoint directory.")]


def train(
    model: Annotated[ModelType, typer.Argument(help="ranker or retrieval")],
    world: WorldOpt,
    ckpt_out: Annotated[Path, typer.Option("--out", help="Checkpoint directory (bundle).")],
    preset: Annotated[Preset, typer.Option(help="Architecture preset.")] = Preset.TINY,
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Optimizer steps (default: ranker 4500, 3000 on imported worlds; retrieval 1500).",
        ),  # fmt: skip
    ] = None,
    holdout: Annotated[
        str,
        typer.Option(
            help="fraction: last 20% of each user's items held out; loo: each user's "
            "last positive (as `xfeed eval --protocol loo`)."
        ),
    ] = "fraction",
    positives: Annotated[
        str | None,
        typer.Option(
            help="Retrieval positives: favorite, or any (any non-negative action; the "
            "default for imported worlds)."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=2, max=4096, help="Batch size.")] = None,
    sample_by: Annotated[
        str | None,
        typer.Option(
            help="Batches: example (uniform over examples) or user (each row a different user "
            "drawn uniformly, as upstream averages the loss per user; default for imported "
            "worlds' retrieval)."
        ),
    ] = None,
    history: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=4096,
            help="History length (default: see README, Training recipe).",
        ),
    ] = None,
    valid: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Fraction of each user's training items (the last, by time) used for "
            "validation; 0: none (default: 0.1 for the ranker on synthetic worlds, else 0).",
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(min=0, max=1000, help="Stop after N validations without improvement."),
    ] = None,
    eval_every: Annotated[
        int | None, typer.Option(min=1, max=1_000_000, help="Validate every N steps.")
    ] = None,
    select_by: Annotated[
        str | None,
        typer.Option(
            help="Which validated state is kept: loss, or auc (ranker: the mean AUC of the "
            "heads with >= 20 validation positives; default for the ranker on synthetic worlds), "
            "or reorder (ranker with --negatives-from: NDCG@10 of each user's last training "
            "item among the retrieval model's top candidates, as `eval --protocol loo`; the "
            "ranker trains on the items before it, --valid is not used)."
        ),
    ] = None,
    sampled_negatives: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=4096,
            help="Ranker: candidate slots filled with sampled "
            "never-engaged items (default: 28 for imported worlds, 0 otherwise).",
        ),
    ] = None,
    negatives_from: Annotated[
        Path | None,
        typer.Option(
            help="Ranker: a retrieval checkpoint; negatives are drawn from its top candidates "
            "for the user at each example (what the ranker will reorder)."
        ),
    ] = None,
    retrieval_negatives: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=4096,
            help="Ranker: candidate slots filled from --negatives-from's top candidates "
            "(default with --negatives-from: 14 on imported worlds, 8 otherwise).",
        ),
    ] = None,
    ranker_logq: Annotated[
        bool | None,
        typer.Option(
            "--ranker-logq/--no-ranker-logq",
            help="Ranker: weight each candidate's loss by 1 / its training count (upstream's "
            "log-Q weighting; default off).",
        ),
    ] = None,
    logq_shift: Annotated[
        bool | None,
        typer.Option(
            "--logq-shift/--no-logq-shift",
            help="Ranker with sampled negatives: train each candidate's logits minus log q, q "
            "the density with which the negative samplers draw that item for that example "
            "(the log-Q correction as a logit shift), so the logits learn log p(item | user) "
            "rather than p / q (default on for imported worlds).",
        ),
    ] = None,
    ranker_loss: Annotated[
        str | None,
        typer.Option(
            "--ranker-loss",
            help="Ranker loss: bce (upstream's per-head sigmoid BCE) or softmax (each positive "
            "against its example's candidates without that action, log-Q corrected with "
            "--logq-shift; default for imported worlds).",
        ),
    ] = None,
    ranker_positives: Annotated[
        int | None,
        typer.Option(
            "--ranker-positives",
            min=0,
            max=4096,
            help="Ranker: the next N items after each cut are its positives, cuts every "
            "max(N / 4, 1) items (0: every candidate slot the negatives leave; default 4 for "
            "imported worlds, 0 otherwise).",
        ),
    ] = None,
    id_l2: Annotated[
        float | None,
        typer.Option(
            "--id-l2",
            min=0.0,
            max=1.0,
            help="L2 penalty on the user and post id embedding tables (weight x the sum of "
            "their squares, added to the loss): rarely seen ids stay near zero (default: "
            "see README, Training recipe).",
        ),
    ] = None,
    global_negatives: Annotated[
        int | None,
        typer.Option(
            "--global-negatives",
            min=0,
            max=65536,
            help="Retrieval: negatives per batch drawn uniformly from the training catalogue, "
            "shared by every row (default 512 on synthetic worlds, 64 on imported ones).",
        ),
    ] = None,
    post_dropout: Annotated[
        float | None,
        typer.Option(
            "--post-dropout",
            min=0.0,
            max=1.0,
            help="Probability that a training candidate's post id embedding is zeroed, so the "
            "model learns to score posts it has never seen (default: see README, Training "
            "recipe).",
        ),
    ] = None,
    sid_levels: Annotated[
        int | None,
        typer.Option(
            "--sid-levels",
            min=0,
            max=16,
            help="Post semantic-id levels read from the posts' topics (level k = the k-th "
            "topic; 0 = off; default 1 on synthetic worlds, 6 on imported ones).",
        ),
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option("--log", help="Write validation records here (JSONL).")
    ] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Train one model on a world's training split; writes CKPT/<model> (xfeed format).

    Example: xfeed train ranker --world data/samples/world --out ckpt --steps 200
    Example: xfeed train retrieval --world worlds/movielens --out ckpt/ml --holdout loo --valid 0.1
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    use_device(device)
    if holdout not in trainer.HOLDOUTS:
        raise InputError(f"--holdout must be one of {', '.join(trainer.HOLDOUTS)}, not {holdout!r}")
    if sample_by not in (None, "example", "user"):
        raise InputError(f"--sample-by must be example or user, not {sample_by!r}")
    if select_by not in (None, "loss", "auc", "reorder"):
        raise InputError(f"--select-by must be loss, auc or reorder, not {select_by!r}")
    if select_by in ("auc", "reorder") and model is not ModelType.RANKER:
        raise InputError(f"--select-by {select_by} is for the ranker (retrieval validates its "
                         "loss)")  # fmt: skip
    if select_by == "reorder" and negatives_from is None:
        raise InputError("--select-by reorder needs --negatives-from CKPT (a retrieval model)")
    if ranker_loss not in (None, "bce", "softmax"):
        raise InputError(f"--ranker-loss must be bce or softmax, not {ranker_loss!r}")
    if positives not in (None, "favorite", "any"):
        raise InputError(f"--positives must be favorite or any, not {positives!r}")
    imported = bool(tables.read_world_json(world).get("imported"))
    ranker_only = (retrieval_negatives, ranker_logq, negatives_from, logq_shift, ranker_loss,
                   ranker_positives)  # fmt: skip
    if global_negatives is not None and model is not ModelType.RETRIEVAL:
        raise InputError("--global-negatives is for retrieval")
    if any(ranker_only) and model is not ModelType.RANKER:
        raise InputError("--negatives-from, --retrieval-negatives, --ranker-logq, --logq-shift, "
                         "--ranker-loss and --ranker-positives are for the ranker")  # fmt: skip
    if retrieval_negatives and negatives_from is None:
        raise InputError("--retrieval-negatives needs --negatives-from CKPT (a retrieval model)")
    if negatives_from is not None and retrieval_negatives is None:
        retrieval_negatives = trainer.default_retrieval_negatives(imported)
    if negatives_from is not None and sampled_negatives is None:  # the same negative slots
        base = trainer.default_train_config(model, imported).sampled_negatives
        sampled_negatives = max(base - retrieval_negatives, 0)
    given = {"steps": steps, "batch_size": batch_size, "positives": positives,
             "sample_by": sample_by, "sampled_negatives": sampled_negatives,
             "retrieval_negatives": retrieval_negatives, "ranker_logq": ranker_logq,
             "ranker_logq_shift": logq_shift, "ranker_loss": ranker_loss,
             "ranker_positives": ranker_positives,
             "valid_fraction": valid, "patience": patience, "eval_every": eval_every,
             "select_by": select_by, "id_l2": id_l2, "post_dropout": post_dropout,
             "global_negatives": global_negatives}  # fmt: skip
    tc = dataclasses.replace(trainer.default_train_config(model, imported), seed=seed,
                             holdout=holdout,
                             **{k: v for k, v in given.items() if v is not None})  # fmt: skip
    records: list[str] = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[loss]}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"train {model}", total=tc.steps, loss="")

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, loss=f"loss {loss:.4f}")

        def log(rec: dict) -> None:
            records.append(dumps(rec))
            heads = ", ".join(f"{h} AUC {m['auc']:.3f} ({m['positives']:,})"
                              for h, m in list(rec.get("heads", {}).items())[:4])  # fmt: skip
            valid_part = ", ".join(f"{k} {v:.4f}" for k, v in rec.items()
                                   if k.startswith(("valid_loss", "reorder_")))  # fmt: skip
            err.print(f"step {rec['step']}: train {rec['train_loss']:.4f}, {valid_part}"
                      f"{'; ' + heads if heads else ''}", highlight=False)  # fmt: skip

        meta = trainer.train_model(model, world, ckpt_out, preset=preset, train_config=tc,
                                   progress=progress, log=log, force=force,
                                   history=history, negatives_from=negatives_from,
                                   sid_levels=sid_levels)  # fmt: skip
    if log_file is not None:
        write_lines(records, log_file)
    err.print(
        f"wrote {ckpt_out / str(model)}: {meta['examples']:,} examples, {meta['steps']} steps, "
        f"loss {meta['initial_loss']:.4f} -> {meta['final_loss']:.4f} ({meta['seconds']:.0f} s)",
        highlight=False,
    )


@index_app.command("build")
def index_build(
    checkpoint: CkptOpt,
    world: WorldOpt,
    corpus_out: Annotated[
        Path | None, typer.Option("--out", help="Default WORLD/corpus.safetensors")
    ] = None,
    max_age: Annotated[
        str | None,
        typer.Option(
            help="Only posts at most this old (2d, 48h, …; 'none': every post). "
            "Default: 2d, or none for imported worlds."
        ),
    ] = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Embed every live post of a world with the checkpoint's candidate tower; the corpus
    records both content hashes, so `rank` uses it only with this checkpoint and world.

    Example: xfeed index build --checkpoint ckpt --world my-world
    """
    use_device(device)
    target = corpus_out or world / "corpus.safetensors"
    if max_age is None:
        retention = corpora.default_retention_ms(world)
    else:
        retention = None if max_age.lower() == "none" else timespec.parse_duration_ms(max_age)
    header = corpora.build_corpus(checkpoint, world, target, retention_ms=retention, force=force)
    err.print(f"wrote {target}: {header['posts']:,} posts", highlight=False)


def eval_command(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="Checkpoint bundle; give two (--checkpoint A --checkpoint B) to compare them "
            "side by side (loo: optional, baselines only).",
        ),
    ] = None,
    world: WorldOpt = Path("data/samples/world"),
    protocol: Annotated[
        str,
        typer.Option(
            help="split: last 20% of each user's items held out; loo: leave-one-out "
            "with full ranking over the catalogue."
        ),
    ] = "split",
    relevant: Annotated[
        str | None,
        typer.Option(
            help="loo: the held-out item's action (an ActionName, or 'any'; default: "
            "any for imported worlds, SERVER_TWEET_FAV otherwise)."
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="loo: cut-off K.")] = 10,
    rerank: Annotated[
        int, typer.Option(min=1, max=10_000, help="loo: retrieval's top R reordered by the ranker.")
    ] = 200,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    out_path: OutOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Held-out quality of a checkpoint with baselines (AUC, log-loss, NDCG@10, HR@10, recall);
    two checkpoints side by side. Heads by their one name (`favorite`, …) and proto name.

    Example: xfeed eval --checkpoint data/samples/checkpoint --world data/samples/world
    Example: xfeed eval --checkpoint A --checkpoint B --out ab.json
    Example: xfeed eval --protocol loo --world worlds/movielens --checkpoint ckpt/movielens
    """
    checkpoints = checkpoint or []
    if len(checkpoints) > 2:
        raise InputError("give one --checkpoint, or two to compare")
    if protocol not in ("split", "loo"):
        raise InputError(f"--protocol must be split or loo, not {protocol!r}")
    use_device(device)
    if protocol == "loo":
        if len(checkpoints) > 1:
            raise InputError("--protocol loo evaluates one checkpoint")
        report = loo.evaluate_loo(world, checkpoints[0] if checkpoints else None, seed=seed, k=k,
                                  rerank=rerank, relevant=_relevant(relevant, world))  # fmt: skip
        if as_json or out_path:
            write_lines([dumps(report)], out_path, force=force)
            return
        p = report["protocol"]
        out.print(f"[bold]Leave-one-out[/] — {p['held_out']}; ranking: {p['ranking']}")
        table = Table("system", f"HR@{k}", f"NDCG@{k}", "median rank", "users")
        for name, m in report["systems"].items():
            table.add_row(name, f"{m[f'hr@{k}']:.4f}", f"{m[f'ndcg@{k}']:.4f}",
                          f"{m['median_rank']:,.1f}", f"{m['users']:,}")  # fmt: skip
        out.print(table)
        return
    if not checkpoints:
        raise InputError("--checkpoint is required for --protocol split")
    reports = [evaluation.evaluate(c, world, seed) for c in checkpoints]
    if as_json or out_path:
        doc = reports[0] if len(reports) == 1 else {
            "checkpoints": [str(c) for c in checkpoints], "reports": reports}  # fmt: skip
        write_lines([dumps(doc)], out_path, force=force)
        if out_path is not None:
            err.print(f"wrote {out_path}", highlight=False)
        if not as_json:
            _render_split(reports, checkpoints)
        return
    _render_split(reports, checkpoints)


def _render_split(reports: list[dict], names: list[Path]) -> None:
    """One table per part; with two checkpoints their figures side by side (A, B, B − A)."""
    two = len(reports) == 2
    tag = [f" {n.name or n}" if two else "" for n in names]
    if all("ranker" in r for r in reports):
        rs = [r["ranker"] for r in reports]
        p = rs[0]["protocol"]
        out.print(
            f"[bold]Ranker[/] — {p['split']}; candidates: {p['candidates']} "
            f"({p['held_out_items']:,} items, {p['users']:,} users)"
        )
        cols = ["head", "action", "positives", *(f"AUC{t}" for t in tag)]
        cols += ["Δ AUC"] if two else []
        cols += [f"log-loss{t}" for t in tag]
        table = Table(*cols, title_justify="left")
        by_head = [{h["action"]: h for h in r["heads"]} for r in rs]
        for h in rs[0]["heads"]:
            hs = [b.get(h["action"]) for b in by_head]
            auc = [f"{x['auc']:.3f}" if x else "—" for x in hs]
            delta = [f"{hs[1]['auc'] - hs[0]['auc']:+.3f}" if all(hs) else "—"] if two else []
            loss = [f"{x['log_loss']:.4f}" if x else "—" for x in hs]
            table.add_row(h["head"], h["action"], f"{h['positives']:,}", *auc, *delta,
                          *loss)  # fmt: skip
        out.print(table)
        table = Table("system", *(f"NDCG@10{t}" for t in tag), *(f"HR@10{t}" for t in tag),
                      "users", title=f"Ranking held-out favorites by {p['ranking_score']}",
                      title_justify="left")  # fmt: skip
        for name, m in rs[0]["ranking"].items():
            ms = [r["ranking"].get(name, {}) for r in rs]
            table.add_row(name, *(f"{x.get('ndcg@10', float('nan')):.4f}" for x in ms),
                          *(f"{x.get('hr@10', float('nan')):.4f}" for x in ms),
                          f"{m['users']:,}")  # fmt: skip
        out.print(table)
    if all("retrieval" in r for r in reports):
        rs = [r["retrieval"] for r in reports]
        p = rs[0]["protocol"]
        table = Table("system", *(f"recall@{p['k']}{t}" for t in tag), title=(
            f"Retrieval — corpus {p['corpus']}; relevant: {p['relevant']}; {p['users']:,} users"
        ), title_justify="left")  # fmt: skip
        for name in rs[0]["recall"]:
            table.add_row(name, *(f"{r['recall'].get(name, float('nan')):.4f}" for r in rs))
        out.print(table)


def _relevant(name: str | None, world: Path) -> ActionName | None:
    """--relevant: an ActionName (any case), 'any', or the default for the world."""
    if name is None:
        imported = tables.read_world_json(world).get("imported")
        return None if imported else ActionName.SERVER_TWEET_FAV
    if name.lower() == "any":
        return None
    try:
        return ActionName[name.upper()]
    except KeyError:
        raise InputError(f"--relevant must be 'any' or an ActionName, not {name!r}") from None
