"""`xfeed bench --plot FILE.png`: ranking latency against the number of candidates, both paths.

matplotlib is an optional dependency (`pip install 'xfeed[plot]'`), imported through
`audit.render.require_matplotlib` (the audit's plots use the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.render import PlotUnavailableError, require_matplotlib
from safeio.atomic import atomic_path
from safeio.kinds import OutputKind, contains_bytes

__all__ = ["PlotUnavailableError", "plot_ranking", "require_matplotlib"]

PLOT_OUTPUT = OutputKind("plot", False, contains_bytes(b"xfeed bench"))


def plot_ranking(
    series: dict[str, Any], info: dict[str, Any], path: Path | str, *, force: bool = False
) -> None:
    """Write a PNG (atomically) of reference vs cached p50 latency over candidate counts."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    n = series["candidates"]
    ax.plot(n, series["reference_ms"], "o-", label="reference (chunked, user+history per chunk)")
    ax.plot(n, series["cached_ms"], "s-", label="cached (user+history once)")
    ax.set_xlabel("candidates")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title(f"Phoenix ranking, {series.get('dtype', '')} on {info.get('device', '')}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, kind=PLOT_OUTPUT, force=force) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": "xfeed bench"})
    plt.close(fig)
