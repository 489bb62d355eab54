"""The Grok-style decoder: the recsys mask, RoPE, positions, FFN width, norms."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from phoenix.config import TransformerConfig
from phoenix.transformer import apply_rope, make_recsys_attn_mask, right_anchored_positions


def grid(rows: str) -> np.ndarray:
    return np.array([[int(ch) for ch in row] for row in rows.split()], dtype=np.float32)


def test_recsys_mask_matches_the_upstream_ascii_grid():
    # tokens:          u h1 h2 c1 c2 c3
    expected = grid(
        """
        100000
        110000
        111000
        111100
        111010
        111001
        """
    )  # user+history causal; each candidate sees user+history and itself only
    np.testing.assert_array_equal(make_recsys_attn_mask(6, 3), expected)


def test_recsys_mask_with_offset_one_has_only_the_user_before_candidates():
    np.testing.assert_array_equal(make_recsys_attn_mask(4, 1), grid("1000 1100 1010 1001"))


def test_recsys_mask_with_offset_at_end_is_plain_causal():
    np.testing.assert_array_equal(make_recsys_attn_mask(5, 5), np.tril(np.ones((5, 5))))


@pytest.mark.parametrize(
    ("emb", "widening", "ffn"), [(128, 2.0, 176), (64, 2.0, 88), (32, 2.0, 48)]
)
def test_ffn_size_rounds_two_thirds_up_to_a_multiple_of_eight(emb, widening, ffn):
    cfg = TransformerConfig(emb, 16, 2, 2, 1, widening_factor=widening)
    assert cfg.ffn_size == ffn


def test_rope_is_identity_at_position_zero_and_preserves_norm():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, 3, 2, 8)), jnp.float32)
    out = apply_rope(x, jnp.zeros((1, 3), jnp.int32))
    np.testing.assert_allclose(out, x, atol=1e-6)
    out = apply_rope(x, jnp.array([[1, 7, 100]]))
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)


def test_rope_uses_the_neox_half_split_convention():
    # dk=4: pairs are (x0, x2) and (x1, x3), frequencies 1 and 1/100.
    x = jnp.array([[[[1.0, 0.0, 0.0, 0.0]]]])
    out = np.asarray(apply_rope(x, jnp.array([[1]])))[0, 0, 0]
    np.testing.assert_allclose(out, [np.cos(1.0), 0.0, np.sin(1.0), 0.0], atol=1e-6)


def test_rope_dot_products_depend_only_on_relative_position():
    rng = np.random.default_rng(1)
    q = jnp.asarray(rng.standard_normal((1, 1, 1, 16)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((1, 1, 1, 16)), jnp.float32)

    def dot(m, n):
        return float(jnp.sum(apply_rope(q, jnp.array([[m]])) * apply_rope(k, jnp.array([[n]]))))

    assert dot(5, 2) == pytest.approx(dot(13, 10), rel=1e-4)
    assert dot(5, 2) != pytest.approx(dot(5, 3), rel=1e-3)


def test_right_anchored_positions_put_newest_history_at_s_and_candidates_after():
    s, c = 5, 3
    valid_hist = [1, 1, 1, 0, 0]  # L = 3, left-aligned
    mask = jnp.array([[1, *valid_hist, 1, 1, 0]], bool)  # user, history, candidates (last padded)
    pos = np.asarray(right_anchored_positions(mask, 1, s, c))
    assert pos.shape == (1, 1 + s + c)
    assert pos[0, 0] == 0  # prefix
    np.testing.assert_array_equal(pos[0, 1:4], [3, 4, 5])  # 1 + S − L + i, newest at S
    np.testing.assert_array_equal(pos[0, 4:6], [0, 0])  # padded history
    np.testing.assert_array_equal(pos[0, 6:8], [6, 6])  # all candidates share 1 + S
    assert pos[0, 8] == 0  # padded candidate
