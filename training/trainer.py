"""`xfeed train`: the architecture and recipe per world, training, and the checkpoint.

Examples (`training.examples`) come from a world's engagement sequences; held-out items
(`sequences.split_points`, or the leave-one-out item) are never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from checkpoints.formats import CHECKPOINT_OUTPUT, load_model, save_xfeed
from phoenix.actions import MAX_HEADS, ActionName
from phoenix.config import HashConfig, ModelType, PhoenixConfig, Preset
from phoenix.runtime import PhoenixCheckpoint, Retriever
from safeio.atomic import check_target
from training.examples import (
    ranker_examples,
    reorder_validation,
    retrieval_examples,
    training_catalogue,
)
from training.reorder import reorder_points
from training.steps import (
    Log,
    Progress,
    TrainConfig,
    selection_key,
    train_ranker,
    train_retrieval,
)
from world.sequences import (
    Sequences,
    attach_post_inputs,
    load_post_sids,
    load_sequences,
    loo_points,
    sid_vocab,
    split_points,
)
from world.tables import read_world_json

# Vocabularies of the bundled tiny preset: a few thousand users/authors, tens of thousands of posts.
TINY_VOCAB = {"user": 4096, "item": 32768, "author": 4096}
FAV = ActionName.SERVER_TWEET_FAV


# The tiny ranker reads a long history: a user's taste is spread over 2-4 topics and mixed with
# exploration, and the last 32 items estimate it poorly.
TINY_RANKER_HISTORY = 128
# The synthetic retrieval model reads 128 history items too (recall@100 0.205 -> 0.216 on the
# bundled world; README, "Why retrieval …"), and drops candidate post ids with probability
# SYNTH_RETRIEVAL_POST_DROPOUT: 38 % of held-out favorites are posts no training item touched,
# whose id rows never trained, and the dropout teaches the towers what such a post is worth.
SYNTH_RETRIEVAL_HISTORY = 128
SYNTH_RETRIEVAL_POST_DROPOUT = 0.8
# ... under an L2 penalty on its id tables (a rarely read post's row stays near zero, so new posts
# are ordered by author and topic), against 512 global negatives per batch of 32, every row
# scored against all of them (upstream's nano draws 64 per example; 2,048 per batch measured the
# same): recall@100 0.215 -> 0.223 on the bundled world, 0.198 -> 0.206 on the seed-1 world
# (README, "Why retrieval …").
SYNTH_RETRIEVAL_ID_L2 = 1e-3
SYNTH_RETRIEVAL_GLOBAL_NEGATIVES = 512
# Imported logs: the ranker reads the last 32 items (as retrieval; measured on MovieLens as good
# as 128 at a fifth of the training time).
IMPORTED_RANKER_HISTORY = 32
# The synthetic ranker's L2 penalty on its post id table (TrainConfig.id_l2): with it, kept post
# ids stop overfitting (README, "Synthetic world and bundled checkpoint").
SYNTH_ID_L2 = 1e-5
# Imported logs: ranker steps (batch 32). With the log-Q shift the reorder's in-pool AUC rises
# from 0.644 (1,500 steps) to 0.679 (3,000) on MovieLens, seed 0 (README, "Training recipe").
IMPORTED_RANKER_STEPS = 3000
# Ranker slots drawn from a retrieval model's top candidates when one is given (--negatives-from).
RETRIEVAL_NEGATIVES = 8
# Imported logs: the ranker's examples are the next IMPORTED_RANKER_POSITIVES items after a cut
# every item, against 28 negatives, 14 of them from the retrieval model's top 200 when one is
# given (README, "Training recipe").
IMPORTED_RANKER_POSITIVES = 4
IMPORTED_RANKER_NEGATIVES = 28
IMPORTED_RETRIEVAL_NEGATIVES = 14


def default_retrieval_negatives(imported: bool = False) -> int:
    """Ranker slots drawn from the retrieval model's top candidates with `--negatives-from`."""
    return IMPORTED_RETRIEVAL_NEGATIVES if imported else RETRIEVAL_NEGATIVES


# Post semantic ids (phoenix.sids) both models read by default on synthetic worlds, whose posts
# have one topic each (level 0); 0 = off. Codebook: upstream's 256 codes per level.
SYNTH_SID_LEVELS = 1
# Imported worlds: both models read up to 6 topics (upstream's 6 levels; MovieLens movies have
# 1-10 genres, 96 % at most 4). The ranker read none while it trained with BCE (genres lowered
# its reorder on MovieLens then); with the sampled softmax they raise it (README).
IMPORTED_SID_LEVELS = 6
# Imported logs: the ranker's loss (TrainConfig.ranker_loss). Not upstream's per-head BCE: the
# log has no impressions and the evaluation measures the top 10 of retrieval's candidates, which
# a softmax over each example's slate trains for directly (README, "Training recipe").
IMPORTED_RANKER_LOSS = "softmax"
SID_CODEBOOK = 256


def default_sid_levels(model_type: ModelType | str, imported: bool = False) -> int:
    """Semantic-id levels a model trained on a world reads unless told (`--sid-levels`): one on
    synthetic worlds (held-out favorite AUC 0.746 -> 0.850, retrieval recall@100 0.027 -> 0.086
    on the bundled world); on imported worlds six for both models (MovieLens's genres: LOO HR@10
    0.0836 / 0.0836 / 0.0902 on seeds 0 / 1 / 2 against 0.0705 / 0.0803 / 0.0721 for retrieval;
    with the ranker's default softmax recipe, retrieve-then-rank 54 hits of 610 on seed 0, 47
    without them; README)."""
    if not imported:
        return SYNTH_SID_LEVELS
    return IMPORTED_SID_LEVELS


def default_train_config(model_type: ModelType | str, imported: bool = False) -> TrainConfig:
    """Training defaults per model. The ranker keeps post ids (dropout 0.5) under an L2 penalty
    on the post id table (`SYNTH_ID_L2`) and drops user and history-post ids (user table
    exported as zeros): on the bundled world, where ~40 % of held-out posts are new and each
    post is seen by ~14 users, post ids without the penalty overfit (held-out favorite AUC
    0.691); with it 0.746, against 0.743 without any ids (README). It validates on the last
    10 % of each user's training items every 900 steps and keeps the state with the best mean
    head AUC. Imported logs (one
    catalogue author, items seen by many users, no non-engaged impressions): ids kept, any
    engagement is a positive, retrieval batches draw users uniformly (upstream's per-user loss
    average; heavy users would dominate otherwise), the ranker gets sampled negatives (and,
    with a retrieval model, negatives from its top candidates) with their sampling density
    as a logit shift (`TrainConfig.ranker_logq_shift`), trained with a sampled softmax over
    each example's candidates (`IMPORTED_RANKER_LOSS`). Synthetic worlds' retrieval: upstream's
    recipe with candidate post ids dropped with probability 0.8 (recall@100 0.160 at 0.5, 0.205
    at 0.8, history 32; README), an L2 penalty of 1e-3 on the id tables and 512 global
    negatives per batch (0.215 -> 0.223)."""
    if imported:
        if ModelType(model_type) is ModelType.RANKER:
            return TrainConfig(steps=IMPORTED_RANKER_STEPS, post_dropout=0.1,
                               history_post_dropout=0.1, user_dropout=0.1,
                               sampled_negatives=IMPORTED_RANKER_NEGATIVES, positives="any",
                               ranker_logq_shift=True, ranker_loss=IMPORTED_RANKER_LOSS,
                               ranker_positives=IMPORTED_RANKER_POSITIVES)  # fmt: skip
        return TrainConfig(steps=1500, batch_size=128, post_dropout=0.0, logq_weight=1.0,
                           positives="any", sample_by="user", mask_own_items=True)  # fmt: skip
    if ModelType(model_type) is ModelType.RANKER:
        return TrainConfig(steps=4500, post_dropout=0.5, history_post_dropout=1.0,
                           user_dropout=1.0, id_l2=SYNTH_ID_L2, valid_fraction=0.1,
                           eval_every=900, select_by="auc")  # fmt: skip
    return TrainConfig(post_dropout=SYNTH_RETRIEVAL_POST_DROPOUT, id_l2=SYNTH_RETRIEVAL_ID_L2,
                       global_negatives=SYNTH_RETRIEVAL_GLOBAL_NEGATIVES)  # fmt: skip


# Retrieval models: the id tables hold at least this many rows per id of the world (a power of
# two), so that few ids share a hashed row (MovieLens: 9,724 movies -> 131,072 item rows; the
# bundled world: 20,462 posts -> 262,144), at most MAX_ROWS (upstream's 1,000,000-row tables;
# 128 MB per table at 32 dims). A post no training item touched then mostly hashes to rows no
# example trained, which the candidate tower reads as "new" (post-id dropout teaches it what
# such a post is worth): with the tiny 32,768 rows, 90 % of the bundled world's new posts
# shared a row with a trained post, and retrieval recall@100 was 0.086 instead of 0.16 (README).
ROWS_PER_ID = 8
MAX_ROWS = 1 << 20


def world_vocab(rows: dict[str, int]) -> dict[str, int]:
    """Tiny-preset vocab sizes grown to the world's ids (world.json `rows`: users, posts): each
    table the next power of two >= ROWS_PER_ID rows per id, never below TINY_VOCAB nor above
    MAX_ROWS."""

    def size(n: int, floor: int) -> int:
        return min(max(floor, 1 << max(int(n) * ROWS_PER_ID - 1, 1).bit_length()), MAX_ROWS)

    return {"user": size(rows.get("users", 0), TINY_VOCAB["user"]),
            "item": size(rows.get("posts", 0), TINY_VOCAB["item"]),
            "author": TINY_VOCAB["author"]}  # fmt: skip


def table_vocab(model_type: ModelType | str, rows: dict[str, int]) -> dict[str, int] | None:
    """Id table sizes a model trained on a world gets (None: the preset's): retrieval's sized to
    the world's ids (`world_vocab`), so that a post no training item touched reads rows no
    example trained; the ranker keeps the tiny sizes (world-sized tables lowered its reorder on
    MovieLens; its synthetic recipe drops history post ids)."""
    return world_vocab(rows) if ModelType(model_type) is ModelType.RETRIEVAL else None


def model_config(
    model_type: ModelType | str,
    preset: Preset = Preset.TINY,
    history: int | None = None,
    vocab: dict[str, int] | None = None,
    sid_levels: int = 0,
    sid_topics: tuple[str, ...] = (),
) -> PhoenixConfig:
    """The architecture trained on worlds: the preset's transformer, 64 heads (ActionName
    0..63), float32 compute, vocab sized for synthetic worlds (or `vocab`: rows per entity,
    tiny preset), right-anchored RoPE (every candidate at the same position: its score does not
    depend on where it sits in the list); `history` overrides the history length;
    `sid_levels` > 0: post semantic ids from topics under the vocabulary `sid_topics`."""
    base = Preset(preset).config(model_type)
    if preset is Preset.TINY and ModelType(model_type) is ModelType.RANKER:
        base = base.replace(history_seq_len=TINY_RANKER_HISTORY)
    if history is not None:
        base = base.replace(history_seq_len=int(history))
    h = HashConfig()
    vocab = (vocab or TINY_VOCAB) if preset is Preset.TINY else dict.fromkeys(TINY_VOCAB, 1_000_000)
    hashes = HashConfig(*(dataclasses.replace(getattr(h, e), vocab_size=vocab[e])
                          for e in ("user", "item", "author")))  # fmt: skip
    return base.replace(
        num_actions=MAX_HEADS,
        head_names=(),
        fprop_dtype="float32",
        hash=hashes,
        right_anchored_rope=True,  # a score never depends on list position
        sid_levels=sid_levels,
        sid_codebook=SID_CODEBOOK,
        sid_topics=sid_topics if sid_levels else (),
    )


HOLDOUTS = {
    "fraction": "last 20% of each user's items (by time) held out",
    "loo": "each user's last positive item held out (xfeed eval --protocol loo)",
}


def holdout_points(seq: Sequences, tc: TrainConfig) -> np.ndarray:
    """Per user, the first held-out item index: the 20 % split or the leave-one-out item (the
    last item that is a positive under `tc.positives`: any item for "any", else a favorite)."""
    if tc.holdout == "fraction":
        return split_points(seq)
    if tc.holdout == "loo":
        return loo_points(seq, None if tc.positives == "any" else FAV)
    raise ValueError(f"holdout must be one of {', '.join(HOLDOUTS)}, not {tc.holdout!r}")


def valid_points(seq: Sequences, split: np.ndarray, fraction: float) -> np.ndarray:
    """Per user, where validation items start: the last `fraction` of the user's training items
    (by time; users with fewer than 5 training items keep them all for training)."""
    n = split - seq.offsets[:-1]
    held = np.where(n >= 5, np.ceil(n * fraction).astype(np.int64), 0)
    return split - held


def world_hash(world: Path | str) -> str:
    meta = read_world_json(world)
    return meta.get("content_hash") or hashlib.sha256(repr(meta).encode()).hexdigest()


def train_model(
    model_type: ModelType | str,
    world: Path | str,
    out: Path | str,
    *,
    preset: Preset = Preset.TINY,
    train_config: TrainConfig | None = None,
    progress: Progress | None = None,
    force: bool = False,
    log: Log | None = None,
    history: int | None = None,
    negatives_from: Path | str | None = None,
    sid_levels: int | None = None,
) -> dict[str, Any]:
    """Train one model on a world and write it to `out/<model_type>` (xfeed format); `log`
    receives one record per validation evaluation. Returns the provenance written (no timings:
    the same inputs give the same bytes) plus `seconds`, the training's wall-clock time.
    Ranker: `negatives_from`, a retrieval checkpoint (bundle or model directory) whose top
    candidates fill `train_config.retrieval_negatives` slots per example. `sid_levels`: post
    semantic-id levels (default `default_sid_levels`), the topic vocabulary
    built from the world's posts and saved in the config."""
    model_type = ModelType(model_type)
    meta_in = read_world_json(world)
    imported = bool(meta_in.get("imported"))
    train_config = train_config or default_train_config(model_type, imported)
    if history is None and imported and model_type is ModelType.RANKER:
        history = IMPORTED_RANKER_HISTORY
    retrieval = model_type is ModelType.RETRIEVAL
    if history is None and not imported and preset is Preset.TINY and retrieval:
        history = SYNTH_RETRIEVAL_HISTORY
    vocab = table_vocab(model_type, meta_in.get("rows", {}))
    if sid_levels is None:
        sid_levels = default_sid_levels(model_type, imported)
    topics = sid_vocab(world, SID_CODEBOOK) if sid_levels else ()
    cfg = model_config(model_type, preset, history, vocab, sid_levels, topics)
    target = Path(out) / str(model_type)
    check_target(target, CHECKPOINT_OUTPUT, force, [world])  # before minutes of training
    t0 = time.perf_counter()
    seq = attach_post_inputs(load_sequences(world, cfg.num_actions), world, cfg)
    split = holdout_points(seq, train_config)
    train_end, valid = split, None
    by_reorder = train_config.select_by == "reorder"
    if by_reorder:
        train_end = reorder_points(seq, split)
    elif train_config.valid_fraction > 0:
        train_end = valid_points(seq, split, train_config.valid_fraction)
    retriever = None
    if model_type is ModelType.RANKER and train_config.retrieval_negatives > 0:
        if negatives_from is None:
            raise ValueError("retrieval negatives need a retrieval checkpoint (--negatives-from)")
        ret = load_model(negatives_from, ModelType.RETRIEVAL)[0]
        retriever = Retriever(ret, sids=load_post_sids(world, ret.config))
    if by_reorder and (model_type is not ModelType.RANKER or retriever is None):
        raise ValueError("validation by the reorder is for the ranker with a retrieval model")
    if model_type is ModelType.RANKER:
        examples = ranker_examples(seq, cfg, train_end, train_config, retriever=retriever)
        if by_reorder:
            consumed = meta_in.get("source", {}).get("spec", {}).get("consumed_action")
            surface = int(np.bincount(seq.surface).argmax()) if len(seq.surface) else 0
            valid = reorder_validation(seq, cfg, train_end, split, retriever,
                                       train_config.retrieval_top, surface)  # fmt: skip
            valid["rank_head"] = np.int64(ActionName[consumed] if consumed else FAV)
        elif train_config.valid_fraction > 0:
            valid = ranker_examples(seq, cfg, split, train_config, begin=train_end,
                                    retriever=retriever)  # fmt: skip
        params, tables, losses, records = train_ranker(cfg, examples, train_config, progress,
                                                       valid, log)  # fmt: skip
        n_examples = len(examples["labels"])
    else:
        examples = retrieval_examples(seq, cfg, train_end, train_config)
        if train_config.valid_fraction > 0:
            cat = training_catalogue(seq, train_end)[0]
            valid = retrieval_examples(seq, cfg, split, train_config, begin=train_end,
                                       catalogue=cat)  # fmt: skip
        params, tables, losses, records = train_retrieval(cfg, examples, train_config, progress,
                                                          valid, log)  # fmt: skip
        n_examples = len(examples["pos_post"])
    tail = max(1, len(losses) // 20)
    meta = {
        "source": "xfeed train",
        "world": str(world),
        "world_hash": world_hash(world),
        "preset": str(preset),
        "train": train_config.provenance(),
        "examples": n_examples,
        "steps": len(losses),
        "initial_loss": float(np.mean(losses[:tail])),
        "final_loss": float(np.mean(losses[-tail:])),
        "split": HOLDOUTS[train_config.holdout],
        "holdout": train_config.holdout,
        "validation": records[-1] if records else None,
        "best_valid_loss": min(
            (r["valid_loss"] for r in records if "valid_loss" in r), default=None
        ),
    }
    if records:  # the state written: the best record by the selection criterion
        key = [selection_key(r, train_config.select_by) for r in records]
        chosen = records[int(np.argmin(key))]
        meta["selected"] = {"by": train_config.select_by, "step": chosen["step"],
                            **{k: v for k, v in chosen.items()
                               if k.startswith(("valid_", "reorder_"))}}  # fmt: skip
    if retriever is not None:
        meta["negatives_from"] = str(negatives_from)
    # no wall-clock time in the checkpoint: the same command writes the same bytes
    save_xfeed(target, PhoenixCheckpoint(cfg, params, tables), meta, force=force, inputs=[world])
    return {**meta, "seconds": round(time.perf_counter() - t0, 1)}
