"""Thunder snapshots: Arrow IPC files + a JSON manifest, written atomically, loaded memory-mapped.

    SNAP/manifest.json        as_of_ms, retention_ms, counts, source logs and their hash
    SNAP/posts.arrow          one row per stored post, sorted by post_id
    SNAP/entries.arrow        posting-list entries of every kind (original, secondary, video)
    SNAP/<kind>_authors.arrow author, start, end into that kind's part of the entries
    SNAP/fetch_index.arrow    the fetch index (thunder.index): author + one int32 record each
                              (optional: a snapshot without it gets it built on first fetch)

Loading maps the files and views their columns as numpy arrays without copying.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from safeio.atomic import atomic_path
from safeio.errors import InputRefused
from safeio.inputs import regular_file
from safeio.kinds import OutputKind, read_json_object
from thunder import integrity
from thunder.config import DEFAULT_CONFIG, ThunderConfig
from thunder.errors import ThunderError
from thunder.index import WIDTH, FetchIndex
from thunder.log import PostLog
from thunder.rules import Kind
from thunder.store import PostingLists, ThunderStore

FORMAT = "xfeed-thunder-snapshot"
SCHEMA_VERSION = 1
FLAGS = ("is_reply", "is_retweet", "has_video")
AGE_BUCKETS_H = (1, 3, 6, 12, 24, 48)
MAX_MANIFEST_BYTES = 64 << 20
SNAPSHOT_OUTPUT = OutputKind(
    "thunder snapshot",
    True,
    lambda p: read_json_object(p / "manifest.json").get("format") == FORMAT,
)


def _write_arrow(path: Path, columns: dict[str, np.ndarray]) -> None:
    table = pa.table({k: pa.array(v) for k, v in columns.items()})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_arrow(path: Path) -> dict[str, np.ndarray]:
    try:
        table = pa.ipc.open_file(pa.memory_map(str(regular_file(path, "snapshot file")))).read_all()
    except InputRefused as exc:
        raise ThunderError(str(exc)) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise ThunderError(f"{path}: unreadable snapshot file ({exc})") from exc
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_boolean(col.type)):
            raise ThunderError(f"{path}: column {name!r} must be integer, got {col.type}")
        try:
            out[name] = col.chunk(0).to_numpy() if col.num_chunks == 1 else col.to_numpy()
        except (pa.ArrowException, ValueError) as exc:
            raise ThunderError(f"{path}: unreadable column {name!r} ({exc})") from None
    return out


def save_snapshot(
    out: Path | str,
    store: ThunderStore,
    log: PostLog,
    config: ThunderConfig = DEFAULT_CONFIG,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Write the store atomically (never over something that is not a snapshot unless `force`,
    never over the logs it was built from); returns the manifest."""
    manifest = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "as_of_ms": store.as_of_ms,
        "retention_ms": store.retention_ms,
        # timings are not content: two builds of the same logs give the same bytes
        "counts": {k: v for k, v in store.counts.items() if not k.endswith("_ms")},
        "sources": log.sources,
        "source_hash": log.source_hash,
        "config": dataclasses.asdict(config),
    }
    inputs = [s["path"] for s in log.sources]
    with atomic_path(out, kind=SNAPSHOT_OUTPUT, force=force, inputs=inputs) as tmp:
        posts = {k: v.astype(np.uint8) if k in FLAGS else v for k, v in store.posts.items()}
        _write_arrow(tmp / "posts.arrow", posts)
        _write_arrow(tmp / "entries.arrow", store.entries)
        for kind, lists in store.lists.items():
            name = kind.name.lower()
            _write_arrow(tmp / f"{name}_authors.arrow", {
                "author_id": lists.authors, "start": lists.offsets[:-1], "end": lists.offsets[1:],
            })  # fmt: skip
        if store.fetch_index is not None:
            _write_fetch_index(tmp / "fetch_index.arrow", store.fetch_index)
            manifest["fetch_index_time_points"] = store.fetch_index.time_points.tolist()
        manifest["content_sha256"] = integrity.content_hashes(tmp)
        text = json.dumps(manifest, indent=2) + "\n"
        (tmp / "manifest.json").write_text(text)
    return json.loads(text)


def load_snapshot(path: Path | str) -> tuple[ThunderStore, dict[str, Any]]:
    """Memory-map a snapshot. Raises ThunderError for a missing or malformed one."""
    path = Path(path)
    if not (path / "manifest.json").exists():
        what = "no such snapshot" if not path.exists() else "not a Thunder snapshot (no manifest)"
        raise ThunderError(f"{path}: {what}")
    try:
        manifest_file = regular_file(path / "manifest.json", "snapshot manifest")
        if manifest_file.stat().st_size > MAX_MANIFEST_BYTES:
            raise ThunderError(f"{manifest_file}: too large for a manifest")
        manifest = json.loads(manifest_file.read_bytes())
    except InputRefused as exc:
        raise ThunderError(str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ThunderError(f"{path}/manifest.json: not valid JSON") from exc
    if not isinstance(manifest, dict) or (
        manifest.get("format") != FORMAT or manifest.get("schema_version") != SCHEMA_VERSION
    ):
        raise ThunderError(f"{path}: unsupported snapshot format")
    integrity.check_manifest(path, manifest)
    integrity.verify_content(path, manifest)
    posts = _read_arrow(path / "posts.arrow")
    integrity.check_columns(path / "posts.arrow", posts, integrity.POST_COLUMNS_REQUIRED)
    for flag in FLAGS:
        posts[flag] = posts[flag].astype(np.uint8, copy=False).view(bool)
    entries = _read_arrow(path / "entries.arrow")
    integrity.check_columns(path / "entries.arrow", entries, PostingLists.ENTRY_FIELDS)
    lists = {}
    base = 0
    bases = [0]
    for kind in Kind:  # kinds are laid out in Kind order in the entries
        name = path / f"{kind.name.lower()}_authors.arrow"
        authors = _read_arrow(name)
        integrity.check_columns(name, authors, integrity.AUTHOR_COLUMNS)
        end = integrity.check_lists(name, authors, len(entries["row"]) - base)
        offsets = np.append(authors["start"], end).astype(np.int64)
        views = {f: entries[f][base : base + end] for f in PostingLists.ENTRY_FIELDS}
        lists[kind] = PostingLists(authors["author_id"], offsets, **views, base=base)
        base += end
        bases.append(base)
    integrity.check_entries(path / "entries.arrow", entries, base, len(posts["post_id"]))
    store = ThunderStore(
        posts,
        lists,
        int(manifest["as_of_ms"]),
        int(manifest["retention_ms"]),
        manifest["counts"],
        entries,
    )
    if (path / "fetch_index.arrow").exists() and "fetch_index_time_points" in manifest:
        store.fetch_index = _read_fetch_index(
            path / "fetch_index.arrow", manifest["fetch_index_time_points"]
        )
        integrity.check_fetch_index(path / "fetch_index.arrow", store.fetch_index.table,
                                    WIDTH, bases)  # fmt: skip
    return store, manifest


def _write_fetch_index(path: Path, index: FetchIndex) -> None:
    width = index.table.shape[1]
    values = pa.array(np.ascontiguousarray(index.table).ravel())
    table = pa.table({
        "author_id": pa.array(index.authors),
        "record": pa.FixedSizeListArray.from_arrays(values, width),
    })  # fmt: skip
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_fetch_index(path: Path, time_points: list[int]) -> FetchIndex:
    """Memory-mapped: the records' values buffer is the row-major [U, W] table, not copied."""
    try:
        table = pa.ipc.open_file(pa.memory_map(str(regular_file(path, "snapshot file")))).read_all()
        column = table.column("record")
        record = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        width = record.type.list_size
        values = record.flatten().to_numpy()
        authors = table.column("author_id")
        authors = (
            authors.chunk(0) if authors.num_chunks == 1 else authors.combine_chunks()
        ).to_numpy()
    except InputRefused as exc:
        raise ThunderError(str(exc)) from None
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise ThunderError(f"{path}: unreadable snapshot file ({exc})") from exc
    if values.dtype != np.int32 or len(values) != len(authors) * width:
        raise ThunderError(f"{path}: malformed fetch index")
    return FetchIndex(authors, values.reshape(len(authors), width),
                      np.asarray(time_points, np.int64))  # fmt: skip


def snapshot_stats(store: ThunderStore, manifest: dict[str, Any]) -> dict[str, Any]:
    """Posts, authors, deletes, per-kind counts and an age histogram (hours before as_of)."""
    age_h = (store.as_of_ms - store.posts["created_ms"]) / 3_600_000
    edges = (0, *AGE_BUCKETS_H, np.inf)
    hist = np.histogram(age_h, bins=edges)[0] if len(age_h) else np.zeros(len(edges) - 1, int)
    labels = [
        f"{lo:g}–{hi:g} h" if np.isfinite(hi) else f"≥ {lo:g} h"
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    c = manifest["counts"]
    return {
        "as_of_ms": store.as_of_ms,
        "retention_ms": store.retention_ms,
        "posts": store.num_posts,
        "authors": c.get("authors"),
        "deletes": c.get("deletes"),
        "kinds": {
            k: c.get(k) for k in ("originals", "replies", "retweets", "quotes", "video_eligible")
        },
        "lists": {k.name.lower(): len(v) for k, v in store.lists.items()},
        "dropped": {k[len("dropped_") :]: v for k, v in c.items() if k.startswith("dropped_")},
        "evicted": {k[len("evicted_") :]: v for k, v in c.items() if k.startswith("evicted_")},
        "age_histogram": dict(zip(labels, (int(x) for x in hist), strict=True)),
        "source_hash": manifest.get("source_hash"),
    }
