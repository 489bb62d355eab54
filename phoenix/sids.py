"""Post semantic ids (SIDs) from post topics: the topic vocabulary, codes, and the post lookup.

Upstream's August models read a post's semantic id: `levels` codes of a residual-quantised
content embedding, 0-indexed on the server and 1-indexed in the model's buffers with 0 = missing
(phoenix_spec.md §4.3, §4.7). xfeed's worlds have no content embedding; the data contract's
`topics` column (list<string>: the synthetic world's post topic, MovieLens's genres) is the
content signal. Level k of a post is the code of its k-th topic.

Codes: a vocabulary of topic strings saved with the checkpoint (`PhoenixConfig.sid_topics`,
the same for every level), code = position + 1. Different topics never share a code (no
hashing, so no collisions); a topic outside the vocabulary (more distinct topics than the
codebook holds, or a topic first seen after training) gets 0, "missing", as a post without a
k-th topic does. The vocabulary keeps the `codebook` most frequent topics (ties by name), so
what is left out is the rarest. Deterministic: the same topics give the same vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


def build_vocab(values: np.ndarray, codebook: int) -> tuple[str, ...]:
    """The `codebook` most frequent topics of `values` (every post's topics, flattened: [V] str),
    by descending count then name."""
    names, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    order = np.lexsort((names, -counts))[:codebook]
    return tuple(str(t) for t in names[order])


def topic_codes(
    values: np.ndarray, offsets: np.ndarray, vocab: Sequence[str], levels: int
) -> np.ndarray:
    """Codes [P, levels] uint16 of P posts whose topics are values[offsets[p]:offsets[p + 1]]
    (values [V] str, offsets [P + 1]): level k = 1 + the position of the post's k-th topic in
    `vocab`, 0 where the post has no k-th topic or it is not in the vocabulary."""
    offsets = np.asarray(offsets, np.int64)
    out = np.zeros((len(offsets) - 1, levels), np.uint16)
    if not len(values):
        return out
    names, inverse = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    code = {t: i + 1 for i, t in enumerate(vocab)}
    value_code = np.array([code.get(str(t), 0) for t in names], np.uint16)[inverse]  # [V]
    lengths = np.diff(offsets)
    for k in range(levels):
        has = lengths > k
        out[has, k] = value_code[offsets[:-1][has] + k]
    return out


@dataclasses.dataclass(frozen=True)
class PostSids:
    """Post id -> SID codes for every post of a world (posts without topics: all zeros)."""

    post_ids: np.ndarray  # [P] int64, sorted, distinct
    codes: np.ndarray  # [P, L] uint16, 0 = missing

    def __post_init__(self) -> None:
        if self.codes.ndim != 2 or len(self.codes) != len(self.post_ids):
            raise ValueError("SID codes must be [posts, levels]")
        if len(self.post_ids) > 1 and not (np.diff(self.post_ids) > 0).all():
            raise ValueError("SID post ids must be sorted and distinct")

    @classmethod
    def of(cls, post_ids: np.ndarray, codes: np.ndarray) -> PostSids:
        """From unsorted post ids [P] and their codes [P, L] (the first row of a repeated id)."""
        ids, first = np.unique(np.asarray(post_ids, np.int64), return_index=True)
        return cls(ids, np.asarray(codes, np.uint16)[first])

    @property
    def levels(self) -> int:
        return int(self.codes.shape[1])

    def codes_of(self, post_ids: np.ndarray) -> np.ndarray:
        """Codes [..., L] int32 of post ids [...]; 0 rows for unknown posts and post id 0."""
        ids = np.asarray(post_ids, np.int64)
        flat = ids.ravel()
        out = np.zeros((len(flat), self.levels), np.int32)
        if len(self.post_ids) and len(flat):
            at = np.minimum(np.searchsorted(self.post_ids, flat), len(self.post_ids) - 1)
            hit = (self.post_ids[at] == flat) & (flat != 0)
            out[hit] = self.codes[at[hit]]
        return out.reshape(*ids.shape, self.levels)
