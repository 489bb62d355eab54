"""Device selection for computing commands (says on stderr which device is used) and JAX's
persistent compilation cache (on unless `--no-compile-cache` / `XFEED_COMPILE_CACHE=0`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from phoenix.compile_cache import enable_compile_cache
from phoenix.device import DeviceChoice, describe, select_device
from xfeed_cli.console import err

if TYPE_CHECKING:
    import jax

COMPILE_CACHE = {"on": True}  # set by the root callback (`--no-compile-cache`)


def use_device(choice: DeviceChoice | str, quiet: bool = False) -> jax.Device:
    """Configure the compile cache, make `choice` JAX's default device and say which it is."""
    if COMPILE_CACHE["on"]:
        enable_compile_cache()
    device = select_device(choice)
    if not quiet:
        err.print(f"device: {describe(device)}", highlight=False)
    return device
