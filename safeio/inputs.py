"""Input paths: a file is a regular file (a FIFO would block forever, a directory is a mistake),
a directory is a directory. Errors name the path and the problem."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from safeio.errors import InputRefused

if TYPE_CHECKING:
    import pyarrow as pa


def _stat(path: Path, what: str) -> os.stat_result:
    noun = "directory" if what.endswith("directory") else "file"
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise InputRefused(f"{path}: {noun} not found") from None
    except OSError as exc:
        raise InputRefused(f"{path}: cannot read {what} ({exc.strerror})") from None


def regular_file(path: Path | str, what: str = "file") -> Path:
    """`path` if it is a regular file; else InputRefused naming the problem."""
    path = Path(path)
    mode = _stat(path, what).st_mode
    if stat.S_ISDIR(mode):
        raise InputRefused(f"{path}: is a directory, expected a {what}")
    if not stat.S_ISREG(mode):
        raise InputRefused(f"{path}: not a regular file (a FIFO or device?), expected a {what}")
    return path


def directory(path: Path | str, what: str = "directory") -> Path:
    """`path` if it is a directory; else InputRefused naming the problem."""
    path = Path(path)
    if not stat.S_ISDIR(_stat(path, what).st_mode):
        raise InputRefused(f"{path}: is not a directory, expected a {what}")
    return path


def read_parquet(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """The `columns` (all when None) of one Parquet file, as `pq.read_table` reads them, through
    `pq.ParquetFile`: `pq.read_table` goes through `pyarrow.dataset`, which imports pandas where
    it is installed (+46 MB resident and its import time, for nothing). Arrow's errors pass."""
    import pyarrow.parquet as pq  # noqa: PLC0415 (the CLI imports this module; Arrow is heavy)

    with pq.ParquetFile(path) as f:
        return f.read(columns=columns)
