"""Exact top-K search, batched over users, and batched user encoding."""

from __future__ import annotations

import numpy as np
import pytest

from phoenix import search
from phoenix.runtime import Retriever
from tests.test_models import random_history


def _brute(scores: np.ndarray, k: int) -> list[list[int]]:
    return [sorted(range(len(row)), key=lambda i: (-row[i], i))[:k] for row in scores]


def test_search_equals_a_full_sort_per_user():
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((300, 8), dtype=np.float32)
    queries = rng.standard_normal((5, 8), dtype=np.float32)
    idx, top = search.search(queries, corpus, 17)
    scores = (corpus @ queries.T).T  # the search's product layout (the same bits on this CPU)
    assert idx.tolist() == _brute(scores, 17)
    np.testing.assert_array_equal(top, np.take_along_axis(scores, idx, axis=1))


def test_search_with_ties_returns_the_k_best_by_score_then_lowest_index():
    rng = np.random.default_rng(0)
    corpus = rng.integers(-3, 4, (300, 8)).astype(np.float32)  # many exact ties
    queries = rng.integers(-2, 3, (5, 8)).astype(np.float32)
    idx, top = search.search(queries, corpus, 17)
    scores = queries @ corpus.T  # small integers: exact in any summation order
    assert idx.tolist() == _brute(scores, 17)  # ties at the K-th place: the lowest indices
    np.testing.assert_array_equal(top, np.take_along_axis(scores, idx, axis=1))


@pytest.mark.parametrize(("chunk", "group"), [(64, 4), (50, 3), (1000, 2), (7, 1)])
def test_two_stage_search_equals_a_full_sort_with_ties(monkeypatch, chunk, group):
    monkeypatch.setattr(search, "SEARCH_CHUNK", chunk)
    monkeypatch.setattr(search, "GROUP", group)
    rng = np.random.default_rng(group)
    corpus = rng.integers(-2, 3, (2003, 4)).astype(np.float32)  # ties everywhere
    queries = rng.integers(-2, 3, (6, 4)).astype(np.float32)
    scores = queries @ corpus.T
    for k in (1, 30, 2003):
        idx, top = search.search(queries, corpus, k)
        assert idx.tolist() == _brute(scores, k)
        np.testing.assert_array_equal(top, np.take_along_axis(scores, idx, axis=1))


def test_search_padded_to_fixed_rows_equals_unpadded_and_refuses_more_queries():
    rng = np.random.default_rng(4)
    corpus = rng.integers(-3, 4, (900, 8)).astype(np.float32)
    queries = rng.integers(-2, 3, (3, 8)).astype(np.float32)
    plain = search.search(queries, corpus, 20)
    padded = search.search(queries, corpus, 20, rows=8)
    np.testing.assert_array_equal(plain[0], padded[0])
    np.testing.assert_array_equal(plain[1], padded[1])
    with pytest.raises(ValueError, match="3 queries for products of 2 rows"):
        search.search(queries, corpus, 20, rows=2)


def test_search_refuses_non_finite_queries():
    corpus = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="NaN or inf"):
        search.search(np.array([[np.nan, 0, 0, 0]], np.float32), corpus, 2)


def test_search_blocks_of_users_do_not_change_results(monkeypatch):
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((500, 16), dtype=np.float32)
    queries = rng.standard_normal((9, 16), dtype=np.float32)
    whole = search.search(queries, corpus, 40)
    monkeypatch.setattr(search, "MAX_BLOCK_SCORES", 1000)  # two users per block
    blocked = search.search(queries, corpus, 40)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_allclose(whole[1], blocked[1], rtol=1e-6)  # BLAS order may differ


def test_top_k_handles_k_at_or_above_the_corpus_size_and_zero():
    scores = np.array([0.5, 2.0, 0.5, -1.0], np.float32)
    idx, top = search.top_k(scores, 10)
    assert idx.tolist() == [1, 0, 2, 3] and top.tolist() == [2.0, 0.5, 0.5, -1.0]
    assert search.top_k(scores, 0)[0].shape == (0,)


def test_device_corpus_matches_host_search():
    rng = np.random.default_rng(2)
    corpus = rng.standard_normal((400, 16), dtype=np.float32)
    queries = rng.standard_normal((3, 16), dtype=np.float32)
    host = search.search(queries, corpus, 25)
    dev = search.DeviceCorpus(corpus).search(queries, 25)
    np.testing.assert_array_equal(host[0], dev[0])
    np.testing.assert_allclose(host[1], dev[1], rtol=1e-5, atol=1e-5)


def test_encode_users_in_batches_equals_one_at_a_time(tiny_retrieval_ckpt):
    retriever = Retriever(tiny_retrieval_ckpt)
    rng = np.random.default_rng(3)
    histories = [random_history(retriever.config, rng, n, user_id=u + 1)
                 for u, n in enumerate([0, 3, 9, 40, 5])]  # fmt: skip
    batched = retriever.encode_users(histories, batch_size=2)
    single = np.stack([retriever.encode_user(h)[0] for h in histories])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_search_restores_the_callers_blas_thread_count():
    setter = search._blas_local_threads()
    if setter is None:
        pytest.skip("numpy's BLAS is not OpenBLAS with per-thread thread counts")
    before = setter(2)
    rng = np.random.default_rng(5)
    search.search(rng.standard_normal((3, 8), dtype=np.float32),
                  rng.standard_normal((500, 8), dtype=np.float32), 10)  # fmt: skip
    assert setter(before) == 2
