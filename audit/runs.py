"""Reading population runs (`xfeed rank --users … --out DIR`) for an audit: the manifest checked,
then the served rows of every part streamed batch by batch (only the columns an audit needs),
kept as numpy columns grouped by viewer in feed order.

Memory: one copy of the needed served columns (~130 bytes a served row with every head as
float32), never the whole Parquet table; non-served rows (`--keep scored|all`) are dropped batch
by batch.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FORMAT = "xfeed-feeds/1"
BATCH_ROWS = 1 << 17
NEGATIVE_HEADS = ("not_interested", "block_author", "mute_author", "report")
COLUMNS = {
    "viewer_id": pa.types.is_integer, "position": pa.types.is_integer,
    "post_id": pa.types.is_integer, "author_id": pa.types.is_integer,
    "in_network": pa.types.is_boolean, "source": pa.types.is_string,
    "created_ms": pa.types.is_integer, "request_ms": pa.types.is_integer,
    "stage": pa.types.is_string,
}  # fmt: skip


class AuditError(ValueError):
    """Bad audit input: not a finished run, a damaged part, a bad groups file."""


@dataclasses.dataclass
class Run:
    """The served slots of one run (an arm), rows grouped by viewer in feed order.

    viewer, post, author, created, request: [N] int64; position: [N] int32 (1-based);
    in_network: [N] bool; source: [N] int8 codes into `sources`; probs: [N, H] float32 (NaN:
    the head was not scored) for `heads`. `users`: every viewer id of the run with a served row
    (ascending); `n_users`: the run's user count from the manifest (users with an empty feed
    count in reach denominators)."""

    path: Path
    label: str
    arm: str
    manifest: dict[str, Any]
    viewer: np.ndarray
    position: np.ndarray
    post: np.ndarray
    author: np.ndarray
    in_network: np.ndarray
    source: np.ndarray
    sources: list[str]
    created: np.ndarray
    request: np.ndarray
    probs: np.ndarray
    heads: list[str]
    shard_paths: tuple[Path, ...] = ()  # the directories of a run's shards, merged into this one

    @property
    def world(self) -> str:
        return str((self.manifest.get("world") or {}).get("path") or "")

    @property
    def world_key(self) -> str:
        """The world's identity: users of runs on the same world are the same people."""
        w = self.manifest.get("world") or {}
        return str(w.get("sha256") or w.get("path") or "")

    @property
    def users(self) -> np.ndarray:
        return np.unique(self.viewer)

    @property
    def n_users(self) -> int:
        return max(int(self.manifest["users"]["count"]), len(self.users))

    def take(self, rows: np.ndarray) -> Run:
        """The run restricted to `rows` (e.g. a viewer segment); n_users becomes the viewers
        kept (a segment counts only its users with a served row)."""
        cols = {f: getattr(self, f)[rows] for f in _ARRAYS}
        manifest = dict(self.manifest)
        manifest["users"] = {"count": int(len(np.unique(cols["viewer"])))}
        return dataclasses.replace(self, manifest=manifest, **cols)


_ARRAYS = ("viewer", "position", "post", "author", "in_network", "source", "created", "request",
           "probs")  # fmt: skip


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a finished run, checked: format, arm, users, parts."""
    if not path.is_dir():
        raise AuditError(f"{path}: not a directory (give a `xfeed rank --users … --out DIR` run)")
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise AuditError(f"{path}: no manifest.json (not a finished population run: still "
                         "running, interrupted (use --resume), or not a run)")  # fmt: skip
    if mpath.stat().st_size > 64 << 20:
        raise AuditError(f"{mpath}: too large for a manifest")
    try:
        m = json.loads(mpath.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditError(f"{mpath}: not valid JSON ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise AuditError(f"{mpath}: not an {FORMAT} manifest (format {m.get('format')!r})"
                         if isinstance(m, dict) else f"{mpath}: not a JSON object")  # fmt: skip
    try:
        arm = m["arm"]
        count = m["users"]["count"]
        parts = [p["file"] for p in m["parts"]]
    except (KeyError, TypeError) as exc:
        raise AuditError(f"{mpath}: missing or malformed field {exc}") from None
    if not isinstance(arm, str) or not isinstance(count, int) or count < 0:
        raise AuditError(f"{mpath}: 'arm' must be a string and users.count a count")
    for name in parts:
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            raise AuditError(f"{mpath}: bad part name {name!r}")
        if not (path / name).is_file():
            raise AuditError(f"{path / name}: part listed in the manifest is missing")
    return m


def _check_schema(path: Path, schema: pa.Schema, heads: list[str]) -> None:
    for name, ok in COLUMNS.items():
        if name not in schema.names:
            raise AuditError(f"{path}: no column {name!r} (not an xfeed feeds part)")
        if not ok(schema.field(name).type):
            raise AuditError(f"{path}: column {name!r} has type {schema.field(name).type}")
    for h in heads:
        if not pa.types.is_floating(schema.field(f"p_{h}").type):
            raise AuditError(f"{path}: column 'p_{h}' is not a float column")


def read_run(path: Path | str, label: str | None = None) -> Run:
    """A finished run's served rows (streamed, the needed columns only), checked."""
    path = Path(path)
    m = read_manifest(path)
    files = [path / p["file"] for p in m["parts"]]
    heads: list[str] | None = None
    source_names: list[str] = []
    chunks: dict[str, list] = {k: [] for k in _ARRAYS}
    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as exc:
            raise AuditError(f"{f}: not a readable Parquet file ({exc})") from None
        names = pf.schema_arrow.names
        these = [n[2:] for n in names if n.startswith("p_")]
        if heads is None:
            heads = these
        elif these != heads:
            raise AuditError(f"{f}: head columns differ from the run's first part")
        _check_schema(f, pf.schema_arrow, heads)
        try:
            for batch in pf.iter_batches(
                BATCH_ROWS, columns=[*COLUMNS, *(f"p_{h}" for h in heads)]
            ):
                _append(chunks, batch, heads, source_names)
        except (pa.ArrowException, OSError) as exc:
            raise AuditError(f"{f}: damaged part ({exc})") from None
        except AuditError as exc:
            raise AuditError(f"{f}: {exc}") from None
    heads = heads or []
    cols = {k: np.concatenate(v) if v else None for k, v in chunks.items()}
    n = 0 if cols["viewer"] is None else len(cols["viewer"])
    if n == 0:
        cols = {k: np.zeros(0, np.int64) for k in chunks}
        cols["probs"] = np.zeros((0, len(heads)), np.float32)
    order = np.lexsort((cols["position"], cols["viewer"]))
    if not np.array_equal(order, np.arange(n)):
        cols = {k: v[order] for k, v in cols.items()}
    sources = sorted(source_names)  # codes in name order (the same for any part order)
    to_sorted = np.array([sources.index(x) for x in source_names] or [0], np.int8)
    cols["source"] = to_sorted[cols["source"]].astype(np.int8)
    return Run(path=path, label=label or str(m["arm"]), arm=str(m["arm"]), manifest=m,
               sources=sources, heads=heads, **cols)  # fmt: skip


def _append(chunks: dict[str, list], batch: pa.RecordBatch, heads: list[str],
            names: list[str]) -> None:  # fmt: skip
    served = pc.and_(pc.equal(batch.column("stage"), "served"),
                     pc.is_valid(batch.column("position")))  # fmt: skip
    b = batch.filter(pc.fill_null(served, False))
    if b.num_rows == 0:
        return

    def ints(name: str, dtype=np.int64) -> np.ndarray:
        col = b.column(name)
        if col.null_count:
            raise AuditError(f"served rows with a null {name!r}")
        return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    chunks["viewer"].append(ints("viewer_id"))
    chunks["position"].append(ints("position", np.int32))
    chunks["post"].append(ints("post_id"))
    chunks["author"].append(ints("author_id"))
    chunks["in_network"].append(pc.fill_null(b.column("in_network"), False).to_numpy(
        zero_copy_only=False))  # fmt: skip
    enc = pc.fill_null(b.column("source"), "").dictionary_encode()
    for name in enc.dictionary.to_pylist():
        if name not in names:
            names.append(name)
    remap = np.array([names.index(n) for n in enc.dictionary.to_pylist()], np.int16)
    chunks["source"].append(remap[enc.indices.to_numpy(zero_copy_only=False)])
    chunks["created"].append(ints("created_ms"))
    chunks["request"].append(ints("request_ms"))
    probs = np.empty((b.num_rows, len(heads)), np.float32)  # [n, H]
    for j, h in enumerate(heads):
        probs[:, j] = pc.fill_null(b.column(f"p_{h}").cast(pa.float32()), np.nan).to_numpy(
            zero_copy_only=False)  # fmt: skip
    chunks["probs"].append(probs)


# Manifest fields in which the shards of one run differ; the rest (arm, inputs and their hashes,
# params, request time, keep, engine, version) must be equal.
_PER_SHARD = ("shard", "users", "counts", "parts", "time")


def _shard_key(m: dict[str, Any]) -> str | None:
    shard = m.get("shard")
    if not isinstance(shard, dict) or not isinstance(shard.get("count"), int):
        return None
    if shard["count"] <= 1:
        return None
    return json.dumps({k: v for k, v in m.items() if k not in _PER_SHARD}, sort_keys=True,
                      default=str)  # fmt: skip


def merge_shards(runs: list[Run]) -> list[Run]:
    """Shards of one run (`rank --users … --shard I/N --out DIR_I`, every DIR_I given) become one
    run, in the place of its first shard: rows concatenated (by viewer, then position), users
    counted over the shards. Other runs pass through."""
    keys = [_shard_key(r.manifest) for r in runs]
    out = []
    for i, (r, key) in enumerate(zip(runs, keys, strict=True)):
        members = [j for j, k in enumerate(keys) if key is not None and k == key]
        if len(members) < 2:
            out.append(r)
        elif members[0] == i:
            out.append(_concat([runs[j] for j in members]))
    return out


def _concat(shards: list[Run]) -> Run:
    first = shards[0]
    seen: dict[int, Path] = {}
    for r in shards:
        index = r.manifest["shard"].get("index")
        if index in seen:
            raise AuditError(f"{r.path}: shard {index} of this run is also {seen[index]}")
        seen[index] = r.path
        if r.heads != first.heads:
            raise AuditError(f"{r.path}: head columns differ from the shard {first.path}")
    sources = sorted({s for r in shards for s in r.sources})
    cols = {f: np.concatenate([getattr(r, f) for r in shards]) for f in _ARRAYS if f != "source"}
    cols["source"] = np.concatenate([
        np.array([sources.index(s) for s in r.sources] or [0], np.int8)[r.source]
        for r in shards
    ]).astype(np.int8)  # fmt: skip
    order = np.lexsort((cols["position"], cols["viewer"]))
    cols = {k: v[order] for k, v in cols.items()}
    manifest = dict(first.manifest)
    manifest["users"] = {"count": sum(int(r.manifest["users"]["count"]) for r in shards)}
    manifest["shard"] = {"index": sorted(seen), "count": first.manifest["shard"]["count"]}
    return dataclasses.replace(first, manifest=manifest, sources=sources,
                               shard_paths=tuple(r.path for r in shards), **cols)  # fmt: skip


def read_runs(paths: list[Path | str]) -> list[Run]:
    """Several runs, labelled by their arm (by arm and directory name where arms repeat); the
    shards of one run are merged (merge_shards)."""
    runs = merge_shards([read_run(p) for p in paths])
    arms = [r.arm for r in runs]
    for r in runs:
        if arms.count(r.arm) > 1:
            r.label = f"{r.arm}:{r.path.name}"
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise AuditError("two runs have the same arm and directory name; rename one")
    return runs
