"""The Phoenix two-tower retrieval model (`phoenix_retrieval_model`).

Re-implements phoenix/recsys_retrieval_model.py @0bfc279 (phoenix_spec.md §2):
- user tower: [user, history] through the transformer with a causal mask, no final norm,
  masked mean over valid positions, L2 normalise;
- candidate tower: concat(post hashes, author hashes) -> silu MLP -> L2 normalise (or mean-pool);
- similarity: dot product, exact top-K.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from phoenix import features
from phoenix.batch import Array, RecsysBatch, RecsysEmbeddings
from phoenix.config import PhoenixConfig
from phoenix.transformer import Transformer

EPS = 1e-12
INF = 1e12
NUM_GLOBAL_NEGATIVES = 64  # upstream declares these placeholder rows; they never affect outputs


def l2_normalize(x: jax.Array) -> jax.Array:
    """x / sqrt(max(‖x‖², 1e-12)) along the last axis."""
    sq = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, EPS))


class CandidateTower(hk.Module):
    """Post representation from its hash embeddings, unit norm."""

    def __init__(self, emb_size: int, enable_linear_proj: bool, name: str = "candidate_tower"):
        super().__init__(name=name)
        self.emb_size = emb_size
        self.enable_linear_proj = enable_linear_proj

    def __call__(
        self,
        post_emb: Array,  # [B, C, Hi, D]
        author_emb: Array,  # [B, C, Ha, D]
        sid_emb: Array | None = None,  # [B, C, D]: the post's semantic-id token (sid_levels > 0)
    ) -> jax.Array:  # [B, C, D] float32, unit norm
        tokens = [jnp.asarray(post_emb), jnp.asarray(author_emb)]
        if sid_emb is not None:  # one more token, as upstream's August tower's SID token
            tokens.append(jnp.asarray(sid_emb, jnp.float32)[:, :, None, :])
        x = jnp.concatenate(tokens, axis=2)
        x = x.astype(jnp.float32)  # [B, C, K, D]
        if not self.enable_linear_proj:
            return l2_normalize(jnp.mean(x, axis=2))
        b, c, k, d = x.shape
        init = hk.initializers.VarianceScaling(1.0, "fan_out", "truncated_normal")
        w1 = hk.get_parameter(
            "candidate_tower_projection_1", (k * d, 2 * d), jnp.float32, init=init
        )
        w2 = hk.get_parameter("candidate_tower_projection_2", (2 * d, d), jnp.float32, init=init)
        h = jax.nn.silu(x.reshape(b, c, k * d) @ w1)
        return l2_normalize(h @ w2)


class PhoenixRetrievalModel(hk.Module):
    def __init__(
        self, cfg: PhoenixConfig, transformer: Transformer, name: str = "phoenix_retrieval_model"
    ):
        super().__init__(name=name)
        self.cfg = cfg
        self.transformer = transformer

    def build_user_representation(
        self, batch: RecsysBatch, emb: RecsysEmbeddings
    ) -> tuple[jax.Array, jax.Array]:
        """User tower.

        Returns:
            rep [B, D] float32 unit norm, and the pre-normalisation norm [B, 1].
        """
        c, d = self.cfg, self.cfg.emb_size
        dtype = jnp.dtype(c.fprop_dtype)
        user = features.block_user_reduce(emb.user_embeddings, d)  # [B, 1, D]
        history = features.block_history_reduce(
            [
                features.flatten_hashes(emb.history_post_embeddings),
                features.flatten_hashes(emb.history_author_embeddings),
                # the per-feature embeddings in the compute dtype, as upstream
                features.action_embedding(batch.history_actions, d).astype(dtype),
                features.product_surface_embedding(
                    batch.history_product_surface, c.product_surface_vocab_size, d
                ).astype(dtype),
                *self.sid_parts(batch.history_sids, jnp.shape(batch.history_product_surface)),
            ],
            d,
        )  # [B, S, D]
        tokens = jnp.concatenate([user, history], axis=1).astype(dtype)
        mask = jnp.concatenate(
            [
                jnp.asarray(batch.user_hashes)[:, :1] != 0,
                jnp.asarray(batch.history_post_hashes)[:, :, 0] != 0,
            ],
            axis=1,
        )  # [B, 1 + S]
        out = self.transformer(tokens, mask, candidate_start_offset=None).astype(jnp.float32)
        m = mask.astype(jnp.float32)[..., None]
        mean = jnp.sum(out * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)  # [B, D]
        norm = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(mean), axis=-1, keepdims=True), EPS))
        return l2_normalize(mean), norm

    def sid_parts(self, codes: Array | None, shape: tuple[int, int]) -> list[jax.Array]:
        """[the SID embedding [B, N, D] in the compute dtype] with semantic ids, else []; the
        user tower's history and the candidate tower share the table."""
        c = self.cfg
        if not c.sid_levels:
            return []
        emb = features.sid_embedding(codes, shape, c.sid_levels, c.sid_codebook, c.emb_size)
        return [emb.astype(jnp.dtype(c.fprop_dtype))]

    def build_candidate_representation(
        self, post_emb: Array, author_emb: Array, sids: Array | None = None
    ) -> jax.Array:
        """Candidate tower: [B, C, Hi, D], [B, C, Ha, D] (and SID codes [B, C, L] when the
        config reads semantic ids: one more token) -> [B, C, D] unit norm."""
        tower = CandidateTower(self.cfg.emb_size, self.cfg.enable_linear_proj)
        sid = self.sid_parts(sids, jnp.shape(post_emb)[:2])
        return tower(post_emb, author_emb, sid[0].astype(jnp.float32) if sid else None)


def user_forward(cfg: PhoenixConfig):
    """For `hk.transform`: (batch, emb) -> (user rep [B, D], norm [B, 1])."""

    def forward(batch: RecsysBatch, emb: RecsysEmbeddings) -> tuple[jax.Array, jax.Array]:
        model = PhoenixRetrievalModel(cfg, Transformer(cfg.transformer))
        return model.build_user_representation(batch, emb)

    return forward


def candidate_forward(cfg: PhoenixConfig):
    """For `hk.transform`: (post_emb [B,C,Hi,D], author_emb [B,C,Ha,D][, SID codes [B,C,L]])
    -> [B, C, D]."""

    def forward(post_emb: Array, author_emb: Array, sids: Array | None = None) -> jax.Array:
        model = PhoenixRetrievalModel(cfg, Transformer(cfg.transformer))
        return model.build_candidate_representation(post_emb, author_emb, sids)

    return forward


def full_forward(cfg: PhoenixConfig):
    """For `hk.transform` init: builds every param upstream's checkpoint holds, the candidate
    tower on placeholder candidates and the `~/log_temperature` scalar included."""

    def forward(batch: RecsysBatch, emb: RecsysEmbeddings) -> tuple[jax.Array, jax.Array]:
        model = PhoenixRetrievalModel(cfg, Transformer(cfg.transformer))
        rep, _ = model.build_user_representation(batch, emb)
        cand = model.build_candidate_representation(
            emb.candidate_post_embeddings, emb.candidate_author_embeddings, batch.candidate_sids
        )
        hk.get_parameter("log_temperature", (), jnp.float32, init=jnp.zeros)
        return rep, cand

    return forward


def retrieve_top_k(
    user_rep: jax.Array,  # [B, D]
    corpus: jax.Array,  # [N, D]
    k: int,
    corpus_mask: jax.Array | None = None,  # [N] bool, False = excluded
) -> tuple[jax.Array, jax.Array]:
    """Exact dot-product top-K: (indices [B, K] int32, scores [B, K]) sorted descending."""
    scores = user_rep @ corpus.T  # [B, N]
    if corpus_mask is not None:
        scores = jnp.where(corpus_mask[None], scores, -INF)
    top_scores, top_idx = jax.lax.top_k(scores, k)
    return top_idx, top_scores
