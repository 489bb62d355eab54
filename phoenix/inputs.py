"""From ids to model inputs: user histories, candidate lists, and their hashed batches.

The numpy side of the model boundary (phoenix_spec.md §3.2 steps 5–8): histories are placed
left-aligned with padding at the end (post id 0), action multi-hots are indexed by ActionName,
candidates are padded to a fixed count with post id 0.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from phoenix import hashing
from phoenix.batch import RecsysBatch, RecsysEmbeddings
from phoenix.config import PhoenixConfig
from phoenix.embeddings import EmbeddingTables
from phoenix.sids import PostSids
from safeio.inputs import regular_file


@dataclasses.dataclass(frozen=True)
class UserHistory:
    """One user's engagement sequence, oldest first. Arrays have the same length L."""

    user_id: int
    post_ids: np.ndarray  # [L] int64
    author_ids: np.ndarray  # [L] int64
    actions: np.ndarray  # [L, A] float32, column i = ActionName i
    product_surface: np.ndarray | None = None  # [L] int32
    dwell_s: np.ndarray | None = None  # [L] float32 dwell seconds
    labels: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(len(self.post_ids))


MAX_SEQUENCE_BYTES = 64 << 20


def load_sequence_json(path: Path, num_actions: int) -> UserHistory:
    """Read upstream's `example_sequence.json`: {"user_id", "history": [{"post_id", "author_id",
    "actions": {"<ActionName>": value}, "label"?}]}. Action keys >= num_actions are ignored."""
    path = regular_file(path, "sequence file")  # not a FIFO or a directory
    if path.stat().st_size > MAX_SEQUENCE_BYTES:
        raise ValueError("larger than 64 MB")
    try:
        data = json.loads(path.read_bytes())
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    items = data["history"]
    if not isinstance(items, list):
        raise ValueError("history must be a list")
    actions = np.zeros((len(items), num_actions), np.float32)
    for i, item in enumerate(items):
        for key, value in item.get("actions", {}).items():
            if int(key) < num_actions:
                actions[i, int(key)] = float(value)
    user_id = int(data["user_id"])
    if not -(2**63) <= user_id < 2**63:
        raise ValueError("user_id is not a 64-bit id")
    if not np.isfinite(actions).all():
        raise ValueError("action values must be finite")
    return UserHistory(
        user_id=user_id,
        post_ids=hashing.as_int64_ids([int(x["post_id"]) for x in items]),
        author_ids=hashing.as_int64_ids([int(x["author_id"]) for x in items]),
        actions=actions,
        labels=tuple(str(x.get("label", "")) for x in items),
    )


def _fit(values: np.ndarray, length: int, dtype: np.dtype) -> np.ndarray:
    """First `length` entries of values, zero-padded at the end."""
    out = np.zeros((length, *values.shape[1:]), dtype)
    n = min(length, len(values))
    out[:n] = values[:n]
    return out


def history_arrays(
    history: UserHistory, cfg: PhoenixConfig, sids: PostSids | None = None
) -> dict[str, np.ndarray]:
    """Hashed history fields for one user, left-aligned: the first S items (upstream keeps the
    first `hist_len`; callers pass the most recent S when that is what they want).

    Returns arrays: user_hashes [Hu], history_post_hashes [S, Hi], history_author_hashes [S, Ha],
    history_actions [S, A], history_product_surface [S], history_continuous_actions [S, 8],
    and with semantic ids (`cfg.sid_levels` > 0, codes from `sids`) history_sids [S, L].
    """
    s, h = cfg.history_seq_len, cfg.hash
    post_ids = _fit(history.post_ids, s, np.int64)
    author_ids = _fit(history.author_ids, s, np.int64)
    author_ids[post_ids == 0] = 0
    actions = np.zeros((s, cfg.num_actions), np.float32)
    a = min(cfg.num_actions, history.actions.shape[1])
    actions[: min(s, len(history)), :a] = history.actions[:s, :a]
    surface = np.zeros(s, np.int32)
    if history.product_surface is not None:
        surface = _fit(history.product_surface, s, np.int32)
    cont = np.zeros((s, cfg.num_continuous_actions), np.float32)
    if history.dwell_s is not None:
        cont[:, 1] = _fit(np.nan_to_num(history.dwell_s.astype(np.float32)), s, np.float32)
    return {
        "user_hashes": hashing.user_rows(history.user_id, h),
        "history_post_hashes": hashing.item_rows(post_ids, h),
        "history_author_hashes": hashing.author_rows(author_ids, h),
        "history_actions": actions,
        "history_product_surface": surface,
        "history_continuous_actions": cont,
        **sid_arrays("history_sids", post_ids, cfg, sids),
    }


def sid_arrays(
    name: str, post_ids: np.ndarray, cfg: PhoenixConfig, sids: PostSids | None
) -> dict[str, np.ndarray]:
    """{name: codes [..., L] int32 of post ids [...]} when the config reads semantic ids, else
    {} (configs without them build exactly upstream's inputs). The one place model inputs get
    their codes: serving (`Ranker`), `xfeed eval` and training all come through here."""
    if not cfg.sid_levels:
        return {}
    check_sids(cfg, sids)
    return {name: sids.codes_of(post_ids)}


def check_sids(cfg: PhoenixConfig, sids: PostSids | None) -> None:
    """Raise ValueError unless a model that reads semantic ids has codes of matching levels."""
    if not cfg.sid_levels:
        return
    if sids is None:
        raise ValueError(
            f"this ranker reads post semantic ids ({cfg.sid_levels} levels from post topics): "
            "it needs the world's post topics"
        )
    if sids.levels != cfg.sid_levels:
        raise ValueError(f"post SIDs have {sids.levels} levels, the model {cfg.sid_levels}")


def make_batch(
    history: UserHistory,
    cfg: PhoenixConfig,
    candidate_post_ids: np.ndarray,  # [C] int64, 0 = padding
    candidate_author_ids: np.ndarray,  # [C] int64
    candidate_product_surface: np.ndarray | None = None,  # [C]
    impression_ts: int | None = None,  # seconds; with creation ts -> post-age buckets
    candidate_creation_ts: np.ndarray | None = None,  # [C] seconds
    sids: PostSids | None = None,  # post id -> SID codes (configs with sid_levels > 0)
) -> RecsysBatch:
    """A B=1 batch for one user and C candidates (C is the given length, no padding added)."""
    h = history_arrays(history, cfg, sids)
    cand_posts = hashing.as_int64_ids(candidate_post_ids)
    c = len(cand_posts)
    cand_authors = np.where(cand_posts == 0, 0, hashing.as_int64_ids(candidate_author_ids))
    surface = (
        np.zeros(c, np.int32)
        if candidate_product_surface is None
        else np.asarray(candidate_product_surface, np.int32)
    )
    impr = creation = None
    if impression_ts is not None and candidate_creation_ts is not None:
        impr = np.where(cand_posts == 0, 0, impression_ts).astype(np.int64)[None]
        creation = np.asarray(candidate_creation_ts, np.int64)[None]
    return RecsysBatch(
        user_hashes=h["user_hashes"][None],
        history_post_hashes=h["history_post_hashes"][None],
        history_author_hashes=h["history_author_hashes"][None],
        history_actions=h["history_actions"][None],
        history_product_surface=h["history_product_surface"][None],
        candidate_post_hashes=hashing.item_rows(cand_posts, cfg.hash)[None],
        candidate_author_hashes=hashing.author_rows(cand_authors, cfg.hash)[None],
        candidate_product_surface=surface[None],
        history_continuous_actions=h["history_continuous_actions"][None],
        candidate_impr_ts=impr,
        candidate_post_creation_ts=creation,
        **{k: v[None] for k, v in sid_arrays("candidate_sids", cand_posts, cfg, sids).items()},
        **({"history_sids": h["history_sids"][None]} if "history_sids" in h else {}),
    )


def embed_batch(
    batch: RecsysBatch, tables: EmbeddingTables, cfg: PhoenixConfig
) -> RecsysEmbeddings:
    """Look up every hash of a batch: [..., K] rows -> [..., K, D] float32."""
    off = cfg.hash.offsets
    return RecsysEmbeddings(
        user_embeddings=tables.lookup(batch.user_hashes, "user", off["user"]),
        history_post_embeddings=tables.lookup(batch.history_post_hashes, "item", off["item"]),
        candidate_post_embeddings=tables.lookup(batch.candidate_post_hashes, "item", off["item"]),
        history_author_embeddings=tables.lookup(
            batch.history_author_hashes, "author", off["author"]
        ),
        candidate_author_embeddings=tables.lookup(
            batch.candidate_author_hashes, "author", off["author"]
        ),
    )
