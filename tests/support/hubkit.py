"""A stand-in for the Hugging Face Hub on loopback, for testing `sensorium models` and
scripts/dev where no real hub is reachable.

It speaks the part of the Hub's HTTP protocol huggingface_hub's `snapshot_download` and
`hf_hub_download` use (learned from huggingface_hub's own source):

- `GET /api/models/{repo}/revision/{revision}`: the repository's info, whose `sha` is the commit;
- `GET /api/models/{repo}/tree/{commit}?recursive=...`: the file list (`type`, `path`, `size`, `oid`);
- `HEAD` / `GET /{repo}/resolve/{revision}/{file}`: the file, with the headers the client
  requires: `X-Repo-Commit` (else "not a Hub endpoint"), `ETag` (else "no reproducibility") and
  `Content-Length` (the expected size);
- unknown repositories and files: 404 with `X-Error-Code` (`RepoNotFound` / `EntryNotFound`),
  which huggingface_hub turns into its own exceptions.

    with StandInHub({"org/name": {"config.json": b"{}"}}) as hub:
        env["HF_ENDPOINT"] = hub.url   # read by huggingface_hub at import: use a subprocess
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import unquote, urlsplit

Repos = dict[str, dict[str, bytes]]
"""Repository id ("org/name") -> file name -> content."""


class StandInHub:
    """A threaded HTTP server on 127.0.0.1 serving `repos`; records every request it gets."""

    def __init__(self, repos: Repos) -> None:
        self.repos = repos
        # One commit per repository, derived from its content: a real hub's commits name content too.
        self.commits = {
            repo: hashlib.sha1(b"".join(name.encode() + hashlib.sha256(data).digest()
                                        for name, data in sorted(files.items()))).hexdigest()
            for repo, files in repos.items()
        }
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandInHub:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def downloads(self) -> list[str]:
        """Paths of the files sent with GET (the downloads themselves, not the metadata)."""
        return [path for method, path in self.requests if method == "GET" and "/resolve/" in path]


def _handler(hub: StandInHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read hub.requests
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path))
            if path.startswith("/api/models/"):
                self._api(path.removeprefix("/api/models/"))
            elif "/resolve/" in path:
                repo, _, rest = path.lstrip("/").partition("/resolve/")
                _, _, name = rest.partition("/")  # the revision: this hub has one per repository
                self._file(repo, name, body)
            else:
                self._send(404, b"", {"X-Error-Code": "RepoNotFound"})

        def _api(self, rest: str) -> None:
            for repo, files in hub.repos.items():
                if rest.startswith(f"{repo}/revision/"):
                    info = {"id": repo, "sha": hub.commits[repo], "private": False,
                            "siblings": [{"rfilename": name} for name in files]}
                    return self._json(info)
                if rest.startswith(f"{repo}/tree/"):
                    tree = [{"type": "file", "path": name, "size": len(data),
                             "oid": hashlib.sha1(data).hexdigest()} for name, data in files.items()]
                    return self._json(tree)
            return self._send(404, b"", {"X-Error-Code": "RepoNotFound"})

        def _file(self, repo: str, name: str, body: bool) -> None:
            if repo not in hub.repos:
                return self._send(404, b"", {"X-Error-Code": "RepoNotFound"})
            data = hub.repos[repo].get(name)
            if data is None:
                return self._send(404, b"", {"X-Error-Code": "EntryNotFound",
                                             "X-Repo-Commit": hub.commits[repo]})
            headers = {"X-Repo-Commit": hub.commits[repo],
                       "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "Content-Type": "application/octet-stream"}
            return self._send(200, data if body else b"", headers, length=len(data))

        def _json(self, value: object) -> None:
            self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def _send(self, status: int, data: bytes, headers: dict[str, str], length: int | None = None) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data) if length is None else length))
            self.end_headers()
            if data:
                self.wfile.write(data)

    return Handler
