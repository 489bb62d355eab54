"""Training examples from a world's engagement sequences: ranker and retrieval rows.

Ranker examples: for each user, cut points every C/4 items through the training part of the
sequence; the history is the (up to S) items before the cut, the candidates the (up to C) items
after it, with their action multi-hots as labels — so a candidate never appears in its own
history. Candidates are what serving scores (`Sequences.as_served`: a retweet as its source
post by the source's author), and their post semantic ids (configs with `sid_levels`) come from
`phoenix.inputs.sid_arrays`, the same codes serving reads.
Retrieval examples: the history before each favorited training item, and that item as the
positive. Held-out items (`sequences.split_points`) are never used.
"""

from __future__ import annotations

import numpy as np

from phoenix import hashing
from phoenix.actions import ActionName
from phoenix.config import PhoenixConfig
from phoenix.inputs import sid_arrays
from phoenix.runtime import Retriever
from training.evaluation import user_history
from training.reorder import reorder_examples
from training.steps import TrainConfig
from world.sequences import Sequences

FAV = ActionName.SERVER_TWEET_FAV


def _history_block(seq: Sequences, cfg: PhoenixConfig, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Hashed history of items [lo, hi) (the last S of them), left-aligned, padded at the end."""
    s, h = cfg.history_seq_len, cfg.hash
    lo = max(lo, hi - s)
    n = hi - lo
    posts = np.zeros(s, np.int64)
    authors = np.zeros(s, np.int64)
    posts[:n], authors[:n] = seq.post_id[lo:hi], seq.author_id[lo:hi]
    actions = np.zeros((s, cfg.num_actions), np.uint8)
    actions[:n] = seq.actions[lo:hi, : cfg.num_actions]
    surface = np.zeros(s, np.int32)
    surface[:n] = seq.surface[lo:hi]
    cont = np.zeros((s, cfg.num_continuous_actions), np.float32)
    cont[:n, 1] = seq.dwell_s[lo:hi]
    return {
        "history_post_hashes": hashing.item_rows(posts, h).astype(np.int32),
        "history_author_hashes": hashing.author_rows(authors, h).astype(np.int32),
        "history_actions": actions,
        "history_product_surface": surface,
        "history_continuous_actions": cont,
        **sid_arrays("history_sids", posts, cfg, seq.sids),  # [S, L] with semantic ids
    }


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


HISTORY_FIELDS = ("history_post_hashes", "history_author_hashes", "history_actions",
                  "history_product_surface", "history_continuous_actions")  # fmt: skip


def history_fields(cfg: PhoenixConfig) -> tuple[str, ...]:
    """The history fields of a model's rows: HISTORY_FIELDS, and history_sids with SIDs."""
    return HISTORY_FIELDS + (("history_sids",) if cfg.sid_levels else ())


class HistoryBlocks:
    """The history fields of ranker examples, built for the asked examples only. Held for every
    example they would be ~15 KB each at history 128 (the actions alone [E, S, A] uint8): 1.4 GB
    for the bundled world, O(world) in general. `lo` [E], `cut` [E]: example e's history is the
    items [lo[e], cut[e]) of the sequences (the last S of them). The last block asked for is
    kept, so a batch's five fields are built once."""

    def __init__(self, seq: Sequences, cfg: PhoenixConfig, lo: np.ndarray, cut: np.ndarray):
        self.seq, self.cfg, self.lo, self.cut = seq, cfg, lo, cut
        self._last: tuple[bytes, dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.cut)

    def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Fields of examples `idx` [B]: each [B, S, …], as a stacked array would give."""
        idx = np.asarray(idx, np.int64)
        key = idx.tobytes()
        if self._last is None or self._last[0] != key:
            lo_cut = [(int(self.lo[e]), int(self.cut[e])) for e in idx.tolist()] or [(0, 0)]
            block = _stack([_history_block(self.seq, self.cfg, a, b) for a, b in lo_cut])
            self._last = key, block if len(idx) else {k: v[:0] for k, v in block.items()}
        return self._last[1]


class HistoryField:
    """One history field of ranker examples, indexed like the [E, S, …] array it stands for."""

    def __init__(self, blocks: HistoryBlocks, name: str):
        self.blocks, self.name = blocks, name

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            return self.blocks.take(np.array([idx]))[self.name][0]
        idx = np.asarray(idx) if not isinstance(idx, slice) else idx
        if isinstance(idx, slice) or idx.dtype == bool:  # slices and masks: the rows they select
            idx = np.arange(len(self.blocks))[idx]
        return self.blocks.take(idx)[self.name]


def training_catalogue(seq: Sequences, split: np.ndarray) -> tuple[np.ndarray, ...]:
    """(post ids [I] sorted, author ids [I], counts [I]) of every post among the users' training
    items (before `split`): the item distribution for sampled negatives and the log-Q counts."""
    train = np.zeros(len(seq.post_id), bool)
    for u in range(len(seq.user_ids)):
        train[int(seq.offsets[u]) : int(split[u])] = True
    cat_id, first, counts = np.unique(seq.post_id[train], return_index=True, return_counts=True)
    return cat_id, seq.author_id[train][first], counts


def retrieval_pool(
    retriever: Retriever,
    seq: Sequences,
    cuts: list[tuple[int, int]],
    split: np.ndarray,
    catalogue: tuple[np.ndarray, np.ndarray],
    top: int,
    block: int = 1024,
    history_only: bool = False,
) -> np.ndarray:
    """[len(cuts), K] catalogue rows of the retrieval model's top K (≤ `top`) items for the
    user's history before each cut (u, cut), the user's training items (before `split`) left
    out: what retrieval would hand the ranker at that moment, for the ranker's hard negatives.
    `history_only`: only the items before the cut are left out (as serving and `xfeed eval
    --protocol loo` leave out what the user has consumed), so the user's later items can be in
    the pool."""
    cat_id, cat_author = catalogue
    k = min(top, len(cat_id))
    out = np.zeros((len(cuts), k), np.int64)
    if not len(cuts) or not k:
        return out
    emb = retriever.encode_posts(cat_id, cat_author)  # [I, D]
    hl = retriever.config.history_seq_len
    for start in range(0, len(cuts), block):
        part = cuts[start : start + block]
        reps = retriever.encode_users([user_history(seq, u, c, hl) for u, c in part])  # [b, D]
        scores = reps @ emb.T  # [b, I]
        for r, (u, cut) in enumerate(part):
            mine = seq.post_id[int(seq.offsets[u]) : int(cut if history_only else split[u])]
            cols = np.searchsorted(cat_id, mine)
            cols = cols[cols < len(cat_id)]
            scores[r, cols[cat_id[cols] == mine[: len(cols)]] if len(cols) else cols] = -np.inf
        top_k = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # [b, K] (unordered)
        out[start : start + len(part)] = np.sort(top_k, axis=1)
    return out


def ranker_examples(
    seq: Sequences,
    cfg: PhoenixConfig,
    split: np.ndarray,
    tc: TrainConfig | None = None,
    begin: np.ndarray | None = None,
    retriever: Retriever | None = None,
) -> dict[str, np.ndarray | HistoryField]:
    """Cuts every P/4 items through each user's training items: history = the items before the
    cut, candidates = the P items after it with their action multi-hots as labels (P: the slots
    the negatives leave, at most `tc.ranker_positives` when set). Negative slots
    (labelled all zero), for logs that record only what was consumed (no non-engaged
    impressions), never an item of the user's training items (before `split`):
    `tc.retrieval_negatives` drawn uniformly from `retriever`'s top `tc.retrieval_top` for the
    history at the cut (what the ranker will reorder), then `tc.sampled_negatives` drawn from
    the training item distribution (by count). `weights` [E, C]: 1, or upstream's log-Q weight
    1 / count with `tc.ranker_logq`. With `tc.ranker_logq_shift` (and sampled negatives):
    `logq` [E, C], the log of the density with which this example's negative samplers would
    draw each candidate (n_ret / the pool's drawable items where it is in the pool, plus
    n_pop · count / N; at least 1 / N), and the pool is retrieval's top for the history at the
    cut as serving sees it (only the history's items left out; the user's training items are
    still never drawn), so that a next item can be in it. `begin` [U]: the first cut per user
    (validation examples: candidates only from [begin, split))."""
    tc = tc or TrainConfig()
    c, h = cfg.candidate_seq_len, cfg.hash
    n_ret = min(tc.retrieval_negatives, c - 1) if retriever is not None else 0
    n_neg = min(tc.sampled_negatives + n_ret, c - 1)
    n_pos = c - n_neg  # positives: the next items after the cut, in the slots left
    if tc.ranker_positives:
        n_pos = min(n_pos, tc.ranker_positives)
    cat_id, cat_author, counts = training_catalogue(seq, split)
    cum = np.cumsum(counts) / counts.sum() if len(counts) else np.zeros(0)
    rng = np.random.default_rng(tc.seed + 3)
    cuts = []
    for u in range(len(seq.user_ids)):
        lo, end = int(seq.offsets[u]), int(split[u])
        first = lo + 4 if begin is None else max(lo + 1, int(begin[u]))
        cuts += [(u, cut) for cut in range(first, end, max(n_pos // 4, 1))]
    pool = None
    shift = tc.ranker_logq_shift and n_neg > 0  # only sampled negatives have a density
    if n_ret:  # with the shift, the pool as serving sees it: only the history's items left out
        pool = retrieval_pool(retriever, seq, cuts, split, (cat_id, cat_author), tc.retrieval_top,
                              history_only=shift)  # fmt: skip
        n_ret = min(n_ret, pool.shape[1])
    rows = []
    history_lo = np.zeros(len(cuts), np.int64)  # [E]: example e's history is [lo, cut)
    logq = np.zeros((len(cuts), c), np.float32)  # [E, C] log sampling density (the shift)
    p_pop = counts / counts.sum() if len(counts) else np.zeros(0)  # [I] popularity sampler
    q_floor = 1.0 / max(int(counts.sum()), 1)  # an item neither sampler draws: one count's worth
    for e, (u, cut) in enumerate(cuts):
        lo, end = int(seq.offsets[u]), int(split[u])
        history_lo[e] = lo
        mine = seq.post_id[lo:end]  # training items only: a held-out item may be a negative
        stop = min(cut + n_pos, end)
        k = stop - cut
        posts = np.zeros(c, np.int64)
        authors = np.zeros(c, np.int64)
        posts[:k], authors[:k] = seq.as_served(seq.post_id[cut:stop], seq.author_id[cut:stop])
        labels = np.zeros((c, cfg.num_actions), np.uint8)
        labels[:k] = seq.actions[cut:stop, : cfg.num_actions]
        surface = np.zeros(c, np.int32)
        surface[:k] = seq.surface[cut:stop]
        draw = np.zeros(0, np.int64)
        q_ret = 0.0  # the density of a pool item among the retrieval negatives
        if pool is not None and n_ret:
            cand = pool[e][~np.isin(cat_id[pool[e]], mine)] if shift else pool[e]
            draw = rng.choice(cand, min(n_ret, len(cand)), replace=False)
            q_ret = len(draw) / max(len(cand), 1)
        n_ret_e = len(draw)
        if n_neg > len(draw) and len(cat_id):
            more = np.searchsorted(cum, rng.random(4 * n_neg), side="right")
            more = more[~np.isin(cat_id[more], mine) & ~np.isin(more, draw)]
            draw = np.concatenate([draw, more[: n_neg - len(draw)]])
        posts[k : k + len(draw)], authors[k : k + len(draw)] = seq.as_served(
            cat_id[draw], cat_author[draw]
        )
        surface[k : k + len(draw)] = 1
        k += len(draw)
        weights = np.zeros(c, np.float32)
        weights[:k] = 1.0
        if shift:  # log q of every candidate: pool density where in the pool + popularity's
            cols = np.minimum(np.searchsorted(cat_id, posts[:k]), max(len(cat_id) - 1, 0))
            known = cat_id[cols] == posts[:k] if len(cat_id) else np.zeros(k, bool)
            in_pool = np.isin(cols, pool[e]) & known if pool is not None else np.zeros(k, bool)
            q = q_ret * in_pool + (len(draw) - n_ret_e) * np.where(known, p_pop[cols], 0.0)
            logq[e, :k] = np.log(np.maximum(q, q_floor))
        if tc.ranker_logq:
            cnt = counts[np.minimum(np.searchsorted(cat_id, posts[:k]), len(cat_id) - 1)]
            weights[:k] = 1.0 / np.maximum(cnt, 1)
        rows.append({
            "user_hashes": hashing.user_rows(seq.user_ids[u], h).astype(np.int32),
            "candidate_post_hashes": hashing.item_rows(posts, h).astype(np.int32),
            "candidate_author_hashes": hashing.author_rows(authors, h).astype(np.int32),
            **sid_arrays("candidate_sids", posts, cfg, seq.sids),  # [C, L] with SIDs
            "candidate_product_surface": surface,
            "labels": labels,
            "weights": weights,
            "user_row": np.int32(u),
        })  # fmt: skip
    if not rows:
        raise ValueError("no user has enough training items for a ranker example")
    out = _stack(rows)
    if shift:
        out["logq"] = logq
    blocks = HistoryBlocks(seq, cfg, history_lo, np.array([c for _, c in cuts], np.int64))
    return {**out, **{name: HistoryField(blocks, name) for name in history_fields(cfg)}}


def reorder_validation(
    seq: Sequences,
    cfg: PhoenixConfig,
    target: np.ndarray,
    split: np.ndarray,
    retriever: Retriever,
    top: int,
    surface: int,
) -> dict[str, np.ndarray | HistoryField]:
    """Validation rows of `training.reorder` for each user with a target (`target[u]` <
    `split[u]`): retrieval's top `top` of the training catalogue for the history before the
    target, the history's items left out, in ranker rows (history fields built lazily)."""
    cat_id, cat_author, _ = training_catalogue(seq, split)
    cuts = [(u, int(target[u])) for u in range(len(seq.user_ids)) if target[u] < split[u]]
    pool = retrieval_pool(retriever, seq, cuts, split, (cat_id, cat_author), top,
                          history_only=True)  # fmt: skip
    out = reorder_examples(seq, cfg, cuts, pool, (cat_id, cat_author), surface)
    blocks = HistoryBlocks(seq, cfg, out.pop("history_lo"), out.pop("history_cut"))
    return {**out, **{name: HistoryField(blocks, name) for name in history_fields(cfg)}}


# Upstream's August retrieval labels (spec §4.6): a positive is valid only without any of these.
HARD_NEGATIVES = (ActionName.CLIENT_TWEET_REPORT, ActionName.CLIENT_TWEET_NOT_INTERESTED_IN,
                  ActionName.CLIENT_TWEET_SEE_FEWER, ActionName.CLIENT_TWEET_UNFOLLOW_AUTHOR,
                  ActionName.CLIENT_TWEET_BLOCK_AUTHOR, ActionName.CLIENT_TWEET_MUTE_AUTHOR,
                  ActionName.CLIENT_TWEET_NOT_RELEVANT)  # fmt: skip
SOFT_NEGATIVES = (ActionName.CLIENT_TWEET_RECAP_NOT_DWELLED,)


def item_labels(seq: Sequences, positives: str) -> tuple[np.ndarray, np.ndarray]:
    """([N] positive, [N] negative) per item. positives: "favorite" (upstream) or "any" (any
    action that is not a negative: for logs without favorites). A positive with a hard or soft
    negative is not a positive."""
    acts = seq.actions
    neg_cols = [int(a) for a in (*HARD_NEGATIVES, *SOFT_NEGATIVES) if int(a) < acts.shape[1]]
    negative = acts[:, neg_cols].any(1)
    if positives == "favorite":
        pos = acts[:, FAV] > 0
    elif positives == "any":
        other = np.ones(acts.shape[1], bool)
        other[neg_cols] = False
        other[0] = False
        pos = acts[:, other].any(1)
    else:
        raise ValueError(f"positives must be favorite or any, not {positives!r}")
    return pos & ~negative, negative


def retrieval_examples(
    seq: Sequences,
    cfg: PhoenixConfig,
    split: np.ndarray,
    tc: TrainConfig | None = None,
    begin: np.ndarray | None = None,
    catalogue: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One example per positive training item (history = the items before it); hard negatives =
    the user's most recent negative items before it; `cat_*`: the training catalogue (every
    post of a training item) with its counts, for global negatives and the log-Q correction.
    `pos_id` / `cat_id` are rows of that catalogue (JAX compares them in int32). Validation
    examples: positives from [begin, split), the training `catalogue` (post ids) for `pos_id`
    (−1 when the post is not in it)."""
    tc = tc or TrainConfig()
    h, nh = cfg.hash, tc.hard_negatives
    pos_item, neg_item = item_labels(seq, tc.positives)
    cat_id, cat_author, counts = training_catalogue(seq, split)
    count_of = dict(zip(cat_id.tolist(), counts.tolist(), strict=True))
    rows_of = {int(p): i for i, p in enumerate(cat_id if catalogue is None else catalogue)}
    rows = []
    for u in range(len(seq.user_ids)):
        lo, end = int(seq.offsets[u]), int(split[u])
        negs = [k for k in range(lo, end) if neg_item[k]]
        for i in range(lo + 1 if begin is None else max(lo + 1, int(begin[u])), end):
            if not pos_item[i]:
                continue
            mine = [k for k in negs if k < i][-nh:] if nh else []
            neg_posts = np.zeros(max(nh, 1), np.int64)
            neg_authors = np.zeros(max(nh, 1), np.int64)
            neg_posts[: len(mine)] = seq.post_id[mine]
            neg_authors[: len(mine)] = seq.author_id[mine]
            mask = np.zeros(max(nh, 1), np.float32)
            mask[: len(mine)] = 1.0
            rows.append({
                "user_hashes": hashing.user_rows(seq.user_ids[u], h).astype(np.int32),
                **_history_block(seq, cfg, lo, i),
                "candidate_post_hashes": np.zeros((1, h.item.num_hashes), np.int32),
                "candidate_author_hashes": np.zeros((1, h.author.num_hashes), np.int32),
                "candidate_product_surface": np.zeros(1, np.int32),
                "pos_post": hashing.item_rows(seq.post_id[i], h).astype(np.int32),
                "pos_author": hashing.author_rows(seq.author_id[i], h).astype(np.int32),
                "pos_id": np.int32(rows_of.get(int(seq.post_id[i]), -1)),
                "pos_count": np.float32(count_of.get(int(seq.post_id[i]), 1)),
                "neg_post": hashing.item_rows(neg_posts, h).astype(np.int32),
                "neg_author": hashing.author_rows(neg_authors, h).astype(np.int32),
                "neg_mask": mask,
                "user_row": np.int32(u),
                **{f"{k}_sids": v for k, v in (
                    *sid_arrays("pos", seq.post_id[i], cfg, seq.sids).items(),  # [L]
                    *sid_arrays("neg", neg_posts, cfg, seq.sids).items())},  # [H, L]
            })  # fmt: skip
    if not rows:
        raise ValueError("no positive training items: nothing to learn retrieval from")
    out = _stack(rows)
    out["cat_id"] = np.arange(len(cat_id), dtype=np.int32)  # catalogue rows (ids fit in int32)
    out["cat_post"] = hashing.item_rows(cat_id, h).astype(np.int32)
    out["cat_author"] = hashing.author_rows(cat_author, h).astype(np.int32)
    out["cat_count"] = counts.astype(np.float32)
    out.update({f"{k}_sids": v for k, v in sid_arrays("cat", cat_id, cfg, seq.sids).items()})
    if tc.mask_own_items and catalogue is None:  # per user, its training items' catalogue rows
        own = [np.unique(np.searchsorted(cat_id, seq.post_id[int(seq.offsets[u]) : int(split[u])]))
               for u in range(len(seq.user_ids))]  # fmt: skip
        out["own_rows"] = np.concatenate([*own, np.zeros(0, np.int64)]).astype(np.int32)
        out["own_offsets"] = np.r_[0, np.cumsum([len(o) for o in own])].astype(np.int64)
    return out
