"""Plots and the HTML report of an audit (the dict of audit/report.py).

`figures(result)` draws PNGs (matplotlib, Agg; the optional `[plot]` extra): amplification per
author group with its interval (one panel per arm vs the baseline), Lorenz curves of author
exposure per arm, and the histogram of the out-of-network share over users. `write_plots` puts
them in a directory, `write_html` in one self-contained HTML file (PNGs inlined as base64), both
written atomically (safeio) and never over something xfeed did not write.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from safeio.atomic import atomic_path
from safeio.kinds import OutputKind, contains_bytes

PLOTS_OUTPUT = OutputKind("audit plots", True)
HTML_OUTPUT = OutputKind("audit report", False, contains_bytes(b"xfeed-audit"))
SOFTWARE = {"Software": "xfeed audit"}
# heads shown in tables (the JSON has every head)
TABLE_HEADS = ("favorite", "reply", "retweet", "share", "click", "dwell", "not_dwelled")


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib() -> Any:
    """matplotlib.pyplot (Agg backend), or PlotUnavailableError saying how to install it."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as exc:
        raise PlotUnavailableError("--plot needs matplotlib: pip install 'xfeed[plot]'") from exc
    return plt


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=SOFTWARE)
    plt.close(fig)
    return buf.getvalue()


def figures(result: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes by file name, for the segment of all viewers."""
    plt = require_matplotlib()
    seg = result["segments"][0]
    out: dict[str, bytes] = {}
    comps = {k: v for k, v in seg["comparisons"].items() if v.get("amplification")}
    if comps:
        fig, axes = plt.subplots(1, len(comps), figsize=(6 * len(comps), 0.5 + 0.32 * max(
            len(c["amplification"]) for c in comps.values())), dpi=110, squeeze=False)  # fmt: skip
        for ax, (label, c) in zip(axes[0], comps.items(), strict=True):
            names = list(c["amplification"])
            est = [c["amplification"][n] for n in names]
            y = list(range(len(names)))
            v = [e["value"] or 0 for e in est]
            lo = [max(0.0, (e["value"] or 0) - (e["lo"] if e["lo"] is not None else 0))
                  for e in est]  # fmt: skip
            hi = [max(0.0, (e["hi"] if e["hi"] is not None else 0) - (e["value"] or 0))
                  for e in est]  # fmt: skip
            ax.errorbar(v, y, xerr=[lo, hi], fmt="o", capsize=3)
            ax.axvline(1.0, color="grey", lw=1, ls="--")
            ax.set_yticks(y, names)
            ax.invert_yaxis()
            ax.set_xlabel(f"amplification ratio: reach under {label} ÷ under {c['baseline']}")
            ax.set_title(f"{label} vs {c['baseline']} (95 % bootstrap intervals)")
        fig.tight_layout()
        out["amplification.png"] = _png(fig, plt)
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    for label, a in seg["arms"].items():
        xs, ys = zip(*a["lorenz"], strict=True)
        ax.plot(xs, ys, label=f"{label} (Gini {a['author_gini']['value']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="equal exposure")
    ax.set_xlabel("share of authors (fewest impressions first)")
    ax.set_ylabel("share of impressions")
    ax.set_title("Author exposure (Lorenz curves)")
    ax.legend()
    fig.tight_layout()
    out["lorenz.png"] = _png(fig, plt)
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=110)
    arms = list(seg["arms"].items())
    width = 0.1 / max(len(arms), 1)
    for j, (label, a) in enumerate(arms):
        d = a["oon_share_distribution"]
        total = max(sum(d["users"]), 1)
        xs = [b + width * (j + 0.5) for b in d["bins"][:-1]]
        ax.bar(xs, [u / total for u in d["users"]], width=width, label=label, align="center")
    ax.set_xlabel("out-of-network share of a user's feed")
    ax.set_ylabel("share of users")
    ax.set_title("Out-of-network share over users")
    ax.legend()
    fig.tight_layout()
    out["oon_share.png"] = _png(fig, plt)
    return out


def write_plots(result: dict[str, Any], directory: Path | str, force: bool = False) -> list[str]:
    """The PNGs into `directory` (atomically); returns their names."""
    pngs = figures(result)
    with atomic_path(directory, kind=PLOTS_OUTPUT, force=force) as tmp:
        for name, data in pngs.items():
            (tmp / name).write_bytes(data)
    return sorted(pngs)


def _fmt(e: Any) -> str:
    if not isinstance(e, dict) or e.get("value") is None:
        return "—"
    lo, hi = e.get("lo"), e.get("hi")
    ci = f" [{lo:.4g}, {hi:.4g}]" if lo is not None and hi is not None else ""
    return f"{e['value']:.4g}{ci}"


def metric_rows(seg: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(metric, one formatted 'value [lo, hi]' per arm) rows of a segment's per-arm table."""
    arms = list(seg["arms"].values())
    rows = [("users", [str(a["users"]) for a in arms]),
            ("served slots", [str(a["served_slots"]) for a in arms])]  # fmt: skip
    for key, name in (("oon_share", "out-of-network share (mean over users)"),
                      ("distinct_authors", "distinct authors per feed"),
                      ("author_gini", "Gini of impressions per author"),
                      ("top1pct_author_share", "share of the top 1 % of authors"),
                      ("topic_entropy_bits", "topic entropy per feed (bits)"),
                      ("median_age_hours", "median post age (hours)")):  # fmt: skip
        rows.append((name, [_fmt(a.get(key)) for a in arms]))
    sources = sorted({s for a in arms for s in a["source_share"]})
    for s in sources:
        rows.append((f"share from {s}", [_fmt(a["source_share"].get(s)) for a in arms]))
    heads = [h for h in TABLE_HEADS if arms and h in arms[0]["engagement_per_feed"]]
    for h in heads:
        rows.append((f"Σ P({h}) per feed", [_fmt(a["engagement_per_feed"].get(h)) for a in arms]))
    negs = sorted({h for a in arms for h in a["negative_exposure"]})
    for h in negs:
        rows.append((f"mean P({h}) per slot", [_fmt(a["negative_exposure"].get(h))
                                                for a in arms]))  # fmt: skip
    return rows


def overlap_rows(seg: dict[str, Any]) -> list[tuple[str, list[str]]]:
    comps = list(seg["comparisons"].values())
    k = seg.get("k", 10)
    out = [("paired users", [str(c["paired_users"]) for c in comps])]
    for key, name in (("jaccard_at_k", f"Jaccard@{k}" if comps else "Jaccard@K"),
                      ("rbo", "rank-biased overlap"),
                      ("rank_displacement", "mean rank displacement"),
                      ("posts_gained", "posts gained per feed"),
                      ("posts_lost", "posts lost per feed")):  # fmt: skip
        out.append((name, [_fmt(c.get(key)) for c in comps]))
    return out


def _table(head: list[str], rows: list[tuple[str, list[str]]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr><td>" + html.escape(name) + "</td>" + "".join(
        f"<td>{html.escape(v)}</td>" for v in vals) + "</tr>" for name, vals in rows)  # fmt: skip
    return f"<table><tr>{th}</tr>{body}</table>"


def html_report(result: dict[str, Any], pngs: dict[str, bytes] | None = None) -> str:
    """One self-contained HTML page: the tables of every segment and the plots inlined."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>xfeed audit</title>",
             "<meta name='generator' content='xfeed-audit'>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}td:first-child{text-align:left}</style>",
             "</head><body><h1>xfeed audit</h1>"]  # fmt: skip
    runs = ", ".join(f"{r['label']} ({r['path']}, {r['users']} users)" for r in result["runs"])
    b = result["bootstrap"]
    parts.append(f"<p>Runs: {html.escape(runs)}. Baseline: {html.escape(str(result['baseline']))}"
                 f". Author groups: {html.escape(str(result['group_by']))}. Intervals: "
                 f"{int(b['level'] * 100)} % bootstrap over users ({b['replicates']} replicates, "
                 f"seed {b['seed']}).</p>")  # fmt: skip
    for note in result["notes"]:
        parts.append(f"<p><em>{html.escape(note)}</em></p>")
    for seg in result["segments"]:
        parts.append(f"<h2>Viewers: {html.escape(seg['segment'])} ({seg['users']} users)</h2>")
        parts.append(_table(["metric", *seg["arms"]], metric_rows(seg)))
        if seg["comparisons"]:
            parts.append(_table(["vs baseline", *seg["comparisons"]], overlap_rows(seg)))
            groups = sorted({g for c in seg["comparisons"].values()
                             for g in c.get("amplification", {})})  # fmt: skip
            rows = [(g, [_fmt(c.get("amplification", {}).get(g))
                         for c in seg["comparisons"].values()]) for g in groups]  # fmt: skip
            if rows:
                parts.append("<h3>Amplification ratio per author group</h3>")
                parts.append(_table(["group", *seg["comparisons"]], rows))
    for name, data in (pngs or {}).items():
        src = base64.b64encode(data).decode()
        parts.append(f"<h3>{html.escape(name)}</h3><img alt='{html.escape(name)}' "
                     f"src='data:image/png;base64,{src}'>")  # fmt: skip
    parts.append("<details><summary>JSON</summary><pre>"
                 + html.escape(json.dumps(result, indent=1)) + "</pre></details>")  # fmt: skip
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(result: dict[str, Any], path: Path | str, force: bool = False) -> None:
    """The HTML report with the plots inlined (atomically)."""
    text = html_report(result, figures(result))
    with atomic_path(path, kind=HTML_OUTPUT, force=force) as tmp:
        Path(tmp).write_text(text)
