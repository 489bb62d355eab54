"""Retrieval corpora: post ids, author ids and unit-norm candidate-tower embeddings.

- xfeed `corpus.safetensors` (data.md): `post_ids` [N] int64, `author_ids` [N] int64,
  `embeddings` [N, D] float32, header metadata `xfeed` = JSON naming the checkpoint and world
  it was built from, with their content hashes (world/corpus.py).
- upstream `sports_corpus.npz` (phoenix_spec.md §3.2 step 4): `post_ids`,
  `candidate_representations` [N, D], `author_ids`, optional `topics`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from checkpoints import safetensors_io
from checkpoints.errors import CheckpointError
from checkpoints.npz import read_npz
from safeio.atomic import atomic_path
from safeio.kinds import OutputKind, safetensors_metadata_has

CORPUS_OUTPUT = OutputKind("retrieval corpus", False, safetensors_metadata_has("xfeed"))


@dataclasses.dataclass(frozen=True)
class Corpus:
    post_ids: np.ndarray  # [N] int64
    author_ids: np.ndarray  # [N] int64
    embeddings: np.ndarray  # [N, D] float32
    topics: np.ndarray | None = None  # [N] str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.post_ids)
        if self.embeddings.ndim != 2 or len(self.embeddings) != n or len(self.author_ids) != n:
            raise CheckpointError(
                f"corpus arrays disagree: post_ids {self.post_ids.shape}, "
                f"author_ids {self.author_ids.shape}, embeddings {self.embeddings.shape}"
            )

    def __len__(self) -> int:
        return int(len(self.post_ids))

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def load_corpus(path: Path | str, mmap: bool = True) -> Corpus:
    """Read a corpus in either format (by extension)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: corpus file not found")
    if path.suffix == ".npz":
        data = read_npz(path, what="corpus .npz")
        missing = {"post_ids", "candidate_representations", "author_ids"} - data.keys()
        if missing:
            raise CheckpointError(f"{path}: corpus lacks {', '.join(sorted(missing))}")
        try:
            ids = data["post_ids"]
            post_ids = ids.view(np.int64) if ids.dtype == np.uint64 else ids.astype(np.int64)
            author_ids = data["author_ids"].astype(np.int64)
            embeddings = data["candidate_representations"].astype(np.float32)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: corpus arrays of the wrong kind ({exc})") from None
        _check_finite(path, "candidate_representations", embeddings)
        return Corpus(post_ids, author_ids, embeddings, data.get("topics"),
                      {"format": "upstream", "path": str(path)})  # fmt: skip
    tensors, meta = safetensors_io.load(path, mmap=mmap)
    missing = {"post_ids", "author_ids", "embeddings"} - tensors.keys()
    if missing:
        raise CheckpointError(f"{path}: corpus lacks {', '.join(sorted(missing))}")
    try:
        header = json.loads(meta.get("xfeed", "{}"))
    except json.JSONDecodeError:
        header = {}
    _check_finite(path, "embeddings", tensors["embeddings"])
    return Corpus(
        np.asarray(tensors["post_ids"], np.int64),
        np.asarray(tensors["author_ids"], np.int64),
        tensors["embeddings"],
        None,
        {"format": "xfeed", "path": str(path), **header},
    )


SCAN_ROWS = 1 << 16  # rows per step of the finiteness scan (a bounded temporary)


def _check_finite(path: Path, name: str, embeddings: np.ndarray) -> None:
    """Refuse NaN/inf embedding rows: their scores are NaN for every user, and top-K would put
    them first. Every search reads every row anyway, so one chunked pass costs little."""
    for start in range(0, len(embeddings), SCAN_ROWS):
        chunk = np.asarray(embeddings[start : start + SCAN_ROWS])  # [S, D]
        if not np.isfinite(chunk).all():
            rows = start + np.flatnonzero(~np.isfinite(chunk).all(axis=1))
            raise CheckpointError(
                f"{path}: {name} has non-finite values (row {int(rows[0]):,}"
                f"{f' and {len(rows) - 1:,} more in that block' if len(rows) > 1 else ''})"
            )


def corpus_header(path: Path | str) -> dict[str, Any]:
    """The JSON header of an xfeed corpus (what it was built from; reads no tensor data); {} for
    upstream's .npz, which records nothing."""
    path = Path(path)
    if path.suffix == ".npz":
        if not path.exists():
            raise CheckpointError(f"{path}: corpus file not found")
        return {}
    _, meta, _ = safetensors_io.read_header(path)
    try:
        header = json.loads(meta.get("xfeed", "{}"))
    except json.JSONDecodeError:
        return {}
    return header if isinstance(header, dict) else {}


def save_corpus(
    path: Path | str, corpus: Corpus, header: dict[str, Any], *, force: bool = False
) -> None:
    """Write `corpus.safetensors` (atomically; never over a file that is not an xfeed corpus
    unless `force`) with a JSON header naming its checkpoint."""
    safetensors_io.save(
        path,
        {
            "post_ids": np.asarray(corpus.post_ids, np.int64),
            "author_ids": np.asarray(corpus.author_ids, np.int64),
            "embeddings": np.asarray(corpus.embeddings, np.float32),
        },
        metadata={"xfeed": json.dumps(header, sort_keys=True)},
        kind=CORPUS_OUTPUT,
        force=force,
    )


def save_upstream_corpus(path: Path | str, corpus: Corpus) -> None:
    """Write upstream's corpus .npz layout (atomically)."""
    arrays = {
        "post_ids": np.asarray(corpus.post_ids, np.int64).view(np.uint64),
        "candidate_representations": np.asarray(corpus.embeddings, np.float32),
        "author_ids": np.asarray(corpus.author_ids, np.int64),
    }
    if corpus.topics is not None:
        arrays["topics"] = np.asarray(corpus.topics, dtype=str)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
