"""Device choice: JAX's default backend (GPU when present) unless forced.

Importing this module does not import JAX (the CLI declares `DeviceChoice` options at start-up);
`select_device` does.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jax


class DeviceChoice(enum.StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    GPU = "gpu"


class DeviceUnavailableError(RuntimeError):
    pass


def select_device(choice: DeviceChoice | str = DeviceChoice.AUTO) -> jax.Device:
    """Make `choice` JAX's default device and return it. `gpu` without a GPU is an error."""
    import jax  # noqa: PLC0415 (JAX only when a command computes)

    choice = DeviceChoice(choice)
    if choice is DeviceChoice.AUTO:
        device = jax.devices()[0]
    else:
        try:
            devices = jax.devices(choice.value)
        except RuntimeError as exc:
            raise DeviceUnavailableError(f"no {choice.value} device available to JAX") from exc
        device = devices[0]
    jax.config.update("jax_default_device", device)
    return device


def describe(device: jax.Device) -> str:
    """e.g. 'cpu (TFRT_CPU_0)' or 'gpu (NVIDIA H100 80GB HBM3)'."""
    kind = getattr(device, "device_kind", "")
    if not kind or kind == device.platform:
        kind = str(device)
    return f"{device.platform} ({kind})"
