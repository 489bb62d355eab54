"""Shared options, declared once as `Annotated` aliases."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from phoenix.device import DeviceChoice

DeviceOpt = Annotated[
    DeviceChoice,
    typer.Option("--device", help="Compute device: auto picks the GPU when JAX has one."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON/JSONL).")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Write the JSON(L) output to this file (atomically)."),
]


class DType(enum.StrEnum):
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"


DtypeOpt = Annotated[
    DType | None,
    typer.Option("--dtype", help="Compute dtype (default: the checkpoint's, bfloat16 upstream)."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Replace an existing output even if it is not a previous xfeed output."
    ),
]

MAX_ID = (1 << 63) - 1  # ids are int64
UserIdOpt = Annotated[
    int, typer.Option("--user", min=1, max=MAX_ID, help="Viewer user id (1 … 2^63−1).")
]
