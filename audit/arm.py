"""Per-arm metrics of one run, each with a bootstrap interval over users:

- out-of-network share of served slots (mean over users, and its distribution over users);
- share of served slots by source (pooled over slots);
- distinct authors per feed (mean over users);
- author exposure inequality: Gini of impressions per author and the share of the top 1 % of
  authors (the author population: every author served in any audited run, so arms compare);
- topic entropy per feed (bits; a post's topic from the world, mean over users);
- freshness: median post age at request time over served slots (hours);
- predicted engagement per head: Σ probability over a user's served posts, mean over users;
- negative-signal exposure: mean P(not interested / block / mute / report) over served slots.

Rows are mapped to the audit's user index `uidx` ([N] int64 into [0, U)); per-user aggregates are
[U] (zeros for users outside the run) so that `Bootstrap` sums them with replicate weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from audit.bootstrap import Bootstrap, Estimate, interval, ratio
from audit.groups import topic_codes
from audit.runs import NEGATIVE_HEADS, Run

AGE_BINS = 1024  # quantile bins of post age for the median's replicates
HIST_BINS = 10  # OON-share histogram over users: [0, 0.1), …, [0.9, 1.0]
LORENZ_POINTS = 101


def pair_counts(uidx: np.ndarray, codes: np.ndarray, n_codes: int, n_users: int) -> sp.csc_matrix:
    """Sparse [U, K] counts of rows per (user, code) (CSC: its transpose is the CSR the
    bootstrap multiplies); rows with code < 0 are left out."""
    keep = codes >= 0
    u, c = uidx[keep].astype(np.int64), codes[keep].astype(np.int64)
    return sp.csc_matrix((np.ones(len(u), np.float32), (u, c)), shape=(n_users, n_codes))


CHUNK = 32  # replicate rows sorted at a time (bounded memory for many authors)


def concentration(x: np.ndarray, fraction: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(Gini, share of the top ⌈fraction·A⌉) of non-negative values per row: [A] -> scalars,
    [B, A] -> [B] each. Gini = Σ_i (2i − A − 1) x_(i) / (A Σ x) over x sorted ascending,
    i = 1…A. Integer values (impression counts and their bootstrap sums) are counted instead
    of sorted: value v held by c_v entries after s_v smaller ones adds v·c_v·(2 s_v + c_v − A)."""
    x = np.asarray(x)
    one = x.ndim == 1
    x = x[None, :] if one else x
    a = x.shape[-1]
    k = max(1, int(np.ceil(fraction * a)))
    g, top = [], []
    for r in range(0, len(x), CHUNK):
        part = x[r : r + CHUNK]
        if np.all(part == np.round(part)) and part.size and 0 <= part.min() and part.max() < 1e6:
            gi, ti = _counted(part.astype(np.int64), a, k)
        else:
            gi, ti = _sorted(part.astype(np.float64), a, k)
        g.append(gi)
        top.append(ti)
    g_, t_ = (np.concatenate(v) if v else np.zeros(0) for v in (g, top))
    return (g_[0], t_[0]) if one else (g_, t_)


def _sorted(part: np.ndarray, a: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.sort(part, axis=-1)
    coef = 2 * np.arange(1, a + 1, dtype=np.float64) - a - 1
    total = part.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return part @ coef / (a * total), part[:, a - k :].sum(axis=-1) / total


def _counted(part: np.ndarray, a: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    m = int(part.max()) + 1
    rows = len(part)
    c = np.bincount((part + np.arange(rows)[:, None] * m).ravel(), minlength=rows * m)
    c = c.reshape(rows, m).astype(np.float64)  # [R, M] entries holding each value
    v = np.arange(m, dtype=np.float64)
    before = np.cumsum(c, axis=1) - c  # s_v
    total = c @ v
    above = np.cumsum(c[:, ::-1], axis=1)[:, ::-1] - c  # entries with a larger value
    take = np.clip(k - above, 0.0, c)  # entries of value v among the top k
    with np.errstate(invalid="ignore", divide="ignore"):
        gini = (c * (2 * before + c - a)) @ v / (a * total)
        return gini, (take @ v) / total


def gini(x: np.ndarray) -> np.ndarray:
    """Gini coefficient per row (see `concentration`)."""
    return concentration(x)[0]


def top_share(x: np.ndarray, fraction: float = 0.01) -> np.ndarray:
    """Share of the total held by the top ⌈fraction·A⌉ values per row."""
    return concentration(x, fraction)[1]


def lorenz(x: np.ndarray, points: int = LORENZ_POINTS) -> list[list[float]]:
    """The Lorenz curve of values [A]: (share of authors, share of impressions) at `points`."""
    x = np.sort(np.asarray(x, np.float64))
    cum = np.r_[0.0, np.cumsum(x)]
    cum = cum / cum[-1] if cum[-1] > 0 else cum
    at = np.linspace(0, len(x), points)
    y = np.interp(at, np.arange(len(x) + 1), cum)
    return [
        [round(float(a / max(len(x), 1)), 4), round(float(b), 4)]
        for a, b in zip(at, y, strict=True)
    ]


def _median_from_bins(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Medians of histograms [B, K] over bin edges [K+1], interpolated linearly within the bin
    where the cumulative count reaches half the total."""
    cum = np.cumsum(counts.astype(np.float64), axis=-1)  # [B, K]
    half = cum[:, -1:] / 2.0
    k = np.minimum((cum < half).sum(axis=-1), counts.shape[-1] - 1)  # [B]
    rows = np.arange(len(counts))
    before = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0.0)
    inside = counts[rows, k].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(inside > 0, (half[:, 0] - before) / inside, 0.0)
    lo, hi = edges[k], edges[np.minimum(k + 1, len(edges) - 1)]
    return lo + np.clip(frac, 0.0, 1.0) * (hi - lo)


def arm_metrics(run: Run, uidx: np.ndarray, n_users: int, boot: Bootstrap,
                author_codes: np.ndarray, n_authors: int) -> dict[str, Any]:  # fmt: skip
    """Every per-arm metric of `run` (rows mapped to users by `uidx` [N] and to the shared author
    index by `author_codes` [N])."""
    n_u = np.bincount(uidx, minlength=n_users).astype(np.float64)  # [U] served slots
    has = (n_u > 0).astype(np.float64)
    oon_u = np.bincount(uidx, weights=~run.in_network, minlength=n_users)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_u = np.where(n_u > 0, oon_u / np.maximum(n_u, 1), 0.0)
    out: dict[str, Any] = {"users": int(has.sum()), "served_slots": int(n_u.sum())}
    out["oon_share"] = ratio(boot, share_u, has)
    shares = share_u[has > 0]
    hist, _ = np.histogram(shares, bins=HIST_BINS, range=(0.0, 1.0))
    out["oon_share_distribution"] = {
        "bins": [round(b, 2) for b in np.linspace(0, 1, HIST_BINS + 1).tolist()],
        "users": hist.tolist(),
        "quantiles": {str(q): round(float(np.quantile(shares, q)), 4) if len(shares) else None
                      for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
    }  # fmt: skip
    src = _per_user(uidx, np.eye(len(run.sources))[run.source], n_users)  # [U, S]
    out["source_share"] = dict(zip(run.sources, _list(ratio(boot, src, n_u[:, None])),
                                   strict=True))  # fmt: skip
    authors = pair_counts(uidx, author_codes, n_authors, n_users)  # [U, A]
    distinct = np.bincount(authors.indices, minlength=n_users).astype(np.float64)  # [U]
    out["distinct_authors"] = ratio(boot, distinct, has)
    point, reps = boot.sparse_sums(authors)  # [A], [B, A] impressions per author
    (g, top), (rg, rtop) = concentration(point), concentration(reps)
    del reps
    # A resample repeats users, which concentrates impressions: these replicates are biased
    # upward, so their interval is shifted by the bootstrap's bias estimate (mean − point).
    out["author_gini"] = interval(g, _unbiased(rg, g))
    out["top1pct_author_share"] = interval(top, _unbiased(rtop, top))
    out["lorenz"] = lorenz(point)
    out["topic_entropy_bits"] = _topic_entropy(run, uidx, n_users, boot)
    out["median_age_hours"] = _freshness(run, uidx, n_users, boot)
    sums = _per_user(uidx, run.probs, n_users)  # [U, H] (NaN: not scored, counts 0)
    scored = ~np.all(np.isnan(run.probs), axis=0) if len(run.probs) else np.zeros(0, bool)
    per_head = _list(ratio(boot, sums, has[:, None])) if run.heads else []
    out["engagement_per_feed"] = {h: e for h, e, ok in zip(run.heads, per_head, scored,
                                                          strict=True) if ok}  # fmt: skip
    neg = [run.heads.index(h) for h in NEGATIVE_HEADS if h in run.heads]
    per_slot = _list(ratio(boot, sums[:, neg], n_u[:, None])) if neg else []
    out["negative_exposure"] = {run.heads[j]: e for j, e in zip(neg, per_slot, strict=True)
                                if scored[j]}  # fmt: skip
    return out


def _unbiased(reps: np.ndarray, point: float) -> np.ndarray:
    """Replicates shifted so that their mean is the point estimate (bias-corrected)."""
    finite = reps[np.isfinite(reps)]
    return reps - (finite.mean() - point) if len(finite) else reps


def _per_user(uidx: np.ndarray, values: np.ndarray, n_users: int) -> np.ndarray:
    """Per-user sums [U, K] of row values [N, K] (NaN counts 0)."""
    return np.stack([np.bincount(uidx, weights=np.nan_to_num(values[:, j]), minlength=n_users)
                     for j in range(values.shape[1])], axis=1) if values.shape[1] else \
        np.zeros((n_users, 0))  # fmt: skip


def _list(e: Estimate | list[Estimate]) -> list[Estimate]:
    return e if isinstance(e, list) else [e]


def _topic_entropy(run: Run, uidx: np.ndarray, n_users: int, boot: Bootstrap) -> Estimate | None:
    """Mean over users of the Shannon entropy (bits) of their feed's topics (posts without a
    known topic left out); None when the run's world is not readable."""
    from pathlib import Path  # noqa: PLC0415

    if not run.world or not (Path(run.world) / "posts.parquet").is_file():
        return None
    codes, names = topic_codes(run.world, run.post)
    counts = pair_counts(uidx, codes, max(len(names), 1), n_users).tocoo()  # [U, T] summed
    known = np.bincount(counts.row, weights=counts.data, minlength=n_users)
    p = counts.data / known[counts.row]
    h = np.bincount(counts.row, weights=-p * np.log2(p), minlength=n_users)
    return ratio(boot, h, (known > 0).astype(np.float64))


def _freshness(run: Run, uidx: np.ndarray, n_users: int, boot: Bootstrap) -> Estimate:
    """Median age (hours) of served posts at request time. Replicates: each replicate's median
    from per-user counts over AGE_BINS quantile bins of the pooled ages (fine where the median
    is), interpolated within the bin, moved by the exact minus the binned median of the whole
    sample."""
    age = (run.request - run.created).astype(np.float64) / 3_600_000  # [N] hours
    if not len(age):
        return Estimate(np.nan, np.nan, np.nan)
    edges = np.unique(np.quantile(age, np.linspace(0, 1, AGE_BINS + 1)))  # [K+1]
    bins = np.clip(np.searchsorted(edges, age, side="right") - 1, 0, max(len(edges) - 2, 0))
    total, reps = boot.sparse_sums(pair_counts(uidx, bins, max(len(edges) - 1, 1), n_users))
    point = float(np.median(age))
    # the binned median of the whole sample differs from the exact one where ages are tied
    # (interpolation spreads a tie over its bin): the replicates are moved by that difference,
    # so the interval is the binned estimator's spread around the exact median
    shift = point - float(_median_from_bins(total[None], edges)[0])
    return interval(point, _median_from_bins(reps, edges) + shift)
