"""Running the models: transform + jit, chunked ranking, user encoding, top-K retrieval.

Re-implements the run_pipeline.py flow @0bfc279 (phoenix_spec.md §3.2 steps 7–9) as reusable
objects. `Ranker.rank` is the reference path: candidates in chunks of `candidate_seq_len`, the last
chunk zero-padded, user+history recomputed for every chunk, one jitted shape for every chunk.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import haiku as hk
import jax
import numpy as np

from phoenix import hashing, ranker, retrieval
from phoenix.batch import RecsysBatch, RecsysEmbeddings
from phoenix.cached import bucket, cached_probs_fn, compute_weights, probabilities
from phoenix.config import PhoenixConfig
from phoenix.device import current_platform, full_precision
from phoenix.embeddings import EmbeddingTables
from phoenix.inputs import UserHistory, check_sids, embed_batch, make_batch, sid_arrays
from phoenix.params import FlatParams, unflatten, validate
from phoenix.sids import PostSids

# ranker calls dispatched and not yet read back in `rank_many` (each holds its inputs, its
# embeddings and its probabilities): enough to keep XLA busy while the next inputs are built
RANK_IN_FLIGHT = 4
# users per cached-path ranker call (`rank_many`), by the platform JAX computes on. On the CPU one
# user a call is the cheapest per user (4-user groups cost more); an accelerator gets [32, bucket]
# calls, so that one launch, one transfer each way and one device computation serve 32 users
# (one user a call left an H200 busy 1.8 % of the time). The same number for a batch of one and
# for a population batch: a user's probabilities do not depend on the batch it came in.
ACCELERATOR_USERS_PER_RANK_CALL = 32


def users_per_rank_call(platform: str | None = None) -> int:
    """Users per cached ranker call on `platform` (default: the one JAX computes on)."""
    return 1 if (platform or current_platform()) == "cpu" else ACCELERATOR_USERS_PER_RANK_CALL


logger = logging.getLogger(__name__)


class NonFiniteOutputError(ValueError):
    """A model produced NaN or inf: its weights or embedding rows hold non-finite values."""


def finite_output(values: np.ndarray, model: str, heads: tuple[str, ...] = ()) -> np.ndarray:
    """`values` unchanged when all finite; else NonFiniteOutputError naming the first head."""
    ok = np.isfinite(values)
    if ok.all():
        return values
    where = ""
    if heads and values.ndim >= 1 and values.shape[-1] == len(heads):
        bad = ~ok.reshape(-1, len(heads)).all(axis=0)
        where = f" (head {heads[int(np.argmax(bad))]})"
    raise NonFiniteOutputError(
        f"the {model} produced non-finite values{where}: the checkpoint's weights or embedding "
        "rows hold NaN or inf (see `xfeed ckpt inspect`)"
    )


@dataclasses.dataclass(frozen=True)
class PhoenixCheckpoint:
    """One model, ready to run: its config, flat params and embedding tables."""

    config: PhoenixConfig
    params: FlatParams
    tables: EmbeddingTables

    def validate(self) -> None:
        validate(self.params, self.config)
        self.tables.check_against(self.config.hash, self.config.emb_size)

    def with_dtype(self, dtype: str) -> PhoenixCheckpoint:
        return dataclasses.replace(self, config=self.config.replace(fprop_dtype=dtype))


class Ranker:
    """The Phoenix ranker over one checkpoint.

    `path="reference"`: upstream's flow, chunks of `candidate_seq_len`, user+history recomputed
    per chunk. `path="cached"`: user+history once, all candidates in one pass (phoenix.cached);
    the same scores up to float rounding. `upstream_sigmoid`: probabilities are the sigmoid of
    the compute-dtype logits (bfloat16 probabilities, as upstream's run_pipeline), not of the
    logits cast to float32.
    """

    PATHS = ("reference", "cached")

    def __init__(
        self,
        ckpt: PhoenixCheckpoint,
        path: str = "reference",
        upstream_sigmoid: bool = False,
        sids: PostSids | None = None,  # post id -> SID codes: needed when config.sid_levels > 0
    ):
        if not ckpt.config.is_ranker:
            raise ValueError("Ranker needs a ranker checkpoint")
        if path not in self.PATHS:
            raise ValueError(f"ranker path must be one of {self.PATHS}, got {path!r}")
        self.path = path
        self.upstream_sigmoid = upstream_sigmoid
        self.sids = sids
        check_sids(ckpt.config, sids)  # refused early
        self.ckpt = ckpt
        self.config = ckpt.config
        self.params = jax.device_put(unflatten(ckpt.params))  # on device once, not per call
        self.cached_params = compute_weights(self.params, self.config)  # the cached path's
        fwd = hk.without_apply_rng(hk.transform(ranker.ranker_forward(self.config)))

        def probs(params, batch, emb):
            out = fwd.apply(params, batch, emb)
            return probabilities(out.logits, upstream_sigmoid)  # [B, C, A]

        self._probs = jax.jit(full_precision(probs))

    def rank(
        self,
        history: UserHistory,
        post_ids: np.ndarray,  # [N] int64
        author_ids: np.ndarray,  # [N] int64
        product_surface: np.ndarray | None = None,  # [N]
        impression_ts: int | None = None,  # seconds
        creation_ts: np.ndarray | None = None,  # [N] seconds
    ) -> np.ndarray:
        """Probabilities [N, A] (float32) of the N candidates, on this ranker's path."""
        if self.path == "cached":
            return self._rank_cached(history, post_ids, author_ids, product_surface,
                                     impression_ts, creation_ts)  # fmt: skip
        cs = self.config.candidate_seq_len
        n = len(post_ids)
        out = np.zeros((n, self.config.num_actions), np.float32)
        for start in range(0, n, cs):
            stop = min(start + cs, n)
            sl = slice(start, stop)
            batch = make_batch(
                history,
                self.config,
                _padded(post_ids, sl, cs, np.int64),
                _padded(author_ids, sl, cs, np.int64),
                _padded(product_surface, sl, cs, np.int32),
                impression_ts,
                _padded(creation_ts, sl, cs, np.int64),
                self.sids,
            )
            emb = embed_batch(batch, self.ckpt.tables, self.config)
            p = np.asarray(self._probs(self.params, batch, emb))  # [1, cs, A]
            out[start:stop] = p[0, : stop - start]
        return finite_output(out, "ranker", self.config.head_names)

    def rank_many(
        self,
        histories: list[UserHistory],
        post_ids: list[np.ndarray],  # per user [N_u] int64
        author_ids: list[np.ndarray],  # per user [N_u] int64
        users_per_call: int | None = None,
    ) -> list[np.ndarray]:
        """Probabilities [N_u, A] (float32) for each user's candidates.

        Cached path: users with the same candidate bucket are scored `users_per_call` at a time,
        one jitted call of shape [users_per_call, bucket] each (a short group padded with copies
        of its first user, results dropped). The shape a user is computed in depends only on
        its own candidate count, so a user's probabilities are the same bits alone or in any
        batch. `users_per_call` defaults to `users_per_rank_call()` (1 on the CPU, 32 on an
        accelerator). The reference path goes user by user. A NaN or inf probability is a
        NonFiniteOutputError naming the head (as `rank`)."""
        if self.path != "cached":
            return [self.rank(h, p, a) for h, p, a in zip(histories, post_ids, author_ids,
                                                          strict=True)]  # fmt: skip
        cfg = self.config
        users_per_call = users_per_call or users_per_rank_call()
        out = [np.zeros((len(p), cfg.num_actions), np.float32) for p in post_ids]
        groups: dict[int, list[int]] = {}
        pending = []
        for i, p in enumerate(post_ids):
            if len(p):
                groups.setdefault(bucket(len(p), cfg.candidate_seq_len), []).append(i)
        for size, members in sorted(groups.items()):
            for start in range(0, len(members), users_per_call):
                group = members[start : start + users_per_call]
                rows = [make_batch(histories[i], cfg,
                                   _padded(post_ids[i], slice(0, None), size, np.int64),
                                   _padded(author_ids[i], slice(0, None), size, np.int64),
                                   sids=self.sids)
                        for i in group]  # fmt: skip
                rows += [rows[0]] * (users_per_call - len(rows))
                batch = RecsysBatch(*(None if xs[0] is None else np.concatenate(xs)
                                      for xs in zip(*rows, strict=True)))  # fmt: skip
                emb = embed_batch(batch, self.ckpt.tables, cfg)
                # dispatched without waiting: the next group's inputs are built while XLA
                # computes this one; at most RANK_IN_FLIGHT groups (their inputs and outputs)
                # are held at once, so a batch's memory does not grow with its users
                pending.append((group, cached_probs_fn(cfg)(self.cached_params, batch, emb)))
                if len(pending) >= RANK_IN_FLIGHT:
                    self._collect(pending.pop(0), post_ids, out)
        for done in pending:
            self._collect(done, post_ids, out)
        return out

    def _collect(self, done: tuple[list[int], Any], post_ids: list[np.ndarray],
                 out: list[np.ndarray]) -> None:  # fmt: skip
        """A dispatched group's probabilities [G, bucket, A] into each user's `out` row."""
        group, probs = done
        probs = np.asarray(probs, np.float32)
        for j, i in enumerate(group):
            out[i] = finite_output(probs[j, : len(post_ids[i])], "ranker", self.config.head_names)

    def _rank_cached(
        self, history, post_ids, author_ids, product_surface, impression_ts, creation_ts
    ) -> np.ndarray:
        n = len(post_ids)
        if n == 0:
            return np.zeros((0, self.config.num_actions), np.float32)
        batch, emb = self.cached_inputs(history, post_ids, author_ids, product_surface,
                                        impression_ts, creation_ts)  # fmt: skip
        probs = cached_probs_fn(self.config, self.upstream_sigmoid)(self.cached_params, batch, emb)
        return finite_output(np.asarray(probs, np.float32)[0, :n], "ranker", self.config.head_names)

    def cached_inputs(
        self,
        history,
        post_ids,
        author_ids,
        product_surface=None,
        impression_ts=None,
        creation_ts=None,
    ) -> tuple[RecsysBatch, RecsysEmbeddings]:
        """The cached path's batch and embeddings: candidates padded to their shape bucket."""
        size = bucket(len(post_ids), self.config.candidate_seq_len)
        sl = slice(0, len(post_ids))
        batch = make_batch(
            history, self.config,
            _padded(post_ids, sl, size, np.int64), _padded(author_ids, sl, size, np.int64),
            _padded(product_surface, sl, size, np.int32), impression_ts,
            _padded(creation_ts, sl, size, np.int64), self.sids,
        )  # fmt: skip
        return batch, embed_batch(batch, self.ckpt.tables, self.config)

    def cached_flops(self, history: UserHistory, post_ids: np.ndarray) -> float:
        """FLOPs of one cached-path call for these candidates, as XLA counts them."""
        batch, emb = self.cached_inputs(history, post_ids, post_ids)
        compiled = cached_probs_fn(self.config).lower(self.cached_params, batch, emb).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        return float(cost.get("flops", float("nan")))


def _padded(a: np.ndarray | None, sl: slice, size: int, dtype: type) -> np.ndarray | None:
    """a[sl] zero-padded at the end to `size` entries (None stays None)."""
    if a is None:
        return None
    out = np.zeros(size, dtype)
    part = np.asarray(a[sl], dtype)
    out[: len(part)] = part
    return out


class Retriever:
    """The Phoenix two-tower retrieval model over one checkpoint."""

    def __init__(self, ckpt: PhoenixCheckpoint, sids: PostSids | None = None):
        if ckpt.config.is_ranker:
            raise ValueError("Retriever needs a retrieval checkpoint")
        self.sids = sids  # post id -> SID codes: needed when config.sid_levels > 0
        check_sids(ckpt.config, sids)  # refused early
        self.ckpt = ckpt
        self.config = ckpt.config
        self.params = jax.device_put(unflatten(ckpt.params))
        user_fwd = hk.without_apply_rng(hk.transform(retrieval.user_forward(self.config)))
        cand_fwd = hk.without_apply_rng(hk.transform(retrieval.candidate_forward(self.config)))
        self._user = jax.jit(full_precision(user_fwd.apply))
        self._cand = jax.jit(full_precision(cand_fwd.apply))

    def encode_user(self, history: UserHistory) -> tuple[np.ndarray, float]:
        """User representation [D] (unit norm, float32) and its pre-normalisation norm."""
        cfg = self.config
        batch = make_batch(history, cfg, np.zeros(0, np.int64), np.zeros(0, np.int64),
                           sids=self.sids)  # fmt: skip
        emb = embed_batch(batch, self.ckpt.tables, cfg)
        rep, norm = self._user(self.params, batch, emb)
        return finite_output(np.asarray(rep[0], np.float32), "user tower"), float(
            np.asarray(norm)[0, 0]
        )

    def encode_users(self, histories: list[UserHistory], batch_size: int = 64) -> np.ndarray:
        """User representations [U, D] (unit norm, float32), `batch_size` users per jitted call
        (the last batch padded with copies of its first row, results dropped, so one shape is
        compiled)."""
        cfg = self.config
        out = np.zeros((len(histories), cfg.emb_size), np.float32)
        none = np.zeros(0, np.int64)
        pending = []
        for start in range(0, len(histories), batch_size):
            part = histories[start : start + batch_size]
            rows = [make_batch(h, cfg, none, none, sids=self.sids) for h in part]
            rows += [rows[0]] * (batch_size - len(rows))  # padding rows, results dropped
            batch = RecsysBatch(*(None if xs[0] is None else np.concatenate(xs)
                                  for xs in zip(*rows, strict=True)))  # fmt: skip
            emb = embed_batch(batch, self.ckpt.tables, cfg)
            rep, _ = self._user(self.params, batch, emb)  # [batch_size, D], not waited for
            pending.append((start, len(part), rep))
        for start, n, rep in pending:
            out[start : start + n] = np.asarray(rep)[:n]
        return finite_output(out, "user tower")

    def encode_posts(
        self, post_ids: np.ndarray, author_ids: np.ndarray, batch_size: int = 4096
    ) -> np.ndarray:
        """Candidate-tower embeddings [N, D] float32 (unit norm), computed in fixed-size batches."""
        cfg, tables = self.config, self.ckpt.tables
        post_ids = hashing.as_int64_ids(post_ids)
        author_ids = hashing.as_int64_ids(author_ids)
        n = len(post_ids)
        out = np.zeros((n, cfg.emb_size), np.float32)
        off = cfg.hash.offsets
        bs = min(batch_size, max(n, 1))
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            posts = np.zeros(bs, np.int64)
            authors = np.zeros(bs, np.int64)
            posts[: stop - start] = post_ids[start:stop]
            authors[: stop - start] = author_ids[start:stop]
            pe = tables.lookup(hashing.item_rows(posts, cfg.hash), "item", off["item"])
            ae = tables.lookup(hashing.author_rows(authors, cfg.hash), "author", off["author"])
            codes = sid_arrays("c", posts, cfg, self.sids).get("c")  # [bs, L] with SIDs
            rep = self._cand(
                self.params, pe[None], ae[None], None if codes is None else codes[None]
            )
            out[start:stop] = np.asarray(rep[0, : stop - start])
        return finite_output(out, "candidate tower")
