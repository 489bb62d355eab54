"""Population runs: every user's feed in one process, written as a Parquet dataset.

`xfeed rank --users all|ID,ID,…|FILE --out DIR` ranks the users in batches on the columnar
engine (the same one `rank --user` runs as a batch of one) and writes one row per served slot
(and with `keep` the non-served and removed candidates) into part files of `PART_USERS` users
each, every part written atomically; `manifest.json` (written last) records the inputs' content
hashes, params, request time, counts and per-stage time. A part that exists is finished, so
`resume` skips it and a run killed at any point and resumed gives the same dataset.
`--shard I/N` takes the users whose id hashes to I modulo N.
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phoenix.device import current_platform
from pipeline import feed
from pipeline.columns import Cands
from pipeline.framework import BatchResult
from pipeline.params import HEADS, FeedParams
from pipeline.query import Resources
from safeio.atomic import atomic_path, write_text_atomic
from safeio.digest import update_with_file
from safeio.inputs import read_parquet
from world.tables import WorldError, read_world_json

FORMAT = "xfeed-feeds/1"
PART_USERS = 256  # users per part file
BATCH_USERS = 64  # users per engine batch on a CPU
GPU_BATCH_USERS = 256  # on a GPU: fewer, larger calls (H200: 110 users/s, 87 at 64; README)
BATCH_THREADS = 2  # engine batches in flight at once (see iter_batches)
KEEP = ("served", "scored", "all")
RUN_FILE = "run.json"  # written first: what the parts belong to (checked on --resume)
MANIFEST = "manifest.json"  # written last: the finished dataset


class PopulationError(ValueError):
    """Bad population-run input: users spec, shard, output directory, resume mismatch."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that decides a population run's rows."""

    resources: Resources
    params: FeedParams
    now_ms: int
    keep: str = "served"
    shard: tuple[int, int] = (0, 1)  # (index, count)
    lenient: bool = False


# ---- users ------------------------------------------------------------------------------------


def world_user_ids(world: str) -> np.ndarray:
    """Every user id of a world, ascending (read from users.parquet's id column only)."""
    ids = read_parquet(Path(world) / "users.parquet", ["user_id"]).column("user_id")
    return np.unique(ids.to_numpy().astype(np.int64))


def resolve_users(spec: str, world: str) -> np.ndarray:
    """`all`, `ID,ID,…`, or a file (text, one id per line; or Parquet with `user_id`) -> the user
    ids, ascending and unique; every id must be a user of the world."""
    known = world_user_ids(world)
    if spec == "all":
        return known
    path = Path(spec)
    if _is_file(path):
        ids = _ids_from_file(path)
    elif all(part.strip().lstrip("-").isdigit() for part in spec.split(",") if part.strip()):
        ids = np.array([int(x) for x in spec.split(",") if x.strip()], np.int64)
    else:
        raise PopulationError(f"--users {spec!r}: not 'all', a list of ids, or an existing file")
    ids = np.unique(ids)
    missing = ids[~np.isin(ids, known)]
    if len(missing):
        raise PopulationError(f"--users: {len(missing)} id(s) not in world {world} "
                              f"(first: {', '.join(map(str, missing[:5].tolist()))})")  # fmt: skip
    if not len(ids):
        raise PopulationError(f"--users {spec!r}: no user ids")
    return ids


def _is_file(path: Path) -> bool:
    """Whether `path` names an existing file; a long id list is no file name (the OS refuses a
    name over 255 bytes: ENAMETOOLONG, which `Path.exists` raises)."""
    try:
        return path.exists()
    except OSError:
        return False


def _ids_from_file(path: Path) -> np.ndarray:
    if path.suffix == ".parquet":
        try:
            table = read_parquet(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise PopulationError(f"{path}: not a readable Parquet file ({exc})") from exc
        if "user_id" not in table.column_names:
            raise PopulationError(f"{path}: no user_id column")
        col = table.column("user_id")
        if not pa.types.is_integer(col.type) or col.null_count:
            raise PopulationError(f"{path}: user_id must be integers without nulls")
        return col.to_numpy().astype(np.int64)
    ids = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            ids.append(int(line))
        except ValueError as exc:
            raise PopulationError(f"{path}: line {n}: not a user id: {line[:40]!r}") from exc
    return np.array(ids, np.int64)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    if not text:
        return (0, 1)
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as exc:
        raise PopulationError(f"--shard {text!r}: expected I/N, e.g. 0/4") from exc
    if not (n >= 1 and 0 <= i < n):
        raise PopulationError(f"--shard {text!r}: need 0 <= I < N")
    return (i, n)


def shard_of(user_ids: np.ndarray, count: int) -> np.ndarray:
    """The shard of each user: a splitmix64 hash of the id, modulo `count` (deterministic)."""
    with np.errstate(over="ignore"):
        z = user_ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(count)).astype(np.int64)


# ---- rows -------------------------------------------------------------------------------------


def head_columns() -> list[str]:
    return [f"p_{h}" for h in HEADS]


def schema() -> pa.Schema:
    """The dataset's schema (documented in the README)."""
    fields = [
        ("viewer_id", pa.int64()), ("position", pa.int32()), ("post_id", pa.int64()),
        ("author_id", pa.int64()), ("in_network", pa.bool_()), ("source", pa.string()),
        ("score", pa.float64()), ("weighted_score", pa.float64()),
        ("retrieval_score", pa.float64()), ("diversity_multiplier", pa.float64()),
        ("oon_multiplier", pa.float64()), ("is_reply", pa.bool_()), ("is_retweet", pa.bool_()),
        ("source_post_id", pa.int64()), ("created_ms", pa.int64()), ("request_ms", pa.int64()),
        ("stage", pa.string()), ("component", pa.string()), ("reason", pa.string()),
    ]  # fmt: skip
    fields += [(name, pa.float64()) for name in head_columns()]
    return pa.schema(fields)


def _rows(c: Cands, viewer: np.ndarray, request_ms: np.ndarray, stage: Sequence[str],
          position: np.ndarray | None, component: Sequence | None = None,
          reason: Sequence | None = None) -> dict[str, Any]:  # fmt: skip
    n = len(c)
    null = [None] * n
    src_post = c.get("source_post_id")
    out: dict[str, Any] = {
        "viewer_id": viewer[c.req],
        "position": pa.array(position, pa.int32()) if position is not None
        else pa.nulls(n, pa.int32()),
        "post_id": c.get("post_id"),
        "author_id": c.get("author_id"),
        "in_network": pa.array(c.get("in_network"), mask=c.null("in_network")),
        "source": c.get("source").astype(str) if n else np.zeros(0, str),
    }  # fmt: skip
    for name in ("score", "weighted_score", "retrieval_score", "diversity_multiplier",
                 "oon_multiplier"):  # fmt: skip
        out[name] = pa.array(c.get(name), pa.float64(), mask=c.null(name))
    out["is_reply"] = (c.get("in_reply_to_post_id") != 0) | (c.get("in_reply_to_user_id") != 0)
    out["is_retweet"] = src_post != 0
    out["source_post_id"] = src_post
    out["created_ms"] = c.get("created_ms")
    out["request_ms"] = request_ms[c.req]
    out["stage"] = list(stage)
    out["component"] = list(component) if component is not None else null
    out["reason"] = list(reason) if reason is not None else null
    null_probs = c.null("probs")
    for h, name in zip(HEADS, head_columns(), strict=True):
        col = c.prob(h) if h in c.heads else np.zeros(n)
        miss = null_probs | (np.isnan(c.cols["probs"][:, c.heads.index(h)]) if h in c.heads
                             else np.ones(n, bool))  # fmt: skip
        out[name] = pa.array(col, pa.float64(), mask=miss)
    return out


def batch_table(result: BatchResult, keep: str = "served") -> pa.Table:
    """The dataset rows of one batch: served slots (position 1…), then with keep=scored the
    scored but not served candidates, with keep=all also the removed ones; grouped by viewer."""
    viewer = np.array([q.user_id for q in result.queries], np.int64)
    request_ms = np.array([q.now_ms for q in result.queries], np.int64)
    sel = result.selected
    pos = np.zeros(len(sel), np.int64)
    if len(sel):
        starts = np.searchsorted(sel.req, sel.req)
        pos = np.arange(len(sel)) - starts + 1
    parts = [_rows(sel, viewer, request_ms, ["served"] * len(sel), pos)]
    if keep in ("scored", "all"):
        ns = result.non_selected
        parts.append(_rows(ns, viewer, request_ms, ["not_selected"] * len(ns), None))
        info = result.removed_info
        late = np.array([s != "filter" for s, _, _ in info], bool)
        if keep == "scored":
            rows = np.flatnonzero(late)
        else:
            rows = np.arange(len(info))
        gone = result.removed.take(rows)
        picked = [info[i] for i in rows.tolist()]
        parts.append(_rows(gone, viewer, request_ms, [s for s, _, _ in picked], None,
                           [c for _, c, _ in picked], [r for _, _, r in picked]))  # fmt: skip
    tables = [pa.table(p, schema=schema()) for p in parts]
    table = pa.concat_tables(tables)
    if len(tables) > 1:  # viewer, then served first in feed order, then the rest in pool order
        order = np.lexsort((np.arange(table.num_rows),
                            table.column("viewer_id").to_numpy()))  # fmt: skip
        table = table.take(pa.array(order))
    return table


# ---- the run ----------------------------------------------------------------------------------


def content_hash(path: str | None) -> str | None:
    """sha256 over a file, or over a directory's files (sorted relative paths and bytes)."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        return None
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
    for f in files:
        h.update(str(f.relative_to(p) if f != p else f.name).encode() + b"\0")
        update_with_file(h, f)
    return h.hexdigest()


def run_identity(spec: RunSpec, users: np.ndarray) -> dict[str, Any]:
    """What a run's parts depend on (stored in run.json; --resume requires it to match)."""
    r = spec.resources
    return {
        "format": FORMAT,
        "arm": spec.params.arm,
        "world": {"path": r.world, "sha256": content_hash(r.world)},
        "checkpoint": {"path": r.checkpoint, "sha256": content_hash(r.checkpoint)},
        "snapshot": {"path": r.snapshot, "sha256": content_hash(r.snapshot)},
        "corpus": {"path": r.corpus, "sha256": content_hash(r.corpus)},
        "params": spec.params.to_dict(),
        "request_ms": spec.now_ms,
        "keep": spec.keep,
        "lenient": spec.lenient,
        "shard": {"index": spec.shard[0], "count": spec.shard[1]},
        "users": {"count": int(len(users)),
                  "sha256": hashlib.sha256(users.astype("<i8").tobytes()).hexdigest()},
        "part_users": PART_USERS,
    }  # fmt: skip


def part_name(spec: RunSpec, k: int) -> str:
    i, n = spec.shard
    return f"part-{i:04d}-of-{n:04d}-{k:05d}.parquet"


def prepare_out(out: Path, identity: dict[str, Any], resume: bool) -> None:
    """Create `out` for a new run, or check it belongs to this run on resume. Never touches a
    directory xfeed did not write."""
    run_file = out / RUN_FILE
    if out.is_symlink():  # as every output: a user's link is never replaced or written through
        raise PopulationError(f"{out}: is a symbolic link; give the directory it points to")
    if out.exists() and not out.is_dir():
        raise PopulationError(f"{out}: is a file, expected a directory (population run)")
    if resume:
        if not run_file.is_file():
            raise PopulationError(f"{out}: nothing to resume (no {RUN_FILE})")
        try:
            old = json.loads(run_file.read_bytes()[: 1 << 20])
        except ValueError:
            old = None
        if not isinstance(old, dict):
            raise PopulationError(f"{run_file}: not a run description (JSON object); start anew")
        diff = sorted(k for k in identity if old.get(k) != identity[k])
        if diff:
            raise PopulationError(f"{out}: --resume with different inputs ({', '.join(diff)})")
        return
    if out.exists() and any(out.iterdir()):
        raise PopulationError(f"{out}: exists and is not empty (use --resume to continue a run, "
                              "or a new directory)")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_file, json.dumps(identity, indent=1, sort_keys=True) + "\n")


def batch_users() -> int:
    """Users per engine batch on the device JAX computes on (see `phoenix.device`)."""
    return GPU_BATCH_USERS if current_platform() == "gpu" else BATCH_USERS


def iter_batches(users: np.ndarray, spec: RunSpec) -> Iterator[BatchResult]:
    """Engine batches of `batch_users()` users, in order. BATCH_THREADS batches are in flight at
    once: while one batch waits on XLA (the ranker, the user tower) or a large numpy call, both
    of which release the GIL, another runs its Python; each batch's result depends only on its
    users, so the output is the same as one at a time."""

    size = batch_users()

    def run(a: int) -> BatchResult:
        queries = [feed.new_query(int(u), spec.resources, spec.params, spec.now_ms, spec.lenient)
                   for u in users[a : a + size].tolist()]  # fmt: skip
        return feed.rank_batch(queries)

    starts = list(range(0, len(users), size))
    if len(starts) <= 1 or BATCH_THREADS <= 1:
        yield from map(run, starts)
        return
    # load the world and models here, before two threads would each load them
    feed.build_pipeline(feed.new_query(int(users[0]), spec.resources, spec.params, spec.now_ms))
    pool = _batch_pool(BATCH_THREADS)
    pending: collections.deque = collections.deque()  # at most BATCH_THREADS in flight
    for a in starts:
        pending.append(pool.submit(run, a))
        if len(pending) >= BATCH_THREADS:
            yield pending.popleft().result()  # in order
    while pending:
        yield pending.popleft().result()


@functools.lru_cache(maxsize=2)
def _batch_pool(threads: int) -> ThreadPoolExecutor:
    """One long-lived pool: a fresh thread per part left native memory behind in JAX/XLA
    (measured ~0.5 MB per ranked user), a reused one does not."""
    return ThreadPoolExecutor(threads, thread_name_prefix="xfeed-batch")


def rank_users(users: np.ndarray, spec: RunSpec) -> tuple[pa.Table, dict[str, Any]]:
    """The dataset rows of `users` (one part's worth), and its stats: counts and stage times."""
    tables, stats = [], {"users": 0, "stage_ms": {}, "removed": {}, "errors": []}
    for res in iter_batches(users, spec):
        tables.append(batch_table(res, spec.keep))
        stats["users"] += len(res.queries)
        for key, ms in res.timings_ms.items():
            stage = key.split(":")[0]
            stats["stage_ms"][stage] = stats["stage_ms"].get(stage, 0.0) + ms
        for _stage, comp, _ in res.removed_info:
            stats["removed"][comp] = stats["removed"].get(comp, 0) + 1
        stats["errors"] += res.errors
        del res
        release_free_memory()
    table = pa.concat_tables(tables) if tables else schema().empty_table()
    return table, stats


@functools.cache
def _libc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_memory() -> None:
    """Hand the memory freed by a batch back to the system: glibc keeps freed blocks in its
    per-thread arenas (about 0.35 GB between parts of a 100k-user run) and pyarrow in its
    pool; without this the resident set grows with them."""
    pa.default_memory_pool().release_unused()
    trim = _libc_trim()
    if trim is not None:
        trim(0)


def write_part(path: Path, table: pa.Table) -> None:
    """One part file, atomically (a killed run never leaves a partial part)."""
    with atomic_path(path, force=True) as tmp:  # in a directory this run owns
        pq.write_table(table, tmp, compression="zstd")


def run_population(
    users: np.ndarray,
    spec: RunSpec,
    out: Path | str,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Rank `users` (this shard's share) into the dataset at `out`; returns the manifest."""
    out = Path(out)
    i, n = spec.shard
    users = users[shard_of(users, n) == i] if n > 1 else users
    identity = run_identity(spec, users)
    prepare_out(out, identity, resume)
    t0 = time.perf_counter()
    done = skipped = 0
    parts, totals = [], {"users": 0, "stage_ms": {}, "removed": {}, "errors": []}
    for k, a in enumerate(range(0, len(users), PART_USERS)):
        chunk = users[a : a + PART_USERS]
        path = out / part_name(spec, k)
        if resume and path.exists():
            skipped += len(chunk)
        else:
            table, stats = rank_users(chunk, spec)
            write_part(path, table)
            totals["users"] += stats["users"]
            for key in ("stage_ms", "removed"):
                for name, v in stats[key].items():
                    totals[key][name] = totals[key].get(name, 0) + v
            totals["errors"] += stats["errors"]
        parts.append(path.name)
        done += len(chunk)
        if progress:
            progress(done, len(users))
    elapsed = time.perf_counter() - t0
    manifest = finish(out, identity, parts, totals, elapsed, skipped, engine="local")
    return manifest


def finish(out: Path, identity: dict[str, Any], parts: list[str], totals: dict[str, Any],
           elapsed: float, skipped: int, engine: str) -> dict[str, Any]:  # fmt: skip
    """Count the rows of every part and write manifest.json (atomically, last)."""
    rows = served = 0
    files = []
    for name in parts:
        meta = pq.read_metadata(out / name)
        stage = read_parquet(out / name, ["stage"]).column("stage")
        n_served = int(pc.sum(pc.equal(stage, "served")).as_py() or 0)
        files.append({"file": name, "rows": meta.num_rows, "served_rows": n_served})
        rows += meta.num_rows
        served += n_served
    ranked = totals["users"]
    manifest = {
        **identity,
        "engine": engine,
        "xfeed_version": _version(),
        "parts": files,
        "counts": {"users": identity["users"]["count"], "rows": rows, "served_rows": served,
                   "removed_by_component": dict(sorted(totals["removed"].items())),
                   "errors": totals["errors"][:20]},
        "time": {"elapsed_s": round(elapsed, 3), "users_ranked_this_session": ranked,
                 "users_skipped_on_resume": skipped,
                 "users_per_s": round(ranked / elapsed, 2) if elapsed > 0 else None,
                 "stage_ms": {k: round(v, 1) for k, v in sorted(totals["stage_ms"].items())}},
    }  # fmt: skip
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    write_text_atomic(out / MANIFEST, text, force=True)  # in a directory this run owns
    return manifest


def _version() -> str:
    try:
        return metadata.version("xfeed")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def request_time(world: str, now_ms: int | None) -> int:
    if now_ms is not None:
        return int(now_ms)
    try:
        return int(read_world_json(world)["as_of_ms"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WorldError(f"{world}: world.json has no as_of_ms") from exc
