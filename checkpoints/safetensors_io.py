"""safetensors read (memory-mapped, no copy) and atomic write, numpy only.

Reading parses the header (8-byte little-endian length, JSON) and maps the file once (advised
for random access), each tensor a read-only view into it, so a 3 × 1,000,000 × 128 table set
opens in milliseconds without being read.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

from checkpoints.errors import CheckpointError
from safeio.atomic import atomic_path
from safeio.kinds import OutputKind

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
    "U64": np.uint64, "BOOL": np.bool_,
}  # fmt: skip
MAX_HEADER = 100 * 1024 * 1024


def read_header(path: Path) -> tuple[dict, dict[str, str], int]:
    """(tensor entries, __metadata__, data start offset) of a safetensors file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise CheckpointError(f"{path}: not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER:
                raise CheckpointError(f"{path}: not a safetensors file (bad header length)")
            header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file (bad header)") from exc
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: file not found") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (bad header)")
    meta = header.pop("__metadata__", None) or {}
    return header, meta, 8 + n


def _map_random(path: Path) -> mmap.mmap:
    """The whole file mapped read-only, advised for random access: embedding lookups touch
    scattered rows, and the default read-ahead would pull in ~128 KB around each one."""
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    return mapped


def load(path: Path | str, mmap: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors of a safetensors file (read-only memmaps when `mmap`) and its metadata."""
    path = Path(path)
    header, meta, start = read_header(path)
    size = path.stat().st_size
    mapped = _map_random(path) if mmap and size > start else None
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]])
            shape = tuple(int(x) for x in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad header entry for {name!r}") from exc
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or start + end > size:
            raise CheckpointError(f"{path}: tensor {name!r} is truncated or inconsistent")
        if count == 0:
            out[name] = np.zeros(shape, dtype)
        elif mmap:
            arr = np.frombuffer(mapped, dtype=dtype, count=count, offset=start + begin)
            out[name] = arr.reshape(shape)
        else:
            with open(path, "rb") as f:
                f.seek(start + begin)
                out[name] = np.frombuffer(f.read(end - begin), dtype=dtype).reshape(shape).copy()
    return out, meta


def save(
    path: Path | str,
    tensors: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
    *,
    kind: OutputKind | None = None,
    force: bool = False,
) -> None:
    """Write tensors atomically (temp file + rename) in the safetensors layout, 0-d arrays kept
    0-d (the safetensors numpy binding would store them as [1]). Tensors sorted by name."""
    names = {np.dtype(v): k for k, v in _DTYPES.items()}
    header: dict = {}
    offset = 0
    arrays = {}
    for name in sorted(tensors):
        arr = np.asarray(tensors[name], order="C")  # (ascontiguousarray makes 0-d 1-d)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if arr.dtype not in names:
            raise CheckpointError(f"cannot store dtype {arr.dtype} of {name!r} in safetensors")
        header[name] = {
            "dtype": names[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
        arrays[name] = arr
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with atomic_path(path, kind=kind, force=force) as tmp:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for arr in arrays.values():
                f.write(arr.tobytes(order="C"))
