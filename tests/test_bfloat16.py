"""bfloat16 computed where upstream computes it (phoenix/recsys_model.py @0bfc279): the action,
product-surface, dwell and post-age embeddings are cast to the compute dtype before the
concatenation and projection; the heads multiply in float32 and cast afterwards;
upstream's run_pipeline takes the sigmoid of the bfloat16 logits. A bfloat16 product accumulates
in float32 and rounds once, and the gated GELU rounds once, as XLA computes them on an
accelerator."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix import features
from phoenix.params import unflatten
from phoenix.ranker import ranker_forward
from phoenix.transformer import RMSNorm, Transformer, right_anchored_positions
from tests.test_models import inputs

F32 = jnp.float32


class UpstreamPlacement(hk.Module):
    """The ranker with upstream's dtype placement written out step by step (same params)."""

    def __init__(self, cfg, transformer):
        super().__init__(name="phoenix_model")
        self.cfg, self.transformer = cfg, transformer

    def _proj(self, x, name):  # float32 dot, cast back to the input's dtype
        w = hk.get_parameter(name, (x.shape[-1], self.cfg.emb_size), F32)
        return jnp.dot(x.astype(F32), w).astype(x.dtype)

    def __call__(self, batch, emb):
        c, d, dt = self.cfg, self.cfg.emb_size, jnp.dtype(self.cfg.fprop_dtype)
        b, s = batch.history_product_surface.shape
        n = batch.candidate_product_surface.shape[1]
        user = self._proj(jnp.asarray(emb.user_embeddings, F32).reshape(b, 1, -1), "proj_mat_1")
        hist = jnp.concatenate([
            features.flatten_hashes(emb.history_post_embeddings),  # float32
            features.flatten_hashes(emb.history_author_embeddings),
            features.action_embedding(batch.history_actions, d).astype(dt),
            features.product_surface_embedding(batch.history_product_surface, 16, d).astype(dt),
            features.dwell_embedding(batch.history_continuous_actions, (b, s),
                                     c.continuous_action_hidden_dim, d, c.dwell_norm_scale,
                                     c.dwell_use_log).astype(dt),
        ], axis=-1)  # fmt: skip
        age_table = hk.get_parameter("post_age_embedding_table", (c.post_age_vocab_size, d), F32)
        age = jnp.zeros((b, n), jnp.int32)  # no timestamps in these inputs: bucket 0
        cand = jnp.concatenate([
            features.flatten_hashes(emb.candidate_post_embeddings),
            features.flatten_hashes(emb.candidate_author_embeddings),
            features.product_surface_embedding(batch.candidate_product_surface, 16, d).astype(dt),
            (jax.nn.one_hot(age, c.post_age_vocab_size, dtype=F32) @ age_table).astype(dt),
        ], axis=-1)  # fmt: skip
        tokens = jnp.concatenate(
            [user, self._proj(hist, "proj_mat_3"), self._proj(cand, "proj_mat_2")], axis=1
        ).astype(dt)
        mask = jnp.concatenate(
            [
                jnp.asarray(batch.user_hashes)[:, :1] != 0,
                jnp.asarray(batch.history_post_hashes)[:, :, 0] != 0,
                jnp.asarray(batch.candidate_post_hashes)[:, :, 0] != 0,
            ],
            axis=1,
        )
        pos = right_anchored_positions(mask, 1, s, n) if c.right_anchored_rope else None
        out = self.transformer(tokens, mask, candidate_start_offset=1 + s, positions=pos)
        out = RMSNorm(name="rms_norm")(out)[:, 1 + s :]
        unemb = hk.get_parameter("unembeddings", (d, c.num_actions), F32)
        cont = hk.get_parameter("continuous_unembeddings", (d, c.num_continuous_actions), F32)
        logits = jnp.dot(out.astype(F32), unemb).astype(dt)  # float32 product, then cast
        continuous = jax.nn.sigmoid(jnp.dot(out.astype(F32), cont)).astype(dt)
        return logits, continuous


def test_bfloat16_logits_are_bit_identical_to_upstreams_placement(mini_ranker_ckpt):
    ckpt = mini_ranker_ckpt
    assert ckpt.config.fprop_dtype == "bfloat16"
    _, batch, emb = inputs(ckpt, np.random.default_rng(21), 32, hist_len=40)
    params = unflatten(ckpt.params)

    def upstream(batch, emb):
        return UpstreamPlacement(ckpt.config, Transformer(ckpt.config.transformer))(batch, emb)

    want = jax.jit(hk.without_apply_rng(hk.transform(upstream)).apply)(params, batch, emb)
    got = jax.jit(hk.without_apply_rng(hk.transform(ranker_forward(ckpt.config))).apply)(
        params, batch, emb
    )
    assert got.logits.dtype == jnp.bfloat16 and got.continuous.dtype == jnp.bfloat16
    assert np.array_equal(np.asarray(got.logits, np.float32), np.asarray(want[0], np.float32))
    assert np.array_equal(np.asarray(got.continuous, np.float32), np.asarray(want[1], np.float32))


def test_upstream_flow_probabilities_are_bfloat16_sigmoids(fake_artifacts):
    from upstream.run_pipeline import run_phoenix_flow

    res = run_phoenix_flow(fake_artifacts, top_k_retrieval=40)
    probs = np.asarray(res.probs, np.float32)
    assert np.array_equal(probs, probs.astype(jnp.bfloat16).astype(np.float32))
    assert len(np.unique(probs)) > 10


class UpstreamUserTower(hk.Module):
    """The retrieval user tower with upstream's dtype placement written out."""

    def __init__(self, cfg, transformer):
        super().__init__(name="phoenix_retrieval_model")
        self.cfg, self.transformer = cfg, transformer

    def __call__(self, batch, emb):
        d, dt = self.cfg.emb_size, jnp.dtype(self.cfg.fprop_dtype)

        def proj(x, name):
            w = hk.get_parameter(name, (x.shape[-1], d), F32)
            return jnp.dot(x.astype(F32), w).astype(x.dtype)

        b = batch.history_product_surface.shape[0]
        user = proj(jnp.asarray(emb.user_embeddings, F32).reshape(b, 1, -1), "proj_mat_1")
        hist = jnp.concatenate([
            features.flatten_hashes(emb.history_post_embeddings),
            features.flatten_hashes(emb.history_author_embeddings),
            features.action_embedding(batch.history_actions, d).astype(dt),
            features.product_surface_embedding(batch.history_product_surface, 16, d).astype(dt),
        ], axis=-1)  # fmt: skip
        tokens = jnp.concatenate([user, proj(hist, "proj_mat_3")], axis=1).astype(dt)
        mask = jnp.concatenate(
            [
                jnp.asarray(batch.user_hashes)[:, :1] != 0,
                jnp.asarray(batch.history_post_hashes)[:, :, 0] != 0,
            ],
            axis=1,
        )
        out = self.transformer(tokens, mask, candidate_start_offset=None).astype(F32)
        m = mask.astype(F32)[..., None]
        mean = jnp.sum(out * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
        return mean * jax.lax.rsqrt(jnp.maximum(jnp.sum(mean * mean, -1, keepdims=True), 1e-12))


def test_bfloat16_user_tower_follows_upstreams_placement():
    from phoenix.retrieval import user_forward
    from tests.conftest import tiny_checkpoint

    ckpt = tiny_checkpoint("retrieval", seed=1, fprop_dtype="bfloat16")
    _, batch, emb = inputs(ckpt, np.random.default_rng(22), 0, hist_len=12)
    params = unflatten(ckpt.params)

    def upstream(batch, emb):
        return UpstreamUserTower(ckpt.config, Transformer(ckpt.config.transformer))(batch, emb)

    want = jax.jit(hk.without_apply_rng(hk.transform(upstream)).apply)(params, batch, emb)
    got, _ = jax.jit(hk.without_apply_rng(hk.transform(user_forward(ckpt.config))).apply)(
        params, batch, emb
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)


def _bf16_ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got − want| in units of the bfloat16 spacing at `want` (both float arrays)."""
    spacing = np.abs(want) * 2.0**-7 + 2.0**-133
    return np.abs(got - want) / spacing


def test_bfloat16_products_accumulate_in_float32_and_round_once():
    from phoenix.transformer import dense, einsum

    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((96, 128)), jnp.bfloat16)
    w = jnp.asarray(rng.standard_normal((128, 40)) * 0.1, F32)
    exact = np.asarray(x, np.float64) @ np.asarray(w.astype(jnp.bfloat16), np.float64)
    got = dense(x, w)
    assert got.dtype == jnp.bfloat16
    assert _bf16_ulps(np.asarray(got, np.float64), exact).max() <= 1.0  # one rounding
    q = jnp.asarray(rng.standard_normal((2, 8, 4, 16)), jnp.bfloat16)
    k = jnp.asarray(rng.standard_normal((2, 6, 4, 16)), jnp.bfloat16)
    exact = np.einsum("btnd,bsnd->bnts", np.asarray(q, np.float64), np.asarray(k, np.float64))
    got = einsum("btnd,bsnd->bnts", q, k)
    assert got.dtype == jnp.bfloat16
    assert _bf16_ulps(np.asarray(got, np.float64), exact).max() <= 1.0
    # float32 operands: a plain float32 product
    x32 = jnp.asarray(rng.standard_normal((8, 128)), F32)
    assert np.array_equal(np.asarray(dense(x32, w)), np.asarray(jnp.dot(x32, w)))


def test_bfloat16_gated_gelu_rounds_once_not_after_every_operation():
    from phoenix.transformer import gated_gelu

    rng = np.random.default_rng(6)
    a = jnp.asarray(rng.uniform(-2, 3, 4096), jnp.bfloat16)  # no float32 cancellation here
    b = jnp.asarray(rng.standard_normal(4096), jnp.bfloat16)
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    exact = 0.5 * a64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (a64 + 0.044715 * a64**3))) * b64
    got = gated_gelu(a, b)
    assert got.dtype == jnp.bfloat16
    assert _bf16_ulps(np.asarray(got, np.float64), exact).max() <= 1.0
    per_op = np.asarray(jax.nn.gelu(a) * b, np.float64)  # bfloat16 after every operation
    assert _bf16_ulps(per_op, exact).max() > 1.0
