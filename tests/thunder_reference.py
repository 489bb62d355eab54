"""A deliberately simple, event-by-event Thunder: Python dicts and loops, no numpy tricks.
The vectorised store and fetch must agree with it on random logs."""

from __future__ import annotations

from thunder.config import ThunderConfig


def _reply(p):
    return bool(p.get("in_reply_to_post_id", 0) or p.get("in_reply_to_user_id", 0))


def _retweet(p):
    return bool(p.get("source_post_id", 0))


def _original(p):
    return not _reply(p) and not _retweet(p)


def build(events, now, cfg: ThunderConfig):
    posts, deleted = {}, set()
    for ev in sorted(events, key=lambda e: e["event_ms"]):  # sorted() is stable
        if ev["event_ms"] > now:
            continue
        pid = ev["post_id"]
        if ev["event"] == "delete":
            deleted.add(pid)
            posts.pop(pid, None)
            continue
        if pid in deleted or pid in posts:
            continue
        if not (now - cfg.retention_ms <= ev["created_ms"] < now):
            continue
        posts[pid] = ev
    lists = {"original": {}, "secondary": {}, "video": {}}
    for p in posts.values():
        video = (p.get("video_duration_ms") or 0) >= cfg.min_video_ms
        src = posts.get(p.get("source_post_id", 0)) if p.get("source_post_id", 0) else None
        src_video = src is not None and (src.get("video_duration_ms") or 0) >= cfg.min_video_ms
        kinds = []
        if _original(p):
            kinds.append("original")
        else:
            kinds.append("secondary")
        if (_original(p) and video) or (
            _retweet(p) and not _reply(p) and src is not None and (video or src_video)
        ):
            kinds.append("video")
        for k in kinds:
            lists[k].setdefault(p["author_id"], []).append(p)
    for by_author in lists.values():
        for author, items in by_author.items():
            items.sort(key=lambda q: (q["created_ms"], q["post_id"]), reverse=True)
            by_author[author] = items[: cfg.max_posting_list]
    return posts, lists


def _passes(p, posts, viewer, following):
    if p.get("source_user_id", 0) == viewer and p.get("source_user_id", 0):
        return False
    if _original(p):
        return True
    if not _reply(p):
        return True  # a retweet
    parent = posts.get(p.get("in_reply_to_post_id", 0))
    if parent is None:
        return False
    if _original(parent):
        return True
    return (
        _reply(parent)
        and p.get("conversation_id", 0) != 0
        and parent.get("in_reply_to_post_id", 0) == p.get("conversation_id", 0)
        and p.get("in_reply_to_user_id", 0) in following
    )


def fetch(posts, lists, viewer, following, exclude, video, cfg: ThunderConfig, max_results=0):
    following = [a for a in following[: cfg.max_input_list] if a not in cfg.blacklist]
    exclude = set(exclude[: cfg.max_input_list])
    follow_set = set(following)
    if video:
        plan, limit = [("video", cfg.max_video)], max_results or cfg.max_results_video
    else:
        plan = [("original", cfg.max_originals), ("secondary", cfg.max_secondary)]
        limit = max_results or cfg.max_results
    out, seen_authors = [], set()
    for author in following:
        if author in seen_authors:
            continue
        seen_authors.add(author)
        for kind, take in plan:
            scanned = taken = 0
            for p in lists[kind].get(author, []):
                if p["post_id"] in exclude:
                    continue
                if scanned >= cfg.scan_per_author or taken >= take:
                    break
                scanned += 1
                if _passes(p, posts, viewer, follow_set):
                    out.append(p)
                    taken += 1
    out.sort(key=lambda q: (q["created_ms"], q["post_id"]), reverse=True)
    return [p["post_id"] for p in out[:limit]]
