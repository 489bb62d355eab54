"""Between an arm and the baseline, with bootstrap intervals over users:

- amplification ratio per author group (Huszár et al., PNAS 2022): the group's reach (users
  served at least one post by an author of the group) under the arm ÷ its reach under the
  baseline, each divided by its run's number of users; 1 = no amplification;
- slate overlap for users in both runs: Jaccard@K of the first K served posts, and rank-biased
  overlap (RBO, extrapolated, persistence p = 0.9, at the depth of the shorter feed);
- mean rank displacement of the posts both feeds serve (|position in arm − position in
  baseline|, mean per user, then over users);
- posts gained (in the arm's feed, not the baseline's) and lost (the reverse) per user.

Users are the same people only in runs of the same world; runs of different worlds share no
users, so their overlap metrics are empty (None) and their resamples are independent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.arm import pair_counts
from audit.bootstrap import Bootstrap, Estimate, interval, ratio
from audit.runs import Run

RBO_P = 0.9
JACCARD_K = 10


def reach(boot: Bootstrap, run: Run, uidx: np.ndarray, groups: np.ndarray, n_groups: int,
          n_users: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(point [G], replicates [B, G]) of each group's reach ÷ the run's number of users.
    Users with an empty feed (in the manifest's count, not in the rows) scale the denominator."""
    hit = pair_counts(uidx, groups, n_groups, n_users)  # [U, G]
    hit.data[:] = 1.0  # reached at least once
    point, reps = boot.sparse_sums(hit)
    has = np.zeros(n_users)
    has[uidx] = 1.0
    scale = run.n_users / max(has.sum(), 1.0)  # empty feeds in the manifest's count
    p_users, r_users = boot.sums(has)
    with np.errstate(invalid="ignore", divide="ignore"):
        return point / (p_users * scale), reps / (r_users[:, None] * scale)


def amplification(boot: Bootstrap, arm: tuple, base: tuple, names: list[str]) -> dict[str, Any]:
    """Per group: the amplification ratio with its interval and both reaches (point values).
    `arm`, `base`: (run, uidx, group codes) each."""
    n_users, g = boot.n_users, len(names)
    pa_, ra = reach(boot, arm[0], arm[1], arm[2], g, n_users)
    pb, rb = reach(boot, base[0], base[1], base[2], g, n_users)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = interval(pa_ / pb, ra / rb)
    out = {}
    for j, name in enumerate(names):
        if pa_[j] == 0 and pb[j] == 0:
            continue
        out[name] = {**est[j].to_json(), "reach_arm": round(float(pa_[j]), 6),
                     "reach_baseline": round(float(pb[j]), 6)}  # fmt: skip
    return out


def _keys(uidx: np.ndarray, post_codes: np.ndarray, n_posts: int) -> np.ndarray:
    return uidx.astype(np.int64) * n_posts + post_codes


def rbo_table(depth: int, p: float = RBO_P) -> np.ndarray:
    """T[D, m] = Σ_{d=m..D} p^d / d for 1 ≤ m ≤ D ≤ depth, 0 elsewhere: [depth+1, depth+1]."""
    d = np.arange(1, depth + 1, dtype=np.float64)
    c = np.r_[0.0, np.cumsum(p**d / d)]  # c[k] = Σ_{j ≤ k} p^j / j
    big_d = np.arange(depth + 1)[:, None]
    m = np.arange(depth + 1)[None, :]
    return np.where((m >= 1) & (m <= big_d), c[big_d] - c[np.maximum(m - 1, 0)], 0.0)


def overlap(boot: Bootstrap, arm: tuple, base: tuple, k: int = JACCARD_K,
            p: float = RBO_P) -> dict[str, Any]:  # fmt: skip
    """Jaccard@K, RBO, mean rank displacement, posts gained and lost, over users served in both
    runs. `arm`, `base`: (run, uidx) each."""
    (ra, ua), (rb, ub) = arm, base
    n_users = boot.n_users
    len_a = np.bincount(ua, minlength=n_users)
    len_b = np.bincount(ub, minlength=n_users)
    paired = ((len_a > 0) & (len_b > 0)).astype(np.float64)
    out: dict[str, Any] = {"paired_users": int(paired.sum()), "k": k, "rbo_p": p}
    if not paired.any():
        for name in ("jaccard_at_k", "rbo", "rank_displacement", "posts_gained", "posts_lost"):
            out[name] = None
        return out
    posts, codes = np.unique(np.r_[ra.post, rb.post], return_inverse=True)
    ca, cb = codes[: len(ra.post)], codes[len(ra.post) :]
    ka, kb = _keys(ua, ca, len(posts)), _keys(ub, cb, len(posts))
    # top-K sets
    ta, tb = ka[ra.position <= k], kb[rb.position <= k]
    both = np.intersect1d(ta, tb)
    inter = np.bincount(both // len(posts), minlength=n_users).astype(np.float64)
    na = np.bincount(ua[ra.position <= k], minlength=n_users)
    nb = np.bincount(ub[rb.position <= k], minlength=n_users)
    with np.errstate(invalid="ignore", divide="ignore"):
        jac = np.where(paired > 0, inter / np.maximum(na + nb - inter, 1), 0.0)
    out["jaccard_at_k"] = ratio(boot, jac, paired)
    # common posts of the full feeds, with both positions
    common, ia, ib = np.intersect1d(ka, kb, assume_unique=False, return_indices=True)
    user = common // len(posts)
    pos_a = ra.position[ia].astype(np.int64)
    pos_b = rb.position[ib].astype(np.int64)
    depth = np.minimum(len_a, len_b)  # [U]
    m = np.maximum(pos_a, pos_b)
    inside = m <= depth[user]
    table = rbo_table(int(max(depth.max(), 1)), p)
    x_d = np.bincount(user[inside], minlength=n_users).astype(np.float64)  # X at depth D
    tail = np.bincount(user[inside], weights=table[depth[user[inside]], m[inside]],
                       minlength=n_users)  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = np.maximum(depth, 1).astype(np.float64)
        rbo = np.where(paired > 0, x_d / dd * p**dd + (1 - p) / p * tail, 0.0)
    out["rbo"] = ratio(boot, rbo, paired)
    n_common = np.bincount(user, minlength=n_users).astype(np.float64)
    disp = np.bincount(user, weights=np.abs(pos_a - pos_b), minlength=n_users)
    has_common = (n_common > 0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_disp = np.where(n_common > 0, disp / np.maximum(n_common, 1), 0.0)
    out["rank_displacement"] = ratio(boot, mean_disp, has_common)
    out["posts_gained"] = ratio(boot, (len_a - n_common) * paired, paired)
    out["posts_lost"] = ratio(boot, (len_b - n_common) * paired, paired)
    return out


def as_json(x: Any) -> Any:
    """Estimates (nested in dicts/lists) as JSON values."""
    if isinstance(x, Estimate):
        return x.to_json()
    if isinstance(x, dict):
        return {k: as_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [as_json(v) for v in x]
    return x
