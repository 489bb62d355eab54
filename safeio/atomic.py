"""Guarded atomic outputs: check the target, write a temporary sibling, swap it in.

`atomic_path(target, kind=..., force=..., inputs=...)`:

1. cleans stale siblings of earlier runs that were killed (`.NAME.tmp-PID-*`, `.NAME.old-PID`
   whose process is gone; an `.old-` one is moved back when the target itself is missing);
2. refuses the target (OutputRefused, one line) when it is a file where a directory is wanted or
   the reverse, when it is or contains an input or the current directory, and — unless `force` —
   when it is non-empty and not a previous xfeed output of the same kind (safeio.kinds);
3. yields a temporary sibling (`.NAME.tmp-PID-XXXX`, created with the user's umask);
4. on success swaps it in with SIGINT/SIGTERM deferred: a directory by one atomic exchange
   (renameat2 RENAME_EXCHANGE), or, where the file system lacks it, by two renames (the old
   output parked as `.NAME.old-PID`, restored by the next run if the process dies in between);
   a file by one rename. The old output stays reachable at every instant.
5. on any error or interruption removes the temporary sibling.

Directory outputs get a marker file (safeio.kinds.MARKER) naming their kind (not the parts
written inside another output's temporary directory).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from safeio.errors import OutputRefused
from safeio.kinds import MARKER, OutputKind
from safeio.signals import deferred_signals

_RENAME_EXCHANGE = 2
_STALE = re.compile(r"(tmp|old)-(\d+)(-.*)?")


def user_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped is a zombie: its writes are over
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def clean_stale(target: Path) -> list[Path]:
    """Remove temporary/parked siblings of `target` left by dead processes (restoring a parked
    old output when the target is missing). Returns what was removed or restored."""
    parent = target.parent
    prefix = f".{target.name}."
    if not parent.is_dir():
        return []
    stale: list[tuple[str, Path]] = []
    for entry in os.scandir(parent):
        if entry.name.startswith(prefix):
            m = _STALE.fullmatch(entry.name[len(prefix) :])
            if m and not _pid_alive(int(m.group(2))):
                stale.append((m.group(1), Path(entry.path)))
    done = []
    olds = sorted((p for what, p in stale if what == "old"), key=lambda p: p.stat().st_mtime)
    if olds and not os.path.lexists(target):
        os.rename(olds.pop(), target)  # the previous output, parked by a run killed mid-swap
        done.append(target)
    for _, path in stale:
        if os.path.lexists(path):
            _remove(path)
            done.append(path)
    return done


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_target(
    target: Path, kind: OutputKind, force: bool = False, inputs: Iterable[Path | str] = ()
) -> None:
    """Raise OutputRefused unless xfeed may write `target` as an output of `kind`."""
    resolved = target.resolve()
    for inp in inputs:
        if _contains(resolved, Path(inp).resolve()):
            raise OutputRefused(f"{target}: contains the input {inp}; write the output elsewhere")
    if _contains(resolved, Path.cwd().resolve()):
        raise OutputRefused(f"{target}: contains the current directory; write the output elsewhere")
    if not os.path.lexists(target):
        return
    if os.path.islink(target) and not force:  # replacing it would drop the user's link
        raise OutputRefused(
            f"{target}: is a symbolic link (to {os.readlink(target)}); write to the path it "
            "points to or elsewhere (or use --force to replace the link itself)"
        )
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:
        raise OutputRefused(f"{target}: cannot use as output ({exc.strerror})") from None
    if kind.directory and not stat.S_ISDIR(mode):
        raise OutputRefused(f"{target}: is a file, expected a directory ({kind.name})")
    if not kind.directory and stat.S_ISDIR(mode):
        raise OutputRefused(f"{target}: is a directory, expected a file ({kind.name})")
    if not kind.directory and not stat.S_ISREG(mode):
        raise OutputRefused(f"{target}: is not a regular file (a FIFO or device?)")
    if kind.directory:
        with os.scandir(target) as entries:
            empty = next(entries, None) is None
    else:
        empty = os.stat(target).st_size == 0
    if empty or force or kind.is_previous_output(target):
        return
    raise OutputRefused(
        f"{target}: exists and is not a previous xfeed {kind.name}; "
        "refusing to replace it (use --force to replace it anyway)"
    )


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2). False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, target: Path, directory: bool) -> Path | None:
    """Put `tmp` at `target`; returns what is left to delete (the old output), if anything."""
    with deferred_signals():
        if not directory or not os.path.lexists(target):
            os.replace(tmp, target)
            return None
        if _exchange(tmp, target):
            return tmp  # now holds the old output
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(tmp, target)
        return old


def _make_parent(parent: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputRefused(f"{parent}: is not a directory") from None
    except OSError as exc:
        raise OutputRefused(f"{parent}: cannot create directory ({exc.strerror})") from None


def _inside_own_tmp(target: Path) -> bool:
    """Is `target` written inside another output's temporary directory (a part of it, which
    gets no marker of its own: upstream's layouts stay exact)?"""
    tag = f".tmp-{os.getpid()}-"
    return any(tag in parent.name for parent in target.parents)


def _writes_to(exc: OSError, tmp: Path) -> bool:
    return exc.filename is None or _contains(tmp, Path(os.path.abspath(exc.filename)))


@contextlib.contextmanager
def atomic_path(
    target: Path | str,
    *,
    directory: bool = False,
    kind: OutputKind | None = None,
    force: bool = False,
    inputs: Iterable[Path | str] = (),
) -> Iterator[Path]:
    """Yield a temporary sibling of `target` to write; swap it in on success (see module doc).

    `kind` (default: an unnamed file or directory output) decides which existing targets may be
    replaced without `force`; `inputs` may never be inside the target."""
    target = Path(target)
    kind = kind or OutputKind("output", directory)
    directory = kind.directory
    _make_parent(target.parent)
    clean_stale(target)
    check_target(target, kind, force, inputs)
    prefix = f".{target.name}.tmp-{os.getpid()}-"
    try:
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
            os.chmod(tmp, 0o777 & ~user_umask())
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
            os.close(fd)
            tmp = Path(name)
            os.chmod(tmp, 0o666 & ~user_umask())
    except OSError as exc:
        raise OutputRefused(f"{target}: cannot write here ({exc.strerror})") from None
    leftover: Path | None = tmp
    try:
        yield tmp
        if directory and kind.name != "output" and not _inside_own_tmp(target):
            (tmp / MARKER).write_text(kind.marker_text())
        leftover = _swap_in(tmp, target, directory)
    except OSError as exc:
        if _writes_to(exc, tmp):
            raise OutputRefused(f"{target}: cannot write ({exc.strerror or exc})") from exc
        raise
    finally:
        if leftover is not None:
            with deferred_signals():  # a signal must not leave half a directory behind
                _remove(leftover)


def write_text_atomic(path: Path | str, text: str, **guard) -> None:
    """Write a text file atomically (guard: kind, force, inputs as for atomic_path)."""
    with atomic_path(path, **guard) as tmp:
        tmp.write_text(text)
