"""Weights and switches of the For You pipeline, defined once, with production defaults
(homemixer_spec.md §6–§8, params/param.rs). `--weights FILE.toml` overrides any of them.

Head weights are keyed by the scorer's head names; each head names the ActionName output of the
model it reads (phoenix_scorer.rs mapping). Heads a checkpoint lacks contribute 0 and are reported.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import tomllib
from pathlib import Path
from typing import Any

from phoenix.actions import ActionName as A
from phoenix.actions import head_name
from safeio.errors import InputRefused
from safeio.inputs import regular_file

# Score head -> (model output, production weight); the head names are phoenix.actions.HEAD_NAMES.
# Positive heads first, then negative ones.
HEADS: dict[str, tuple[A, float]] = {
    head_name(a): (a, w)
    for a, w in (
        (A.SERVER_TWEET_FAV, 0.5),
        (A.SERVER_TWEET_REPLY, 5.0),
        (A.SERVER_TWEET_RETWEET, 1.0),
        (A.CLIENT_TWEET_PHOTO_EXPAND, 0.05),
        (A.CLIENT_TWEET_VIDEO_OPEN, 0.05),
        (A.CLIENT_TWEET_CLICK, 0.4),
        (A.CLIENT_TWEET_OPEN_LINK, 0.2),
        (A.CLIENT_TWEET_CLICK_PROFILE, 0.0),
        (A.CLIENT_TWEET_VIDEO_QUALITY_VIEW, 0.05),
        (A.CLIENT_TWEET_SHARE, 2.0),
        (A.CLIENT_TWEET_CLICK_SEND_VIA_DIRECT_MESSAGE, 5.0),
        (A.CLIENT_TWEET_SHARE_VIA_COPY_LINK, 20.0),
        (A.CLIENT_TWEET_RECAP_DWELLED, 0.0),
        (A.SERVER_TWEET_QUOTE, 5.0),
        (A.CLIENT_QUOTED_TWEET_CLICK, 0.05),
        (A.CLIENT_QUOTED_TWEET_VIDEO_QUALITY_VIEW, 0.0),
        (A.CLIENT_TWEET_FOLLOW_AUTHOR, 4.0),
        (A.SERVER_TWEET_POST_UNEXPLORED, 0.02),
        (A.CLIENT_TWEET_NOT_INTERESTED_IN, -43.2),
        (A.CLIENT_TWEET_BLOCK_AUTHOR, -31.2),
        (A.CLIENT_TWEET_MUTE_AUTHOR, -58.8),
        (A.CLIENT_TWEET_REPORT, -234.0),
        (A.CLIENT_TWEET_RECAP_NOT_DWELLED, -0.02),
    )
}
CONTINUOUS_HEADS = {"dwell_time": 0.004}  # per predicted second


@dataclasses.dataclass(frozen=True)
class FeedParams:
    """Every weight and switch of the pipeline. Field names are the TOML keys."""

    weights: dict[str, float] = dataclasses.field(
        default_factory=lambda: {k: w for k, (_, w) in HEADS.items()} | CONTINUOUS_HEADS
    )
    reply_mutual_follow_boost: float = 15.0  # reply weight 5 -> 20 for mutual-follow originals
    vqv_max_viewer_followers: int = 10_000
    vqv_min_video_ms: int = 10_000
    post_unexplored_in_network_only: bool = True
    negative_scores_offset: float = 0.001
    author_diversity_decay: float = 0.5
    author_diversity_floor: float = 0.25
    oon_weight_factor: float = 0.75
    oon_rescore_in_network_replies_retweets: bool = True
    new_author_boost: bool = False  # AuthorColdStart (behind a flag offline)
    cold_start_slot: int = 16
    cold_start_follower_cap: int = 1_000
    cold_start_impression_threshold: int = 1_000
    cold_start_max_position_ratio: float = 0.85
    max_post_age_ms: int = 48 * 3_600_000
    thunder_max_results: int = 1_200
    retrieval_max_results: int = 1_000
    served_window_ms: int = 10 * 60_000
    served_max_ids: int = 100
    exclude_videos: bool = False
    top_k: int = 50
    result_size: int = 35
    ranker: str = "cached"  # "cached" (user+history once) or "reference" (upstream's chunks)
    arm: str = "for-you"  # "for-you" (the pipeline) or "chrono" (in-network, newest first)

    @functools.cached_property
    def positive_sum(self) -> float:
        """Σ positive head weights (continuous weights and boosts excluded): 43.32 by default."""
        return sum(w for k, w in self.weights.items() if k in HEADS and w > 0)

    @functools.cached_property
    def negative_sum(self) -> float:
        """−Σ negative head weights: 367.22 by default."""
        return -sum(w for k, w in self.weights.items() if k in HEADS and w < 0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


ARMS = ("for-you", "chrono")
CHOICES: dict[str, tuple[str, ...]] = {"ranker": ("cached", "reference"), "arm": ARMS}

# The meaning of every switch (one line each; `xfeed params` prints them with defaults and types).
PARAM_HELP: dict[str, str] = {
    "reply_mutual_follow_boost": "added to the reply weight for original posts by mutual follows",
    "vqv_max_viewer_followers": "video-quality-view weight only for viewers with fewer followers",
    "vqv_min_video_ms": "video-quality-view weight only for videos longer than this (ms)",
    "post_unexplored_in_network_only": "post_unexplored weight only for in-network posts",
    "negative_scores_offset": "net-negative posts are squeezed into [0, offset) below the rest",
    "author_diversity_decay": "score × (1 − floor)·decay^k + floor for an author's k-th post",
    "author_diversity_floor": "the floor of the author-diversity multiplier",
    "oon_weight_factor": "score multiplier for out-of-network posts",
    "oon_rescore_in_network_replies_retweets": "apply the OON factor to in-network replies/RTs",
    "new_author_boost": "lift one new author's post to the cold_start_slot-th score",
    "cold_start_slot": "the score rank a boosted new-author post is lifted to",
    "cold_start_follower_cap": "new author: at most this many followers",
    "cold_start_impression_threshold": "new-author post: fewer views than this",
    "cold_start_max_position_ratio": "boost only posts ranked within this share of the pool",
    "max_post_age_ms": "age filter: older posts are dropped (ms; 48 h)",
    "thunder_max_results": "in-network candidates fetched from Thunder",
    "retrieval_max_results": "out-of-network candidates from Phoenix retrieval (top-K)",
    "served_window_ms": "previously-served filter: posts served within this window (ms)",
    "served_max_ids": "previously-served filter: at most this many served ids",
    "exclude_videos": "drop posts with video (video filter)",
    "top_k": "candidates kept by the selector before post-selection filters",
    "result_size": "posts served (the feed size)",
    "ranker": "'cached' (user+history once) or 'reference' (upstream's chunks)",
    "arm": "'for-you' (the pipeline) or 'chrono' (followed accounts' posts, newest first)",
    "dwell_time": "weight per predicted second of dwell (continuous head)",
}


def param_table(params: FeedParams | None = None) -> list[dict[str, Any]]:
    """Every switch and head weight of `params` (default: the defaults): name, TOML key, value,
    default, type and meaning; heads also name the model output (proto ActionName) they read."""
    p = params or FeedParams()
    d = FeedParams()
    rows: list[dict[str, Any]] = []
    for f in dataclasses.fields(FeedParams):
        if f.name == "weights":
            continue
        default = getattr(d, f.name)
        rows.append({"name": f.name, "key": f.name, "value": getattr(p, f.name),
                     "default": default, "type": type(default).__name__,
                     "meaning": PARAM_HELP[f.name], "action": None})  # fmt: skip
    for head, w in d.weights.items():
        action = HEADS[head][0].name if head in HEADS else None
        meaning = f"weight × P({action})" if action else PARAM_HELP[head]
        rows.append({"name": head, "key": f"weights.{head}", "value": p.weights[head],
                     "default": w, "type": "float", "meaning": meaning,
                     "action": action})  # fmt: skip
    return rows


def params_toml(params: FeedParams | None = None) -> str:
    """An editable TOML file of every parameter (switches, then [weights]), each with its
    meaning as a comment; `load_params` reads it back to the same FeedParams."""
    lines = ["# xfeed pipeline parameters (xfeed rank --weights THIS_FILE); defaults are",
             "# production's. Delete lines to keep their defaults.", ""]  # fmt: skip
    rows = param_table(params)
    for r in rows:
        if not r["key"].startswith("weights."):
            lines += [f"# {r['meaning']} (default {_toml_value(r['default'])})",
                      f"{r['key']} = {_toml_value(r['value'])}"]  # fmt: skip
    lines += ["", "[weights]"]
    for r in rows:
        if r["key"].startswith("weights."):
            lines += [f"# {r['meaning']} (default {_toml_value(r['default'])})",
                      f"{r['name']} = {_toml_value(r['value'])}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def _unknown(kind: str, key: str, known: list[str]) -> str:
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f" (did you mean {near[0]!r}?)" if near else " (see `xfeed params`)"
    return f"unknown {kind} {key!r}{hint}"


class ParamsError(ValueError):
    """A weights file with unknown keys, wrong types or non-finite values."""


def params_from_dict(data: dict[str, Any], base: FeedParams | None = None) -> FeedParams:
    """Override `base` with `data` (a TOML table: top-level switches and a [weights] table)."""
    base = base or FeedParams()
    fields = {f.name: f for f in dataclasses.fields(FeedParams)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ParamsError(_unknown("parameter", key, list(fields)))
        if key == "weights":
            if not isinstance(value, dict):
                raise ParamsError("'weights' must be a table of head = weight")
            weights = dict(base.weights)
            for head, w in value.items():
                if head not in weights:
                    raise ParamsError(_unknown("head", head, list(weights)) + " in [weights]")
                weights[head] = _number(f"weights.{head}", w)
            changes["weights"] = weights
            continue
        current = getattr(base, key)
        if key in CHOICES:
            if value not in CHOICES[key]:
                raise ParamsError(f"{key} must be " + " or ".join(map(repr, CHOICES[key])))
            changes[key] = value
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise ParamsError(f"{key} must be true or false")
            changes[key] = value
        elif isinstance(current, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamsError(f"{key} must be an integer")
            changes[key] = value
        else:
            changes[key] = _number(key, value)
    return dataclasses.replace(base, **changes)


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamsError(f"{key} must be a number")
    if not math.isfinite(value):
        raise ParamsError(f"{key} must be finite, got {value}")
    return float(value)


def load_params(path: Path | str | None, base: FeedParams | None = None) -> FeedParams:
    """Defaults overridden by a TOML file (None -> defaults)."""
    if path is None:
        return base or FeedParams()
    path = Path(path)
    try:
        regular_file(path, "weights file")  # not a FIFO or a directory
        data = tomllib.loads(path.read_text())
    except InputRefused as exc:
        raise ParamsError(str(exc)) from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not a text (TOML) file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParamsError(f"{path}: not valid TOML ({exc})") from exc
    try:
        return params_from_dict(data, base)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from exc
