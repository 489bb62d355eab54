"""The bootstrap over users, vectorised: every replicate resamples the audit's users with
replacement (fixed seed), and every statistic is a function of per-user aggregates summed with
the replicate's weights — `W @ X` with W [B, U] the number of times each user is drawn — so one
matrix product gives a statistic's B replicates at once. Pooled distributions (impressions per
author, post ages) are sparse per-user counts, summed the same way (`S.T @ W.T`).

Intervals are percentile intervals (2.5 %, 97.5 %) of the replicates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.sparse as sp

SEED = 0
REPLICATES = 500
LEVEL = 0.95
DENSE_COLUMNS = 1024  # up to this many columns a per-user matrix is multiplied densely


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval (NaN where undefined)."""

    value: float
    lo: float
    hi: float

    def to_json(self) -> dict[str, Any]:
        return {k: (None if not np.isfinite(v) else round(float(v), 6))
                for k, v in dataclasses.asdict(self).items()}  # fmt: skip


class Bootstrap:
    """Replicate weights over `n_users` users: W [B, U] float32 (multinomial counts, each row
    sums to U), drawn once from `seed` and shared by every statistic (so intervals of
    differences between arms are paired)."""

    def __init__(self, n_users: int, replicates: int = REPLICATES, seed: int = SEED):
        if replicates < 0 or n_users < 0:
            raise ValueError("replicates and users must be non-negative")
        self.n_users = n_users
        self.replicates = replicates
        rng = np.random.default_rng(seed)
        w = np.zeros((replicates, n_users), np.float32)
        chunk = max(1, (1 << 22) // max(n_users, 1))
        for a in range(0, replicates, chunk):
            b = min(replicates, a + chunk)
            draws = rng.integers(0, n_users, (b - a, n_users)) if n_users else None
            if draws is not None:
                flat = (draws + np.arange(b - a)[:, None] * n_users).ravel()
                w[a:b] = np.bincount(flat, minlength=(b - a) * n_users).reshape(b - a, n_users)
        self.w = w  # [B, U]

    def sums(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point, replicates) of Σ_u x[u]: x [U] or [U, K] -> [], [B] or [K], [B, K]."""
        x = np.asarray(x, np.float64)
        point = x.sum(axis=0)
        reps = self.w @ x.astype(np.float32)
        return point, reps.astype(np.float64)

    def sparse_sums(self, s: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
        """(point [K], replicates [B, K] float32) of the column sums of a sparse [U, K] matrix
        (few columns: a dense BLAS product; many: sparse × dense)."""
        point = np.asarray(s.sum(axis=0)).ravel().astype(np.float64)
        if self.replicates == 0:
            return point, np.zeros((0, s.shape[1]), np.float32)
        if s.shape[1] <= DENSE_COLUMNS:
            return point, self.w @ s.astype(np.float32).toarray()  # [B, U] @ [U, K]
        st = s.T.tocsr().astype(np.float32, copy=False)  # [K, U] (free from CSC)
        return point, np.asarray((st @ self.w.T).T)  # [B, K]


def interval(point: float | np.ndarray, reps: np.ndarray) -> Estimate | list[Estimate]:
    """Percentile interval of replicates [B] (or [B, K] -> one Estimate per column)."""
    reps = np.asarray(reps, np.float64)
    point = np.asarray(point, np.float64)
    q = ((1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100)
    if reps.shape[0] == 0:
        lo = hi = np.full(point.shape, np.nan)
    else:
        with np.errstate(invalid="ignore"), _quiet():
            finite = np.where(np.isfinite(reps), reps, np.nan)
            lo, hi = np.nanpercentile(finite, q, axis=0)
    if point.ndim == 0:
        return Estimate(float(point), float(lo), float(hi))
    return [Estimate(float(p), float(a), float(b)) for p, a, b in zip(point, lo, hi, strict=True)]


def ratio(boot: Bootstrap, num: np.ndarray, den: np.ndarray) -> Estimate | list[Estimate]:
    """Σ num / Σ den over users (num, den [U] or [U, K])."""
    pn, rn = boot.sums(num)
    pd, rd = boot.sums(den)
    with np.errstate(invalid="ignore", divide="ignore"):
        return interval(pn / pd, rn / rd)


class _quiet:
    """Silence numpy's all-NaN-slice warnings inside a block."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
