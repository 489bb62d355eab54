"""The feed query and its hydrators (homemixer_spec.md §3): who the viewer follows, blocks,
mutes and subscribes to, muted keywords, follower count, seen and served ids, and the engagement
sequence the models read. The query round-trips through JSON (the first line of a stage stream).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from phoenix.inputs import UserHistory
from pipeline.candidates import id_json, parse_id
from pipeline.framework import StageDefaults
from pipeline.params import FeedParams, params_from_dict

if TYPE_CHECKING:
    from world.data import WorldData


@dataclasses.dataclass(frozen=True)
class Resources:
    """Where a feed's inputs live; carried in the query so stage commands need nothing else."""

    world: str
    checkpoint: str
    snapshot: str | None = None  # Thunder snapshot; None = build from the world's post log
    corpus: str | None = None  # retrieval corpus; None = WORLD/corpus.safetensors


@dataclasses.dataclass(frozen=True)
class FeedQuery:
    user_id: int
    now_ms: int
    resources: Resources
    params: FeedParams = dataclasses.field(default_factory=FeedParams)
    lenient: bool = False
    followed_ids: tuple[int, ...] = ()
    blocked_ids: tuple[int, ...] = ()
    muted_ids: tuple[int, ...] = ()
    subscribed_ids: tuple[int, ...] = ()
    muted_keywords: tuple[str, ...] = ()
    follower_count: int | None = None
    in_network_only: bool = False
    seen_ids: tuple[int, ...] = ()
    served_ids: tuple[int, ...] = ()
    history: dict[str, list] = dataclasses.field(default_factory=dict)  # engagement sequence

    def user_history(self, num_actions: int, length: int) -> UserHistory:
        """The most recent `length` history items as model input (actions < num_actions)."""
        h = self.history
        n = len(h.get("post_id", []))
        lo = max(0, n - length)
        acts = h.get("actions", [])
        if isinstance(acts, np.ndarray):  # [n, A] multi-hot (from the hydrator)
            actions = np.zeros((n - lo, num_actions), np.float32)
            a = min(num_actions, acts.shape[1]) if acts.ndim == 2 else 0
            actions[:, :a] = acts[lo:, :a]
        else:  # lists of action indices (from JSON)
            actions = np.zeros((n - lo, num_actions), np.float32)
            for i, row in enumerate(acts[lo:]):
                for a in row:
                    if a < num_actions:
                        actions[i, a] = 1.0
        return UserHistory(
            user_id=self.user_id,
            post_ids=np.asarray(h.get("post_id", [])[lo:], np.int64),
            author_ids=np.asarray(h.get("author_id", [])[lo:], np.int64),
            actions=actions,
            product_surface=np.asarray(h.get("surface", [])[lo:], np.int32),
            dwell_s=np.asarray(h.get("dwell_s", [])[lo:], np.float32),
        )

    def to_json(self) -> dict[str, Any]:
        """The query as JSON: ids (user, id lists, the history's post and author ids) as
        decimal strings."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if k in QUERY_ID_FIELDS:
                out[k] = id_json(v)
            elif isinstance(v, tuple):
                out[k] = list(v)
        out["history"] = {k: _history_json(k, v) for k, v in self.history.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeedQuery:
        data = dict(data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown query field(s): {', '.join(unknown)}")
        data["resources"] = Resources(**data["resources"])
        data["params"] = params_from_dict(data.get("params", {}))
        for f in dataclasses.fields(cls):
            if f.name in data and isinstance(data[f.name], list):
                data[f.name] = tuple(data[f.name])
            if f.name in QUERY_ID_FIELDS and f.name in data:
                data[f.name] = parse_id(data[f.name], f.name, many=f.name != "user_id")
        history = data.get("history") or {}
        if not isinstance(history, dict):
            raise ValueError("history must map field names to lists")
        data["history"] = {k: parse_id(v, k, many=True) if k in HISTORY_ID_FIELDS else v
                           for k, v in history.items()}  # fmt: skip
        return cls(**data)


def _history_json(key: str, value: Any) -> Any:
    """A history field as JSON: ids as strings, a multi-hot as lists of action indices."""
    if key in HISTORY_ID_FIELDS:
        return id_json(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 2:
            rows, cols = np.nonzero(value)
            return [
                c.tolist() for c in np.split(cols, np.searchsorted(rows, np.arange(1, len(value))))
            ]
        return value.tolist()
    return value


QUERY_ID_FIELDS = frozenset({"user_id", "followed_ids", "blocked_ids", "muted_ids",
                             "subscribed_ids", "seen_ids", "served_ids"})  # fmt: skip
HISTORY_ID_FIELDS = frozenset({"post_id", "author_id"})


# ---- query hydrators (one concern each; they run concurrently) -------------------------------


@dataclasses.dataclass
class UserFeaturesHydrator(StageDefaults):
    """Viewer data: muted keywords, follower count, For You eligibility (unknown user: error)."""

    world: WorldData

    def hydrate(self, query: FeedQuery) -> dict[str, Any]:
        row = self.world.user_row(query.user_id)
        u = self.world.users
        return {
            "muted_keywords": tuple(u["muted_keywords"][row] or ()),
            "follower_count": u["follower_count"][row],
            "in_network_only": u["allow_for_you"][row] is False,
        }


@dataclasses.dataclass
class SocialGraphHydrator(StageDefaults):
    """One social-graph list of the viewer (follow, block, mute or subscribe edges made up to
    the request time)."""

    world: WorldData
    kind: str
    field: str

    @property
    def name(self) -> str:
        return f"{self.field.split('_')[0].title()}UserIdsHydrator"

    def hydrate(self, query: FeedQuery) -> dict[str, Any]:
        dst = self.world.out_edges(query.user_id, self.kind, query.now_ms)
        return {self.field: tuple(int(x) for x in dst)}


@dataclasses.dataclass
class ImpressionsHydrator(StageDefaults):
    """seen_ids (client impressions up to now) and served_ids (served within the last 10 min,
    newest first, at most 100)."""

    world: WorldData

    def hydrate(self, query: FeedQuery) -> dict[str, Any]:
        p = query.params
        imp = self.world.activity.user_impressions(query.user_id, query.now_ms)
        ids, ms = imp["post_id"], imp["event_ms"]
        served_mask = imp["served"] & (ms >= query.now_ms - p.served_window_ms)
        order = np.argsort(-ms[served_mask], kind="stable")
        served = ids[served_mask][order][: p.served_max_ids]
        return {
            "seen_ids": tuple(np.unique(ids[imp["seen"]]).tolist()),
            "served_ids": tuple(served.tolist()),
        }


@dataclasses.dataclass
class SequenceHydrator(StageDefaults):
    """The engagement sequence up to now: one item per engaged post, oldest first, the most
    recent `length` kept (the models' history length)."""

    world: WorldData
    length: int
    num_actions: int = 64

    def hydrate(self, query: FeedQuery) -> dict[str, Any]:
        seq = self.world.activity.user_sequence(query.user_id, query.now_ms, self.num_actions)
        i = seq.index_of(query.user_id)
        if i < 0:
            return {"history": {}}
        sl = seq.user_slice(i)
        lo = max(sl.start, sl.stop - self.length)
        sl = slice(lo, sl.stop)
        dwell = np.array([round(x, 3) for x in seq.dwell_s[sl].tolist()], np.float64)
        return {  # arrays (the JSON form is written by FeedQuery.to_json)
            "history": {
                "post_id": seq.post_id[sl],
                "author_id": seq.author_id[sl],
                "time_ms": seq.time_ms[sl],
                "actions": seq.actions[sl],  # [L, A] multi-hot
                "dwell_s": dwell,  # rounded as in the JSON
                "surface": seq.surface[sl],
            }
        }


def query_hydrators(world: WorldData, history_length: int) -> list:
    return [
        UserFeaturesHydrator(world),
        SocialGraphHydrator(world, "follow", "followed_ids"),
        SocialGraphHydrator(world, "block", "blocked_ids"),
        SocialGraphHydrator(world, "mute", "muted_ids"),
        SocialGraphHydrator(world, "subscribe", "subscribed_ids"),
        ImpressionsHydrator(world),
        SequenceHydrator(world, history_length),
    ]
