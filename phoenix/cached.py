"""Cached candidate-isolated ranking: user+history once, every candidate in one pass.

Because of candidate isolation (phoenix_spec.md §1.4), user+history never attends to candidates,
so their keys and values are the same for every chunk of the reference path. This path computes
them once per layer and scores all candidates together: each candidate attends to the cached
user+history keys/values and to itself. RoPE positions equal the reference path's (a candidate
sits at 1 + S + its slot within its chunk of `candidate_seq_len`, or at 1 + S when right-anchored),
so scores match the chunked reference up to float rounding.

Pure JAX over the same haiku parameter dict; numerics follow `phoenix.transformer`.
"""

from __future__ import annotations

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix.batch import RecsysBatch, RecsysEmbeddings
from phoenix.config import PhoenixConfig
from phoenix.device import full_precision
from phoenix.ranker import PhoenixModel, head_logits, padding_mask
from phoenix.transformer import (
    ATTN_SOFT_CAP,
    MASK_VALUE,
    RMS_EPS,
    attention_logits_to_weights,
    dense,
    einsum,
    gated_gelu,
    make_recsys_attn_mask,
    right_anchored_positions,
    rope_tables,
)

# each bucket at most 1.5x the one below: padding costs at most a third of the work
BUCKETS = (64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)


def bucket(n: int, multiple: int) -> int:
    """The candidate-count bucket for n (a fixed set of jit shapes), a multiple of `multiple`."""
    for b in BUCKETS:
        if n <= b and b % multiple == 0:
            return b
    return -(-n // multiple) * multiple


def _rms(x: jax.Array, scale: jax.Array) -> jax.Array:
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + RMS_EPS)
    return (scale * y).astype(x.dtype)


@functools.lru_cache(maxsize=16)
def _rope_table(count: int, dk: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [count, dk] float32 of positions 0 … count − 1 (`rope_tables`' formula)."""
    with jax.ensure_compile_time_eval():  # evaluated now, also while tracing
        cos, sin = rope_tables(jnp.arange(count, dtype=jnp.int32)[None], dk)  # [1, count, 1, dk]
        return np.asarray(cos)[0, :, 0], np.asarray(sin)[0, :, 0]


def _lookup(table: tuple[np.ndarray, np.ndarray], pos: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The table rows of positions [B, T] -> (cos, sin), each [B, T, 1, dk]."""
    return tuple(jnp.take(jnp.asarray(x), pos, axis=0)[:, :, None, :] for x in table)


def _rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """`phoenix.transformer.rotate` (x·cos + [−x2, x1]·sin, x = [x1, x2] [B, T, N, dk]) with the
    halves swapped by a roll and the sign put on sin: [−x2, x1]·sin = [x2, x1]·[−sin1, sin2]
    exactly, and on a CPU the negate-and-concatenate of bfloat16 halves inside the fused loop
    cost 8 % of a mini ranking call. Equal to it up to the rounding of the multiply-adds (XLA
    contracts the two forms differently: 3e-7 in float32 probabilities). The reference path and
    training keep upstream's form, so the bundled checkpoints stay reproducible bit for bit."""
    half = x.shape[-1] // 2
    sign = jnp.concatenate([-jnp.ones(half, sin.dtype), jnp.ones(half, sin.dtype)])  # [dk]
    return (x * cos + jnp.roll(x, half, axis=-1) * (sin * sign)).astype(x.dtype)


def _capped(logits: jax.Array, multiplier: float) -> jax.Array:
    """Scaled and soft-capped attention logits in float32 (`attention_logits_to_weights`)."""
    logits = logits.astype(jnp.float32) * multiplier
    return ATTN_SOFT_CAP * jnp.tanh(logits / ATTN_SOFT_CAP)


def _embed_fn(cfg: PhoenixConfig):
    def fn(batch: RecsysBatch, emb: RecsysEmbeddings):
        model = PhoenixModel(cfg, transformer=None)
        return model.embed_user_history(batch, emb), model.embed_candidates(batch, emb)

    return hk.without_apply_rng(hk.transform(fn))


def cached_logits(
    params: dict, cfg: PhoenixConfig, batch: RecsysBatch, emb: RecsysEmbeddings
) -> jax.Array:
    """Logits [B, N, A] for N candidates (any N) in one pass; the batch's candidate arrays have
    N entries, padding slots have hash 0."""
    t = cfg.transformer
    dtype = jnp.dtype(cfg.fprop_dtype)
    hist_tokens, cand_tokens = _embed_fn(cfg).apply(params, batch, emb)
    x_u = hist_tokens.astype(dtype)  # [B, U, D], U = 1 + S
    x_c = cand_tokens.astype(dtype)  # [B, N, D]
    b, u, _ = x_u.shape
    n = x_c.shape[1]
    s = u - 1
    mask = padding_mask(batch)  # [B, U + N]
    key_valid = mask[:, :u]  # [B, U]
    if cfg.right_anchored_rope:
        pos_u = right_anchored_positions(mask, 1, s, n)[:, :u]
        pos_c = jnp.where(mask[:, u:], 1 + s, 0).astype(jnp.int32)  # padded slots sit at 0
    else:
        pos_u = jnp.broadcast_to(jnp.arange(u, dtype=jnp.int32), (b, u))
        slots = jnp.arange(n, dtype=jnp.int32) % cfg.candidate_seq_len
        pos_c = jnp.broadcast_to(1 + s + slots, (b, n))
    causal = jnp.asarray(make_recsys_attn_mask(u, u))[None, None] > 0  # [1, 1, U, U]
    mask_uu = causal & key_valid[:, None, None, :]  # [B, 1, U, U]
    # the rotary tables, looked up by position from a host table (XLA would otherwise compute
    # cos/sin inside every consumer, element by element)
    table = _rope_table(u + cfg.candidate_seq_len + 1, t.key_size)
    rope_u, rope_c = _lookup(table, pos_u), _lookup(table, pos_c)  # each (cos, sin) [B, T, 1, dk]
    for i in range(t.num_layers):
        x_u, x_c = _layer(params, f"transformer/decoder_layer_{i}", cfg, x_u, x_c, rope_u, rope_c,
                          mask_uu, key_valid, mask[:, u:])  # fmt: skip
    out = _rms(x_c, params["phoenix_model/rms_norm"]["scale"])
    return head_logits(out, params["phoenix_model"]["unembeddings"])


def _layer(params, pre, cfg, x_u, x_c, rope_u, rope_c, mask_uu, key_valid, self_valid):
    """One decoder layer over user+history [B, U, D] and candidates [B, N, D] (`rope_u`,
    `rope_c`: their rotary tables); `self_valid` [B, N] masks a padded candidate's own key, as
    the full mask does."""
    t = cfg.transformer
    dtype = x_u.dtype
    h, kv, dk = t.num_q_heads, t.num_kv_heads, t.key_size
    g = h // kv
    mha = f"{pre}/multi_head_attention"
    b, u, _ = x_u.shape
    n = x_c.shape[1]

    def norm(name: str, x: jax.Array) -> jax.Array:
        return _rms(x, params[f"{pre}/{name}"]["scale"])

    def qkv(x: jax.Array, rope: tuple[jax.Array, jax.Array]):
        bb, tt, _ = x.shape
        q = _rotate(dense(x, params[f"{mha}/query"]["w"]).reshape(bb, tt, h, dk), *rope)
        k = _rotate(dense(x, params[f"{mha}/key"]["w"]).reshape(bb, tt, kv, dk), *rope)
        v = dense(x, params[f"{mha}/value"]["w"]).reshape(bb, tt, kv, dk)
        return q.reshape(bb, tt, kv, g, dk), k, v

    def block(x: jax.Array, attn: jax.Array) -> jax.Array:
        hdn = x + norm("rms_norm_1", dense(attn, params[f"{mha}/linear"]["w"]))
        y = norm("rms_norm_2", hdn)
        gate = dense(y, params[f"{pre}/linear"]["w"])
        value = dense(y, params[f"{pre}/linear_v"]["w"])
        ffn = dense(gated_gelu(gate, value), params[f"{pre}/linear_1"]["w"])
        return hdn + norm("rms_norm_3", ffn)

    # user + history: causal self-attention (their keys/values are what candidates see)
    q_u, k_u, v_u = qkv(norm("rms_norm", x_u), rope_u)
    logits = einsum("btkgd,bskd->bkgts", q_u, k_u)
    w = attention_logits_to_weights(logits, mask_uu[:, :, None], t.attn_output_multiplier, dtype)
    attn_u = einsum("bkgts,bskd->btkgd", w, v_u).reshape(b, u, h * dk)
    # candidates: the cached user+history keys/values, and themselves. The softmax over the
    # U history keys and the candidate's own key is taken in two parts (no [N, U + 1] concat):
    # each part capped and masked as `attention_logits_to_weights`, one max, one sum.
    q_c, k_c, v_c = qkv(norm("rms_norm", x_c), rope_c)
    q_t = jnp.transpose(q_c, (0, 2, 3, 1, 4))  # [B, KV, G, N, dk]
    f32 = jnp.float32
    l_hist = _capped(einsum("bkgnd,bskd->bkgns", q_t, k_u), t.attn_output_multiplier)
    l_self = _capped(einsum("bkgnd,bnkd->bkgn", q_t, k_c), t.attn_output_multiplier)
    l_hist = jnp.where(key_valid[:, None, None, None, :], l_hist, MASK_VALUE)
    l_self = jnp.where(self_valid[:, None, None, :], l_self, MASK_VALUE)
    top = jnp.maximum(jnp.max(l_hist, axis=-1), l_self)  # [B, KV, G, N]
    e_hist = jnp.exp(l_hist - top[..., None])
    e_self = jnp.exp(l_self - top)
    total = jnp.sum(e_hist, axis=-1) + e_self  # [B, KV, G, N]
    w_hist = (e_hist / total[..., None]).astype(dtype)  # [B, KV, G, N, U]
    w_self = (e_self / total).astype(dtype)  # [B, KV, G, N]
    # accumulate both parts in float32 and round once, as one einsum over all keys would
    from_hist = jnp.einsum("bkgns,bskd->bkgnd", w_hist, v_u, preferred_element_type=f32)
    from_self = jnp.einsum("bkgn,bnkd->bkgnd", w_self, v_c, preferred_element_type=f32)
    attn_c = jnp.transpose((from_hist + from_self).astype(dtype), (0, 3, 1, 2, 4))
    attn_c = attn_c.reshape(b, n, h * dk)
    return block(x_u, attn_u), block(x_c, attn_c)


def compute_weights(params: dict, cfg: PhoenixConfig) -> dict:
    """`params` with the transformer's matrices (`transformer/.../w`) in the compute dtype, the
    type `dense` multiplies them in: cast once when a model is loaded instead of in every call
    (the same rounding, so the same bits). Other params are shared, not copied."""
    dtype = jnp.dtype(cfg.fprop_dtype)
    return {
        module: {
            name: value.astype(dtype)
            if module.startswith("transformer/") and name == "w"
            else value
            for name, value in leaves.items()
        }
        for module, leaves in params.items()
    }


@functools.lru_cache(maxsize=8)
def cached_probs_fn(cfg: PhoenixConfig, sigmoid_in_compute_dtype: bool = False):
    """jit of sigmoid(cached_logits) for a config (recompiles only per candidate bucket): of the
    logits cast to float32, or (upstream's run_pipeline) of the compute-dtype logits."""

    def probs(params, batch, emb):
        return probabilities(cached_logits(params, cfg, batch, emb), sigmoid_in_compute_dtype)

    return jax.jit(full_precision(probs))


def probabilities(logits: jax.Array, in_compute_dtype: bool = False) -> jax.Array:
    """sigmoid of logits [..., A] (compute dtype): in float32, or in the logits' own dtype as
    upstream's run_pipeline does (bfloat16 probabilities, returned in that dtype: a cast inside
    the jitted function would let XLA skip the bfloat16 rounding)."""
    if in_compute_dtype:
        return jax.nn.sigmoid(logits)
    return jax.nn.sigmoid(logits.astype(jnp.float32))
