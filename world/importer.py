"""`xfeed world import`: an interaction log (CSV or Parquet) turned into a world (data.md tables).

Input: one row per interaction — user, item, timestamp, and optionally a rating, an action name,
the item's author/creator. Optionally an item file (item, title/text, topics). MovieLens's
`ratings.csv` + `movies.csv` is a named preset (`ImportSpec.movielens`).

What the world gets:
- `users`: every user of the log, plus the item authors (with no author column, one catalogue
  account, `catalogue_author_id`, authors every post). Integer ids are kept; other ids get dense
  integer ids in sorted order, the original kept in `screen_name` (users) or `text` (items).
- `posts`: one `create` event per item, created 1 s before its first interaction; its post id is a
  snowflake of that time ((created_ms − 1288834974657) << 22 | a sequence number). A log older
  than the snowflake epoch is shifted forward by whole days; `world.json` says by how much
  (`time_shift_ms`) and why.
- `impressions`: a `seen` impression per interaction (the log shows what was consumed, not what
  was shown and skipped: a log has no negatives, which training must sample).
- `engagements`: per interaction, the `consumed_action` (default recap-dwelled: the user watched /
  read / bought the item), plus the row's own action when an action column is given, plus a
  favorite when the rating reaches `like_threshold`.
- `edges`: empty (a log has no social graph), with the data.md schema.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from phoenix.actions import ActionName
from safeio.atomic import atomic_path
from safeio.digest import file_sha256
from world.tables import WORLD_OUTPUT, WorldError, table_bytes_hash

SNOWFLAKE_EPOCH_MS = 1288834974657
DAY_MS = 86_400_000
TIME_UNITS = {"s": 1000, "ms": 1}


@dataclasses.dataclass(frozen=True)
class ImportSpec:
    """Where each field is in the input files. Column names are the input's own."""

    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "timestamp"
    time_unit: str = "s"  # "s" or "ms"
    rating_col: str | None = None
    action_col: str | None = None  # ActionName names (any case) or their integer values
    author_col: str | None = None
    like_threshold: float = 4.0  # rating >= this -> favorite
    consumed_action: ActionName = ActionName.CLIENT_TWEET_RECAP_DWELLED
    item_key_col: str | None = None  # in the item file; default item_col
    item_text_col: str | None = None
    item_topics_col: str | None = None
    topics_sep: str = "|"
    preset: str | None = None

    @classmethod
    def movielens(cls) -> ImportSpec:
        """MovieLens `ratings.csv` (userId, movieId, rating, timestamp in s) + `movies.csv`."""
        return cls(user_col="userId", item_col="movieId", time_col="timestamp", time_unit="s",
                   rating_col="rating", item_text_col="title", item_topics_col="genres",
                   preset="movielens")  # fmt: skip


PRESETS = {"movielens": ImportSpec.movielens}


def _names(names: list[str], limit: int = 12) -> str:
    """Column names for an error line: printable (escaped), each cut to 40 characters."""
    shown = [ascii(n)[1:-1][:40] for n in names[:limit]]
    return ", ".join(shown) + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _read(path: Path, columns: list[str]) -> pa.Table:
    """Only `columns` of a CSV or Parquet file; a missing column is a WorldError naming it."""
    if not path.is_file():
        raise WorldError(f"{path}: not a file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            names = pq.read_schema(path).names
            missing = [c for c in columns if c not in names]
            if missing:
                raise WorldError(f"{path}: no column {missing[0]!r} (columns: {_names(names)})")
            return pq.read_table(path, columns=columns)
        with path.open("rb") as f:
            header = f.readline(1 << 16).decode("utf-8", "replace").strip().split(",")
        header = [h.strip().strip('"') for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise WorldError(f"{path}: no column {missing[0]!r} (columns: {_names(header)})")
        opts = pacsv.ConvertOptions(include_columns=columns, strings_can_be_null=False)
        return pacsv.read_csv(path, convert_options=opts)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise WorldError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from exc


def _account_ids(
    columns: list[tuple[pa.ChunkedArray, str]], path: Path
) -> tuple[list[np.ndarray], dict[int, str]]:
    """Account ids of several columns (users, authors) in one namespace: integer columns keep
    their ids; otherwise every value gets a dense id 1.. in sorted order of its text, and the
    originals are returned by id (the same text in two columns is the same account)."""
    for values, name in columns:
        if values.null_count:
            raise WorldError(f"{path}: column {name!r} has empty values")
    if all(pa.types.is_integer(v.type) for v, _ in columns):
        ids = [v.to_numpy().astype(np.int64) for v, _ in columns]
        for a, (_, name) in zip(ids, columns, strict=True):
            if len(a) and a.min() < 0:
                raise WorldError(f"{path}: column {name!r} has negative ids")
        return ids, {}
    texts = [pc.cast(v, pa.string()).to_numpy(zero_copy_only=False).astype(str) for v, _ in columns]
    for a, (_, name) in zip(texts, columns, strict=True):
        if np.any(a == ""):
            raise WorldError(f"{path}: column {name!r} has empty values")
    vocab = np.unique(np.concatenate(texts))
    ids = [np.searchsorted(vocab, a).astype(np.int64) + 1 for a in texts]
    return ids, {i + 1: str(v) for i, v in enumerate(vocab)}


def _times_ms(values: pa.ChunkedArray, unit: str, path: Path, name: str) -> np.ndarray:
    if unit not in TIME_UNITS:
        raise WorldError(f"time unit must be one of {', '.join(TIME_UNITS)}, not {unit!r}")
    if pa.types.is_timestamp(values.type):
        return pc.cast(values, pa.timestamp("ms")).cast(pa.int64()).to_numpy().astype(np.int64)
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise WorldError(f"{path}: column {name!r} must hold numbers ({unit} since the epoch)")
    if values.null_count:
        raise WorldError(f"{path}: column {name!r} has empty values")
    t = values.to_numpy().astype(np.float64) * TIME_UNITS[unit]
    if not np.all(np.isfinite(t)) or (len(t) and (t.min() < 0 or t.max() > 4.1e12)):
        raise WorldError(f"{path}: column {name!r} has times outside 1970..2100 ({unit})")
    return np.round(t).astype(np.int64)


def _actions(values: pa.ChunkedArray, path: Path, name: str) -> np.ndarray:
    if pa.types.is_integer(values.type):
        a = values.to_numpy(zero_copy_only=False).astype(np.int64)
        bad = (a < 1) | (a > max(ActionName))
        if bad.any():
            raise WorldError(f"{path}: column {name!r} has action {a[bad][0]} (allowed 1..63)")
        return a
    by_name = {n.name.lower(): int(n) for n in ActionName}
    out = []
    for v in pc.cast(values, pa.string()).to_pylist():
        key = (v or "").strip().lower()
        if key not in by_name or by_name[key] == 0:
            raise WorldError(f"{path}: column {name!r} has unknown action {v!r}")
        out.append(by_name[key])
    return np.array(out, np.int64)


def _snowflakes(created_ms: np.ndarray) -> np.ndarray:
    """Snowflake ids for creation times (sequence number within a millisecond, in input order)."""
    order = np.argsort(created_ms, kind="stable")
    t = created_ms[order]
    first = np.r_[True, t[1:] != t[:-1]] if len(t) else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, np.arange(len(t)), 0))
    seq = np.arange(len(t)) - start
    if len(seq) and seq.max() >= 1 << 22:
        raise WorldError("more than 4,194,304 items created in one millisecond")
    ids = np.empty(len(t), np.int64)
    ids[order] = ((t - SNOWFLAKE_EPOCH_MS) << 22) | seq
    return ids


def import_log(
    log: Path | str,
    out: Path | str,
    spec: ImportSpec,
    items: Path | str | None = None,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Write a world directory from an interaction log; returns its world.json content."""
    log = Path(log)
    cols = [spec.user_col, spec.item_col, spec.time_col]
    cols += [c for c in (spec.rating_col, spec.action_col, spec.author_col) if c]
    t = _read(log, list(dict.fromkeys(cols)))
    if t.num_rows == 0:
        raise WorldError(f"{log}: no interactions")
    account_cols = [(t.column(spec.user_col), spec.user_col)]
    if spec.author_col:
        account_cols.append((t.column(spec.author_col), spec.author_col))
    account_of, names = _account_ids(account_cols, log)
    users = account_of[0]
    item_keys = pc.cast(t.column(spec.item_col), pa.string()).to_numpy(zero_copy_only=False)
    item_keys = item_keys.astype(str)
    time_ms = _times_ms(t.column(spec.time_col), spec.time_unit, log, spec.time_col)

    # items: dense index in sorted key order (numeric keys sorted numerically)
    numeric = pa.types.is_integer(t.column(spec.item_col).type)
    if numeric:
        raw = t.column(spec.item_col).to_numpy().astype(np.int64)
        uniq_raw, item = np.unique(raw, return_inverse=True)
        uniq_keys = uniq_raw.astype(str)
    else:
        uniq_keys, item = np.unique(item_keys, return_inverse=True)
    n_items = len(uniq_keys)

    # a log older than the snowflake epoch moves forward by whole days
    earliest = int(time_ms.min()) - 1000
    shift = 0
    if earliest < SNOWFLAKE_EPOCH_MS + DAY_MS:
        shift = -(-(SNOWFLAKE_EPOCH_MS + DAY_MS - earliest) // DAY_MS) * DAY_MS
    time_ms = time_ms + shift
    first_ms = np.full(n_items, np.iinfo(np.int64).max)
    np.minimum.at(first_ms, item, time_ms)
    created = first_ms - 1000
    post_ids = _snowflakes(created)

    # authors
    if spec.author_col:
        item_author = np.zeros(n_items, np.int64)
        item_author[item] = account_of[1]  # an item's author: its last row's (rows agree)
        catalogue = None
    else:
        catalogue = int(users.max()) + 1
        item_author = np.full(n_items, catalogue, np.int64)

    # item metadata
    text = [f"item {k}" for k in uniq_keys]
    topics: list[list[str]] = [[] for _ in range(n_items)]
    if items is not None:
        items = Path(items)
        key_col = spec.item_key_col or spec.item_col
        icols = [key_col] + [c for c in (spec.item_text_col, spec.item_topics_col) if c]
        it = _read(items, list(dict.fromkeys(icols)))
        keys = pc.cast(it.column(key_col), pa.string()).to_pylist()
        pos = {k: i for i, k in enumerate(uniq_keys.tolist())}
        texts = it.column(spec.item_text_col).to_pylist() if spec.item_text_col else None
        tops = it.column(spec.item_topics_col).to_pylist() if spec.item_topics_col else None
        for r, k in enumerate(keys):
            i = pos.get(k)
            if i is None:
                continue  # an item nobody interacted with
            if texts is not None and texts[r]:
                text[i] = str(texts[r])
            if tops is not None and tops[r]:
                topics[i] = [x for x in str(tops[r]).split(spec.topics_sep) if x]

    # engagements: consumed (+ the row's action) (+ favorite when liked)
    row = np.arange(t.num_rows)
    parts = [(row, np.full(t.num_rows, int(spec.consumed_action)))]
    if spec.action_col:
        parts.append((row, _actions(t.column(spec.action_col), log, spec.action_col)))
    if spec.rating_col:
        rating = t.column(spec.rating_col)
        if not (pa.types.is_integer(rating.type) or pa.types.is_floating(rating.type)):
            raise WorldError(f"{log}: column {spec.rating_col!r} must hold numbers")
        rating = pc.cast(rating, pa.float64())
        liked = pc.fill_null(rating, -np.inf).to_numpy() >= spec.like_threshold
        parts.append((row[liked], np.full(int(liked.sum()), int(ActionName.SERVER_TWEET_FAV))))
    e_row = np.concatenate([p[0] for p in parts])
    e_act = np.concatenate([p[1] for p in parts])
    keep = np.unique(np.stack([e_row, e_act], 1), axis=0)  # one row per (interaction, action)
    e_row, e_act = keep[:, 0], keep[:, 1]
    eng = pa.table({
        "user_id": pa.array(users[e_row], pa.int64()),
        "post_id": pa.array(post_ids[item[e_row]], pa.int64()),
        "author_id": pa.array(item_author[item[e_row]], pa.int64()),
        "action": pa.array(e_act, pa.int16()),
        "event_ms": pa.array(time_ms[e_row], pa.int64()),
        "dwell_s": pa.nulls(len(e_row), pa.float32()),
        "product_surface": pa.array(np.ones(len(e_row), np.int16), pa.int16()),
    }).sort_by([("user_id", "ascending"), ("event_ms", "ascending"), ("post_id", "ascending"),
                ("action", "ascending")])  # fmt: skip
    imp = pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "post_id": pa.array(post_ids[item], pa.int64()),
            "kind": pa.array(["seen"] * t.num_rows, pa.string()),
            "event_ms": pa.array(time_ms, pa.int64()),
        }
    ).sort_by([("user_id", "ascending"), ("event_ms", "ascending"), ("post_id", "ascending")])

    order = np.argsort(created, kind="stable")
    null_ids = pa.nulls(n_items, pa.int64())
    posts = pa.table({
        "event": pa.array(["create"] * n_items),
        "event_ms": pa.array(created[order], pa.int64()),
        "post_id": pa.array(post_ids[order], pa.int64()),
        "author_id": pa.array(item_author[order], pa.int64()),
        "created_ms": pa.array(created[order], pa.int64()),
        "in_reply_to_post_id": null_ids, "in_reply_to_user_id": null_ids,
        "conversation_id": null_ids, "source_post_id": null_ids, "source_user_id": null_ids,
        "quoted_post_id": null_ids, "quoted_user_id": null_ids,
        "video_duration_ms": pa.nulls(n_items, pa.int32()),
        "has_media": pa.array(np.zeros(n_items, bool)),
        "subscription_only": pa.array(np.zeros(n_items, bool)),
        "text": pa.array([text[i] for i in order], pa.string()),
        "language": pa.array([None] * n_items, pa.string()),
        "topics": pa.array([topics[i] for i in order], pa.list_(pa.string())),
        "labels": pa.array([[] for _ in range(n_items)], pa.list_(pa.string())),
    })  # fmt: skip

    account_ids = np.unique(np.r_[users, item_author])
    if catalogue is not None:
        names[catalogue] = "catalogue"
    n_acc = len(account_ids)
    since = np.full(n_acc, int(time_ms.min()) - DAY_MS)
    followers = np.zeros(n_acc, np.int64)
    users_table = pa.table({
        "user_id": pa.array(account_ids, pa.int64()),
        "screen_name": [names.get(int(u), f"user{u}") for u in account_ids],
        "created_ms": pa.array(since, pa.int64()),
        "follower_count": pa.array(followers, pa.int64()),
        "is_nsfw": pa.array(np.zeros(n_acc, bool)),
        "muted_keywords": pa.array([[] for _ in range(n_acc)], pa.list_(pa.string())),
        "allow_for_you": pa.array(np.ones(n_acc, bool)),
        "country": pa.array([None] * n_acc, pa.string()),
        "language": pa.array([None] * n_acc, pa.string()),
    })  # fmt: skip
    edges = pa.table({
        "src_user_id": pa.array([], pa.int64()), "dst_user_id": pa.array([], pa.int64()),
        "kind": pa.array([], pa.string()), "created_ms": pa.array([], pa.int64()),
    })  # fmt: skip

    tables = {"posts": posts, "users": users_table, "edges": edges, "engagements": eng,
              "impressions": imp}  # fmt: skip
    inputs = [log] + ([Path(items)] if items is not None else [])
    inputs = [log] if items is None else [log, items]
    with atomic_path(out, kind=WORLD_OUTPUT, force=force, inputs=inputs) as tmp:
        paths = []
        for name, table in tables.items():
            path = tmp / f"{name}.parquet"
            pq.write_table(table, path, compression="zstd", compression_level=9)
            paths.append(path)
        meta = {
            "as_of_ms": int(time_ms.max()) + 1,
            "generator": "xfeed world import",
            "imported": True,
            "source": {
                "files": [{"name": p.name, "sha256": file_sha256(p)} for p in inputs],
                "spec": {
                    k: (v.name if isinstance(v, ActionName) else v)
                    for k, v in dataclasses.asdict(spec).items()
                },  # fmt: skip
            },
            "time_shift_ms": shift,
            "time_note": (
                f"event times shifted forward by {shift // DAY_MS} days so that every post "
                "id is a valid snowflake (the log predates the 2010 snowflake epoch)"
                if shift
                else "event times as in the log"
            ),
            "catalogue_author_id": catalogue,
            "rows": {name: t.num_rows for name, t in tables.items()},
            "content_hash": table_bytes_hash(paths),
        }
        (tmp / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
