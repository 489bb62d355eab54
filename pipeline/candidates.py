"""Candidates: the record that flows between stages, and its JSONL form (data.md).

A stage stream is JSONL: a first line `{"query": {...}}` with the hydrated query, then one
candidate per line. Fields a stage has not filled are omitted from the JSON.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np


class CandidateStreamError(ValueError):
    """A malformed candidate stream (bad JSON, missing query line, bad field)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PostCandidate:
    post_id: int
    author_id: int
    created_ms: int = 0
    in_network: bool | None = None
    source: str = ""  # which source produced it: "thunder", "phoenix_retrieval", ...
    retrieval_score: float | None = None
    in_reply_to_post_id: int = 0
    in_reply_to_user_id: int = 0
    conversation_id: int = 0
    source_post_id: int = 0  # retweets
    source_user_id: int = 0
    quoted_post_id: int = 0
    quoted_user_id: int = 0
    has_video: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None or (f.name not in ("post_id", "author_id") and v in (0, "", False)):
                continue
            out[f.name] = v
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PostCandidate:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise CandidateStreamError(f"unknown candidate field(s): {', '.join(unknown)}")
        if "post_id" not in data or "author_id" not in data:
            raise CandidateStreamError("candidate lacks post_id or author_id")
        return cls(**data)


def candidates_from_columns(
    columns: dict[str, np.ndarray], rows: np.ndarray, **common: Any
) -> list[PostCandidate]:
    """Candidates from column arrays (e.g. a Thunder store's posts) at the given rows."""
    names = [f.name for f in dataclasses.fields(PostCandidate) if f.name in columns]
    picked = {n: columns[n][rows].tolist() for n in names}
    return [PostCandidate(**{n: picked[n][i] for n in names}, **common) for i in range(len(rows))]


def dump_stream(query: dict[str, Any], candidates: Iterable[PostCandidate]) -> Iterator[str]:
    """JSONL lines: the query line, then one line per candidate."""
    yield json.dumps({"query": query}, separators=(",", ":"))
    for c in candidates:
        yield json.dumps(c.to_json(), separators=(",", ":"))


def parse_stream(lines: Iterable[str]) -> tuple[dict[str, Any], list[PostCandidate]]:
    """Inverse of `dump_stream`; errors name the offending line number."""
    query: dict[str, Any] | None = None
    out: list[PostCandidate] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CandidateStreamError(f"line {n}: not valid JSON ({exc.msg})") from exc
        if not isinstance(data, dict):
            raise CandidateStreamError(f"line {n}: expected a JSON object")
        if query is None:
            if "query" not in data:
                raise CandidateStreamError(f'line {n}: the first line must be {{"query": ...}}')
            query = data["query"]
            continue
        try:
            out.append(PostCandidate.from_json(data))
        except (TypeError, CandidateStreamError) as exc:
            raise CandidateStreamError(f"line {n}: {exc}") from exc
    if query is None:
        raise CandidateStreamError("empty candidate stream (no query line)")
    return query, out
