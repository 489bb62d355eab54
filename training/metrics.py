"""Offline metrics: AUC, log-loss, NDCG@K, HR@K, recall@K (plain numpy, tested by hand)."""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC via the rank-sum statistic, ties counted half. NaN if one class is absent."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    return float((r[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(np.asarray(probs, np.float64), EPS, 1 - EPS)
    y = np.asarray(labels, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ndcg_at_k(scores: np.ndarray, relevance: np.ndarray, k: int = 10) -> float:
    """Binary-relevance NDCG@k of one list. NaN when nothing is relevant."""
    rel = np.asarray(relevance, np.float64)
    if rel.sum() == 0:
        return float("nan")
    top = np.lexsort((np.arange(len(scores)), -np.asarray(scores, np.float64)))[:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(np.sum(rel[top] * discounts[: len(top)]))
    ideal = np.sort(rel)[::-1][:k]
    return dcg / float(np.sum(ideal * discounts[: len(ideal)]))


def hit_rate_at_k(scores: np.ndarray, relevance: np.ndarray, k: int = 10) -> float:
    """1 if any relevant item is in the top k, else 0. NaN when nothing is relevant."""
    rel = np.asarray(relevance).astype(bool)
    if not rel.any():
        return float("nan")
    top = np.lexsort((np.arange(len(scores)), -np.asarray(scores, np.float64)))[:k]
    return float(rel[top].any())


def recall_at_k(ranked_ids: np.ndarray, relevant_ids: np.ndarray) -> float:
    """|top ∩ relevant| / |relevant| for an already-truncated ranking. NaN when none relevant."""
    relevant = np.unique(relevant_ids)
    if len(relevant) == 0:
        return float("nan")
    return float(np.isin(relevant, ranked_ids).sum() / len(relevant))
