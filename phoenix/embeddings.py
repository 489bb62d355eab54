"""Embedding tables and lookups outside the model.

Upstream builds one unified table `zeros(65 + U + I + A, D)` and copies the three tables into it
(phoenix_spec.md §3.2 step 3). xfeed keeps the three tables separate (they may be memory-mapped)
and looks up unified rows by segment, which gives the same vectors without the copy:
unified row 0..64 -> zero vector; row offset(entity) + h -> table[h].
"""

from __future__ import annotations

import dataclasses

import numpy as np

from phoenix.config import HashConfig

ENTITIES = ("user", "item", "author")


@dataclasses.dataclass(frozen=True)
class EmbeddingTables:
    """The user, item and author tables, each [vocab, D] float32 (numpy or memmap)."""

    user: np.ndarray
    item: np.ndarray
    author: np.ndarray

    def __post_init__(self) -> None:
        dims = {t.shape[1] for t in (self.user, self.item, self.author)}
        if len(dims) != 1 or any(t.ndim != 2 for t in (self.user, self.item, self.author)):
            raise ValueError("embedding tables must be 2-D with one common width")

    @property
    def dim(self) -> int:
        return int(self.user.shape[1])

    def table(self, entity: str) -> np.ndarray:
        return getattr(self, entity)

    def check_against(self, cfg: HashConfig, emb_size: int) -> None:
        """Raise ValueError when table sizes disagree with the hash config or model width."""
        problems = []
        for entity in ENTITIES:
            want = (getattr(cfg, entity).vocab_size, emb_size)
            got = tuple(self.table(entity).shape)
            if got != want:
                problems.append(f"{entity} table is {got}, config wants {want}")
        if problems:
            raise ValueError("; ".join(problems))

    def lookup(self, rows: np.ndarray, entity: str, offset: int) -> np.ndarray:
        """Embeddings of unified-table rows of one entity.

        Args:
            rows: [...] int64 unified rows (0 = padding).
        Returns:
            [..., D] float32; zero where rows == 0.
        """
        rows = np.asarray(rows, dtype=np.int64)
        local = np.where(rows == 0, 0, rows - offset)
        out = np.asarray(self.table(entity)[local.ravel()], dtype=np.float32)
        out = out.reshape(*rows.shape, self.dim)
        out[rows == 0] = 0.0
        return out

    def unified(self) -> np.ndarray:
        """The upstream unified table [65 + U + I + A, D] (copies; for tests and small vocabs)."""
        pad = np.zeros((65, self.dim), np.float32)
        return np.concatenate([pad, self.user, self.item, self.author]).astype(np.float32)
