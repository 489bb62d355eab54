"""A world's engagements and impressions in memory, indexed for per-request lookups.

The feed asks three things of these tables on every request: the viewer's engagement sequence up
to now, the viewer's impressions (seen / served) up to now, and each candidate's engagement
counts up to now. Reading the Parquet files with a filter per request costs tens of milliseconds
on a large world; here each table is read once, sorted, and sliced with binary search.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from world.sequences import ENGAGEMENT_COLUMNS, Sequences, engagement_columns, group_items
from world.tables import read_table


class Activity:
    """Engagement and impression events of a world, by user and by time.

    `post_rows` maps post ids to rows of the world's post table (−1 when unknown); counts are
    arrays over those rows.
    """

    def __init__(self, world: Path | str, post_rows: Callable[[np.ndarray], np.ndarray],
                 num_posts: int):  # fmt: skip
        eng = engagement_columns(read_table(world, "engagements", list(ENGAGEMENT_COLUMNS)))
        by_user = np.lexsort((eng["event_ms"], eng["user_id"]))
        self._eng = {k: v[by_user] for k, v in eng.items()}  # by (user, time)
        by_time = np.argsort(eng["event_ms"], kind="stable")
        self._eng_time = eng["event_ms"][by_time]  # [E] ascending
        self._eng_row = post_rows(eng["post_id"][by_time])  # [E]
        self._eng_action = eng["action"][by_time]  # [E]

        imp = read_table(world, "impressions", ["user_id", "post_id", "kind", "event_ms"])
        user = imp.column("user_id").to_numpy().astype(np.int64)
        ms = imp.column("event_ms").to_numpy().astype(np.int64)
        seen = pc.equal(imp.column("kind"), "seen").to_numpy(zero_copy_only=False)
        served = pc.equal(imp.column("kind"), "served").to_numpy(zero_copy_only=False)
        post = imp.column("post_id").to_numpy().astype(np.int64)
        order = np.lexsort((ms, user))
        self._imp = {"user_id": user[order], "post_id": post[order], "event_ms": ms[order],
                     "seen": seen[order], "served": served[order]}  # fmt: skip
        by_time = np.argsort(ms, kind="stable")
        self._imp_time = ms[by_time]  # [I] ascending
        self._imp_row = post_rows(post[by_time])  # [I]

        self._num_posts = num_posts
        self._counts: dict[int, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _user_slice(users: np.ndarray, user_id: int) -> slice:
        return slice(int(np.searchsorted(users, user_id)),
                     int(np.searchsorted(users, user_id, side="right")))  # fmt: skip

    def user_sequence(self, user_id: int, until_ms: int, num_actions: int) -> Sequences:
        """The user's engagement items from events at or before `until_ms` (as load_sequences)."""
        sl = self._user_slice(self._eng["user_id"], user_id)
        keep = self._eng["event_ms"][sl] <= until_ms
        return group_items({k: v[sl][keep] for k, v in self._eng.items()}, num_actions)

    def user_impressions(self, user_id: int, until_ms: int) -> dict[str, np.ndarray]:
        """The user's impressions at or before `until_ms`, oldest first: post_id, event_ms, and
        the seen / served flags."""
        sl = self._user_slice(self._imp["user_id"], user_id)
        stop = sl.start + int(np.searchsorted(self._imp["event_ms"][sl], until_ms, side="right"))
        return {k: v[sl.start : stop] for k, v in self._imp.items() if k != "user_id"}

    def counts(self, now_ms: int, actions: dict[str, int]) -> dict[str, np.ndarray]:
        """Per post row: the number of events of each named action at or before `now_ms`, and
        `views` (impressions of any kind). Cached for the latest few request times."""
        key = int(now_ms)
        with self._lock:
            hit = self._counts.get(key)
        if hit is not None and actions.keys() <= hit.keys():
            return hit
        m = int(np.searchsorted(self._eng_time, now_ms, side="right"))
        rows, action = self._eng_row[:m], self._eng_action[:m]
        known = rows >= 0
        out = {
            name: np.bincount(rows[known & (action == a)], minlength=self._num_posts)
            for name, a in actions.items()
        }
        m = int(np.searchsorted(self._imp_time, now_ms, side="right"))
        rows = self._imp_row[:m]
        out["views"] = np.bincount(rows[rows >= 0], minlength=self._num_posts)
        with self._lock:
            if len(self._counts) >= 4:
                self._counts.pop(next(iter(self._counts)))
            self._counts[key] = out
        return out
