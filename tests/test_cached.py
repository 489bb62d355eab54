"""The cached candidate-isolated ranking path equals upstream's chunked reference path."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from phoenix.cached import _rotate, bucket
from phoenix.runtime import Ranker
from phoenix.transformer import rope_tables, rotate
from tests.conftest import tiny_checkpoint
from tests.test_models import random_history


@pytest.mark.parametrize("right_anchored", [False, True])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65])
def test_cached_equals_reference_in_float32(n, right_anchored):
    ckpt = tiny_checkpoint("ranker", fprop_dtype="float32", right_anchored_rope=right_anchored)
    rng = np.random.default_rng(n)
    history = random_history(ckpt.config, rng, 11)
    posts = rng.integers(1, 2**62, n)
    posts[n // 2] = 0  # a padding slot inside the list
    ref = Ranker(ckpt).rank(history, posts, posts % 97 + 1)
    cached = Ranker(ckpt, path="cached").rank(history, posts, posts % 97 + 1)
    assert cached.shape == ref.shape == (n, ckpt.config.num_actions)
    assert np.abs(ref - cached).max() < 1e-5


@pytest.mark.parametrize(("dtype", "tol"), [("float32", 1e-3), ("bfloat16", 1e-2)])
def test_cached_equals_reference_on_the_mini_architecture(mini_ranker_ckpt, dtype, tol):
    ckpt = mini_ranker_ckpt.with_dtype(dtype)
    rng = np.random.default_rng(0)
    history = random_history(ckpt.config, rng, 127)
    posts = rng.integers(1, 2**62, 1500)
    ref = Ranker(ckpt).rank(history, posts, posts % 997 + 1)
    cached = Ranker(ckpt, path="cached").rank(history, posts, posts % 997 + 1)
    assert np.abs(ref - cached).max() < tol


def test_shape_buckets_do_not_change_results():
    ckpt = tiny_checkpoint("ranker", fprop_dtype="float32")
    rng = np.random.default_rng(3)
    history = random_history(ckpt.config, rng, 9)
    posts = rng.integers(1, 2**62, 200)
    ranker = Ranker(ckpt, path="cached")
    assert bucket(65, 8) == 128 and bucket(129, 8) == 192 and bucket(200, 8) == 256
    assert bucket(1536, 32) == 1536 and bucket(5000, 64) == 5056
    small = ranker.rank(history, posts[:65], posts[:65] % 97 + 1)  # bucket 128, 63 padded
    large = ranker.rank(history, posts, posts % 97 + 1)  # bucket 256
    np.testing.assert_allclose(small, large[:65], atol=1e-6)
    assert ranker.rank(history, posts[:0], posts[:0]).shape == (0, ckpt.config.num_actions)


def _dot_precisions(jaxpr) -> list:
    """The `precision` of every dot_general in a (closed) jaxpr and the jaxprs inside it."""
    found = []
    for eqn in getattr(jaxpr, "jaxpr", jaxpr).eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    found += _dot_precisions(sub)
    return found


def test_phoenix_calls_trace_every_matmul_at_full_float32_precision():
    """GPUs default to TF32 products (10-bit mantissa), which changed served feeds on an H200:
    the ranker (both paths), the user tower and the corpus top-K all ask for HIGHEST."""
    import jax
    from jax import lax

    from phoenix.cached import cached_probs_fn
    from phoenix.inputs import embed_batch, make_batch
    from phoenix.runtime import Retriever
    from phoenix.search import _device_top_k

    highest = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)
    ckpt = tiny_checkpoint("ranker", fprop_dtype="float32")
    rng = np.random.default_rng(5)
    history = random_history(ckpt.config, rng, 6)
    posts = rng.integers(1, 2**62, 9)
    ranker = Ranker(ckpt, path="cached")
    batch, emb = ranker.cached_inputs(history, posts, posts % 97 + 1)
    traced = [
        jax.make_jaxpr(cached_probs_fn(ckpt.config))(ranker.params, batch, emb),
        jax.make_jaxpr(Ranker(ckpt)._probs)(ranker.params, batch, emb),
    ]
    rckpt = tiny_checkpoint("retrieval", fprop_dtype="float32")
    retriever = Retriever(rckpt)
    ubatch = make_batch(history, rckpt.config, np.zeros(0, np.int64), np.zeros(0, np.int64))
    uemb = embed_batch(ubatch, rckpt.tables, rckpt.config)
    traced.append(jax.make_jaxpr(retriever._user)(retriever.params, ubatch, uemb))
    traced.append(
        jax.make_jaxpr(_device_top_k, static_argnums=2)(np.ones((2, 4)), np.ones((5, 4)), 3)
    )
    for jaxpr in traced:
        precisions = _dot_precisions(jaxpr)
        assert precisions and all(p == highest for p in precisions), precisions


def test_rank_many_feeds_an_accelerator_groups_of_users_with_the_same_probabilities(
    monkeypatch,
):
    from phoenix import runtime  # noqa: PLC0415

    ckpt = tiny_checkpoint("ranker", fprop_dtype="float32")
    rng = np.random.default_rng(3)
    histories = [random_history(ckpt.config, rng, 9, user_id=u + 1) for u in range(5)]
    posts = [rng.integers(1, 2**62, n) for n in (3, 70, 9, 0, 12)]
    authors = [p % 97 + 1 for p in posts]
    ranker = Ranker(ckpt, path="cached")
    one_a_call = ranker.rank_many(histories, posts, authors)  # the CPU's default: 1
    shapes = []
    real = runtime.cached_probs_fn

    def recording(cfg, *a):
        fn = real(cfg, *a)

        def call(params, batch, emb):
            shapes.append(batch.candidate_post_hashes.shape[:2])
            return fn(params, batch, emb)

        return call

    monkeypatch.setattr(runtime, "cached_probs_fn", recording)
    monkeypatch.setattr(runtime, "current_platform", lambda: "gpu")
    grouped = ranker.rank_many(histories, posts, authors)
    n = runtime.ACCELERATOR_USERS_PER_RANK_CALL
    # one call per candidate bucket (users 0, 2, 4 share the smallest), each of n users
    assert sorted(shapes) == sorted({(n, bucket(len(p), ckpt.config.candidate_seq_len))
                                     for p in posts if len(p)})  # fmt: skip
    alone = ranker.rank_many(histories[2:3], posts[2:3], authors[2:3])  # padded to n as well
    np.testing.assert_array_equal(alone[0], grouped[2])
    for a, b in zip(one_a_call, grouped, strict=True):
        assert a.shape == b.shape and (not len(a) or np.abs(a - b).max() < 1e-6)


def test_transformer_weights_cast_once_at_load_give_the_same_bits(mini_ranker_ckpt):
    from phoenix.cached import cached_probs_fn

    ranker = Ranker(mini_ranker_ckpt, path="cached")
    assert ranker.config.fprop_dtype == "bfloat16"
    w = ranker.cached_params["transformer/decoder_layer_0/linear"]["w"]
    assert w.dtype == np.dtype("bfloat16")  # cast at load, not in every call
    assert ranker.cached_params["phoenix_model"]["unembeddings"].dtype == np.float32
    rng = np.random.default_rng(8)
    history = random_history(ranker.config, rng, 20)
    posts = rng.integers(1, 2**62, 70)
    batch, emb = ranker.cached_inputs(history, posts, posts % 97 + 1)
    fn = cached_probs_fn(ranker.config)
    want = np.asarray(fn(ranker.params, batch, emb))  # float32 weights cast inside the call
    assert np.array_equal(np.asarray(fn(ranker.cached_params, batch, emb)), want)


@pytest.mark.parametrize(("dtype", "tol"), [("float32", 1e-6), ("bfloat16", 2**-7)])
def test_the_cached_paths_rotation_equals_upstreams_form(dtype, tol):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 9, 4, 32)), dtype)  # [B, T, N, dk]
    cos, sin = rope_tables(jnp.asarray(rng.integers(0, 300, (2, 9)), jnp.int32), 32)
    want = np.asarray(rotate(x, cos, sin), np.float32)
    got = np.asarray(_rotate(x, cos, sin), np.float32)
    assert got.dtype == want.dtype and got.shape == want.shape == (2, 9, 4, 32)
    # equal up to the rounding of the multiply-adds: relative to the values' size
    assert np.abs(got - want).max() <= tol * max(1.0, np.abs(want).max())
