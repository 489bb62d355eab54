"""A tiny Hugging Face Hub stand-in served on 127.0.0.1, enough for snapshot_download."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves the files of `root` as model repo `repo_id` at revision `main` (= SHA)."""

    def __init__(self, root: Path, repo_id: str):
        self.root, self.repo_id = root, repo_id
        self.files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str], head: bool = False):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _route(self, head: bool):
                path = unquote(urlparse(self.path).path)
                hub.requests.append(f"{self.command} {path}")
                api = f"/api/models/{hub.repo_id}"
                if path in (api, f"{api}/revision/main", f"{api}/revision/{SHA}"):
                    info = {
                        "id": hub.repo_id,
                        "sha": SHA,
                        "siblings": [{"rfilename": f} for f in hub.files],
                    }
                    return self._send(200, json.dumps(info).encode(), {}, head)
                if path.startswith(f"{api}/tree/"):
                    tree = [
                        {
                            "type": "file",
                            "path": f,
                            "size": (hub.root / f).stat().st_size,
                            "oid": hashlib.sha1((hub.root / f).read_bytes()).hexdigest(),
                        }
                        for f in hub.files
                    ]
                    return self._send(200, json.dumps(tree).encode(), {}, head)
                prefix = f"/{hub.repo_id}/resolve/"
                if path.startswith(prefix):
                    rev, _, name = path[len(prefix) :].partition("/")
                    if rev in ("main", SHA) and name in hub.files:
                        body = (hub.root / name).read_bytes()
                        etag = hashlib.sha1(body).hexdigest()
                        headers = {"X-Repo-Commit": SHA, "ETag": f'"{etag}"'}
                        return self._send(200, body, headers, head)
                self._send(
                    404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"}, head
                )

            def do_GET(self):
                self._route(head=False)

            def do_HEAD(self):
                self._route(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
