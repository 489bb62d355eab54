"""JAX's persistent compilation cache, on by default: a fresh process loads the executables an
earlier one compiled instead of compiling them again (seconds per command on a CPU).

Location: `$XFEED_CACHE_DIR/jax` when set, else `$XDG_CACHE_HOME/xfeed/jax`, else
`~/.cache/xfeed/jax`. `XFEED_COMPILE_CACHE=0` (or `xfeed --no-compile-cache`) turns it off.
Importing this module does not import JAX.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

_OFF = ("0", "off", "false", "no")


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
