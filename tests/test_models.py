"""The haiku port: parameter trees equal upstream's, outputs equal an independent numpy
re-statement, and candidate isolation holds."""

from __future__ import annotations

import io
import json

import haiku as hk
import jax
import numpy as np
import pytest

from phoenix import retrieval
from phoenix.config import ModelType, Preset, param_count
from phoenix.inputs import UserHistory, embed_batch, make_batch
from phoenix.params import init_params, param_shapes, unflatten
from phoenix.ranker import ranker_forward
from phoenix.runtime import Ranker, Retriever
from phoenix.search import top_k
from tests import reference_numpy as ref
from tests.conftest import tiny_checkpoint


@pytest.mark.parametrize(
    ("model_type", "arrays", "count", "npz_bytes"),
    [("ranker", 55, 807_104, 3_245_976), ("retrieval", 51, 833_921, 3_352_372)],
)
def test_mini_param_tree_equals_upstream_names_shapes_and_file_size(
    upstream_dir, model_type, arrays, count, npz_bytes
):
    shapes = param_shapes(Preset.MINI.config(model_type))
    want = json.loads((upstream_dir / "param_tree.json").read_text())[model_type]
    assert shapes == {k: tuple(v) for k, v in want.items()}
    assert len(shapes) == arrays
    assert param_count(shapes) == count
    buf = io.BytesIO()  # np.savez of this tree has exactly the size of upstream's LFS file
    np.savez(buf, **{k: np.zeros(s, np.float32) for k, s in shapes.items()})
    assert buf.getbuffer().nbytes == npz_bytes


def random_history(cfg, rng, length, user_id=7):
    return UserHistory(
        user_id=user_id,
        post_ids=rng.integers(1, 2**62, size=length),
        author_ids=rng.integers(1, 10**9, size=length),
        actions=(rng.random((length, cfg.num_actions)) > 0.7).astype(np.float32),
        product_surface=rng.integers(0, 16, size=length),
        dwell_s=rng.exponential(10.0, size=length).astype(np.float32),
    )


def inputs(ckpt, rng, n_cand, hist_len=10, cand_posts=None):
    cfg = ckpt.config
    history = random_history(cfg, rng, hist_len)
    posts = rng.integers(1, 2**62, size=n_cand) if cand_posts is None else cand_posts
    authors = (posts % 1_000_003) + 1
    batch = make_batch(history, cfg, posts, authors, rng.integers(0, 16, size=n_cand))
    return history, batch, embed_batch(batch, ckpt.tables, cfg)


def apply_ranker(ckpt, batch, emb):
    fwd = hk.without_apply_rng(hk.transform(ranker_forward(ckpt.config)))
    return fwd.apply(unflatten(ckpt.params), batch, emb)


def test_fresh_init_gives_probability_one_half_everywhere():
    # Grok convention: linears and norm scales start at 0, so every branch is 0 (upstream demo).
    ckpt = tiny_checkpoint("ranker")
    params = init_params(ckpt.config)
    rng = np.random.default_rng(0)
    _, batch, emb = inputs(ckpt, rng, 8)
    fwd = hk.without_apply_rng(hk.transform(ranker_forward(ckpt.config)))
    probs = jax.nn.sigmoid(np.asarray(fwd.apply(params, batch, emb).logits, np.float32))
    np.testing.assert_array_equal(probs, 0.5)


def test_ranker_equals_independent_numpy_reference(tiny_ranker_ckpt):
    rng = np.random.default_rng(1)
    _, batch, emb = inputs(tiny_ranker_ckpt, rng, 8, hist_len=11)
    got = np.asarray(apply_ranker(tiny_ranker_ckpt, batch, emb).logits, np.float64)
    want = ref.ranker_logits(tiny_ranker_ckpt.params, tiny_ranker_ckpt.config, batch, emb)
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)
    assert np.std(want) > 0.1  # non-trivial outputs, so agreement means something


def test_user_tower_equals_independent_numpy_reference(tiny_retrieval_ckpt):
    rng = np.random.default_rng(2)
    _, batch, emb = inputs(tiny_retrieval_ckpt, rng, 0, hist_len=9)
    fwd = hk.without_apply_rng(hk.transform(retrieval.user_forward(tiny_retrieval_ckpt.config)))
    rep, _ = fwd.apply(unflatten(tiny_retrieval_ckpt.params), batch, emb)
    want = ref.user_representation(
        tiny_retrieval_ckpt.params, tiny_retrieval_ckpt.config, batch, emb
    )
    np.testing.assert_allclose(np.asarray(rep), want, atol=2e-5)


def test_candidate_isolation_other_candidates_leave_logits_bit_identical(tiny_ranker_ckpt):
    rng = np.random.default_rng(3)
    posts = rng.integers(1, 2**62, size=8)
    _, batch_a, emb_a = inputs(tiny_ranker_ckpt, np.random.default_rng(9), 8, cand_posts=posts)
    other = posts.copy()
    other[1:] = rng.integers(1, 2**62, size=7)
    other[5] = 0  # and one padded slot
    _, batch_b, emb_b = inputs(tiny_ranker_ckpt, np.random.default_rng(9), 8, cand_posts=other)
    la = np.asarray(apply_ranker(tiny_ranker_ckpt, batch_a, emb_a).logits)
    lb = np.asarray(apply_ranker(tiny_ranker_ckpt, batch_b, emb_b).logits)
    assert np.array_equal(la[0, 0], lb[0, 0])
    assert not np.allclose(la[0, 1], lb[0, 1])


def test_candidate_isolation_holds_in_bfloat16_on_the_mini_architecture(mini_ranker_ckpt):
    rng = np.random.default_rng(4)
    history = random_history(mini_ranker_ckpt.config, rng, 30)
    posts = rng.integers(1, 2**62, size=64)
    ranker = Ranker(mini_ranker_ckpt)
    a = ranker.rank(history, posts, posts % 997 + 1)
    swapped = posts.copy()
    swapped[1:] = rng.integers(1, 2**62, size=63)
    b = ranker.rank(history, swapped, swapped % 997 + 1)
    assert np.array_equal(a[0], b[0])


def test_rope_slot_positions_make_scores_depend_on_candidate_order(tiny_ranker_ckpt):
    # Upstream run_pipeline default (no right-anchored RoPE): a candidate's position is its slot.
    rng = np.random.default_rng(5)
    history = random_history(tiny_ranker_ckpt.config, rng, 6)
    posts = rng.integers(1, 2**62, size=8)
    ranker = Ranker(tiny_ranker_ckpt)
    a = ranker.rank(history, posts, posts % 97 + 1)
    b = ranker.rank(history, posts[::-1], posts[::-1] % 97 + 1)[::-1]
    assert np.abs(a - b).max() > 1e-4


def test_right_anchored_rope_makes_scores_permutation_invariant():
    ckpt = tiny_checkpoint("ranker", fprop_dtype="float32", right_anchored_rope=True)
    rng = np.random.default_rng(6)
    history = random_history(ckpt.config, rng, 6)
    posts = rng.integers(1, 2**62, size=8)
    ranker = Ranker(ckpt)
    a = ranker.rank(history, posts, posts % 97 + 1)
    b = ranker.rank(history, posts[::-1], posts[::-1] % 97 + 1)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_chunked_ranking_pads_the_last_chunk_without_changing_scores(tiny_ranker_ckpt):
    rng = np.random.default_rng(7)
    history = random_history(tiny_ranker_ckpt.config, rng, 6)
    posts = rng.integers(1, 2**62, size=19)  # chunks of 8: 8 + 8 + 3 (padded to 8)
    ranker = Ranker(tiny_ranker_ckpt)
    full = ranker.rank(history, posts, posts % 97 + 1)
    assert full.shape == (19, tiny_ranker_ckpt.config.num_actions)
    np.testing.assert_array_equal(full[16:], ranker.rank(history, posts[16:], posts[16:] % 97 + 1))


def test_bfloat16_compute_stays_close_to_float32(mini_ranker_ckpt):
    rng = np.random.default_rng(8)
    history = random_history(mini_ranker_ckpt.config, rng, 40)
    posts = rng.integers(1, 2**62, size=64)
    p16 = Ranker(mini_ranker_ckpt).rank(history, posts, posts % 997 + 1)
    p32 = Ranker(mini_ranker_ckpt.with_dtype("float32")).rank(history, posts, posts % 997 + 1)
    assert np.abs(p16 - p32).max() < 0.05
    assert np.abs(p16 - p32).max() > 0  # the dtype really changed


def test_retrieval_outputs_are_unit_norm_and_top_k_non_increasing(tiny_retrieval_ckpt):
    rng = np.random.default_rng(10)
    retriever = Retriever(tiny_retrieval_ckpt)
    rep, norm = retriever.encode_user(random_history(tiny_retrieval_ckpt.config, rng, 12))
    assert rep.shape == (tiny_retrieval_ckpt.config.emb_size,)
    assert np.linalg.norm(rep) == pytest.approx(1.0, abs=1e-5) and norm > 0
    posts = rng.integers(1, 2**62, size=50)
    corpus = retriever.encode_posts(posts, posts % 89 + 1, batch_size=16)
    np.testing.assert_allclose(np.linalg.norm(corpus, axis=1), 1.0, atol=1e-5)
    idx, scores = top_k(corpus @ rep, 10)
    assert idx.shape == (10,) and np.all((idx >= 0) & (idx < 50))
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_array_equal(idx, np.argsort(-(corpus @ rep), kind="stable")[:10])


def test_jax_top_k_with_mask_excludes_masked_rows():
    rng = np.random.default_rng(11)
    corpus = rng.standard_normal((20, 4)).astype(np.float32)
    user = rng.standard_normal((2, 4)).astype(np.float32)
    mask = np.ones(20, bool)
    best = int(np.argmax(corpus @ user[0]))
    mask[best] = False
    idx, scores = retrieval.retrieve_top_k(user, corpus, 5, mask)
    assert idx.shape == (2, 5) and best not in np.asarray(idx[0])
    assert np.all(np.diff(np.asarray(scores), axis=1) <= 0)


def test_mean_pool_candidate_tower_has_no_params():
    cfg = Preset.TEST.config(ModelType.RETRIEVAL, vocab=64).replace(enable_linear_proj=False)
    fwd = hk.transform(retrieval.candidate_forward(cfg))
    x = np.ones((1, 3, 2, cfg.emb_size), np.float32)
    params = fwd.init(jax.random.PRNGKey(0), x, x)
    assert jax.tree_util.tree_leaves(params) == []
    out = fwd.apply(params, None, x, x)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-6)
