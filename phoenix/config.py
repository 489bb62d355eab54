"""Frozen configs for the Phoenix models; every architecture number lives here.

Re-implements the config dataclasses of phoenix/recsys_model.py and grok.py @0bfc279
(phoenix_spec.md §1.1, §2, §3.5). Numbers that upstream's `config.json` leaves implicit
(`widening_factor` 2.0, `attn_output_multiplier` 0.125, `num_kv_heads` = `num_heads`) are explicit
fields here with those defaults, and are written into every xfeed checkpoint's `config.json`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

from phoenix.actions import head_names

SCHEMA_VERSION = 1
EMBEDDING_PAD_ROWS = 65  # unified table rows 0..64 are zero (1 + 64, August `offset_user`)
POST_AGE_MAX_MINUTES = 4800


MAX_SID_LEVELS = 16  # post semantic-id levels (upstream's August models: 6)

# Bounds on every architecture number (far beyond any real model; they keep an absurd config
# from allocating anything before it is refused).
INT_BOUNDS = {
    "emb_size": (1, 16384), "key_size": (2, 2048), "num_q_heads": (1, 512),
    "num_kv_heads": (1, 512), "num_layers": (1, 512), "num_actions": (1, 4096),
    "history_seq_len": (1, 1 << 16), "candidate_seq_len": (1, 1 << 16),
    "product_surface_vocab_size": (1, 1 << 20), "post_age_granularity_mins": (1, 4800),
    "num_continuous_actions": (0, 4096), "continuous_action_hidden_dim": (1, 1 << 16),
    "vocab_size": (2, (1 << 31) - 1), "modulus": (1, (1 << 63) - 1),
    "sid_levels": (0, MAX_SID_LEVELS), "sid_codebook": (1, 65535),
}  # fmt: skip
MAX_HASHES = 64


def check_int(name: str, value: Any) -> None:
    """An integer (not a bool, float or string) within INT_BOUNDS[name]; else ValueError."""
    lo, hi = INT_BOUNDS[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r:.40}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo:,}, {hi:,}], got {value:,}")


def check_float(name: str, value: Any, lo: float, hi: float) -> None:
    """A finite real number within [lo, hi]; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r:.40}")


class ModelType(enum.StrEnum):
    RANKER = "ranker"
    RETRIEVAL = "retrieval"


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """The Grok-style decoder stack (grok.py `TransformerConfig`)."""

    emb_size: int
    key_size: int
    num_q_heads: int
    num_kv_heads: int
    num_layers: int
    widening_factor: float = 2.0
    attn_output_multiplier: float = 0.125

    def __post_init__(self) -> None:
        for name in ("emb_size", "key_size", "num_q_heads", "num_kv_heads", "num_layers"):
            check_int(name, getattr(self, name))
        check_float("widening_factor", self.widening_factor, 1e-3, 64.0)
        check_float("attn_output_multiplier", self.attn_output_multiplier, -1e6, 1e6)
        if self.num_q_heads % self.num_kv_heads:
            raise ValueError("num_q_heads must be a multiple of num_kv_heads")
        if self.key_size % 2:
            raise ValueError("key_size must be even (RoPE half-split)")

    @property
    def ffn_size(self) -> int:
        """Gated-FFN width: int(w·D)·2//3 rounded up to a multiple of 8 (176 for D=128, w=2)."""
        size = int(self.widening_factor * self.emb_size) * 2 // 3
        return size + (-size) % 8


@dataclasses.dataclass(frozen=True)
class EntityHash:
    """One entity's hash functions: h_i = ((id·scale_i + bias_i) mod modulus) mod (vocab−1) + 1."""

    scales: tuple[int, ...]
    biases: tuple[int, ...]
    modulus: int
    vocab_size: int

    def __post_init__(self) -> None:
        if len(self.scales) != len(self.biases):
            raise ValueError("hash scales and biases must have the same length")
        if not 1 <= len(self.scales) <= MAX_HASHES:
            raise ValueError(f"an entity needs 1 to {MAX_HASHES} hash functions")
        for x in (*self.scales, *self.biases):
            if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x < 1 << 63:
                raise ValueError(
                    f"hash scales and biases must be integers in [0, 2^63), got {x!r:.40}"
                )
        check_int("vocab_size", self.vocab_size)
        check_int("modulus", self.modulus)
        if self.vocab_size < 2 or self.modulus < 1:
            raise ValueError("vocab_size must be >= 2 and modulus >= 1")

    @property
    def num_hashes(self) -> int:
        return len(self.scales)


# Upstream defaults (config.json hash_params; the same numbers as the August HashKeys).
DEFAULT_USER_HASH = EntityHash(
    (196742702, 1852108266), (1935840681, 167407236), 2859568897, 1_000_000
)
DEFAULT_ITEM_HASH = EntityHash(
    (2161410491, 1754358832), (1935840681, 167407236), 2361375383, 1_000_000
)
DEFAULT_AUTHOR_HASH = EntityHash(
    (371965780, 328930218), (139686260, 37755056), 631860353, 1_000_000
)


@dataclasses.dataclass(frozen=True)
class HashConfig:
    """Hashing of user, item (post) and author ids into one unified embedding table."""

    user: EntityHash = DEFAULT_USER_HASH
    item: EntityHash = DEFAULT_ITEM_HASH
    author: EntityHash = DEFAULT_AUTHOR_HASH

    def with_vocab(self, vocab: int) -> HashConfig:
        """The same hash functions with every vocab size set to `vocab`."""
        return HashConfig(
            dataclasses.replace(self.user, vocab_size=vocab),
            dataclasses.replace(self.item, vocab_size=vocab),
            dataclasses.replace(self.author, vocab_size=vocab),
        )

    @property
    def offsets(self) -> dict[str, int]:
        """First unified-table row of each entity's table."""
        user = EMBEDDING_PAD_ROWS
        item = user + self.user.vocab_size
        return {"user": user, "item": item, "author": item + self.item.vocab_size}

    @property
    def total_rows(self) -> int:
        return (
            EMBEDDING_PAD_ROWS
            + self.user.vocab_size
            + self.item.vocab_size
            + self.author.vocab_size
        )


@dataclasses.dataclass(frozen=True)
class PhoenixConfig:
    """A Phoenix ranker or retrieval model, complete (PhoenixModelConfig + retrieval config)."""

    model_type: ModelType
    transformer: TransformerConfig
    num_actions: int = 19
    history_seq_len: int = 127
    candidate_seq_len: int = 64
    product_surface_vocab_size: int = 16
    post_age_granularity_mins: int = 60
    num_continuous_actions: int = 8
    continuous_action_hidden_dim: int = 64
    dwell_norm_scale: float = 30.0
    dwell_use_log: bool = False
    right_anchored_rope: bool = False
    enable_linear_proj: bool = True  # retrieval candidate tower: MLP (True) or mean-pool
    fprop_dtype: str = "bfloat16"
    hash: HashConfig = dataclasses.field(default_factory=HashConfig)
    head_names: tuple[str, ...] = ()
    # Post semantic ids (xfeed's models; upstream's August `use_post_sid`, phoenix_spec.md §4.3):
    # `sid_levels` codes per post, level k = the post's k-th topic's code, its position in
    # `sid_topics` + 1 (0 = missing: no k-th topic, or one outside the vocabulary; phoenix.sids).
    # 0 levels = off: the model, its params and its config.json are exactly as without them.
    sid_levels: int = 0
    sid_codebook: int = 256  # codes per level, 1..codebook (the table has codebook + 1 rows)
    sid_topics: tuple[str, ...] = ()  # the topic vocabulary, code i + 1 = sid_topics[i]

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_type", ModelType(self.model_type))
        for name in ("num_actions", "history_seq_len", "candidate_seq_len",
                     "product_surface_vocab_size", "post_age_granularity_mins",
                     "num_continuous_actions", "continuous_action_hidden_dim"):  # fmt: skip
            check_int(name, getattr(self, name))
        check_float("dwell_norm_scale", self.dwell_norm_scale, 1e-9, 1e9)
        for name in ("dwell_use_log", "right_anchored_rope", "enable_linear_proj"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if not isinstance(self.transformer, TransformerConfig) or not isinstance(
            self.hash, HashConfig
        ):
            raise ValueError("transformer and hash must be objects")
        if not all(isinstance(h, str) for h in self.head_names):
            raise ValueError("head_names must be strings")
        if not self.head_names:
            object.__setattr__(self, "head_names", head_names(self.num_actions))
        if len(self.head_names) != self.num_actions:
            raise ValueError(
                f"head_names has {len(self.head_names)} entries, num_actions {self.num_actions}"
            )
        if self.fprop_dtype not in ("bfloat16", "float32"):
            raise ValueError(f"fprop_dtype must be bfloat16 or float32, got {self.fprop_dtype!r}")
        check_int("sid_levels", self.sid_levels)
        check_int("sid_codebook", self.sid_codebook)
        object.__setattr__(self, "sid_topics", tuple(self.sid_topics))
        if not all(isinstance(t, str) for t in self.sid_topics):
            raise ValueError("sid_topics must be strings")
        if len(self.sid_topics) > self.sid_codebook or len(set(self.sid_topics)) != len(
            self.sid_topics
        ):
            raise ValueError("sid_topics must be distinct and at most sid_codebook of them")

    @property
    def emb_size(self) -> int:
        return self.transformer.emb_size

    @property
    def post_age_vocab_size(self) -> int:
        """4800 // granularity + 2 (82 at the default 60 minutes)."""
        return POST_AGE_MAX_MINUTES // self.post_age_granularity_mins + 2

    @property
    def is_ranker(self) -> bool:
        return self.model_type is ModelType.RANKER

    def replace(self, **changes: Any) -> PhoenixConfig:
        return dataclasses.replace(self, **changes)

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The complete config as JSON-able data (xfeed's `config.json`)."""
        out = dataclasses.asdict(self)
        out["model_type"] = str(self.model_type)
        out["head_names"] = list(self.head_names)
        for entity in ("user", "item", "author"):
            h = out["hash"][entity]
            h["scales"], h["biases"] = list(h["scales"]), list(h["biases"])
        if self.sid_levels:
            out["sid_topics"] = list(self.sid_topics)
        else:  # off: config.json stays byte for byte what it was before semantic ids
            for name in ("sid_levels", "sid_codebook", "sid_topics"):
                del out[name]
        return {"schema_version": SCHEMA_VERSION, "format": "xfeed", **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhoenixConfig:
        """Inverse of `to_dict`; unknown keys are an error (a config is exact, not fuzzy)."""
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported config schema_version {version}")
        data.pop("format", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        data["transformer"] = TransformerConfig(**data["transformer"])
        hashes = data.get("hash")
        if hashes is not None:
            data["hash"] = HashConfig(
                **{
                    k: EntityHash(
                        tuple(v["scales"]), tuple(v["biases"]), v["modulus"], v["vocab_size"]
                    )
                    for k, v in hashes.items()
                }
            )
        if "head_names" in data:
            data["head_names"] = tuple(data["head_names"])
        return cls(**data)

    @classmethod
    def from_upstream_json(cls, data: dict[str, Any]) -> PhoenixConfig:
        """Build from upstream's flat `config.json` (phoenix_spec.md §3.5), adding the implicit
        architecture numbers run_pipeline.build_model_config hard-codes."""
        hp = data["hash_params"]

        def entity(prefix: str) -> EntityHash:
            n = data.get(f"num_{prefix}_hashes", 2)
            ent = EntityHash(
                tuple(int(x) for x in hp[f"{prefix}_hash_scales"]),
                tuple(int(x) for x in hp[f"{prefix}_biases"]),
                int(hp[f"{prefix}_modulus"]),
                int(data[f"{prefix}_vocab_size"]),
            )
            if ent.num_hashes != n:
                raise ValueError(f"num_{prefix}_hashes={n} but hash_params has {ent.num_hashes}")
            return ent

        return cls(
            model_type=ModelType(data["model_type"]),
            transformer=TransformerConfig(
                emb_size=data["emb_size"],
                key_size=data["key_size"],
                num_q_heads=data["num_heads"],
                num_kv_heads=data["num_heads"],
                num_layers=data["num_layers"],
            ),
            num_actions=data["num_actions"],
            history_seq_len=data["history_seq_len"],
            candidate_seq_len=data["candidate_seq_len"],
            product_surface_vocab_size=data["product_surface_vocab_size"],
            post_age_granularity_mins=data["post_age_granularity_mins"],
            hash=HashConfig(entity("user"), entity("item"), entity("author")),
        )

    def to_upstream_json(self) -> dict[str, Any]:
        """Upstream's flat `config.json` (same keys, same order). Only configs that upstream can
        express convert: the implicit numbers must have upstream's values."""
        t = self.transformer
        if (
            t.num_q_heads != t.num_kv_heads
            or t.widening_factor != 2.0
            or t.attn_output_multiplier != 0.125
        ):
            raise ValueError(
                "config uses architecture numbers upstream's config.json cannot express"
            )
        h = self.hash
        return {
            "model_type": str(self.model_type),
            "emb_size": t.emb_size,
            "num_layers": t.num_layers,
            "num_heads": t.num_q_heads,
            "key_size": t.key_size,
            "history_seq_len": self.history_seq_len,
            "candidate_seq_len": self.candidate_seq_len,
            "num_actions": self.num_actions,
            "product_surface_vocab_size": self.product_surface_vocab_size,
            "post_age_granularity_mins": self.post_age_granularity_mins,
            "user_vocab_size": h.user.vocab_size,
            "item_vocab_size": h.item.vocab_size,
            "author_vocab_size": h.author.vocab_size,
            "num_user_hashes": h.user.num_hashes,
            "num_item_hashes": h.item.num_hashes,
            "num_author_hashes": h.author.num_hashes,
            "hash_params": {
                f"{name}_{key}": value
                for name, ent in (("user", h.user), ("item", h.item), ("author", h.author))
                for key, value in (
                    ("hash_scales", list(ent.scales)),
                    ("biases", list(ent.biases)),
                    ("modulus", ent.modulus),
                )
            },
        }


class Preset(enum.StrEnum):
    """Named architectures (phoenix_spec.md §1.1 'Configs actually used')."""

    MINI = "mini"  # the upstream mini checkpoint: 128 / 4 layers / 4 heads / key 32 / hist 127
    DEMO = "demo"  # run_ranker.py demo: 128 / 2 / 2 / 64, hist 32, cand 8
    TEST = "test"  # upstream unit tests: 64 / 1 / 2 / 32, hist 16, cand 8
    TINY = "tiny"  # xfeed's trainable default: 32 / 2 / 2 / 16, hist 32, cand 32

    def config(self, model_type: ModelType | str, vocab: int | None = None) -> PhoenixConfig:
        emb, layers, heads, key, hist, cand = {
            Preset.MINI: (128, 4, 4, 32, 127, 64),
            Preset.DEMO: (128, 2, 2, 64, 32, 8),
            Preset.TEST: (64, 1, 2, 32, 16, 8),
            Preset.TINY: (32, 2, 2, 16, 32, 32),
        }[self]
        hashes = HashConfig()
        if vocab is not None:
            hashes = hashes.with_vocab(vocab)
        return PhoenixConfig(
            model_type=ModelType(model_type),
            transformer=TransformerConfig(emb, key, heads, heads, layers),
            history_seq_len=hist,
            candidate_seq_len=cand,
            hash=hashes,
        )


def param_count(shapes: dict[str, tuple[int, ...]]) -> int:
    """Total number of scalars in a name -> shape mapping."""
    return sum(math.prod(s) for s in shapes.values())
