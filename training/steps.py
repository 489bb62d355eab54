"""Training the Phoenix ranker and two-tower retrieval model with optax (CPU is fine).

- Ranker: multi-label sigmoid BCE over every action head, masked by candidate padding;
  candidates are isolated exactly as in serving (the same model and mask).
- Retrieval: contrastive softmax of user representations against in-batch positives, sampled
  global negatives and the row's hard negatives (unit-norm both sides), log-Q corrected,
  temperature 0.1 · exp(log_temperature) learned (upstream's August two-tower, spec §4.6).
The embedding tables are trained with the model (looked up inside the jitted step).

Examples are numpy dicts of hashed rows (see `training.examples`), with the shapes of
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
from phoenix.actions import ActionName
from phoenix.batch import RecsysBatch, RecsysEmbeddings
from phoenix.config import PhoenixConfig
from phoenix.embeddings import ENTITIES, EmbeddingTables
from phoenix.params import FlatParams, flatten, random_params, unflatten
from training.metrics import auc as metric_auc
from training.reorder import K as REORDER_K
from training.reorder import reorder_metrics

logger = logging.getLogger(__name__)
Progress = Callable[[int, int, float], None]  # (step, total, loss)

BATCH_FIELDS = (
    "user_hashes", "history_post_hashes", "history_author_hashes", "history_actions",
    "history_product_surface", "candidate_post_hashes", "candidate_author_hashes",
    "candidate_product_surface", "history_continuous_actions", "history_sids", "candidate_sids",
)  # fmt: skip


# TrainConfig fields added after the bundled checkpoint, and their defaults (`provenance`).
RECORDED_IF_SET = {"ranker_loss": "bce", "ranker_positives": 0}


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
    # L2 penalty on the id embedding tables only (user and post ids; not authors): id_l2 · the
    # sum of their squared entries is added to the mean batch loss. It is a Gaussian prior on
    # each row, counted once per row while the data term grows with the row's occurrences, so a
    # post or user seen by few examples stays near zero (the model falls back on its author and
    # history) and rows no example reads (posts new at serving time) go to zero, what id dropout
    # trains the model to read as "unknown". AdamW's weight decay, decoupled and scaled by the
    # learning rate, does neither at 1e-4.
    id_l2: float = 0.0
    # Validation: the last `valid_fraction` of each user's training items (by time) become
    # validation examples; every `eval_every` steps the validation loss (and, for the ranker,
    # per-head AUC) is computed, the best state kept, and training stops after `patience`
    # evaluations without improvement (0: never).
    valid_fraction: float = 0.0
    eval_every: int = 250
    patience: int = 0
    # What "best" means on validation: "loss", or (ranker) "auc", the mean AUC of the heads with
    # >= 20 validation positives (the loss averages 64 heads, most of which never fire).
    select_by: str = "loss"
    # Retrieval (upstream's August two-tower): global negatives per batch, drawn uniformly from
    # the training catalogue; log-Q weight (upstream: 2.0); hard negatives per example.
    global_negatives: int = 64
    # Ranker: candidate slots filled with sampled never-engaged items (logs without impressions),
    # and upstream's log-Q weight 1 / count on each candidate's loss.
    sampled_negatives: int = 0
    ranker_logq: bool = False
    # Ranker: candidate slots filled with items drawn from a trained retrieval model's top
    # `retrieval_top` for the user at that moment (what the ranker will reorder); needs the
    # retrieval checkpoint (`xfeed train ranker --negatives-from CKPT`).
    retrieval_negatives: int = 0
    retrieval_top: int = 200
    # Ranker: the sampling correction of sampled negatives as a logit shift (the log-Q correction
    # upstream's retrieval applies, here on the BCE): each candidate's logit is trained as
    # logit − log q, q = the density with which the negative sampler would draw that item for
    # that example, so the logit itself learns log p(item | user) + const (not p / q).
    ranker_logq_shift: bool = False
    # Ranker loss: "bce" (upstream's per-head sigmoid BCE) or "softmax" (each positive of a head
    # against the example's candidates without that head's action: a sampled softmax over the
    # slate, log-Q corrected by the shift; `ranker_softmax_loss`).
    ranker_loss: str = "bce"
    # Ranker: the next N items after each cut are the positives (0: every slot the negatives
    # leave), cuts every max(N // 4, 1) items.
    ranker_positives: int = 0
    positives: str = "favorite"  # retrieval positives: "favorite" (upstream) or "any"
    holdout: str = "fraction"  # "fraction" (last 20 %) or "loo" (each user's last positive)
    logq_weight: float = 2.0
    hard_negatives: int = 4
    # Retrieval: a user's own training items are never that user's negatives (in-batch or
    # global): the evaluation ranks them out anyway, and a popular item in the batch is often one
    # the user consumed too (upstream removes only the row's own positive).
    mask_own_items: bool = False
    # Batches: "example" (uniform over examples, so heavy users dominate) or "user" (upstream's
    # per-user average: each batch row a different user drawn uniformly, then one of its examples).
    sample_by: str = "example"

    def provenance(self) -> dict:
        """The fields a checkpoint records; those in `RECORDED_IF_SET` only when not at their
        default, so that a checkpoint trained without them (the bundled one) keeps its bytes."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if RECORDED_IF_SET.get(k, ...) != v}

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


ID_TABLES = ("user", "item")  # the tables `TrainConfig.id_l2` regularises


def id_penalty(tables: dict[str, jax.Array], weight: float) -> jax.Array:
    """weight · Σ e² over every row of the id tables (user, item); authors are not penalised."""
    if not weight:
        return jnp.float32(0.0)
    return weight * sum(jnp.sum(jnp.square(tables[e])) for e in ID_TABLES)


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
    fields = {k: ex[k][idx] for k in BATCH_FIELDS if k in ex}  # SIDs: models with sid_levels
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
    warmup = min(max(1, tc.steps // 20), tc.steps - 1)  # the decay needs at least one step
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, tc.learning_rate, warmup, tc.steps, tc.learning_rate * 0.05
    )
    return optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=tc.weight_decay)
    )


Metrics = Callable[[dict], dict]  # state -> {"loss": float, ...} on the validation examples
SELECT_BY = ("loss", "auc", "reorder")


def selection_key(rec: dict, select_by: str) -> float:
    """How good a validation record is, lower better: its loss, or minus its mean head AUC
    (`select_by` "auc"); a missing or NaN criterion counts as +inf."""
    if select_by not in SELECT_BY:
        raise ValueError(f"select_by must be one of {', '.join(SELECT_BY)}, not {select_by!r}")
    key = {"loss": rec.get("valid_loss"), "auc": rec.get("valid_auc"),
           "reorder": rec.get(f"reorder_ndcg@{REORDER_K}")}[select_by]  # fmt: skip
    if key is None or np.isnan(key):
        return float("inf")
    return float(key) if select_by == "loss" else -float(key)


Log = Callable[[dict], None]  # one record per evaluation


def _fit(loss_fn, state, examples, n_examples: int, tc: TrainConfig, progress: Progress | None,
         valid: Metrics | None = None, log: Log | None = None,
         groups: np.ndarray | None = None):  # fmt: skip
    """Optimise; with `valid`, evaluate every `tc.eval_every` steps (and at the end), keep the
    state with the best validation loss, and stop after `tc.patience` evaluations without
    improvement (0: never stop early). `groups` [E]: each example's user (sorted), for
    `tc.sample_by == "user"`. Returns (state, per-step losses, evaluation records)."""
    opt = _optimizer(tc)
    opt_state = opt.init(state)

    @jax.jit
    def step(state, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(state, batch)
        updates, opt_state = opt.update(grads, opt_state, state)
        return optax.apply_updates(state, updates), opt_state, loss

    rng = np.random.default_rng(tc.seed + 1)
    losses: list[float] = []
    records: list[dict] = []
    best, best_key, since_best = None, float("inf"), 0
    selection_key({"valid_loss": 0.0}, tc.select_by)  # a bad criterion fails before training
    by_user = tc.sample_by == "user" and groups is not None
    if by_user:  # example index ranges per user
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        sizes = np.diff(np.r_[starts, len(groups)])
        n_examples = len(starts)
    perm, pos = rng.permutation(n_examples), 0
    for i in range(tc.steps):
        if pos + tc.batch_size > n_examples:
            perm, pos = rng.permutation(n_examples), 0
        idx = perm[pos : pos + tc.batch_size]
        pos += tc.batch_size
        if by_user:  # one example of each drawn user
            idx = starts[idx] + (rng.random(len(idx)) * sizes[idx]).astype(np.int64)
        state, opt_state, loss = step(state, opt_state, examples(idx))
        losses.append(float(loss))
        if progress:
            progress(i + 1, tc.steps, float(np.mean(losses[-20:])))
        if valid is None or ((i + 1) % tc.eval_every and i + 1 != tc.steps):
            continue
        rec = {"step": i + 1, "train_loss": float(np.mean(losses[-tc.eval_every :])),
               **valid(state)}  # fmt: skip
        records.append(rec)
        if log:
            log(rec)
        key = selection_key(rec, tc.select_by)
        if best is None or key < best_key:  # the first record, then strictly better ones
            best, best_key, since_best = jax.device_get(state), key, 0
        else:
            since_best += 1
            if tc.patience and since_best >= tc.patience:
                logger.info("early stop at step %d (best %s %.4f)", i + 1, tc.select_by,
                            abs(best_key))  # fmt: skip
                break
    return (best if best is not None else state), losses, records


def _batches(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)]


def ranker_loss(
    logits: jax.Array, labels: jax.Array, weights: jax.Array, logq: jax.Array | None = None
) -> jax.Array:
    """Multi-label sigmoid BCE over the heads [B, C, A], each candidate weighted by `weights`
    [B, C] (0 = padding; 1, or the log-Q weight); sum / (Σ weights · A). `logq` [B, C]: the
    log sampling density of each candidate, subtracted from all its logits (the log-Q shift)."""
    if logq is not None:
        logits = logits - logq[..., None]
    bce = optax.sigmoid_binary_cross_entropy(logits, labels)  # [B, C, A]
    w = weights[..., None]
    return jnp.sum(bce * w) / jnp.maximum(jnp.sum(w) * logits.shape[-1], 1e-10)


def ranker_softmax_loss(
    logits: jax.Array, labels: jax.Array, weights: jax.Array, logq: jax.Array | None = None
) -> jax.Array:
    """Sampled softmax over each example's slate [B, C, A]: for every head a and every candidate
    i with label 1 there, −log(e^s_i / (e^s_i + Σ_j e^s_j)), j the example's candidates with
    label 0 at head a (padding, weight 0, left out), s the logit minus `logq` [B, C] (the log-Q
    correction); each positive weighted by its `weights` [B, C]; sum / Σ those weights."""
    if logq is not None:
        logits = logits - logq[..., None]
    real = (weights > 0)[..., None]  # [B, C, 1]
    pos = (labels > 0) & real  # [B, C, A]
    neg = (labels <= 0) & real
    neg_lse = jax.nn.logsumexp(jnp.where(neg, logits, -1e30), axis=1)  # [B, A]
    per = jax.nn.softplus(neg_lse[:, None, :] - logits)  # −log softmax of the positive
    w = pos * weights[..., None]
    return jnp.sum(jnp.where(pos, per, 0.0) * w) / jnp.maximum(jnp.sum(w), 1e-10)


RANKER_LOSSES = {"bce": ranker_loss, "softmax": ranker_softmax_loss}


def train_ranker(
    cfg: PhoenixConfig,
    examples: dict[str, np.ndarray],
    tc: TrainConfig,
    progress: Progress | None = None,
    valid: dict[str, np.ndarray] | None = None,
    log: Log | None = None,
) -> tuple[FlatParams, EmbeddingTables, list[float], list[dict]]:
    """Train on ranker examples (validation examples optional); returns (params, tables,
    per-step losses, evaluation records)."""
    fwd = hk.without_apply_rng(hk.transform(ranker.ranker_forward(cfg)))

    def loss_fn(state, data):
        batch, labels, weights, logq, keep, keep_hist, keep_user = data
        emb = embed(state["tables"], batch, cfg)
        emb = emb._replace(
            candidate_post_embeddings=emb.candidate_post_embeddings * keep,
            history_post_embeddings=emb.history_post_embeddings * keep_hist,
            user_embeddings=emb.user_embeddings * keep_user,
        )
        out = fwd.apply(state["model"], batch, emb)
        logits = out.logits.astype(jnp.float32)  # [B, C, A]
        data_loss = RANKER_LOSSES[tc.ranker_loss](logits, labels, weights, logq)
        return data_loss + id_penalty(state["tables"], tc.id_l2)

    drop = np.random.default_rng(tc.seed + 2)

    def get(idx):
        batch = _batch(examples, idx)
        labels = examples["labels"][idx].astype(np.float32)
        weights = examples["weights"][idx]
        logq = examples["logq"][idx] if "logq" in examples else None
        keep = (drop.random(labels.shape[:2]) >= tc.post_dropout).astype(np.float32)
        s = batch.history_post_hashes.shape[1]
        keep_hist = (drop.random((len(idx), s)) >= tc.history_post_dropout).astype(np.float32)
        keep_user = (drop.random(len(idx)) >= tc.user_dropout).astype(np.float32)
        return (batch, labels, weights, logq, keep[..., None, None],  # [B, C, 1, 1]
                keep_hist[..., None, None], keep_user[:, None, None])  # fmt: skip

    @jax.jit
    def logits_of(state, batch):
        return fwd.apply(state["model"], batch, embed(state["tables"], batch, cfg)).logits

    def metrics(state):
        logits, labels, weights = [], [], []
        for idx in _batches(len(valid["labels"]), tc.batch_size):
            logits.append(np.asarray(logits_of(state, _batch(valid, idx)), np.float32))
            labels.append(valid["labels"][idx])
            weights.append(valid["weights"][idx])
        lg, lb, w = np.concatenate(logits), np.concatenate(labels), np.concatenate(weights)
        if "is_target" in valid:  # the reorder of retrieval's candidates (training.reorder)
            return reorder_metrics(lg[..., int(valid["rank_head"])], valid)
        lossf = RANKER_LOSSES[tc.ranker_loss]
        loss = float(lossf(lg, lb.astype(np.float32), w, valid.get("logq")))
        keep = w > 0
        p, y = 1.0 / (1.0 + np.exp(-lg[keep])), lb[keep]  # [N, A]
        heads = {}
        for a in range(y.shape[1]):
            pos = int(y[:, a].sum())
            if 20 <= pos < len(y):
                heads[ActionName(a).name] = {"positives": pos, "auc": metric_auc(p[:, a], y[:, a])}
        mean_auc = float(np.mean([h["auc"] for h in heads.values()])) if heads else None
        return {"valid_loss": loss, "valid_auc": mean_auc, "heads": heads}

    state, losses, records = _fit(loss_fn, init_state(cfg, tc), get, len(examples["labels"]), tc,
                                  progress, metrics if valid else None, log,
                                  examples.get("user_row"))  # fmt: skip
    return (*_export(state, losses, zeroed=tc.unused_tables()), records)


def contrastive_loss(
    rep: jax.Array,  # [B, D] user representations
    cand: jax.Array,  # [B, D] each row's positive
    gcand: jax.Array,  # [G, D] global negatives
    ncand: jax.Array,  # [B, H, D] each row's hard negatives
    pos_id: jax.Array,  # [B] catalogue rows of the positives
    pos_count: jax.Array,  # [B] training counts of the positives
    g_id: jax.Array,  # [G] catalogue rows
    g_count: jax.Array,  # [G]
    neg_mask: jax.Array,  # [B, H] 1 = a real hard negative
    temperature: jax.Array,  # ()
    logq_weight: float,
    own_batch: jax.Array | None = None,  # [B, B] True: column j's positive is one of row i's items
    own_global: jax.Array | None = None,  # [B, G] the same for the global negatives
) -> jax.Array:
    """Mean softmax cross-entropy of each row's positive against [in-batch | global | hard]
    candidates: score / temperature − logq_weight · log(max(count, 1)) for in-batch and global
    candidates (hard negatives uncorrected); another row's candidate with the row's own positive
    item, and padded hard negatives, are left out; with `own_batch` / `own_global`, so are
    candidates that are any of the row's user's training items (not negatives for that user)."""
    b = rep.shape[0]
    logq = logq_weight * jnp.log(jnp.maximum(pos_count, 1.0))  # [B]
    glogq = logq_weight * jnp.log(jnp.maximum(g_count, 1.0))  # [G]
    in_batch = rep @ cand.T / temperature - logq[None, :]  # [B, B]
    same = pos_id[:, None] == pos_id[None, :]  # duplicates are not negatives
    if own_batch is not None:
        same = same | own_batch
    in_batch = jnp.where(same & ~jnp.eye(b, dtype=bool), -1e9, in_batch)
    global_ = rep @ gcand.T / temperature - glogq[None, :]  # [B, G]
    drop_g = pos_id[:, None] == g_id[None, :]
    if own_global is not None:
        drop_g = drop_g | own_global
    global_ = jnp.where(drop_g, -1e9, global_)
    hard = jnp.einsum("bd,bhd->bh", rep, ncand) / temperature  # [B, H]
    hard = jnp.where(neg_mask > 0, hard, -1e9)
    logits = jnp.concatenate([in_batch, global_, hard], axis=1)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(b)))


def _own_masks(
    examples: dict[str, np.ndarray], users: np.ndarray, pos_id: np.ndarray, g_id: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """([B, B], [B, G]) True where a candidate (batch positive `pos_id`, global negative `g_id`:
    catalogue rows) is one of row i's user's training items (`own_rows` between `own_offsets`,
    sorted per user)."""
    rows, offsets = examples["own_rows"], examples["own_offsets"]
    out_b = np.zeros((len(users), len(pos_id)), bool)
    out_g = np.zeros((len(users), len(g_id)), bool)
    for i, u in enumerate(users.tolist()):
        own = rows[offsets[u] : offsets[u + 1]]
        for out, cand in ((out_b, pos_id), (out_g, g_id)):
            at = np.minimum(np.searchsorted(own, cand), max(len(own) - 1, 0))
            out[i] = (own[at] == cand) if len(own) else False
    return out_b, out_g


def train_retrieval(
    cfg: PhoenixConfig,
    examples: dict[str, np.ndarray],
    tc: TrainConfig,
    progress: Progress | None = None,
    valid: dict[str, np.ndarray] | None = None,
    log: Log | None = None,
) -> tuple[FlatParams, EmbeddingTables, list[float], list[dict]]:
    """Train the two towers with upstream's August contrastive loss; returns (params, tables,
    losses, evaluation records). Validation: the same loss, no dropout, fixed global negatives.

    Each row's candidates: every positive of the batch (in-batch negatives), `global_negatives`
    items drawn uniformly from the training catalogue (`cat_*` arrays), and the row's own hard
    negatives (`neg_*`, masked by `neg_mask`). Scores are dot products of unit vectors divided by
    the learned temperature 0.1 · exp(log_temperature); the log-Q correction subtracts
    `logq_weight` · log(training count) from every in-batch and global candidate's score, so the
    towers learn preferences and the popularity the sampling hides. A candidate with the row's
    positive post id is never a negative.
    """
    user_fwd = hk.without_apply_rng(hk.transform(retrieval.user_forward(cfg)))
    cand_fwd = hk.without_apply_rng(hk.transform(retrieval.candidate_forward(cfg)))
    off = cfg.hash.offsets

    def towers(state, posts, authors, keep, sids=None):  # [N, Hi], [N, Ha], [N], [N, L] -> [N, D]
        pe = _lookup(state["tables"]["item"], posts, off["item"])[None] * keep[None, :, None, None]
        ae = _lookup(state["tables"]["author"], authors, off["author"])[None]
        return cand_fwd.apply(state["model"], pe, ae, None if sids is None else sids[None])[0]

    def data_loss(state, data):
        batch, pos, glob, neg = data
        rep, _ = user_fwd.apply(state["model"], batch, embed(state["tables"], batch, cfg))  # [B, D]
        b = rep.shape[0]
        cand = towers(state, pos["post"], pos["author"], pos["keep"], pos.get("sids"))  # [B, D]
        gcand = towers(state, glob["post"], glob["author"], jnp.ones(glob["post"].shape[0]),
                       glob.get("sids"))  # fmt: skip
        h = neg["post"].shape[1]
        nsids = neg.get("sids")
        ncand = towers(state, neg["post"].reshape(b * h, -1), neg["author"].reshape(b * h, -1),
                       jnp.ones(b * h), None if nsids is None else nsids.reshape(b * h, -1)
                       ).reshape(b, h, -1)  # [B, H, D]  # fmt: skip
        temperature = 0.1 * jnp.exp(state["model"]["~"]["log_temperature"])
        ids = (pos["id"], pos["count"], glob["id"], glob["count"], neg["mask"])
        return contrastive_loss(rep, cand, gcand, ncand, *ids, temperature, tc.logq_weight,
                                pos.get("own"), glob.get("own"))  # fmt: skip

    def loss_fn(state, data):
        return data_loss(state, data) + id_penalty(state["tables"], tc.id_l2)

    drop = np.random.default_rng(tc.seed + 2)
    n_cat = len(examples["cat_id"])

    def get(idx, ex=examples, rng=drop, keep_all=False):
        keep = np.ones(len(idx), np.float32)
        if not keep_all:
            keep = (rng.random(len(idx)) >= tc.post_dropout).astype(np.float32)
        g = rng.integers(0, n_cat, tc.global_negatives)
        pos = {
            "post": ex["pos_post"][idx],
            "author": ex["pos_author"][idx],
            "count": ex["pos_count"][idx],
            "id": ex["pos_id"][idx],
            "keep": keep,
        }
        glob = {
            "post": examples["cat_post"][g],
            "author": examples["cat_author"][g],
            "count": examples["cat_count"][g],
            "id": examples["cat_id"][g],
        }
        neg = {"post": ex["neg_post"][idx], "author": ex["neg_author"][idx],
               "mask": ex["neg_mask"][idx]}  # fmt: skip
        if "pos_sids" in ex:  # post semantic ids (sid_levels > 0): [B, L], [G, L], [B, H, L]
            pos["sids"], neg["sids"] = ex["pos_sids"][idx], ex["neg_sids"][idx]
            glob["sids"] = examples["cat_sids"][g]
        if tc.mask_own_items:
            pos["own"], glob["own"] = _own_masks(examples, ex["user_row"][idx], pos["id"], g)
        return _batch(ex, idx), pos, glob, neg

    metrics = None
    if valid is not None:
        fixed = np.random.default_rng(tc.seed + 4)
        batches = [idx for idx in _batches(len(valid["pos_post"]), tc.batch_size) if len(idx) > 1]
        vb = [get(idx, valid, fixed, True) for idx in batches]
        loss_jit = jax.jit(data_loss)  # validation: the data term alone

        def metrics(state):
            return {"valid_loss": float(np.mean([loss_jit(state, b) for b in vb]))}

    state = init_state(cfg, tc)
    state, losses, records = _fit(loss_fn, state, get, len(examples["pos_post"]), tc, progress,
                                  metrics, log, examples.get("user_row"))  # fmt: skip
    read = None  # with post-id dropout: zero the id rows no training example reads
    if tc.post_dropout > 0:
        read = {"user": examples["user_hashes"],
                "item": np.concatenate([examples["cat_post"].ravel(),  # every training item
                                        examples["pos_post"].ravel()])}  # fmt: skip
    return (*_export(state, losses, read=read, offsets=cfg.hash.offsets), records)


def unread_rows_zeroed(table: np.ndarray, rows: np.ndarray, offset: int) -> np.ndarray:
    """`table` [V, D] with every row that none of the unified `rows` (any shape; 0 = padding)
    reads set to zero: an id no training example saw (a post new at serving time) gets the zero
    embedding that post-id dropout trained the model on, not its random initialisation."""
    keep = np.zeros(len(table), bool)
    local = np.asarray(rows, np.int64).ravel()
    keep[local[local > 0] - offset] = True
    return np.where(keep[:, None], table, 0.0).astype(table.dtype)


def _export(
    state: dict,
    losses: list[float],
    zeroed: tuple[str, ...] = (),
    read: dict[str, np.ndarray] | None = None,
    offsets: dict[str, int] | None = None,
) -> tuple[FlatParams, EmbeddingTables, list[float]]:
    """Flat params and tables: tables in `zeroed` all zeros; those in `read` (unified rows the
    training read, `offsets` per entity) zero outside those rows."""
    params = flatten(jax.device_get(state["model"]))
    tables = {e: np.asarray(state["tables"][e]) for e in ENTITIES}
    for e in zeroed:
        tables[e] = np.zeros_like(tables[e])
    for e, rows in (read or {}).items():
        tables[e] = unread_rows_zeroed(tables[e], rows, offsets[e])
    params = {k: np.asarray(v, np.float32) for k, v in params.items()}
    return params, EmbeddingTables(**tables), losses
