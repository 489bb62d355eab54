"""Candidates: the record that flows between stages, and its JSONL form (data.md).

A stage stream is JSONL: a first line `{"query": {...}}` with the hydrated query, then one
candidate per line. Fields a stage has not filled are omitted from the JSON (None / empty).
Candidates are immutable: stages return `c.evolve(field=...)` (a copy; ~15× cheaper than
`dataclasses.replace`, which matters at thousands of candidates × a dozen stages).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np


class CandidateStreamError(ValueError):
    """A malformed candidate stream (bad JSON, missing query line, bad field)."""


@dataclasses.dataclass(frozen=True)
class PostCandidate:
    post_id: int
    author_id: int
    created_ms: int = 0
    source: str = ""  # served type: "thunder" (in-network) or "phoenix_retrieval"
    retrieval_score: float | None = None
    in_network: bool | None = None
    # core data
    in_reply_to_post_id: int = 0
    in_reply_to_user_id: int = 0
    conversation_id: int = 0
    source_post_id: int = 0  # retweeted post
    source_user_id: int = 0  # retweeted user
    quoted_post_id: int = 0
    quoted_user_id: int = 0
    ancestors: tuple[int, ...] = ()
    ancestor_users: tuple[int, ...] = ()
    text: str = ""
    has_video: bool = False
    has_media: bool | None = None
    video_duration_ms: int | None = None  # min video duration; None = no video
    subscription_author_id: int | None = None
    core_hydrated: bool = False
    # author and social graph
    author_follower_count: int | None = None
    author_nsfw: bool | None = None
    author_blocks_viewer: bool | None = None
    quoted_author_blocks_viewer: bool | None = None
    author_follows_viewer: bool | None = None
    is_mutual_follow_author: bool | None = None
    # engagement counts, safety
    fav_count: int | None = None
    reply_count: int | None = None
    repost_count: int | None = None
    quote_count: int | None = None
    view_count: int | None = None
    labels: tuple[str, ...] = ()
    deleted: bool | None = None
    # scores
    probs: dict[str, float] | None = None
    dwell_time_s: float | None = None
    weighted_score: float | None = None
    score: float | None = None
    diversity_multiplier: float | None = None
    oon_multiplier: float | None = None
    cold_start_boosted: bool = False
    # post-selection visibility
    visibility_reason: str | None = None
    drop_ancillary: bool | None = None

    def evolve(self, **changes: Any) -> PostCandidate:
        """A copy with `changes` applied (field names are checked, values are not)."""
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"PostCandidate has no field(s) {', '.join(sorted(unknown))}")
        state = self.__dict__.copy()
        state.update(changes)
        new = object.__new__(PostCandidate)
        object.__setattr__(new, "__dict__", state)
        return new

    @property
    def is_retweet(self) -> bool:
        return self.source_post_id != 0

    @property
    def is_reply(self) -> bool:
        return self.in_reply_to_post_id != 0 or self.in_reply_to_user_id != 0

    @property
    def original_post_id(self) -> int:
        """The post Phoenix scores: the retweeted post for retweets."""
        return self.source_post_id or self.post_id

    def related_ids(self) -> tuple[int, ...]:
        """{post, retweeted post, replied-to post} (upstream related_post_ids_iter)."""
        return tuple(x for x in (self.post_id, self.source_post_id, self.in_reply_to_post_id) if x)

    def to_json(self) -> dict[str, Any]:
        """Fields that differ from their defaults (so None, False and 0 stay distinct); ids as
        decimal strings (X API convention: 64-bit ids do not survive JSON doubles)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if (
                f.name in ("post_id", "author_id")
                or v != _DEFAULTS[f.name]
                or type(v) is not type(_DEFAULTS[f.name])
            ):
                if f.name in ID_FIELDS:
                    v = id_json(v)
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PostCandidate:
        """Inverse of `to_json`; ids may be strings or integers."""
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise CandidateStreamError(f"unknown candidate field(s): {', '.join(unknown)}")
        if "post_id" not in data or "author_id" not in data:
            raise CandidateStreamError("candidate lacks post_id or author_id")
        for k in _TUPLE_FIELDS & data.keys():
            if not isinstance(data[k], list):
                raise CandidateStreamError(f"{k} must be a list")
        data = {k: tuple(v) if k in _TUPLE_FIELDS else v for k, v in data.items()}
        for k in ID_FIELDS & data.keys():
            data[k] = parse_id(data[k], k, many=k in _TUPLE_FIELDS)
        for k in data.keys() - ID_FIELDS:
            _check_field(k, data[k])
        return cls(**data)


MAX_MS = 32_503_680_000_000  # year 3000
MAX_COUNT = 2**63 - 1


def _check_field(name: str, v: Any) -> None:
    """The type (and range) a stage may rely on for a non-id field; CandidateStreamError if not."""
    kind = _FIELD_TYPES[name]
    if v is None and kind.endswith("| None"):
        return
    base = kind.removesuffix(" | None")
    if base == "int":
        hi = MAX_MS if name == "created_ms" else MAX_COUNT
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
            raise CandidateStreamError(f"{name} must be an integer in [0, {hi}]")
    elif base == "float":
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            raise CandidateStreamError(f"{name} must be a finite number")
    elif base == "bool":
        if not isinstance(v, bool):
            raise CandidateStreamError(f"{name} must be true or false")
    elif base == "str":
        if not isinstance(v, str):
            raise CandidateStreamError(f"{name} must be a string")
    elif base == "tuple[str, ...]":
        if not all(isinstance(x, str) for x in v):
            raise CandidateStreamError(f"{name} must be a list of strings")
    elif base == "dict[str, float]":
        if not isinstance(v, dict) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x)
            for x in v.values()
        ):
            raise CandidateStreamError(f"{name} must map names to finite numbers")


ID_FIELDS = frozenset({
    "post_id", "author_id", "in_reply_to_post_id", "in_reply_to_user_id", "conversation_id",
    "source_post_id", "source_user_id", "quoted_post_id", "quoted_user_id", "ancestors",
    "ancestor_users", "subscription_author_id",
})  # fmt: skip


def id_json(v: Any) -> Any:
    """An id (or a sequence of ids) as written to JSON: decimal strings; None stays None."""
    if v is None:
        return None
    if isinstance(v, (tuple, list, np.ndarray)):
        return [str(int(x)) for x in v]
    return str(int(v))


_DECIMAL = re.compile(r"-?[0-9]{1,20}")


def _one_id(v: Any, name: str) -> int:
    if isinstance(v, str) and _DECIMAL.fullmatch(v):
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not -(2**63) <= v < 2**63:
        raise CandidateStreamError(f"{name} must be a 64-bit integer id (string or number)")
    return v


def parse_id(v: Any, name: str, many: bool = False) -> Any:
    """An id read from JSON (a decimal string or an integer; None stays None), or with `many`
    a list or tuple of them (same container type back)."""
    if v is None:
        return None
    if many != isinstance(v, (tuple, list)):
        what = "a list of ids" if many else "one id"
        raise CandidateStreamError(f"{name} must be {what}")
    if many:
        return type(v)(_one_id(x, name) for x in v)
    return _one_id(v, name)


_FIELDS = {f.name for f in dataclasses.fields(PostCandidate)}
_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(PostCandidate)}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(PostCandidate)}
_TUPLE_FIELDS = {"ancestors", "ancestor_users", "labels"}


def candidates_from_columns(
    columns: dict[str, np.ndarray], rows: np.ndarray, **common: Any
) -> list[PostCandidate]:
    """Candidates from column arrays (e.g. a Thunder store's posts) at the given rows."""
    names = [n for n in _FIELDS if n in columns]
    picked = {n: columns[n][rows].tolist() for n in names}
    return [PostCandidate(**{n: picked[n][i] for n in names}, **common) for i in range(len(rows))]


def dump_stream(query: dict[str, Any], candidates: Iterable[PostCandidate]) -> Iterator[str]:
    """JSONL lines: the query line, then one line per candidate (always valid JSON: a NaN or
    inf is an error, never written)."""
    try:
        yield json.dumps({"query": query}, separators=(",", ":"), allow_nan=False)
        for c in candidates:
            yield json.dumps(c.to_json(), separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise CandidateStreamError(f"cannot write non-finite values as JSON ({exc})") from None


def _no_constants(token: str) -> Any:
    raise CandidateStreamError(f"{token} is not a JSON number (non-finite values are refused)")


MAX_LINE_CHARS = 16 << 20


def parse_stream(lines: Iterable[str]) -> tuple[dict[str, Any], list[PostCandidate]]:
    """Inverse of `dump_stream`; errors name the offending line number."""
    query: dict[str, Any] | None = None
    out: list[PostCandidate] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            raise CandidateStreamError(f"line {n}: longer than {MAX_LINE_CHARS:,} characters")
        try:
            data = json.loads(line, parse_constant=_no_constants)
        except CandidateStreamError as exc:
            raise CandidateStreamError(f"line {n}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise CandidateStreamError(f"line {n}: not valid JSON ({exc.msg})") from None
        except ValueError:  # an integer of thousands of digits
            raise CandidateStreamError(
                f"line {n}: number too large (thousands of digits)"
            ) from None
        except RecursionError:
            raise CandidateStreamError(f"line {n}: JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise CandidateStreamError(f"line {n}: expected a JSON object")
        if query is None:
            if "query" not in data or not isinstance(data["query"], dict):
                raise CandidateStreamError(f'line {n}: the first line must be {{"query": {{...}}}}')
            query = data["query"]
            continue
        try:
            out.append(PostCandidate.from_json(data))
        except (TypeError, CandidateStreamError) as exc:
            raise CandidateStreamError(f"line {n}: {exc}") from exc
    if query is None:
        raise CandidateStreamError("empty candidate stream (no query line)")
    return query, out
