"""Thunder benchmark: build throughput, snapshot load time, in-network fetch latency.

Generates a synthetic post log (creates over 3 days with replies, retweets, quotes, videos, and
~5% deletes), writes it as Parquet, then measures: read (Parquet -> numpy), build (vectorised
store), snapshot write, snapshot load (memory-mapped), and fetch latency p50/p99 for viewers
following `follow` authors (Zipf-popular authors, as real follow graphs are).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.core import Report, Row, Timing, device_info, logger
from thunder.fetch import InNetworkRequest, in_network_posts
from thunder.log import read_logs
from thunder.snapshot import load_snapshot, save_snapshot
from thunder.store import build_store

NOW = 1_780_000_000_000
H = 3_600_000
EPOCH = 1288834974657


def synth_log(path: Path, events: int, authors: int, seed: int = 0) -> None:
    """A synthetic posts.parquet with `events` rows (data.md schema, Thunder's columns)."""
    rng = np.random.default_rng(seed)
    n_del = events // 20
    n = events - n_del
    created = NOW - rng.integers(0, 72 * H, n)
    post_id = ((created - EPOCH) << 22) | np.arange(n) % (1 << 22)
    weights = 1.0 / np.arange(1, authors + 1) ** 0.8
    author = rng.choice(np.arange(1, authors + 1), n, p=weights / weights.sum())
    kind = rng.random(n)
    reply = kind < 0.2
    retweet = (kind >= 0.2) & (kind < 0.3)
    quote = (kind >= 0.3) & (kind < 0.35)
    parent = rng.integers(0, n, n)
    reply_to = np.where(reply, post_id[parent], 0)
    reply_user = np.where(reply, author[parent], 0)
    conversation = np.where(reply, np.where(rng.random(n) < 0.5, post_id[parent], reply_to), 0)
    source = np.where(retweet, post_id[parent], 0)
    source_user = np.where(retweet, author[parent], 0)
    video = np.where(rng.random(n) < 0.1, rng.integers(1000, 60000, n), 0)
    del_ids = post_id[rng.integers(0, n, n_del)]
    del_ms = NOW - rng.integers(0, 24 * H, n_del)

    def nullable(a):
        return pa.array(a, mask=a == 0)

    pad = np.zeros(n_del, np.int64)
    table = pa.table({
        "event": pa.array(np.r_[np.full(n, "create"), np.full(n_del, "delete")]),
        "event_ms": np.r_[created, del_ms],
        "post_id": np.r_[post_id, del_ids],
        "author_id": nullable(np.r_[author, pad]),
        "created_ms": nullable(np.r_[created, pad]),
        "in_reply_to_post_id": nullable(np.r_[reply_to, pad]),
        "in_reply_to_user_id": nullable(np.r_[reply_user, pad]),
        "conversation_id": nullable(np.r_[conversation, pad]),
        "source_post_id": nullable(np.r_[source, pad]),
        "source_user_id": nullable(np.r_[source_user, pad]),
        "quoted_post_id": nullable(np.r_[np.where(quote, post_id[parent], 0), pad]),
        "video_duration_ms": nullable(np.r_[video, pad].astype(np.int32)),
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=1 << 20)


def bench_thunder(
    events: int = 10_000_000,
    authors: int = 200_000,
    follow: int = 1000,
    requests: int = 200,
    workdir: Path | None = None,
) -> Report:
    """Build, load and fetch figures for a synthetic log of `events` events."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        return _run(events, authors, follow, requests, Path(tmp))


def _run(events: int, authors: int, follow: int, requests: int, workdir: Path) -> Report:
    log_path = workdir / "posts.parquet"
    logger.info("thunder: generating %d events", events)
    synth_log(log_path, events, authors)
    t = time.perf_counter()
    log = read_logs([log_path])
    read_s = time.perf_counter() - t
    logger.info("thunder: building")
    t = time.perf_counter()
    store = build_store(log, NOW)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    save_snapshot(workdir / "snap", store, log)
    write_s = time.perf_counter() - t
    del store, log

    t = time.perf_counter()
    loaded, _ = load_snapshot(workdir / "snap")
    load_s = time.perf_counter() - t

    rng = np.random.default_rng(1)
    weights = 1.0 / np.arange(1, authors + 1) ** 0.8
    viewers = [
        InNetworkRequest(10_000_000 + v, rng.choice(np.arange(1, authors + 1), follow,
                                                    replace=False, p=weights / weights.sum()))
        for v in range(requests)
    ]  # fmt: skip
    in_network_posts(loaded, viewers[0])  # warm-up (page in the mapped files)
    logger.info("thunder: %d fetches", requests)
    lat, sizes = [], []
    for req in viewers:
        t = time.perf_counter()
        rows = in_network_posts(loaded, req)
        lat.append((time.perf_counter() - t) * 1e3)
        sizes.append(len(rows))
    fetch = Timing(tuple(lat))
    report = Report("thunder")
    report.info = {**device_info(), "events": events, "authors": authors,
                   "posts_stored": int(loaded.num_posts), "following": follow,
                   "requests": requests}  # fmt: skip
    report.rows = [
        Row("read Parquet", Timing((read_s * 1e3,)), events / read_s, "events/s"),
        Row("build store", Timing((build_s * 1e3,)), events / build_s, "events/s"),
        Row("write snapshot", Timing((write_s * 1e3,))),
        Row("load snapshot (mmap)", Timing((load_s * 1e3,))),
        Row(f"in-network fetch, {follow} followed", fetch, 1e3 / fetch.p50, "requests/s",
            {"p99_ms": round(fetch.p99, 3), "mean_results": round(float(np.mean(sizes)), 1)}),
    ]  # fmt: skip
    report.summary = {
        "build_events_per_s": round(events / build_s),
        "snapshot_load_ms": round(load_s * 1e3, 2),
        "fetch_p50_ms": round(fetch.p50, 3),
        "fetch_p99_ms": round(fetch.p99, 3),
    }
    return report
