"""Model inputs: hashed ids (`RecsysBatch`) and looked-up embeddings (`RecsysEmbeddings`).

Re-implements the NamedTuples of phoenix/recsys_model.py @0bfc279 (phoenix_spec.md §1.2).

Glossary of shapes:
    B: batch size (users).
    S: history length (`history_seq_len`).
    C: candidates per row (`candidate_seq_len`, or any count on the cached path).
    D: embedding size (`emb_size`).
    A: number of action heads (`num_actions`).
    Hu, Hi, Ha: number of user, item (post) and author hashes.
    L: post semantic-id levels (`sid_levels`).
    T: sequence length, 1 + S + C.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import jax

    Array = jax.Array | np.ndarray


def __getattr__(name: str) -> Any:
    """`Array` (jax.Array | np.ndarray) resolved on first use, so importing the containers does
    not import JAX."""
    if name == "Array":
        import jax  # noqa: PLC0415

        return jax.Array | np.ndarray
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RecsysBatch(NamedTuple):
    """Hashed inputs; hash value 0 means padding. Field order as upstream."""

    user_hashes: Array  # [B, Hu] int
    history_post_hashes: Array  # [B, S, Hi] int
    history_author_hashes: Array  # [B, S, Ha] int
    history_actions: Array  # [B, S, A] float32, multi-hot (or values)
    history_product_surface: Array  # [B, S] int
    candidate_post_hashes: Array  # [B, C, Hi] int
    candidate_author_hashes: Array  # [B, C, Ha] int
    candidate_product_surface: Array  # [B, C] int
    history_continuous_actions: Array | None = None  # [B, S, 8] float32; slot 1 = dwell seconds
    candidate_impr_ts: Array | None = None  # [B, C] int seconds
    candidate_post_creation_ts: Array | None = None  # [B, C] int seconds
    # xfeed's post semantic ids (PhoenixConfig.sid_levels > 0; phoenix.sids), after upstream's
    # fields: codes 1..codebook, 0 = missing
    history_sids: Array | None = None  # [B, S, L] int
    candidate_sids: Array | None = None  # [B, C, L] int


class RecsysEmbeddings(NamedTuple):
    """Embeddings looked up outside the model from the unified table."""

    user_embeddings: Array  # [B, Hu, D]
    history_post_embeddings: Array  # [B, S, Hi, D]
    candidate_post_embeddings: Array  # [B, C, Hi, D]
    history_author_embeddings: Array  # [B, S, Ha, D]
    candidate_author_embeddings: Array  # [B, C, Ha, D]
