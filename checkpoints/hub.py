"""Pulling checkpoints from a Hugging Face Hub repo into the normal HF cache.

Uses huggingface_hub's own snapshot download, so the cache layout, revisions and resumable
downloads are the library's. `HF_ENDPOINT` and `HF_HUB_OFFLINE` are read at call time (the
library reads them at import), so tests and users can point at a local mirror.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from checkpoints.errors import CheckpointError

TRUTHY = {"1", "true", "yes", "on"}
DEFAULT_TIMEOUT_S = 60.0


def _with_deadline(fn, timeout_s: float, what: str):
    """fn() in a daemon thread; CheckpointError when it has not finished after `timeout_s` (an
    endpoint that accepts and never answers must not hang the command)."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    worker = threading.Thread(target=target, name="hub-pull", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise CheckpointError(
            f"{what}: no answer within {timeout_s:g} s (use --timeout to wait longer)"
        )
    if "error" in result:
        raise result["error"]
    return result["value"]


def pull(
    repo_id: str,
    *,
    revision: str | None = None,
    local_dir: Path | str | None = None,
    cache_dir: Path | str | None = None,
    allow_patterns: list[str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download (or find in the cache, when offline) a model repo snapshot; returns its path.
    The whole pull must finish within `timeout_s` seconds (default 60)."""
    import huggingface_hub
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUTHY
    try:
        path = _with_deadline(
            lambda: huggingface_hub.snapshot_download(
                repo_id,
                revision=revision,
                local_dir=str(local_dir) if local_dir else None,
                cache_dir=str(cache_dir) if cache_dir else None,
                allow_patterns=allow_patterns,
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                local_files_only=offline,
                etag_timeout=timeout_s,
            ),
            timeout_s,
            f"cannot pull {repo_id!r}",
        )
    except CheckpointError:
        raise
    except RepositoryNotFoundError as exc:
        raise CheckpointError(f"hub repo {repo_id!r} not found (or not accessible)") from exc
    except RevisionNotFoundError as exc:
        raise CheckpointError(f"hub repo {repo_id!r} has no revision {revision!r}") from exc
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set and it is not cached" if offline else "hub not reachable"
        raise CheckpointError(f"cannot pull {repo_id!r}: {why}") from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot pull {repo_id!r}: {exc}".splitlines()[0]) from exc
    return Path(path)
