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
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from checkpoints import safetensors_io
from checkpoints.errors import CheckpointError
from checkpoints.format_names import Format as Format  # re-exported
from phoenix.config import ModelType, PhoenixConfig
from phoenix.embeddings import EmbeddingTables
from phoenix.params import ParamMismatchError
from phoenix.runtime import PhoenixCheckpoint
from safeio.atomic import atomic_path
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz, with pickles refused."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: file not found") from exc
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: unreadable .npz ({exc})") from exc


def read_config(model_dir: Path) -> tuple[PhoenixConfig, dict[str, Any]]:
    """(config, provenance) of a model directory in either format."""
    data = _read_json(model_dir / CONFIG)
    try:
        if data.get("format") == "xfeed":
            provenance = data.pop("provenance", {})
            return PhoenixConfig.from_dict(data), provenance
        return PhoenixConfig.from_upstream_json(data), {"source": "upstream config.json"}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{model_dir / CONFIG}: bad config ({exc})") from exc


def load_model(
    path: Path | str, model_type: ModelType | str | None = None, mmap: bool = True
) -> tuple[PhoenixCheckpoint, dict[str, Any]]:
    """Load one model strictly: names and shapes must equal the model its config builds.

    Returns:
        (checkpoint, provenance dict).
    """
    mdir = model_dir(path, model_type)
    fmt = detect_format(mdir)
    cfg, provenance = read_config(mdir)
    if model_type is not None and cfg.model_type != ModelType(model_type):
        raise CheckpointError(f"{mdir}: is a {cfg.model_type} model, expected {model_type}")
    if fmt is Format.XFEED:
        params, _ = safetensors_io.load(mdir / XFEED_PARAMS, mmap=False)
        tables, _ = safetensors_io.load(mdir / XFEED_TABLES, mmap=mmap)
        names = {"user": "user", "item": "item", "author": "author"}
    else:
        params = _read_npz(mdir / UPSTREAM_PARAMS)
        tables = _read_npz(mdir / UPSTREAM_TABLES)
        names = UPSTREAM_TABLE_KEYS
    missing = [v for v in names.values() if v not in tables]
    if missing:
        raise CheckpointError(f"{mdir}: embedding tables missing: {', '.join(missing)}")
    try:
        ckpt = PhoenixCheckpoint(
            cfg,
            {k: np.asarray(v, np.float32) for k, v in params.items()},
            EmbeddingTables(**{k: tables[v] for k, v in names.items()}),
        )
        ckpt.validate()
    except ParamMismatchError as exc:
        raise CheckpointError(f"{mdir}: {exc}") from exc
    except ValueError as exc:
        raise CheckpointError(f"{mdir}: {exc}") from exc
    return ckpt, {"format": str(fmt), "path": str(mdir), **provenance}


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
