"""Parameter trees: expected names and shapes, flat <-> nested, strict validation, random init.

Names are haiku's `module/path/param` strings, exactly as upstream's `model_params.npz` keys
(phoenix_spec.md §3.4): the last `/` separates the module path from the param name.
"""

from __future__ import annotations

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix import ranker, retrieval
from phoenix.batch import RecsysBatch, RecsysEmbeddings
from phoenix.compile_cache import memo_json
from phoenix.config import PhoenixConfig

FlatParams = dict[str, np.ndarray]


class ParamMismatchError(ValueError):
    """Checkpoint params do not match the model built from its config (two-sided diff)."""

    def __init__(
        self,
        missing_in_checkpoint: list[str],
        missing_in_code: list[str],
        shape_mismatches: list[str],
    ):
        self.missing_in_checkpoint = missing_in_checkpoint
        self.missing_in_code = missing_in_code
        self.shape_mismatches = shape_mismatches
        parts = []
        if missing_in_checkpoint:
            parts.append(f"params missing in checkpoint: {', '.join(missing_in_checkpoint)}")
        if missing_in_code:
            parts.append(f"params missing in code: {', '.join(missing_in_code)}")
        if shape_mismatches:
            parts.append(f"shape mismatches: {', '.join(shape_mismatches)}")
        super().__init__("; ".join(parts))


def flatten(params: hk.Params) -> FlatParams:
    """{module: {param: array}} -> {"module/param": array}."""
    return {f"{mod}/{name}": np.asarray(v) for mod, d in params.items() for name, v in d.items()}


def unflatten(flat: FlatParams) -> dict[str, dict[str, jax.Array]]:
    """{"module/path/param": array} -> haiku's {module/path: {param: array}} (split on last /)."""
    out: dict[str, dict[str, jax.Array]] = {}
    for key, value in flat.items():
        mod, _, name = key.rpartition("/")
        out.setdefault(mod, {})[name] = jnp.asarray(value)
    return out


def dummy_inputs(cfg: PhoenixConfig) -> tuple[RecsysBatch, RecsysEmbeddings]:
    """Zero inputs of the config's shapes (B=1), for init and shape evaluation."""
    h, d = cfg.hash, cfg.emb_size
    s, c = cfg.history_seq_len, cfg.candidate_seq_len
    hu, hi, ha = h.user.num_hashes, h.item.num_hashes, h.author.num_hashes
    i32, f32 = np.int32, np.float32
    batch = RecsysBatch(
        user_hashes=np.zeros((1, hu), i32),
        history_post_hashes=np.zeros((1, s, hi), i32),
        history_author_hashes=np.zeros((1, s, ha), i32),
        history_actions=np.zeros((1, s, cfg.num_actions), f32),
        history_product_surface=np.zeros((1, s), i32),
        candidate_post_hashes=np.zeros((1, c, hi), i32),
        candidate_author_hashes=np.zeros((1, c, ha), i32),
        candidate_product_surface=np.zeros((1, c), i32),
        history_continuous_actions=np.zeros((1, s, cfg.num_continuous_actions), f32),
        candidate_impr_ts=np.zeros((1, c), i32),
        candidate_post_creation_ts=np.zeros((1, c), i32),
    )
    emb = RecsysEmbeddings(
        user_embeddings=np.zeros((1, hu, d), f32),
        history_post_embeddings=np.zeros((1, s, hi, d), f32),
        candidate_post_embeddings=np.zeros((1, c, hi, d), f32),
        history_author_embeddings=np.zeros((1, s, ha, d), f32),
        candidate_author_embeddings=np.zeros((1, c, ha, d), f32),
    )
    return batch, emb


def _init_transform(cfg: PhoenixConfig) -> hk.Transformed:
    fwd = ranker.ranker_forward(cfg) if cfg.is_ranker else retrieval.full_forward(cfg)
    return hk.transform(fwd)


def init_params(cfg: PhoenixConfig, seed: int = 42) -> hk.Params:
    """haiku init (Grok convention: linears and norm scales start at 0)."""
    batch, emb = dummy_inputs(cfg)
    return _init_transform(cfg).init(jax.random.PRNGKey(seed), batch, emb)


@functools.lru_cache(maxsize=32)
def param_shapes(cfg: PhoenixConfig) -> dict[str, tuple[int, ...]]:
    """Every param name and shape the model built from `cfg` has (no allocation). Remembered
    across processes beside the compile cache (tracing the init costs ~0.1–0.5 s a model)."""
    return memo_json(
        "param-shapes", cfg.to_dict(), _MODEL_SOURCES, lambda: _traced_shapes(cfg),
        encode=lambda d: d, decode=lambda d: {k: tuple(int(x) for x in v) for k, v in d.items()},
    )  # fmt: skip


# the modules whose code decides the parameter tree (part of the memo key)
_MODEL_SOURCES = ("phoenix.params", "phoenix.ranker", "phoenix.retrieval", "phoenix.transformer",
                  "phoenix.features", "phoenix.config")  # fmt: skip


def _traced_shapes(cfg: PhoenixConfig) -> dict[str, tuple[int, ...]]:
    batch, emb = dummy_inputs(cfg)
    tree = jax.eval_shape(
        functools.partial(_init_transform(cfg).init, jax.random.PRNGKey(0)), batch, emb
    )
    return {
        f"{mod}/{name}": tuple(int(x) for x in v.shape)
        for mod, d in tree.items()
        for name, v in d.items()
    }


def validate(flat: dict[str, tuple[int, ...]] | FlatParams, cfg: PhoenixConfig) -> None:
    """Raise ParamMismatchError unless names and shapes equal the model's exactly."""
    want = param_shapes(cfg)
    got = {k: tuple(getattr(v, "shape", v)) for k, v in flat.items()}
    mismatches = [
        f"{k} {got[k]} != expected {want[k]}"
        for k in sorted(want.keys() & got.keys())
        if got[k] != want[k]
    ]
    missing_ckpt = sorted(want.keys() - got.keys())
    missing_code = sorted(got.keys() - want.keys())
    if missing_ckpt or missing_code or mismatches:
        raise ParamMismatchError(missing_ckpt, missing_code, mismatches)


def random_params(cfg: PhoenixConfig, seed: int) -> FlatParams:
    """Non-zero random float32 params with sensible scales (norm scales near 1, matrices
    ~ N(0, 1/fan_in)), so fake checkpoints give varied, non-0.5 outputs. Deterministic."""
    rng = np.random.default_rng(seed)
    out: FlatParams = {}
    for name, shape in sorted(param_shapes(cfg).items()):
        if name.endswith("/scale"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) == 0:
            value = np.zeros(shape)
        elif name.endswith("_table"):
            value = 0.5 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(shape[0])
        out[name] = np.asarray(value, dtype=np.float32)
    return out
