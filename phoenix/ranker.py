"""The Phoenix ranking model (`phoenix_model`): candidates scored in isolation.

Re-implements PhoenixModel of phoenix/recsys_model.py @0bfc279 (phoenix_spec.md §1.2–1.6).
Sequence = [user (1), history (S), candidates (C)]; candidates attend to user+history and to
themselves only, so a candidate's logits never depend on the other candidates.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from phoenix import features
from phoenix.batch import RecsysBatch, RecsysEmbeddings
from phoenix.config import PhoenixConfig
from phoenix.transformer import RMSNorm, Transformer, right_anchored_positions


class RankerOutput(NamedTuple):
    logits: jax.Array  # [B, C, A] in fprop dtype (float32 product, then cast)
    continuous: jax.Array  # [B, C, num_continuous_actions] fprop dtype (float32 sigmoid, cast)


def padding_mask(batch: RecsysBatch) -> jax.Array:
    """[B, 1 + S + C] bool: user, history and candidate slots whose first hash is non-zero."""
    return jnp.concatenate(
        [
            jnp.asarray(batch.user_hashes)[:, :1] != 0,
            jnp.asarray(batch.history_post_hashes)[:, :, 0] != 0,
            jnp.asarray(batch.candidate_post_hashes)[:, :, 0] != 0,
        ],
        axis=1,
    )


class PhoenixModel(hk.Module):
    """The ranker. Params live under `phoenix_model/`; the transformer is passed in so that its
    params are `transformer/...` as upstream's."""

    def __init__(self, cfg: PhoenixConfig, transformer: Transformer, name: str = "phoenix_model"):
        super().__init__(name=name)
        self.cfg = cfg
        self.transformer = transformer

    def embed_user_history(self, batch: RecsysBatch, emb: RecsysEmbeddings) -> jax.Array:
        """Tokens of user + history, [B, 1 + S, D] float32 (before the fprop cast); the action,
        surface and dwell embeddings are rounded to the fprop dtype before the projection."""
        c, d = self.cfg, self.cfg.emb_size
        dtype = jnp.dtype(c.fprop_dtype)
        b, s = jnp.shape(batch.history_product_surface)
        user = features.block_user_reduce(emb.user_embeddings, d)  # [B, 1, D]
        history = features.block_history_reduce(
            [
                features.flatten_hashes(emb.history_post_embeddings),  # [B, S, Hi·D]
                features.flatten_hashes(emb.history_author_embeddings),  # [B, S, Ha·D]
                # the per-feature embeddings in the compute dtype, as upstream
                features.action_embedding(batch.history_actions, d).astype(dtype),  # [B, S, D]
                features.product_surface_embedding(
                    batch.history_product_surface, c.product_surface_vocab_size, d
                ).astype(dtype),
                features.dwell_embedding(
                    batch.history_continuous_actions,
                    (b, s),
                    c.continuous_action_hidden_dim,
                    d,
                    c.dwell_norm_scale,
                    c.dwell_use_log,
                ).astype(dtype),
                *self.sid_parts(batch.history_sids, (b, s)),  # [B, S, D] with semantic ids
            ],
            d,
        )  # [B, S, D]
        return jnp.concatenate([user, history], axis=1)

    def embed_candidates(self, batch: RecsysBatch, emb: RecsysEmbeddings) -> jax.Array:
        """Candidate tokens, [B, C, D] float32; the surface and post-age embeddings are rounded
        to the fprop dtype before the projection."""
        c, d = self.cfg, self.cfg.emb_size
        if batch.candidate_impr_ts is None or batch.candidate_post_creation_ts is None:
            age = jnp.zeros(jnp.shape(batch.candidate_product_surface), jnp.int32)
        else:
            age = features.post_age_bucket(
                jnp.asarray(batch.candidate_impr_ts),
                jnp.asarray(batch.candidate_post_creation_ts),
                c.post_age_granularity_mins,
                c.post_age_vocab_size,
            )
        age_table = hk.get_parameter(
            "post_age_embedding_table",
            (c.post_age_vocab_size, d),
            jnp.float32,
            init=hk.initializers.TruncatedNormal(0.02),
        )
        dtype = jnp.dtype(c.fprop_dtype)
        return features.block_candidate_reduce(
            [
                features.flatten_hashes(emb.candidate_post_embeddings),
                features.flatten_hashes(emb.candidate_author_embeddings),
                # the per-feature embeddings in the compute dtype, as upstream
                features.product_surface_embedding(
                    batch.candidate_product_surface, c.product_surface_vocab_size, d
                ).astype(dtype),
                (jax.nn.one_hot(age, c.post_age_vocab_size, dtype=jnp.float32) @ age_table).astype(
                    dtype
                ),
                *self.sid_parts(batch.candidate_sids, jnp.shape(batch.candidate_product_surface)),
            ],
            d,
        )

    def sid_parts(self, codes, shape: tuple[int, int]) -> list[jax.Array]:
        """[the SID embedding [B, N, D] in the compute dtype] when the config has semantic ids,
        else [] (the model is then exactly upstream's); history and candidates share the table."""
        c = self.cfg
        if not c.sid_levels:
            return []
        emb = features.sid_embedding(codes, shape, c.sid_levels, c.sid_codebook, c.emb_size)
        return [emb.astype(jnp.dtype(c.fprop_dtype))]

    def __call__(self, batch: RecsysBatch, emb: RecsysEmbeddings) -> RankerOutput:
        c = self.cfg
        dtype = jnp.dtype(c.fprop_dtype)
        s = jnp.shape(batch.history_product_surface)[1]
        n_cand = jnp.shape(batch.candidate_product_surface)[1]
        tokens = jnp.concatenate(
            [self.embed_user_history(batch, emb), self.embed_candidates(batch, emb)], axis=1
        ).astype(dtype)  # [B, T, D]
        mask = padding_mask(batch)  # [B, T]
        positions = None
        if c.right_anchored_rope:
            positions = right_anchored_positions(mask, 1, s, n_cand)
        out = self.transformer(tokens, mask, candidate_start_offset=1 + s, positions=positions)
        out = RMSNorm(name="rms_norm")(out)[:, 1 + s :]  # [B, C, D]
        return self.head(out)

    def head(self, out: jax.Array) -> RankerOutput:
        """Action logits and continuous predictions from final candidate states [B, C, D]."""
        c = self.cfg
        unemb = hk.get_parameter(
            "unembeddings",
            (c.emb_size, c.num_actions),
            jnp.float32,
            init=hk.initializers.TruncatedNormal(0.02),
        )
        cont = hk.get_parameter(
            "continuous_unembeddings",
            (c.emb_size, c.num_continuous_actions),
            jnp.float32,
            init=hk.initializers.TruncatedNormal(0.02),
        )
        return RankerOutput(head_logits(out, unemb), head_continuous(out, cont))


def head_logits(out: jax.Array, unemb: jax.Array) -> jax.Array:
    """out [..., D] (compute dtype) @ unembeddings [D, A] in float32, then cast to the compute
    dtype (upstream's placement)."""
    return jnp.dot(out.astype(jnp.float32), unemb.astype(jnp.float32)).astype(out.dtype)


def head_continuous(out: jax.Array, cont: jax.Array) -> jax.Array:
    """sigmoid(out [..., D] @ continuous_unembeddings [D, K]) in float32, then cast to the
    compute dtype (upstream's placement)."""
    prod = jnp.dot(out.astype(jnp.float32), cont.astype(jnp.float32))
    return jax.nn.sigmoid(prod).astype(out.dtype)


def ranker_forward(cfg: PhoenixConfig):
    """A function for `hk.transform`: (batch, emb) -> RankerOutput."""

    def forward(batch: RecsysBatch, emb: RecsysEmbeddings) -> RankerOutput:
        transformer = Transformer(cfg.transformer)
        return PhoenixModel(cfg, transformer)(batch, emb)

    return forward
