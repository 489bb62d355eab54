"""Input reduction: how hashed ids, actions and context become one token per position.

Re-implements block_user_reduce / block_history_reduce / block_candidate_reduce and the post-age
and dwell helpers of phoenix/recsys_model.py @0bfc279 (phoenix_spec.md §1.3, §5.3–5.4).

Combining rule: concatenate the hash embeddings (in hash order), then one bias-free projection.
Projections compute in float32. The `block_*` functions create haiku params, so they must be
called inside the model module (`phoenix_model/...` or `phoenix_retrieval_model/...`).
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix.batch import Array


def post_age_bucket(
    impr_ts: Array, creation_ts: Array, granularity_mins: int, vocab_size: int
) -> Array:
    """Post-age bucket per candidate: (age_min // granularity) + 1 clipped to [0, vocab−1];
    0 when the age is negative or either timestamp is 0 (missing).

    Args:
        impr_ts, creation_ts: [B, C] int seconds.
    Returns:
        [B, C] int32 buckets (1 = 0–59 min at the default granularity, vocab−1 = overflow).
    """
    xp = jnp if isinstance(impr_ts, jax.Array) or isinstance(creation_ts, jax.Array) else np
    impr = xp.asarray(impr_ts).astype(xp.int64 if xp is np else jnp.int32)
    created = xp.asarray(creation_ts).astype(impr.dtype)
    age_s = impr - created
    bucket = xp.clip(age_s // 60 // granularity_mins + 1, 0, vocab_size - 1)
    invalid = (age_s < 0) | (impr == 0) | (created == 0)
    return xp.where(invalid, 0, bucket).astype(xp.int32)


def normalize_continuous(values: Array, scale: float = 30.0, use_log: bool = False) -> Array:
    """Dwell normalisation: clip(v, 0, scale)/scale, or log1p(clip(v, 0, scale))/log1p(scale)."""
    xp = jnp if isinstance(values, jax.Array) else np
    v = xp.clip(xp.asarray(values, dtype=xp.float32), 0.0, scale)
    if use_log:
        return xp.log1p(v) / np.log1p(scale)
    return v / scale


def _project(x: jax.Array, name: str, out_dim: int) -> jax.Array:
    """x [..., I] @ param `name` [I, out] in float32, cast back to x's dtype."""
    w = hk.get_parameter(name, (x.shape[-1], out_dim), jnp.float32, init=_default_init)
    return jnp.dot(x.astype(jnp.float32), w).astype(x.dtype)


def _default_init(shape: tuple[int, ...], dtype: jnp.dtype) -> jax.Array:
    return hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")(shape, dtype)


def product_surface_embedding(surface: Array, vocab_size: int, emb_size: int) -> jax.Array:
    """one_hot(surface, V) @ `product_surface_embedding_table` [V, D]; out of range -> 0.

    [...] int -> [..., D] float32."""
    table = hk.get_parameter(
        "product_surface_embedding_table", (vocab_size, emb_size), jnp.float32, init=_default_init
    )
    return jax.nn.one_hot(surface, vocab_size, dtype=jnp.float32) @ table


def action_embedding(actions: Array, emb_size: int) -> jax.Array:
    """Signed multi-hot (2a − 1) @ `action_projection` [A, D], zeroed where no action is set.

    Args:
        actions: [B, S, A] float32.
    Returns:
        [B, S, D] float32.
    """
    actions = jnp.asarray(actions, jnp.float32)
    proj = hk.get_parameter(
        "action_projection", (actions.shape[-1], emb_size), jnp.float32, init=_default_init
    )
    emb = (2.0 * actions - 1.0) @ proj
    has_action = jnp.any(actions != 0, axis=-1, keepdims=True)
    return emb * has_action.astype(emb.dtype)


def dwell_embedding(
    continuous: Array | None,
    shape: tuple[int, int],
    hidden: int,
    emb_size: int,
    scale: float,
    use_log: bool,
) -> jax.Array:
    """gelu(norm(dwell)[..., None] @ proj1 [1, hidden]) @ proj2 [hidden, D]; zeros input if None.

    Args:
        continuous: [B, S, 8] float32 (slot 1 = dwell seconds) or None.
        shape: (B, S).
    Returns:
        [B, S, D] float32.
    """
    if continuous is None:
        dwell = jnp.zeros(shape, jnp.float32)
    else:
        dwell = normalize_continuous(jnp.asarray(continuous)[:, :, 1], scale, use_log)
    w1 = hk.get_parameter("history_dwell_time_proj1", (1, hidden), jnp.float32, init=_default_init)
    w2 = hk.get_parameter(
        "history_dwell_time_proj2", (hidden, emb_size), jnp.float32, init=_default_init
    )
    return jax.nn.gelu(dwell[..., None] @ w1) @ w2


def sid_embedding(codes: Array | None, shape: tuple[int, int], levels: int, codebook: int,
                  emb_size: int) -> jax.Array:  # fmt: skip
    """Post semantic-id embedding (phoenix_spec.md §4.3, summed levels, no hash level): level k's
    code c in 0..codebook reads row k·(codebook + 1) + c of `sid_embedding_table`
    [levels·(codebook + 1), D]; code 0 (missing) reads zeros; the levels are summed.

    Args:
        codes: [B, N, levels] int (1-indexed, 0 = missing), or None (all missing).
        shape: (B, N).
    Returns:
        [B, N, D] float32.
    """
    rows = levels * (codebook + 1)
    table = hk.get_parameter("sid_embedding_table", (rows, emb_size), jnp.float32,
                             init=hk.initializers.TruncatedNormal(0.02))  # fmt: skip
    if codes is None:
        return jnp.zeros((*shape, emb_size), jnp.float32)
    codes = jnp.clip(jnp.asarray(codes, jnp.int32), 0, codebook)  # [B, N, L]
    index = codes + (codebook + 1) * jnp.arange(levels, dtype=jnp.int32)  # [B, N, L]
    emb = jnp.take(table, index, axis=0) * (codes != 0)[..., None]  # [B, N, L, D], row 0 zero
    return jnp.sum(emb, axis=2)


def block_user_reduce(user_emb: Array, emb_size: int) -> jax.Array:
    """User token: [B, Hu, D] -> reshape [B, 1, Hu·D] @ `proj_mat_1` -> [B, 1, D]."""
    b, hu, d = user_emb.shape
    return _project(jnp.asarray(user_emb).reshape(b, 1, hu * d), "proj_mat_1", emb_size)


def block_history_reduce(parts: list[jax.Array], emb_size: int) -> jax.Array:
    """History token: concat(post [B,S,Hi·D], author [B,S,Ha·D], action, surface[, dwell]
    [, SID]) along features, then `proj_mat_3` -> [B, S, D]."""
    return _project(jnp.concatenate(parts, axis=-1), "proj_mat_3", emb_size)


def block_candidate_reduce(parts: list[jax.Array], emb_size: int) -> jax.Array:
    """Candidate token: concat(post, author, surface, post age[, SID]) then `proj_mat_2` ->
    [B, C, D]."""
    return _project(jnp.concatenate(parts, axis=-1), "proj_mat_2", emb_size)


def flatten_hashes(emb: Array) -> jax.Array:
    """[B, N, K, D] -> [B, N, K·D] (hash embeddings concatenated in hash order)."""
    b, n, k, d = emb.shape
    return jnp.asarray(emb, jnp.float32).reshape(b, n, k * d)
