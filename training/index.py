"""`xfeed index build`: candidate-tower embeddings of a world's posts -> corpus.safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from checkpoints.corpus import Corpus, save_corpus
from checkpoints.formats import load_model
from phoenix.config import ModelType
from phoenix.runtime import Retriever
from world.tables import read_table, read_world_json

DAY_MS = 86_400_000


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


def build_index(
    checkpoint: Path | str,
    world: Path | str,
    out: Path | str,
    now_ms: int | None = None,
    retention_ms: int | None = 2 * DAY_MS,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Embed every live post of the world with the checkpoint's candidate tower; write the
    corpus atomically. Returns its header."""
    ckpt, prov = load_model(checkpoint, ModelType.RETRIEVAL)
    now = int(read_world_json(world)["as_of_ms"]) if now_ms is None else int(now_ms)
    post_ids, author_ids = corpus_posts(world, now, retention_ms)
    emb = Retriever(ckpt).encode_posts(post_ids, author_ids)
    header = {
        "checkpoint": prov.get("path", str(checkpoint)),
        "checkpoint_world_hash": prov.get("world_hash"),
        "world": str(world),
        "world_hash": read_world_json(world).get("content_hash"),
        "as_of_ms": now,
        "retention_ms": retention_ms,
        "posts": int(len(post_ids)),
    }
    save_corpus(out, Corpus(post_ids, author_ids, emb), header, force=force)
    return header
