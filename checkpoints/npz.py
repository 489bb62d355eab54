"""Reading `.npz` archives safely: every member's declared dtype and shape is checked before a
byte of data is read.

An `.npz` is a zip of `.npy` members. `np.load` would inflate a member before anything could check
it (an 18 MB archive can declare gigabytes) and reports random bytes as "pickled data". Here:

- the file must be a regular file and a zip archive of `.npy` members ("not a valid .npz");
- object dtypes (pickles) are refused: xfeed never loads them;
- each member's byte size must equal its declared shape × dtype (stored members: also its size in
  the archive; compressed ones: a plausible ratio), and the total must stay under a limit;
- `check` (e.g. against the checkpoint's config) sees every declared shape before anything is
  read, may refuse them, and returns the names it vouched for; the others count towards a limit.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from checkpoints.errors import CheckpointError
from safeio.errors import InputRefused
from safeio.inputs import regular_file

MAX_UNEXPECTED_BYTES = 2 << 30  # members without an expected shape: 2 GiB in all
MAX_DEFLATE_RATIO = 1100  # zlib cannot do better than ~1032:1


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, header length) of one .npy member, read from its first bytes only."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=10000)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=10000)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        return tuple(int(d) for d in shape), dtype, f.tell()


def read_npz(
    path: Path | str,
    check: Callable[[dict[str, tuple[int, ...]]], set[str]] | None = None,
    what: str = ".npz",
) -> dict[str, np.ndarray]:
    """All arrays of an `.npz`, each checked (module doc) before it is read."""
    try:
        path = regular_file(path, what)
    except InputRefused as exc:
        raise CheckpointError(str(exc)) from None
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise CheckpointError(f"{path}: not a valid .npz (not a zip archive)") from None
    with zf:
        plan = []
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise CheckpointError(f"{path}: not a valid .npz (member {info.filename!r})")
            key = info.filename[: -len(".npy")]
            try:
                shape, dtype, head = _header(zf, info, path)
            except (ValueError, EOFError, OSError, zipfile.BadZipFile, SyntaxError) as exc:
                msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                raise CheckpointError(f"{path}: not a valid .npz ({key!r}: {msg})") from None
            if dtype.hasobject:
                raise CheckpointError(
                    f"{path}: member {key!r} holds Python objects; xfeed never loads those"
                )
            nbytes = math.prod(shape) * dtype.itemsize
            if any(d < 0 for d in shape) or nbytes + head != info.file_size:
                raise CheckpointError(
                    f"{path}: member {key!r} declares shape {shape} but holds "
                    f"{info.file_size - head} bytes (truncated or tampered)"
                )
            stored = info.compress_type == zipfile.ZIP_STORED
            if (stored and info.compress_size != info.file_size) or (
                not stored and info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 4096
            ):
                raise CheckpointError(f"{path}: member {key!r} has implausible sizes (tampered?)")
            plan.append((key, info, shape, nbytes))
        vouched = check({key: shape for key, _, shape, _ in plan}) if check else set()
        unexpected = sum(n for key, _, _, n in plan if key not in vouched)
        if unexpected > MAX_UNEXPECTED_BYTES:
            raise CheckpointError(f"{path}: declares {unexpected:,} bytes of arrays (too large)")
        out = {}
        for key, info, _, _ in plan:
            try:
                with zf.open(info) as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
            except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
                msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                raise CheckpointError(f"{path}: not a valid .npz ({key!r}: {msg})") from None
    return out
