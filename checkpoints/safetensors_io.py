"""safetensors read (memory-mapped, no copy) and atomic write, numpy only.

Reading parses the header (8-byte little-endian length, JSON) and maps the file once (advised
for random access), each tensor a read-only view into it, so a 3 × 1,000,000 × 128 table set
opens in milliseconds without being read.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from pathlib import Path

import numpy as np

from checkpoints.errors import CheckpointError
from safeio.atomic import atomic_path
from safeio.errors import InputRefused
from safeio.inputs import regular_file
from safeio.kinds import OutputKind

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
    "U64": np.uint64, "BOOL": np.bool_,
}  # fmt: skip
MAX_HEADER = 100 * 1024 * 1024
MAX_DIMS = 8


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise CheckpointError(f"duplicate key {dup!r}")
    return dict(pairs)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_header(path: Path) -> tuple[dict, dict[str, str], int]:
    """(tensor entries, __metadata__, data start offset) of a safetensors file; the JSON header
    must be an object without duplicate keys, no longer than the file."""
    try:
        path = regular_file(path, "safetensors file")
    except InputRefused as exc:
        raise CheckpointError(str(exc)) from None
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise CheckpointError(f"{path}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(MAX_HEADER, size - 8):
            raise CheckpointError(f"{path}: not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(n), object_pairs_hook=_no_duplicates)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: bad safetensors header ({exc})") from None
        except (ValueError, RecursionError) as exc:  # JSON, UTF-8, huge integers
            raise CheckpointError(f"{path}: not a safetensors file (bad header)") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (bad header)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: bad safetensors header (__metadata__)")
    return header, meta, 8 + n


def entries(
    path: Path, header: dict, data_size: int
) -> dict[str, tuple[np.dtype, tuple, int, int]]:
    """Validated (dtype, shape, begin, end) of every tensor, before anything is read: a known
    dtype, a shape of non-negative ints whose byte size equals its offsets, offsets that tile
    the data section exactly (no overlap, no gap, nothing past the end of the file)."""
    out = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{path}: bad header entry for {name!r}")
        shape, offsets = info["shape"], info["data_offsets"]
        if not isinstance(info["dtype"], str) or info["dtype"] not in _DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has an unsupported dtype")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise CheckpointError(f"{path}: tensor {name!r} has a bad shape {shape!r:.80}")
        if len(shape) > MAX_DIMS:
            raise CheckpointError(f"{path}: tensor {name!r} has {len(shape)} dimensions")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))):
            raise CheckpointError(f"{path}: tensor {name!r} has bad data offsets")
        dtype = np.dtype(_DTYPES[info["dtype"]])
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise CheckpointError(f"{path}: tensor {name!r} lies outside the file (truncated?)")
        if math.prod(shape) * dtype.itemsize != end - begin:
            raise CheckpointError(f"{path}: tensor {name!r}: shape {shape} does not fit its bytes")
        out[name] = (dtype, tuple(shape), begin, end)
    position = 0
    for name, (_, _, begin, end) in sorted(out.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != position:
            what = "overlaps another tensor" if begin < position else "leaves a gap before it"
            raise CheckpointError(f"{path}: tensor {name!r} {what}")
        position = end
    if position != data_size:
        raise CheckpointError(f"{path}: {data_size - position} bytes after the last tensor")
    return out


def shapes(path: Path | str) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, from the validated header alone (nothing is read)."""
    path = Path(path)
    header, _, start = read_header(path)
    return {k: v[1] for k, v in entries(path, header, path.stat().st_size - start).items()}


def _map_random(path: Path) -> mmap.mmap:
    """The whole file mapped read-only, advised for random access: embedding lookups touch
    scattered rows, and the default read-ahead would pull in ~128 KB around each one."""
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    return mapped


def load(path: Path | str, mmap: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors of a safetensors file (read-only memmaps when `mmap`) and its metadata. The
    header is validated (entries) before anything is mapped or read."""
    path = Path(path)
    header, meta, start = read_header(path)
    size = path.stat().st_size
    layout = entries(path, header, size - start)
    mapped = _map_random(path) if mmap and size > start else None
    out: dict[str, np.ndarray] = {}
    for name, (dtype, shape, begin, end) in layout.items():
        count = end - begin
        if count == 0:
            out[name] = np.zeros(shape, dtype)
        elif mmap:
            arr = np.frombuffer(mapped, dtype=dtype, count=count // dtype.itemsize,
                                offset=start + begin)  # fmt: skip
            out[name] = arr.reshape(shape)
        else:
            with open(path, "rb") as f:
                f.seek(start + begin)
                data = f.read(count)
            if len(data) != count:
                raise CheckpointError(f"{path}: tensor {name!r} is truncated")
            out[name] = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
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
