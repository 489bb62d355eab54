"""JAX's persistent compilation cache, on by default: a fresh process loads the executables an
earlier one compiled instead of compiling them again (seconds per command on a CPU).

`memo_json` keeps small facts that cost a trace (the parameter shapes a config builds) beside it.

Location: `$XFEED_CACHE_DIR/jax` when set, else `$XDG_CACHE_HOME/xfeed/jax`, else
`~/.cache/xfeed/jax`. `XFEED_COMPILE_CACHE=0` (or `xfeed --no-compile-cache`) turns it off.
Importing this module does not import JAX.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

_OFF = ("0", "off", "false", "no")
T = TypeVar("T")


def cache_root() -> Path:
    """xfeed's cache directory (compile cache, benchmark inputs)."""
    env = os.environ.get("XFEED_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "xfeed"


def compile_cache_dir() -> Path | None:
    """Where compiled executables are kept, or None when the cache is turned off."""
    if os.environ.get("XFEED_COMPILE_CACHE", "1").strip().lower() in _OFF:
        return None
    return cache_root() / "jax"


def enable_compile_cache(path: Path | None = None) -> Path | None:
    """Point JAX's persistent cache at `path` (default `compile_cache_dir()`), caching every
    executable however quick its compilation. Call before the first compilation. Returns the
    directory used, or None when turned off or not writable (then JAX compiles as usual)."""
    path = path if path is not None else compile_cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.info("compile cache off: cannot create %s (%s)", path, exc)
        return None
    import jax  # noqa: PLC0415

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def disable_compile_cache() -> None:
    """Stop reading and writing the persistent cache in this process."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_compilation_cache_dir", None)


def memo_json(kind: str, key: dict[str, Any], sources: tuple[str, ...], compute: Callable[[], T],
              encode: Callable[[T], Any], decode: Callable[[Any], T]) -> T:  # fmt: skip
    """`compute()`, remembered on disk next to the compile cache (`<cache>/<kind>/<hash>.json`)
    when that is on. The key hashes `key`, the JAX and haiku versions and the bytes of the
    `sources` modules (so a code change is a miss, never a stale hit). For derived facts that
    cost a trace, e.g. the parameter shapes a config builds."""
    root = compile_cache_dir()
    if root is None:
        return compute()
    import importlib.metadata as md  # noqa: PLC0415

    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
    for dist in ("jax", "dm-haiku"):
        try:
            h.update(md.version(dist).encode())
        except md.PackageNotFoundError:
            pass
    for name in sources:
        spec = importlib.util.find_spec(name)
        if spec and spec.origin:
            h.update(Path(spec.origin).read_bytes())
    path = root.parent / kind / f"{h.hexdigest()[:32]}.json"
    try:
        return decode(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(encode(value)))
        os.replace(tmp, path)
    except OSError as exc:
        logger.info("not remembered: %s (%s)", path, exc)
    return value
