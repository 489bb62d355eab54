"""Retrieval benchmark: exact top-K over a corpus of unit-norm embeddings, for one user and for
a batch of users, against the plain numpy floor (matmul + argpartition, nothing else) measured
in the same run; plus the mini user tower encoding a batch of users.
"""

from __future__ import annotations

import jax
import numpy as np

from benchmarks.core import Report, Row, device_info, logger, measure, random_history, ratio
from checkpoints.fake import fake_checkpoint
from phoenix.config import ModelType, Preset
from phoenix.runtime import Retriever
from phoenix.search import DeviceCorpus, search


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def bench_retrieval(
    repeat: int = 10,
    corpus_size: int = 1_000_000,
    dim: int = 128,
    k: int = 200,
    batch: int = 64,
    device: jax.Device | None = None,
    seed: int = 0,
    preset: Preset = Preset.MINI,
) -> Report:
    """Top-`k` over `corpus_size` × `dim`: ours vs the numpy floor, single query and batched."""
    rng = np.random.default_rng(seed)
    logger.info("retrieval: generating a %d x %d corpus", corpus_size, dim)
    corpus = _unit(rng, corpus_size, dim)  # [N, D]
    queries = _unit(rng, batch, dim)  # [U, D]
    report = Report("retrieval")
    report.info = {**device_info(device), "corpus": f"{corpus_size:,} x {dim} float32",
                   "k": k, "batch": batch, "repeat": repeat}  # fmt: skip

    def floor_one():
        s = corpus @ queries[0]
        return np.argpartition(s, -k)[-k:]

    def floor_batch():
        s = queries @ corpus.T  # [U, N]
        return np.argpartition(s, -k, axis=1)[:, -k:]

    def floor_batch_t():  # the product in the layout the search uses
        s = corpus @ queries.T  # [N, U]
        return np.argpartition(s, -k, axis=0)[-k:]

    logger.info("retrieval: single query")
    f1 = measure(floor_one, repeat)
    o1 = measure(lambda: search(queries[:1], corpus, k), repeat)
    logger.info("retrieval: batch of %d", batch)
    fb_plain = measure(floor_batch, max(3, repeat // 2))
    fb_t = measure(floor_batch_t, max(3, repeat // 2))
    fb = min(fb_plain, fb_t, key=lambda m: m.p50)  # the floor: the faster layout
    ob = measure(lambda: search(queries, corpus, k), max(3, repeat // 2))
    report.rows += [
        Row("numpy floor, 1 query", f1, 1e3 / f1.p50, "queries/s"),
        Row("xfeed search, 1 query", o1, 1e3 / o1.p50, "queries/s"),
        Row(
            f"numpy floor, {batch} queries (Q @ C.T)",
            fb_plain,
            batch * 1e3 / fb_plain.p50,
            "queries/s",
        ),
        Row(f"numpy floor, {batch} queries (C @ Q.T)", fb_t, batch * 1e3 / fb_t.p50, "queries/s"),
        Row(f"xfeed search, {batch} queries", ob, batch * 1e3 / ob.p50, "queries/s"),
    ]
    report.summary = {
        "single_vs_floor": ratio(o1.p50, f1.p50),
        "batch_vs_floor": ratio(ob.p50, fb.p50),
        "batch_speedup_per_query": ratio(o1.p50 * batch, ob.p50),
        "corpus_gb": round(corpus.nbytes / 1e9, 3),
    }
    dev = device or jax.devices()[0]
    if dev.platform != "cpu":
        logger.info("retrieval: corpus on %s", dev.platform)
        on_dev = DeviceCorpus(corpus, dev)
        d1 = measure(lambda: on_dev.search(queries[:1], k), repeat)
        db = measure(lambda: on_dev.search(queries, k), repeat)
        report.rows += [
            Row(f"device search, 1 query ({dev.platform})", d1, 1e3 / d1.p50, "queries/s"),
            Row(f"device search, {batch} queries ({dev.platform})", db, batch * 1e3 / db.p50,
                "queries/s"),
        ]  # fmt: skip
        report.summary["device_batch_vs_host_floor"] = ratio(db.p50, fb.p50)

    logger.info("retrieval: user tower")
    with jax.default_device(dev):
        retriever = Retriever(fake_checkpoint(ModelType.RETRIEVAL, 20_000, seed, preset))
        hl = retriever.config.history_seq_len
        histories = [random_history(retriever.config.num_actions, hl, rng, user_id=u + 1)
                     for u in range(batch)]  # fmt: skip
        enc = measure(lambda: retriever.encode_users(histories, batch_size=batch), repeat)
    label = f"user tower ({preset.value}), {batch} users"
    report.rows.append(Row(label, enc, batch * 1e3 / enc.p50, "users/s"))
    report.notes.append(
        "floor = corpus @ q (or the faster of Q @ corpus.T and corpus @ Q.T) + "
        "np.argpartition, unsorted"
    )
    return report
