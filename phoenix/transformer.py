"""The Grok-style decoder used by both Phoenix models, and the recsys attention mask.

Re-implements phoenix/grok.py @0bfc279 (phoenix_spec.md §1.4–1.5). Parameter names equal
upstream's: `transformer/decoder_layer_N/{rms_norm,rms_norm_1,rms_norm_2,rms_norm_3}/scale`,
`.../multi_head_attention/{query,key,value,linear}/w`, `.../{linear,linear_v,linear_1}/w`.

Shapes: B batch, T sequence, D emb, H query heads, KV key/value heads, dk key size, F ffn width.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix.config import TransformerConfig

RMS_EPS = 1e-5
ROPE_BASE = 10000.0
ATTN_SOFT_CAP = 30.0
MASK_VALUE = -1e30


def make_recsys_attn_mask(seq_len: int, candidate_start_offset: int) -> np.ndarray:
    """The recsys mask [T, T] (1 = may attend): causal over user+history; each candidate attends
    to user+history and to itself only (phoenix_spec.md §1.4)."""
    mask = np.tril(np.ones((seq_len, seq_len), dtype=np.float32))
    o = candidate_start_offset
    mask[o:, o:] = 0
    idx = np.arange(o, seq_len)
    mask[idx, idx] = 1
    return mask


def right_anchored_positions(
    padding_mask: jax.Array, history_start: int, history_len: int, num_candidates: int
) -> jax.Array:
    """RoPE positions with the newest history item at `history_start + S − 1` (phoenix_spec §1.5).

    The prefix (user token) gets 0..history_start−1; valid history slot i gets
    history_start + S − L + i where L = #valid history (left-aligned); every candidate gets
    history_start + S; padded positions get 0.

    Args:
        padding_mask: [B, T] bool, T = history_start + S + C.
    Returns:
        [B, T] int32 positions.
    """
    b = padding_mask.shape[0]
    s, c = history_len, num_candidates
    hist_valid = padding_mask[:, history_start : history_start + s]  # [B, S]
    num_valid = jnp.sum(hist_valid, axis=1, keepdims=True).astype(jnp.int32)  # [B, 1]
    hist_pos = history_start + s - num_valid + jnp.arange(s, dtype=jnp.int32)[None]  # [B, S]
    prefix = jnp.broadcast_to(jnp.arange(history_start, dtype=jnp.int32), (b, history_start))
    cand = jnp.full((b, c), history_start + s, dtype=jnp.int32)
    pos = jnp.concatenate([prefix, hist_pos, cand], axis=1)  # [B, T]
    return jnp.where(padding_mask, pos, 0)


class RMSNorm(hk.Module):
    """RMSNorm with a [D] `scale` param (init 0, Grok convention)."""

    def __call__(self, x: jax.Array) -> jax.Array:  # [..., D] -> [..., D]
        scale = hk.get_parameter(
            "scale", (x.shape[-1],), jnp.float32, init=hk.initializers.Constant(0)
        )
        xf = x.astype(jnp.float32)
        normed = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + RMS_EPS)
        return (scale * normed).astype(x.dtype)


def dense(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., I] @ w [I, O] in x's dtype as an accelerator computes a bfloat16 product:
    products accumulated in float32, rounded once to x's dtype (float32 input: a plain float32
    product). Written out so that a CPU with bfloat16 dot instructions uses them; left to XLA, a
    bfloat16 x bfloat16 -> bfloat16 dot converts both operands to float32 first."""
    return jnp.dot(x, w.astype(x.dtype), preferred_element_type=jnp.float32).astype(x.dtype)


def einsum(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
    """`jnp.einsum(spec, a, b)` of two same-dtype operands with `dense`'s numerics: float32
    accumulation, one rounding to the operands' dtype."""
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32).astype(a.dtype)


def gated_gelu(gate: jax.Array, value: jax.Array) -> jax.Array:
    """gelu(gate) * value (tanh approximation) of two compute-dtype arrays, evaluated in float32
    and rounded once to their dtype, as XLA evaluates a fused elementwise chain on an accelerator
    (intermediate roundings are dropped there)."""
    f32 = jnp.float32
    return (jax.nn.gelu(gate.astype(f32)) * value.astype(f32)).astype(gate.dtype)


class Linear(hk.Module):
    """Bias-free linear; float32 weight `w` cast to the input dtype (init 0, Grok convention)."""

    def __init__(self, output_size: int, name: str):
        super().__init__(name=name)
        self.output_size = output_size

    def __call__(self, x: jax.Array) -> jax.Array:  # [..., I] -> [..., O]
        w = hk.get_parameter(
            "w", (x.shape[-1], self.output_size), jnp.float32, init=hk.initializers.Constant(0)
        )
        return dense(x, w)


def apply_rope(x: jax.Array, positions: jax.Array) -> jax.Array:
    """NeoX half-split rotary embedding, base 10000, computed in float32.

    Args:
        x: [B, T, N, dk].
        positions: [B, T] (int or float).
    Returns:
        [B, T, N, dk] in x's dtype.
    """
    return rotate(x, *rope_tables(positions, x.shape[-1]))


def rope_tables(positions: jax.Array, dk: int) -> tuple[jax.Array, jax.Array]:
    """cos and sin of the rotary phases: positions [B, T] -> two [B, T, 1, dk] float32."""
    inv_freq = 1.0 / (ROPE_BASE ** (jnp.arange(0, dk, 2, dtype=jnp.float32) / dk))  # [dk/2]
    phase = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, dk/2]
    phase = jnp.concatenate([phase, phase], axis=-1)[:, :, None, :]  # [B, T, 1, dk]
    return jnp.cos(phase), jnp.sin(phase)


def rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x [B, T, N, dk] rotated by the `rope_tables` of its positions, in x's dtype."""
    x1, x2 = jnp.split(x, 2, axis=-1)
    rotated = jnp.concatenate([-x2, x1], axis=-1)
    out = x * cos + rotated * sin
    return out.astype(x.dtype)


def attention_logits_to_weights(
    logits: jax.Array, mask: jax.Array, multiplier: float, dtype: jnp.dtype
) -> jax.Array:
    """Scale, soft-cap 30·tanh(x/30), mask with −1e30, softmax in float32, cast to `dtype`."""
    logits = logits.astype(jnp.float32) * multiplier
    logits = ATTN_SOFT_CAP * jnp.tanh(logits / ATTN_SOFT_CAP)
    logits = jnp.where(mask, logits, MASK_VALUE)
    return jax.nn.softmax(logits, axis=-1).astype(dtype)


class MultiHeadAttention(hk.Module):
    """GQA attention with RoPE and the soft-capped logits of Grok-1."""

    def __init__(self, cfg: TransformerConfig, name: str = "multi_head_attention"):
        super().__init__(name=name)
        self.cfg = cfg

    def __call__(
        self,
        x: jax.Array,  # [B, T, D]
        mask: jax.Array,  # [B, 1, T, T] bool
        positions: jax.Array,  # [B, T]
    ) -> jax.Array:  # [B, T, D]
        c = self.cfg
        b, t, _ = x.shape
        h, kv, dk = c.num_q_heads, c.num_kv_heads, c.key_size
        q = Linear(h * dk, name="query")(x).reshape(b, t, h, dk)
        k = Linear(kv * dk, name="key")(x).reshape(b, t, kv, dk)
        v = Linear(kv * dk, name="value")(x).reshape(b, t, kv, dk)
        q = apply_rope(q, positions)
        k = apply_rope(k, positions)
        q = q.reshape(b, t, kv, h // kv, dk)  # [B, T, KV, G, dk]
        logits = einsum("btkgd,bskd->bkgts", q, k)  # [B, KV, G, T, T]
        weights = attention_logits_to_weights(
            logits, mask[:, :, None], c.attn_output_multiplier, x.dtype
        )
        attn = einsum("bkgts,bskd->btkgd", weights, v).reshape(b, t, h * dk)
        return Linear(c.emb_size, name="linear")(attn)


class DecoderLayer(hk.Module):
    """Sandwich-norm block: h = x + N1(MHA(N0(x))); h = h + N3(FFN(N2(h)))."""

    def __init__(self, cfg: TransformerConfig, name: str):
        super().__init__(name=name)
        self.cfg = cfg

    def __call__(self, x: jax.Array, mask: jax.Array, positions: jax.Array) -> jax.Array:
        c = self.cfg
        attn = MultiHeadAttention(c)(RMSNorm(name="rms_norm")(x), mask, positions)
        h = x + RMSNorm(name="rms_norm_1")(attn)
        y = RMSNorm(name="rms_norm_2")(h)
        # Gated GELU (tanh approximation): linear_1(gelu(linear(y)) * linear_v(y)).
        gate_v = Linear(c.ffn_size, name="linear_v")(y)
        gate = Linear(c.ffn_size, name="linear")(y)
        ffn = Linear(c.emb_size, name="linear_1")(gated_gelu(gate, gate_v))
        return h + RMSNorm(name="rms_norm_3")(ffn)


class Transformer(hk.Module):
    """The decoder stack. Created at top level so its params are `transformer/...`."""

    def __init__(self, cfg: TransformerConfig, name: str = "transformer"):
        super().__init__(name=name)
        self.cfg = cfg

    def __call__(
        self,
        x: jax.Array,  # [B, T, D] in fprop dtype
        padding_mask: jax.Array,  # [B, T] bool
        candidate_start_offset: int | None,
        positions: jax.Array | None = None,  # [B, T]; default arange(T)
    ) -> jax.Array:  # [B, T, D]
        b, t, _ = x.shape
        if candidate_start_offset is None:
            structure = np.tril(np.ones((t, t), dtype=np.float32))
        else:
            structure = make_recsys_attn_mask(t, candidate_start_offset)
        mask = (jnp.asarray(structure)[None, None] * padding_mask[:, None, None, :]) > 0
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        for i in range(self.cfg.num_layers):
            x = DecoderLayer(self.cfg, name=f"decoder_layer_{i}")(x, mask, positions)
        return x
