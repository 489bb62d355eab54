"""Input features: post-age buckets, dwell normalisation, action and surface embeddings."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import features


def _bucket(age_min, granularity=60, vocab=82, impr=1_700_000_000):
    created = impr - np.asarray(age_min) * 60
    return np.asarray(
        features.post_age_bucket(np.full_like(created, impr), created, granularity, vocab)
    )


@pytest.mark.parametrize(
    ("age_min", "bucket"),
    [(30, 1), (0, 1), (59, 1), (60, 2), (120, 3), (4799, 80), (4800, 81), (5000, 81)],
)
def test_post_age_bucket_is_hours_plus_one_with_overflow(age_min, bucket):
    assert _bucket([age_min])[0] == bucket


def test_post_age_bucket_is_zero_for_missing_or_negative_ages():
    impr = np.array([1_700_000_000, 0, 1_700_000_000, 1_700_000_000])
    created = np.array([0, 1_600_000_000, 1_700_000_600, 1_699_998_200])
    np.testing.assert_array_equal(features.post_age_bucket(impr, created, 60, 82), [0, 0, 0, 1])


def test_post_age_bucket_batch_matches_upstream_example():
    impr = np.full(3, 1_700_000_000)
    created = np.array([impr[0] - 30 * 60, impr[0] - 120 * 60, 0])
    np.testing.assert_array_equal(features.post_age_bucket(impr, created, 60, 82), [1, 3, 0])


def test_post_age_bucket_works_on_jax_arrays_too():
    impr = jnp.array([[1_700_000_000, 1_700_000_000]])
    created = jnp.array([[1_700_000_000 - 30 * 60, 0]])
    np.testing.assert_array_equal(features.post_age_bucket(impr, created, 60, 82), [[1, 0]])


def test_continuous_normalisation_linear_log_and_clamp():
    np.testing.assert_allclose(features.normalize_continuous([0, 15, 30, 60], 30), [0, 0.5, 1, 1])
    assert features.normalize_continuous([30.0], 30, use_log=True)[0] == pytest.approx(1.0)
    np.testing.assert_allclose(features.normalize_continuous([-5, 0, 5, 15], 10), [0, 0, 0.5, 1])


def _run(fn, *args):
    t = hk.without_apply_rng(hk.transform(fn))
    params = t.init(jax.random.PRNGKey(0), *args)
    return params, t.apply(params, *args)


def test_action_embedding_is_signed_and_zero_for_empty_slots():
    actions = np.array([[[1, 0, 1], [0, 0, 0]]], np.float32)  # [B=1, S=2, A=3]
    params, out = _run(lambda a: features.action_embedding(a, 4), actions)
    proj = np.asarray(params["~"]["action_projection"])
    np.testing.assert_allclose(out[0, 0], np.array([1, -1, 1]) @ proj, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[0, 1], np.zeros(4))


def test_product_surface_out_of_range_gives_zero_vector():
    params, out = _run(
        lambda s: features.product_surface_embedding(s, 16, 4), np.array([[3, 16, -1]])
    )
    table = np.asarray(params["~"]["product_surface_embedding_table"])
    np.testing.assert_allclose(out[0, 0], table[3])
    np.testing.assert_array_equal(out[0, 1:], np.zeros((2, 4)))


def test_dwell_embedding_is_exactly_zero_without_continuous_actions():
    params, out = _run(lambda: features.dwell_embedding(None, (1, 3), 8, 4, 30.0, False))
    assert np.all(np.asarray(out) == 0)
