"""What every benchmark shares: timing with warm-up, percentiles, a matmul-rate probe, and the
report a benchmark returns (rendered by the CLI as a table, or dumped as JSON).

Benchmarks measure; they never assert. Each report carries the device and the sizes it ran at.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from phoenix.inputs import UserHistory

logger = logging.getLogger("xfeed.bench")

# generated inputs that take long to make (a 1M-post world, a 1M-row checkpoint) are kept here
DEFAULT_WORKDIR = Path(
    os.environ.get("XFEED_BENCH_DIR", Path.home() / ".cache" / "xfeed" / "bench")
)


@dataclasses.dataclass(frozen=True)
class Timing:
    """Latency samples of one measured call, in milliseconds."""

    samples_ms: tuple[float, ...]

    @property
    def p50(self) -> float:
        return float(np.percentile(self.samples_ms, 50))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.samples_ms, 95))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.samples_ms, 99))

    def to_json(self) -> dict[str, float]:
        return {"p50_ms": round(self.p50, 3), "p95_ms": round(self.p95, 3),
                "n": len(self.samples_ms)}  # fmt: skip


def measure(fn: Callable[[], Any], repeat: int, warmup: int = 2) -> Timing:
    """Call `fn` `warmup` times (compiles, page-ins), then time `repeat` calls. JAX results are
    blocked on, so asynchronous dispatch is not mistaken for speed."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        samples.append((time.perf_counter() - t0) * 1e3)
    return Timing(tuple(samples))


def matmul_gflops(dtype: str = "float32", n: int = 2048, device: jax.Device | None = None) -> float:
    """Measured rate of a jitted n×n×n matmul on the device (GFLOP/s), the compute ceiling the
    FLOP floors are taken against. A bfloat16 matmul accumulates in float32 (as the models'
    `phoenix.transformer.dense`), so a CPU with bfloat16 dot instructions runs it on them."""
    a = jax.device_put(jnp.ones((n, n), dtype), device)
    f = jax.jit(functools.partial(jnp.dot, preferred_element_type=jnp.float32))
    t = measure(lambda: f(a, a), repeat=5, warmup=1)
    return 2 * n**3 / (t.p50 * 1e-3) / 1e9


@dataclasses.dataclass
class Row:
    """One measured line of a report."""

    label: str
    timing: Timing | None = None
    throughput: float | None = None  # items per second
    unit: str = ""  # what throughput counts ("candidates/s", ...)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        if self.timing is not None:
            out.update(self.timing.to_json())
        if self.throughput is not None:
            out["throughput"] = round(self.throughput, 1)
            out["unit"] = self.unit
        out.update(self.extra)
        return out


@dataclasses.dataclass
class Report:
    """A benchmark's results: facts about the run (`info`), measured rows, derived figures
    (`summary`: ratios, floors, targets) and free-form notes."""

    name: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    rows: list[Row] = dataclasses.field(default_factory=list)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    series: dict[str, Any] = dataclasses.field(default_factory=dict)  # for plots

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "info": self.info, "rows": [r.to_json() for r in self.rows],
                "summary": self.summary, "notes": self.notes, "series": self.series}  # fmt: skip


def device_info(device: jax.Device | None = None) -> dict[str, Any]:
    d = device or jax.devices()[0]
    return {"device": f"{d.platform}:{d.id} ({d.device_kind})", "cpu_count": os.cpu_count(),
            "jax": jax.__version__}  # fmt: skip


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def random_history(num_actions: int, length: int, rng: np.random.Generator,
                   user_id: int = 42) -> UserHistory:  # fmt: skip
    """A random engagement history (benchmarks need shapes, not meaning)."""
    return UserHistory(
        user_id=user_id,
        post_ids=rng.integers(1, 2**62, length),
        author_ids=rng.integers(1, 10**9, length),
        actions=(rng.random((length, num_actions)) < 0.1).astype(np.float32),
        product_surface=rng.integers(0, 16, length),
    )
