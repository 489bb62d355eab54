"""Phoenix: a faithful JAX/dm-haiku port of X's For You ranking and retrieval models.

Re-implements xai-org/x-algorithm `phoenix/` (haiku v2, 0bfc279) from the facts in
`docs/specs/phoenix_spec.md`. Submodules, one concern each:

- `actions`: the proto ActionName taxonomy; head names derive from it.
- `config`: frozen dataclass configs, saved with every checkpoint.
- `hashing`: the linear-congruential id hashing (vectorised numpy int64).
- `batch`: the `RecsysBatch` / `RecsysEmbeddings` containers.
- `transformer`: the Grok-style decoder and the recsys attention mask.
- `features`: input reduction (user/history/candidate tokens, post age, dwell).
- `ranker`: the ranking model (`phoenix_model`).
- `retrieval`: the two-tower retrieval model (`phoenix_retrieval_model`).
- `runtime`: transform + jit, embedding lookup, chunked ranking, top-K retrieval.
"""
