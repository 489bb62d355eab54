"""Training the Phoenix ranker and two-tower retrieval model with optax (CPU is fine).

- Ranker: multi-label sigmoid BCE over every action head, masked by candidate padding;
  candidates are isolated exactly as in serving (the same model and mask).
- Retrieval: in-batch softmax of user representations against the candidate-tower embeddings of
  each example's positive post (unit-norm both sides), temperature 0.1 · exp(log_temperature).
The embedding tables are trained with the model (looked up inside the jitted step).

Examples are numpy dicts of hashed rows (see `training.trainer`), with the shapes of
`RecsysBatch` plus labels: `labels` [E, C, A], and for retrieval `pos_post` / `pos_author` rows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from phoenix import ranker, retrieval
from phoenix.batch import RecsysBatch, RecsysEmbeddings
from phoenix.config import PhoenixConfig
from phoenix.embeddings import ENTITIES, EmbeddingTables
from phoenix.params import FlatParams, flatten, random_params, unflatten

logger = logging.getLogger(__name__)
Progress = Callable[[int, int, float], None]  # (step, total, loss)

BATCH_FIELDS = (
    "user_hashes", "history_post_hashes", "history_author_hashes", "history_actions",
    "history_product_surface", "candidate_post_hashes", "candidate_author_hashes",
    "candidate_product_surface", "history_continuous_actions",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    table_init_scale: float = 0.02
    # Candidate post embeddings are zeroed with this probability during training, so the model
    # also learns to score posts it has never seen (cold posts) from their authors.
    post_dropout: float = 0.5
    # Ranker only: the same for history post embeddings and the user embedding. At 1.0 the
    # model never sees that input, and its table is exported as zeros (inference = training):
    # the ranker then has to read the user's taste from the authors and actions of the history
    # instead of memorising user or post ids.
    history_post_dropout: float = 0.0
    user_dropout: float = 0.0

    def unused_tables(self) -> tuple[str, ...]:
        """Ranker tables the training never reads (exported as zeros)."""
        out = []
        if self.user_dropout >= 1.0:
            out.append("user")
        if self.post_dropout >= 1.0 and self.history_post_dropout >= 1.0:
            out.append("item")
        return tuple(out)


def _lookup(table: jax.Array, rows: jax.Array, offset: int) -> jax.Array:
    """Unified rows -> [..., D]; row 0 (padding) gives zeros."""
    local = jnp.maximum(rows - offset, 0)
    return jnp.where((rows == 0)[..., None], 0.0, table[local])


def embed(tables: dict[str, jax.Array], batch: RecsysBatch, cfg: PhoenixConfig) -> RecsysEmbeddings:
    off = cfg.hash.offsets
    return RecsysEmbeddings(
        user_embeddings=_lookup(tables["user"], batch.user_hashes, off["user"]),
        history_post_embeddings=_lookup(tables["item"], batch.history_post_hashes, off["item"]),
        candidate_post_embeddings=_lookup(tables["item"], batch.candidate_post_hashes, off["item"]),
        history_author_embeddings=_lookup(tables["author"], batch.history_author_hashes,
                                          off["author"]),
        candidate_author_embeddings=_lookup(tables["author"], batch.candidate_author_hashes,
                                            off["author"]),
    )  # fmt: skip


def _batch(ex: dict[str, np.ndarray], idx: np.ndarray) -> RecsysBatch:
    fields = {k: ex[k][idx] for k in BATCH_FIELDS}
    fields["history_actions"] = fields["history_actions"].astype(np.float32)
    return RecsysBatch(**fields)


def init_state(cfg: PhoenixConfig, tc: TrainConfig) -> dict:
    rng = np.random.default_rng(tc.seed)
    h = cfg.hash
    tables = {
        e: (
            tc.table_init_scale * rng.standard_normal((getattr(h, e).vocab_size, cfg.emb_size))
        ).astype(np.float32)
        for e in ENTITIES
    }
    return {"model": unflatten(random_params(cfg, tc.seed)), "tables": tables}


def _optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, tc.learning_rate, max(1, tc.steps // 20), tc.steps, tc.learning_rate * 0.05
    )
    return optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=tc.weight_decay)
    )


def _fit(loss_fn, state, examples, n_examples: int, tc: TrainConfig, progress: Progress | None):
    opt = _optimizer(tc)
    opt_state = opt.init(state)

    @jax.jit
    def step(state, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(state, batch)
        updates, opt_state = opt.update(grads, opt_state, state)
        return optax.apply_updates(state, updates), opt_state, loss

    rng = np.random.default_rng(tc.seed + 1)
    losses = []
    perm, pos = rng.permutation(n_examples), 0
    for i in range(tc.steps):
        if pos + tc.batch_size > n_examples:
            perm, pos = rng.permutation(n_examples), 0
        idx = perm[pos : pos + tc.batch_size]
        pos += tc.batch_size
        state, opt_state, loss = step(state, opt_state, examples(idx))
        losses.append(float(loss))
        if progress:
            progress(i + 1, tc.steps, float(np.mean(losses[-20:])))
    return state, losses


def train_ranker(
    cfg: PhoenixConfig,
    examples: dict[str, np.ndarray],
    tc: TrainConfig,
    progress: Progress | None = None,
) -> tuple[FlatParams, EmbeddingTables, list[float]]:
    """Train on ranker examples; returns (params, tables, per-step losses)."""
    fwd = hk.without_apply_rng(hk.transform(ranker.ranker_forward(cfg)))

    def loss_fn(state, data):
        batch, labels, keep, keep_hist, keep_user = data
        emb = embed(state["tables"], batch, cfg)
        emb = emb._replace(
            candidate_post_embeddings=emb.candidate_post_embeddings * keep,
            history_post_embeddings=emb.history_post_embeddings * keep_hist,
            user_embeddings=emb.user_embeddings * keep_user,
        )
        out = fwd.apply(state["model"], batch, emb)
        logits = out.logits.astype(jnp.float32)  # [B, C, A]
        mask = (batch.candidate_post_hashes[:, :, 0] != 0).astype(jnp.float32)[..., None]
        bce = optax.sigmoid_binary_cross_entropy(logits, labels)
        return jnp.sum(bce * mask) / jnp.maximum(jnp.sum(mask) * logits.shape[-1], 1.0)

    drop = np.random.default_rng(tc.seed + 2)

    def get(idx):
        batch = _batch(examples, idx)
        labels = examples["labels"][idx].astype(np.float32)
        keep = (drop.random(labels.shape[:2]) >= tc.post_dropout).astype(np.float32)
        s = batch.history_post_hashes.shape[1]
        keep_hist = (drop.random((len(idx), s)) >= tc.history_post_dropout).astype(np.float32)
        keep_user = (drop.random(len(idx)) >= tc.user_dropout).astype(np.float32)
        return (batch, labels, keep[..., None, None],  # [B, C, 1, 1]
                keep_hist[..., None, None], keep_user[:, None, None])  # fmt: skip

    state, losses = _fit(loss_fn, init_state(cfg, tc), get, len(examples["labels"]), tc, progress)
    return _export(state, losses, zeroed=tc.unused_tables())


def train_retrieval(
    cfg: PhoenixConfig,
    examples: dict[str, np.ndarray],
    tc: TrainConfig,
    progress: Progress | None = None,
) -> tuple[FlatParams, EmbeddingTables, list[float]]:
    """Train the two towers with in-batch softmax; returns (params, tables, losses)."""
    user_fwd = hk.without_apply_rng(hk.transform(retrieval.user_forward(cfg)))
    cand_fwd = hk.without_apply_rng(hk.transform(retrieval.candidate_forward(cfg)))
    off = cfg.hash.offsets

    def loss_fn(state, data):
        batch, pos_post, pos_author, keep = data
        rep, _ = user_fwd.apply(state["model"], batch, embed(state["tables"], batch, cfg))
        pe = _lookup(state["tables"]["item"], pos_post, off["item"])[None] * keep  # [1, B, Hi, D]
        ae = _lookup(state["tables"]["author"], pos_author, off["author"])[None]
        cand = cand_fwd.apply(state["model"], pe, ae)[0]  # [B, D]
        temperature = 0.1 * jnp.exp(state["model"]["~"]["log_temperature"])
        logits = rep @ cand.T / temperature  # [B, B]
        same = pos_post[:, None, 0] == pos_post[None, :, 0]  # duplicates are not negatives
        logits = jnp.where(same & ~jnp.eye(len(rep), dtype=bool), -1e9, logits)
        return jnp.mean(
            optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(len(rep)))
        )

    drop = np.random.default_rng(tc.seed + 2)

    def get(idx):
        keep = (drop.random(len(idx)) >= tc.post_dropout).astype(np.float32)[None, :, None, None]
        return _batch(examples, idx), examples["pos_post"][idx], examples["pos_author"][idx], keep

    state = init_state(cfg, tc)
    state, losses = _fit(loss_fn, state, get, len(examples["pos_post"]), tc, progress)
    return _export(state, losses)


def _export(
    state: dict, losses: list[float], zeroed: tuple[str, ...] = ()
) -> tuple[FlatParams, EmbeddingTables, list[float]]:
    params = flatten(jax.device_get(state["model"]))
    tables = EmbeddingTables(**{
        e: np.zeros_like(state["tables"][e]) if e in zeroed else np.asarray(state["tables"][e])
        for e in ENTITIES
    })  # fmt: skip
    return {k: np.asarray(v, np.float32) for k, v in params.items()}, tables, losses
