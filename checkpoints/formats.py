"""Reading and writing one Phoenix model in either on-disk format.

- upstream (`oss-phoenix-artifacts`, phoenix_spec.md §3.4–3.5): `config.json` (flat
  `hash_params`), `model_params.npz` (np.savez, keys `module/param`), `embedding_tables.npz`
  (`user_embeddings`, `item_embeddings`, `author_embeddings`).
- xfeed (data.md): `config.json` (complete config + provenance), `model.safetensors`
  (keys `module/param`), `embeddings.safetensors` (`user`, `item`, `author`; memory-mapped).

A bundle directory holds `ranker/` and `retrieval/` (either format each).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from checkpoints import safetensors_io
from checkpoints.errors import CheckpointError
from checkpoints.format_names import Format as Format  # re-exported
from checkpoints.npz import read_npz
from phoenix.config import ModelType, PhoenixConfig
from phoenix.embeddings import EmbeddingTables
from phoenix.params import ParamMismatchError, param_shapes, validate
from phoenix.runtime import PhoenixCheckpoint
from safeio.atomic import atomic_path
from safeio.errors import InputRefused
from safeio.inputs import regular_file
from safeio.kinds import OutputKind, read_json_object

UPSTREAM_PARAMS = "model_params.npz"
UPSTREAM_TABLES = "embedding_tables.npz"
XFEED_PARAMS = "model.safetensors"
XFEED_TABLES = "embeddings.safetensors"
CONFIG = "config.json"
UPSTREAM_TABLE_KEYS = {
    "user": "user_embeddings",
    "item": "item_embeddings",
    "author": "author_embeddings",
}


def _is_xfeed_checkpoint(path: Path) -> bool:
    """A model or bundle whose models are in xfeed's format (written before output markers)."""
    dirs = [path] if (path / CONFIG).exists() else [path / "ranker", path / "retrieval"]
    found = [d for d in dirs if (d / CONFIG).exists()]
    return bool(found) and all(read_json_object(d / CONFIG).get("format") == "xfeed" for d in found)


CHECKPOINT_OUTPUT = OutputKind("checkpoint", True, _is_xfeed_checkpoint)


def detect_format(model_dir: Path) -> Format:
    """Which format a single-model directory is in."""
    if (model_dir / XFEED_PARAMS).exists():
        return Format.XFEED
    if (model_dir / UPSTREAM_PARAMS).exists():
        return Format.UPSTREAM
    if not model_dir.exists():
        raise CheckpointError(f"{model_dir}: no such checkpoint directory")
    raise CheckpointError(
        f"{model_dir}: not a Phoenix checkpoint (no {XFEED_PARAMS} or {UPSTREAM_PARAMS})"
    )


def model_dir(path: Path | str, model_type: ModelType | str | None = None) -> Path:
    """The directory of one model: `path` itself if it holds a model, else `path/<model_type>`."""
    path = Path(path)
    if (path / CONFIG).exists() and (
        (path / XFEED_PARAMS).exists() or (path / UPSTREAM_PARAMS).exists()
    ):
        return path
    if model_type is not None and (path / str(model_type)).is_dir():
        return path / str(model_type)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    what = f"a {model_type} model" if model_type else "a model"
    raise CheckpointError(f"{path}: does not hold {what} (expected config.json + params)")


MAX_CONFIG_BYTES = 1 << 20


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file (≤ 1 MB)."""
    try:
        path = regular_file(path, "JSON file")
    except InputRefused as exc:
        raise CheckpointError(str(exc)) from None
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path}: too large for a config file")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, huge integers, deep nesting
        msg = str(exc).splitlines()[0][:120] if str(exc) else "nested too deeply"
        raise CheckpointError(f"{path}: not valid JSON ({msg})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_config(model_dir: Path) -> tuple[PhoenixConfig, dict[str, Any]]:
    """(config, provenance) of a model directory in either format; every value is type- and
    range-checked (phoenix.config) before anything is allocated."""
    data = _read_json(model_dir / CONFIG)
    try:
        if data.get("format") == "xfeed":
            provenance = data.pop("provenance", {})
            if not isinstance(provenance, dict):
                raise ValueError("provenance must be an object")
            return PhoenixConfig.from_dict(data), provenance
        return PhoenixConfig.from_upstream_json(data), {"source": "upstream config.json"}
    except KeyError as exc:
        raise CheckpointError(f"{model_dir / CONFIG}: bad config (missing {exc})") from None
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        msg = str(exc).splitlines()[0][:200]
        raise CheckpointError(f"{model_dir / CONFIG}: bad config ({msg})") from None


def _table_shapes(cfg: PhoenixConfig, names: dict[str, str]) -> dict[str, tuple[int, int]]:
    return {names[e]: (getattr(cfg.hash, e).vocab_size, cfg.emb_size) for e in names}


def _finite_params(
    params: dict[str, np.ndarray], where: Path, finite: bool = True
) -> dict[str, np.ndarray]:
    """float32 copies of the params; a NaN or inf in any of them is an error naming it (unless
    not `finite`: inspection reports them instead)."""
    out = {}
    for name, value in params.items():
        arr = np.asarray(value, np.float32)
        if finite and not np.isfinite(arr).all():
            bad = int(arr.size - np.isfinite(arr).sum())
            raise CheckpointError(f"{where}: tensor {name!r} has {bad:,} non-finite values")
        out[name] = arr
    return out


def load_model(
    path: Path | str,
    model_type: ModelType | str | None = None,
    mmap: bool = True,
    finite: bool = True,
) -> tuple[PhoenixCheckpoint, dict[str, Any]]:
    """Load one model strictly: names and shapes must equal the model its config builds, and
    (with `finite`) every param must be finite. Sizes are checked before anything is read.

    Returns:
        (checkpoint, provenance dict).
    """
    mdir = model_dir(path, model_type)
    fmt = detect_format(mdir)
    cfg, provenance = read_config(mdir)
    if model_type is not None and cfg.model_type != ModelType(model_type):
        raise CheckpointError(f"{mdir}: is a {cfg.model_type} model, expected {model_type}")
    try:
        param_shapes(cfg)  # shapes only (jax.eval_shape): nothing allocated
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{mdir / CONFIG}: bad config ({exc})") from None
    if fmt is Format.XFEED:
        names = {"user": "user", "item": "item", "author": "author"}
        raw, _ = safetensors_io.load(mdir / XFEED_PARAMS, mmap=True)  # mapped, not read
        _check_params(mdir / XFEED_PARAMS, {k: v.shape for k, v in raw.items()}, cfg)
        params_file = mdir / XFEED_PARAMS
        params = _finite_params(raw, params_file, finite)
        tables, _ = safetensors_io.load(mdir / XFEED_TABLES, mmap=mmap)
        _check_tables(mdir / XFEED_TABLES, {k: v.shape for k, v in tables.items()},
                      _table_shapes(cfg, names))  # fmt: skip
    else:
        names = UPSTREAM_TABLE_KEYS
        params_file = mdir / UPSTREAM_PARAMS
        raw = read_npz(params_file, lambda got: _check_params(params_file, got, cfg))
        params = _finite_params(raw, params_file, finite)
        tables_file = mdir / UPSTREAM_TABLES
        want = _table_shapes(cfg, names)
        tables = read_npz(tables_file, lambda got: _check_tables(tables_file, got, want))
    missing = [v for v in names.values() if v not in tables]
    if missing:
        raise CheckpointError(f"{mdir}: embedding tables missing: {', '.join(missing)}")
    try:
        ckpt = PhoenixCheckpoint(
            cfg, params, EmbeddingTables(**{k: tables[v] for k, v in names.items()})
        )
        ckpt.validate()
    except ParamMismatchError as exc:
        raise CheckpointError(f"{mdir}: {exc}") from exc
    except ValueError as exc:
        raise CheckpointError(f"{mdir}: {exc}") from exc
    return ckpt, {"format": str(fmt), "path": str(mdir), **provenance}


def _check_params(path: Path, got: dict[str, tuple], cfg: PhoenixConfig) -> set[str]:
    """Declared param names and shapes against the config's, before the data is read."""
    try:
        validate(got, cfg)
    except ParamMismatchError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return set(got)


def _check_tables(path: Path, got: dict[str, tuple], want: dict[str, tuple]) -> set[str]:
    for name, shape in want.items():
        if name in got and tuple(got[name]) != shape:
            entity = name.removesuffix("_embeddings")
            raise CheckpointError(
                f"{path}: {entity} table is {tuple(got[name])}, config wants {shape}"
            )
    return set(want)


def save_xfeed(
    out: Path | str,
    ckpt: PhoenixCheckpoint,
    provenance: dict[str, Any],
    *,
    force: bool = False,
    inputs: tuple[Path | str, ...] = (),
) -> None:
    """Write one model in xfeed's format, atomically (the whole directory appears at once;
    never over something that is not a checkpoint unless `force`)."""
    ckpt.validate()
    with atomic_path(out, kind=CHECKPOINT_OUTPUT, force=force, inputs=inputs) as tmp:
        config = {**ckpt.config.to_dict(), "provenance": provenance}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        safetensors_io.save(tmp / XFEED_PARAMS, ckpt.params)
        t = ckpt.tables
        safetensors_io.save(
            tmp / XFEED_TABLES, {"user": t.user, "item": t.item, "author": t.author}
        )


def save_upstream(out: Path | str, ckpt: PhoenixCheckpoint, *, force: bool = False) -> None:
    """Write one model in upstream's artifacts layout (np.savez, uncompressed), atomically."""
    ckpt.validate()
    upstream_config = ckpt.config.to_upstream_json()
    with atomic_path(out, kind=CHECKPOINT_OUTPUT, force=force) as tmp:
        (tmp / CONFIG).write_text(json.dumps(upstream_config, indent=2) + "\n")
        np.savez(tmp / UPSTREAM_PARAMS, **{k: np.asarray(v) for k, v in ckpt.params.items()})
        t = ckpt.tables
        np.savez(
            tmp / UPSTREAM_TABLES,
            **{v: np.asarray(t.table(k)) for k, v in UPSTREAM_TABLE_KEYS.items()},
        )
