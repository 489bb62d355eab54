"""Checkpoint tools: inspect, diff and convert (single models or ranker+retrieval bundles)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from checkpoints.errors import CheckpointError
from checkpoints.formats import (
    CHECKPOINT_OUTPUT,
    CONFIG,
    Format,
    load_model,
    save_upstream,
    save_xfeed,
)
from phoenix.config import ModelType
from phoenix.embeddings import ENTITIES
from phoenix.runtime import PhoenixCheckpoint
from safeio.atomic import atomic_path

BUNDLE_EXTRAS = ("example_sequence.json", "sports_corpus.npz", "corpus.safetensors")
DIFF_CHUNK_ROWS = 65536


def model_types_in(path: Path) -> list[ModelType | None]:
    """[None] for a single-model dir, else the model types present as subdirectories."""
    if (path / CONFIG).exists():
        return [None]
    found = [t for t in ModelType if (path / str(t)).is_dir()]
    if not found:
        if not path.exists():
            raise CheckpointError(f"{path}: no such checkpoint directory")
        raise CheckpointError(
            f"{path}: no Phoenix model here (no config.json, ranker/, retrieval/)"
        )
    return found


def load_all(
    path: Path | str, mmap: bool = True, finite: bool = True
) -> dict[str, tuple[PhoenixCheckpoint, dict]]:
    """Every model under `path`, keyed '' (single model) or by model type."""
    path = Path(path)
    return {
        (str(t) if t else ""): load_model(path / str(t) if t else path, t, mmap, finite)
        for t in model_types_in(path)
    }


def tensors(ckpt: PhoenixCheckpoint) -> dict[str, np.ndarray]:
    """Params and embedding tables under one namespace (`embeddings/<entity>` for tables)."""
    out = dict(ckpt.params)
    for entity in ENTITIES:
        out[f"embeddings/{entity}"] = ckpt.tables.table(entity)
    return out


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    count: int
    non_finite: int  # NaN / inf values (a model with any serves NaN scores)


def count_non_finite(a: np.ndarray) -> int:
    """NaN/inf values of an array, counted in row chunks (memory-mapped tables stay cheap)."""
    if a.ndim == 0:
        return int(not np.isfinite(a))
    return sum(int(a[i : i + DIFF_CHUNK_ROWS].size - np.isfinite(a[i : i + DIFF_CHUNK_ROWS]).sum())
               for i in range(0, a.shape[0], DIFF_CHUNK_ROWS))  # fmt: skip


def inspect(path: Path | str) -> dict[str, Any]:
    """Tensors (name, shape, dtype, count, non-finite values), totals and config of every model
    under `path` (a model with non-finite values loads here, to be reported)."""
    report: dict[str, Any] = {"path": str(path), "models": {}}
    for key, (ckpt, prov) in load_all(path, finite=False).items():
        infos = [
            TensorInfo(
                name, tuple(int(x) for x in a.shape), str(a.dtype), int(a.size), count_non_finite(a)
            )  # fmt: skip
            for name, a in sorted(tensors(ckpt).items())
        ]
        params = [i for i in infos if not i.name.startswith("embeddings/")]
        report["models"][key or str(ckpt.config.model_type)] = {
            "provenance": prov,
            "config": ckpt.config.to_dict(),
            "tensors": [dataclasses.asdict(i) for i in infos],
            "num_param_arrays": len(params),
            "num_params": sum(i.count for i in params),
            "num_embedding_rows": sum(ckpt.tables.table(e).shape[0] for e in ENTITIES),
            "total_values": sum(i.count for i in infos),
            "non_finite_tensors": [i.name for i in infos if i.non_finite],
        }
    return report


@dataclasses.dataclass(frozen=True)
class TensorDiff:
    name: str
    max_abs: float  # max |a − b|; inf when shapes differ or one side lacks the tensor
    rel_norm: float  # ‖a − b‖ / ‖a‖ (‖a − b‖ when ‖a‖ = 0)
    note: str = ""


def _diff_arrays(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Max |a−b| and relative norm, chunked over rows so memory-mapped tables stay cheap."""
    if a.ndim == 0:
        a, b = a.reshape(1), b.reshape(1)
    max_abs, diff_sq, ref_sq = 0.0, 0.0, 0.0
    for start in range(0, a.shape[0], DIFF_CHUNK_ROWS):
        x = np.asarray(a[start : start + DIFF_CHUNK_ROWS], np.float64)
        y = np.asarray(b[start : start + DIFF_CHUNK_ROWS], np.float64)
        d = np.abs(x - y)
        if d.size:
            max_abs = max(max_abs, float(d.max()))
        diff_sq += float(np.sum(d * d))
        ref_sq += float(np.sum(x * x))
    rel = np.sqrt(diff_sq) / np.sqrt(ref_sq) if ref_sq > 0 else np.sqrt(diff_sq)
    return max_abs, float(rel)


def diff(path_a: Path | str, path_b: Path | str) -> list[TensorDiff]:
    """Per-tensor differences of two checkpoints (any formats), largest max |Δ| first."""
    a_all, b_all = load_all(path_a, finite=False), load_all(path_b, finite=False)
    if a_all.keys() != b_all.keys():
        raise CheckpointError(
            f"cannot diff: {path_a} holds {sorted(a_all)} but {path_b} holds {sorted(b_all)}"
        )
    rows: list[TensorDiff] = []
    for key in sorted(a_all):
        prefix = f"{key}:" if key else ""
        ta, tb = tensors(a_all[key][0]), tensors(b_all[key][0])
        for name in sorted(ta.keys() | tb.keys()):
            if name not in ta or name not in tb:
                side = "first" if name not in ta else "second"
                rows.append(TensorDiff(prefix + name, np.inf, np.inf, f"missing in {side}"))
            elif ta[name].shape != tb[name].shape:
                note = f"shape {ta[name].shape} vs {tb[name].shape}"
                rows.append(TensorDiff(prefix + name, np.inf, np.inf, note))
            else:
                rows.append(TensorDiff(prefix + name, *_diff_arrays(ta[name], tb[name])))
    rows.sort(key=lambda r: (-r.max_abs, r.name))
    return rows


def convert(
    src: Path | str, dst: Path | str, to: Format | str, *, force: bool = False
) -> list[str]:
    """Convert every model under `src` to format `to` at `dst` (lossless: float32 values and
    every name kept). Bundle extras (example sequence, corpus) are copied. Returns what was
    written. The destination appears atomically."""
    src, dst, to = Path(src), Path(dst), Format(to)
    models = load_all(src, mmap=True)
    written = []
    with atomic_path(dst, kind=CHECKPOINT_OUTPUT, force=force, inputs=[src]) as tmp:
        for key, (ckpt, prov) in models.items():
            target = tmp / key if key else tmp
            if to is Format.XFEED:
                provenance = {k: v for k, v in prov.items() if k not in ("path", "format")}
                provenance["converted_from"] = {"format": prov["format"], "path": prov["path"]}
                save_xfeed(target, ckpt, provenance)
            else:
                save_upstream(target, ckpt)
            written.append(key or str(ckpt.config.model_type))
        if len(models) > 1 or "" not in models:
            for extra in BUNDLE_EXTRAS:
                if (src / extra).exists():
                    shutil.copy2(src / extra, tmp / extra)
                    written.append(extra)
    return written
