"""`xfeed train`: examples from a world's engagement sequences, training, and the checkpoint.

Ranker examples: for each user, cut points every C/4 items through the training part of the
sequence; the history is the (up to S) items before the cut, the candidates the (up to C) items
after it, with their action multi-hots as labels — so a candidate never appears in its own
history.
Retrieval examples: the history before each favorited training item, and that item as the
positive. Held-out items (`sequences.split_points`) are never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from checkpoints.formats import CHECKPOINT_OUTPUT, save_xfeed
from phoenix import hashing
from phoenix.actions import MAX_HEADS, ActionName
from phoenix.config import HashConfig, ModelType, PhoenixConfig, Preset
from phoenix.runtime import PhoenixCheckpoint
from safeio.atomic import check_target
from training.steps import Progress, TrainConfig, train_ranker, train_retrieval
from world.sequences import Sequences, load_sequences, split_points
from world.tables import read_world_json

# Vocabularies of the bundled tiny preset: a few thousand users/authors, tens of thousands of posts.
TINY_VOCAB = {"user": 4096, "item": 32768, "author": 4096}
FAV = ActionName.SERVER_TWEET_FAV


# The tiny ranker reads a long history: a user's taste is spread over 2-4 topics and mixed with
# exploration, and the last 32 items estimate it poorly.
TINY_RANKER_HISTORY = 128


def default_train_config(model_type: ModelType | str) -> TrainConfig:
    """Training defaults per model. The ranker learns from authors and actions only (user and
    post ids dropped, tables exported as zeros): on a world where ~40 % of held-out posts are
    new and each user has ~90 training items, id embeddings only memorise."""
    if ModelType(model_type) is ModelType.RANKER:
        return TrainConfig(steps=4500, post_dropout=1.0, history_post_dropout=1.0,
                           user_dropout=1.0)  # fmt: skip
    return TrainConfig()


def model_config(model_type: ModelType | str, preset: Preset = Preset.TINY) -> PhoenixConfig:
    """The architecture trained on worlds: the preset's transformer, 64 heads (ActionName
    0..63), float32 compute, vocab sized for synthetic worlds."""
    base = Preset(preset).config(model_type)
    if preset is Preset.TINY and ModelType(model_type) is ModelType.RANKER:
        base = base.replace(history_seq_len=TINY_RANKER_HISTORY)
    h = HashConfig()
    vocab = TINY_VOCAB if preset is Preset.TINY else dict.fromkeys(TINY_VOCAB, 1_000_000)
    hashes = HashConfig(*(dataclasses.replace(getattr(h, e), vocab_size=vocab[e])
                          for e in ("user", "item", "author")))  # fmt: skip
    return base.replace(num_actions=MAX_HEADS, head_names=(), fprop_dtype="float32", hash=hashes)


def _history_block(seq: Sequences, cfg: PhoenixConfig, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Hashed history of items [lo, hi) (the last S of them), left-aligned, padded at the end."""
    s, h = cfg.history_seq_len, cfg.hash
    lo = max(lo, hi - s)
    n = hi - lo
    posts = np.zeros(s, np.int64)
    authors = np.zeros(s, np.int64)
    posts[:n], authors[:n] = seq.post_id[lo:hi], seq.author_id[lo:hi]
    actions = np.zeros((s, cfg.num_actions), np.uint8)
    actions[:n] = seq.actions[lo:hi, : cfg.num_actions]
    surface = np.zeros(s, np.int32)
    surface[:n] = seq.surface[lo:hi]
    cont = np.zeros((s, cfg.num_continuous_actions), np.float32)
    cont[:n, 1] = seq.dwell_s[lo:hi]
    return {
        "history_post_hashes": hashing.item_rows(posts, h).astype(np.int32),
        "history_author_hashes": hashing.author_rows(authors, h).astype(np.int32),
        "history_actions": actions,
        "history_product_surface": surface,
        "history_continuous_actions": cont,
    }


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def ranker_examples(seq: Sequences, cfg: PhoenixConfig, split: np.ndarray) -> dict[str, np.ndarray]:
    c, h = cfg.candidate_seq_len, cfg.hash
    rows = []
    for u in range(len(seq.user_ids)):
        lo, end = int(seq.offsets[u]), int(split[u])
        for cut in range(lo + 4, end, max(c // 4, 1)):
            stop = min(cut + c, end)
            posts = np.zeros(c, np.int64)
            authors = np.zeros(c, np.int64)
            posts[: stop - cut], authors[: stop - cut] = (
                seq.post_id[cut:stop],
                seq.author_id[cut:stop],
            )
            labels = np.zeros((c, cfg.num_actions), np.uint8)
            labels[: stop - cut] = seq.actions[cut:stop, : cfg.num_actions]
            surface = np.zeros(c, np.int32)
            surface[: stop - cut] = seq.surface[cut:stop]
            rows.append({
                "user_hashes": hashing.user_rows(seq.user_ids[u], h).astype(np.int32),
                **_history_block(seq, cfg, lo, cut),
                "candidate_post_hashes": hashing.item_rows(posts, h).astype(np.int32),
                "candidate_author_hashes": hashing.author_rows(authors, h).astype(np.int32),
                "candidate_product_surface": surface,
                "labels": labels,
            })  # fmt: skip
    return _stack(rows)


def retrieval_examples(
    seq: Sequences, cfg: PhoenixConfig, split: np.ndarray
) -> dict[str, np.ndarray]:
    h = cfg.hash
    rows = []
    for u in range(len(seq.user_ids)):
        lo, end = int(seq.offsets[u]), int(split[u])
        for i in range(lo + 3, end):
            if not seq.actions[i, FAV]:
                continue
            rows.append({
                "user_hashes": hashing.user_rows(seq.user_ids[u], h).astype(np.int32),
                **_history_block(seq, cfg, lo, i),
                "candidate_post_hashes": np.zeros((1, h.item.num_hashes), np.int32),
                "candidate_author_hashes": np.zeros((1, h.author.num_hashes), np.int32),
                "candidate_product_surface": np.zeros(1, np.int32),
                "pos_post": hashing.item_rows(seq.post_id[i], h).astype(np.int32),
                "pos_author": hashing.author_rows(seq.author_id[i], h).astype(np.int32),
            })  # fmt: skip
    return _stack(rows)


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
) -> dict[str, Any]:
    """Train one model on a world and write it to `out/<model_type>` (xfeed format)."""
    model_type = ModelType(model_type)
    train_config = train_config or default_train_config(model_type)
    cfg = model_config(model_type, preset)
    target = Path(out) / str(model_type)
    check_target(target, CHECKPOINT_OUTPUT, force, [world])  # before minutes of training
    t0 = time.perf_counter()
    seq = load_sequences(world, cfg.num_actions)
    split = split_points(seq)
    if model_type is ModelType.RANKER:
        examples = ranker_examples(seq, cfg, split)
        params, tables, losses = train_ranker(cfg, examples, train_config, progress)
        n_examples = len(examples["labels"])
    else:
        examples = retrieval_examples(seq, cfg, split)
        params, tables, losses = train_retrieval(cfg, examples, train_config, progress)
        n_examples = len(examples["pos_post"])
    tail = max(1, len(losses) // 20)
    meta = {
        "source": "xfeed train",
        "world": str(world),
        "world_hash": world_hash(world),
        "preset": str(preset),
        "train": dataclasses.asdict(train_config),
        "examples": n_examples,
        "steps": len(losses),
        "initial_loss": float(np.mean(losses[:tail])),
        "final_loss": float(np.mean(losses[-tail:])),
        "split": "last 20% of each user's items (by time) held out",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    save_xfeed(target, PhoenixCheckpoint(cfg, params, tables), meta, force=force, inputs=[world])
    return meta
