"""Device selection for computing commands; says on stderr which device is used."""

from __future__ import annotations

from phoenix.device import DeviceChoice, describe, select_device
from xfeed_cli.console import err


def use_device(choice: DeviceChoice | str) -> None:
    device = select_device(choice)
    err.print(f"device: {describe(device)}", highlight=False)
