"""An independent float32 numpy re-statement of the Phoenix ranker and user tower, written
straight from phoenix_spec.md §1.3–1.6 and §2, with flat params. The haiku port must agree."""

from __future__ import annotations

import math

import numpy as np


def rms(x, scale):
    return scale * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)


def gelu(x):  # tanh approximation (jax.nn.gelu default)
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def rope(x, pos):  # x [T, N, dk], pos [T]
    dk = x.shape[-1]
    inv = 1.0 / 10000 ** (np.arange(0, dk, 2) / dk)
    ph = pos[:, None] * inv[None]
    ph = np.concatenate([ph, ph], -1)[:, None, :]
    x1, x2 = x[..., : dk // 2], x[..., dk // 2 :]
    return x * np.cos(ph) + np.concatenate([-x2, x1], -1) * np.sin(ph)


def transformer(p, cfg, x, mask2d, pos):
    """x [T, D]; mask2d [T, T] bool."""
    t = cfg.transformer
    h, kv, dk = t.num_q_heads, t.num_kv_heads, t.key_size
    for i in range(t.num_layers):
        pre = f"transformer/decoder_layer_{i}"
        y = rms(x, p[f"{pre}/rms_norm/scale"])
        q = (y @ p[f"{pre}/multi_head_attention/query/w"]).reshape(-1, h, dk)
        k = (y @ p[f"{pre}/multi_head_attention/key/w"]).reshape(-1, kv, dk)
        v = (y @ p[f"{pre}/multi_head_attention/value/w"]).reshape(-1, kv, dk)
        q, k = rope(q, pos), rope(k, pos)
        heads = []
        for j in range(h):
            g = j // (h // kv)
            logit = (q[:, j] @ k[:, g].T) * t.attn_output_multiplier
            logit = 30 * np.tanh(logit / 30)
            logit = np.where(mask2d, logit, -1e30)
            w = np.exp(logit - logit.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            heads.append(w @ v[:, g])
        attn = np.concatenate(heads, -1) @ p[f"{pre}/multi_head_attention/linear/w"]
        x = x + rms(attn, p[f"{pre}/rms_norm_1/scale"])
        y = rms(x, p[f"{pre}/rms_norm_2/scale"])
        ff = gelu(y @ p[f"{pre}/linear/w"]) * (y @ p[f"{pre}/linear_v/w"])
        x = x + rms(ff @ p[f"{pre}/linear_1/w"], p[f"{pre}/rms_norm_3/scale"])
    return x


def _history_tokens(p, m, cfg, batch, emb, b, with_dwell):
    s = batch.history_actions.shape[1]
    a = batch.history_actions[b]
    act = (2 * a - 1) @ p[f"{m}/action_projection"]
    act = act * np.any(a != 0, -1, keepdims=True)
    ps = np.eye(cfg.product_surface_vocab_size)[batch.history_product_surface[b]]
    parts = [
        emb.history_post_embeddings[b].reshape(s, -1),
        emb.history_author_embeddings[b].reshape(s, -1),
        act,
        ps @ p[f"{m}/product_surface_embedding_table"],
    ]
    if with_dwell:
        d = np.clip(batch.history_continuous_actions[b][:, 1], 0, 30) / 30
        parts.append(
            gelu(d[:, None] @ p[f"{m}/history_dwell_time_proj1"])
            @ p[f"{m}/history_dwell_time_proj2"]
        )
    return np.concatenate(parts, -1) @ p[f"{m}/proj_mat_3"]


def ranker_logits(p, cfg, batch, emb):
    """[B, C, A] float32 logits; positions arange(T); age buckets 0 (no timestamps)."""
    m = "phoenix_model"
    out = []
    for b in range(batch.user_hashes.shape[0]):
        s = batch.history_actions.shape[1]
        c = batch.candidate_product_surface.shape[1]
        user = emb.user_embeddings[b].reshape(1, -1) @ p[f"{m}/proj_mat_1"]
        hist = _history_tokens(p, m, cfg, batch, emb, b, with_dwell=True)
        ps = np.eye(cfg.product_surface_vocab_size)[batch.candidate_product_surface[b]]
        cand = (
            np.concatenate(
                [
                    emb.candidate_post_embeddings[b].reshape(c, -1),
                    emb.candidate_author_embeddings[b].reshape(c, -1),
                    ps @ p[f"{m}/product_surface_embedding_table"],
                    np.repeat(p[f"{m}/post_age_embedding_table"][:1], c, 0),
                ],
                -1,
            )
            @ p[f"{m}/proj_mat_2"]
        )
        x = np.concatenate([user, hist, cand]).astype(np.float64)
        t = 1 + s + c
        valid = np.concatenate(
            [
                batch.user_hashes[b, :1] != 0,
                batch.history_post_hashes[b, :, 0] != 0,
                batch.candidate_post_hashes[b, :, 0] != 0,
            ]
        )
        mask = np.zeros((t, t), bool)
        for i in range(t):
            for j in range(t):
                if i < 1 + s:
                    mask[i, j] = j <= i
                else:
                    mask[i, j] = j < 1 + s or j == i
        mask &= valid[None, :]
        y = transformer(p, cfg, x, mask, np.arange(t, dtype=np.float64))
        y = rms(y, p[f"{m}/rms_norm/scale"])[1 + s :]
        out.append(y @ p[f"{m}/unembeddings"])
    return np.stack(out)


def user_representation(p, cfg, batch, emb):
    """[B, D] unit-norm user tower output."""
    m = "phoenix_retrieval_model"
    reps = []
    for b in range(batch.user_hashes.shape[0]):
        s = batch.history_actions.shape[1]
        user = emb.user_embeddings[b].reshape(1, -1) @ p[f"{m}/proj_mat_1"]
        hist = _history_tokens(p, m, cfg, batch, emb, b, with_dwell=False)
        x = np.concatenate([user, hist]).astype(np.float64)
        valid = np.concatenate(
            [batch.user_hashes[b, :1] != 0, batch.history_post_hashes[b, :, 0] != 0]
        )
        mask = np.tril(np.ones((1 + s, 1 + s), bool)) & valid[None, :]
        y = transformer(p, cfg, x, mask, np.arange(1 + s, dtype=np.float64))
        mean = (y * valid[:, None]).sum(0) / max(valid.sum(), 1)
        reps.append(mean / np.sqrt(max((mean * mean).sum(), 1e-12)))
    return np.stack(reps)
