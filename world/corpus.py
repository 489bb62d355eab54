"""A world's retrieval corpus, bound to what it was built from.

A corpus is the candidate-tower embedding of every live post of a world, so it belongs to one
retrieval checkpoint and one world: its header records both content hashes (`checkpoint_hash`:
SHA-256 over the retrieval model's files; `world_hash`: the world's `content_hash`). `resolve`
never hands a request a corpus of another checkpoint or world: the world's own corpus when it
matches, else one built for the pair into xfeed's cache (`$XFEED_CACHE_DIR/corpora`, else the
user cache directory), else one error line naming the `xfeed index build` command that fixes it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from checkpoints.corpus import Corpus, corpus_header, save_corpus
from checkpoints.errors import CheckpointError
from checkpoints.formats import load_model, model_dir
from phoenix.compile_cache import cache_root
from phoenix.config import ModelType
from safeio.digest import update_with_file
from world.tables import read_table, read_world_json, table_bytes_hash

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
CORPUS_FILE = "corpus.safetensors"


class CorpusMismatchError(CheckpointError):
    """A corpus built from another checkpoint or world, or none that can be built."""


def corpus_posts(
    world: Path | str, now_ms: int, retention_ms: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(post ids, author ids) of the posts alive at `now_ms`: created in the retention window
    (None: any age), up to now, never deleted by then; retweets excluded (retrieval returns
    original content)."""
    t = read_table(world, "posts", ["event", "event_ms", "post_id", "author_id", "created_ms",
                                    "source_post_id"])  # fmt: skip
    t = t.filter(pc.less_equal(t.column("event_ms"), now_ms))
    deleted = t.filter(pc.equal(t.column("event"), "delete")).column("post_id").to_numpy()
    c = t.filter(pc.equal(t.column("event"), "create"))
    post = c.column("post_id").to_numpy()
    created = c.column("created_ms").to_numpy()
    retweet = c.column("source_post_id").is_valid().to_numpy(zero_copy_only=False)
    oldest = np.iinfo(np.int64).min if retention_ms is None else now_ms - retention_ms
    keep = (created >= oldest) & (created < now_ms) & ~retweet
    keep &= ~np.isin(post, deleted)
    post, idx = np.unique(post[keep], return_index=True)
    return post.astype(np.int64), c.column("author_id").to_numpy()[keep][idx].astype(np.int64)


def default_retention_ms(world: Path | str) -> int | None:
    """How old a corpus post may be: any age for imported worlds (a catalogue), else 2 days."""
    return None if read_world_json(world).get("imported") else 2 * DAY_MS


@functools.lru_cache(maxsize=8)
def _files_hash(files: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for path, _, _ in files:
        h.update(Path(path).name.encode())
        update_with_file(h, path)
    return h.hexdigest()


def checkpoint_hash(checkpoint: Path | str) -> str:
    """SHA-256 over the names and bytes of the retrieval model's files (either format)."""
    mdir = model_dir(checkpoint, ModelType.RETRIEVAL)
    files = sorted(p for p in mdir.iterdir() if p.is_file())
    return _files_hash(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


def world_hash(world: Path | str) -> str:
    """The world's `content_hash` (world.json), else the hash of its tables' bytes."""
    meta = read_world_json(world)
    if meta.get("content_hash"):
        return str(meta["content_hash"])
    return table_bytes_hash(sorted(Path(world).glob("*.parquet")))


def build_corpus(
    checkpoint: Path | str,
    world: Path | str,
    out: Path | str,
    now_ms: int | None = None,
    retention_ms: int | None | str = "default",
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Embed every live post of the world with the checkpoint's candidate tower; write the
    corpus atomically (over a non-corpus file only with `force`) with both content hashes in
    its header. `retention_ms`: the posts' maximum age (None: any; "default":
    `default_retention_ms`). Returns the header."""
    from phoenix.runtime import Retriever  # noqa: PLC0415 - JAX only when building

    ckpt, prov = load_model(checkpoint, ModelType.RETRIEVAL)
    meta = read_world_json(world)
    now = int(meta["as_of_ms"]) if now_ms is None else int(now_ms)
    if retention_ms == "default":
        retention_ms = default_retention_ms(world)
    post_ids, author_ids = corpus_posts(world, now, retention_ms)
    from world.sequences import load_post_sids  # noqa: PLC0415

    sids = load_post_sids(world, ckpt.config)  # a tower that reads post semantic ids
    emb = Retriever(ckpt, sids=sids).encode_posts(post_ids, author_ids)  # [N, D]
    header = {
        "checkpoint": prov.get("path", str(checkpoint)),
        "checkpoint_hash": checkpoint_hash(checkpoint),
        "checkpoint_world_hash": prov.get("world_hash"),
        "world": str(world),
        "world_hash": world_hash(world),
        "as_of_ms": now,
        "retention_ms": retention_ms,
        "posts": int(len(post_ids)),
    }
    save_corpus(out, Corpus(post_ids, author_ids, emb), header, force=force)
    return header


def fix_command(checkpoint: Path | str, world: Path | str, out: Path | str | None = None) -> str:
    target = f" --out {out}" if out else ""
    return f"xfeed index build --checkpoint {checkpoint} --world {world}{target}"


def resolve(checkpoint: Path | str, world: Path | str, corpus: Path | str | None = None) -> str:
    """The path of the corpus a request with this checkpoint and world must use.

    `corpus` given: used when its header names this checkpoint and world (or names neither,
    e.g. upstream's .npz: then a warning says so); a mismatch is an error. Not given:
    WORLD/corpus.safetensors when it matches, else the cached corpus of this pair, built (with a
    progress line) when missing."""
    want = {"checkpoint_hash": checkpoint_hash(checkpoint), "world_hash": world_hash(world)}
    if corpus is not None:
        header = corpus_header(corpus)
        bound = {k: header.get(k) for k in want}
        if not any(bound.values()):
            logger.warning("%s records no checkpoint or world hash; using it as given", corpus)
        elif bound != want:
            raise CorpusMismatchError(
                f"{corpus} was built from another {_differs(bound, want)}; build the right one "
                f"with `{fix_command(checkpoint, world, 'NEW.safetensors')}` (or leave out the "
                "corpus and it is built into the cache)"
            )
        return str(corpus)
    own = Path(world) / CORPUS_FILE
    if own.exists() and {k: corpus_header(own).get(k) for k in want} == want:
        return str(own)
    cached = cache_root() / "corpora" / f"{want['checkpoint_hash'][:16]}-{want['world_hash'][:16]}"
    path = cached / CORPUS_FILE
    if path.exists() and {k: corpus_header(path).get(k) for k in want} == want:
        return str(path)
    if own.exists():
        why = f"has a corpus of another {_differs(corpus_header(own), want)}"
    else:
        why = "has no corpus"
    logger.warning("world %s %s: building the retrieval corpus of checkpoint %s into %s",
                   world, why, checkpoint, path)  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        build_corpus(checkpoint, world, path)
    except OSError as exc:
        raise CorpusMismatchError(
            f"world {world} {why} and the cache is not writable ({exc.strerror}); build it "
            f"with `{fix_command(checkpoint, world)}`"
        ) from exc
    return str(path)


def _differs(bound: dict, want: dict) -> str:
    return " and ".join(k.split("_")[0] for k in want if bound.get(k) != want[k])
