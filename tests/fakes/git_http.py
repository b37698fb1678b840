"""git over smart HTTP on 127.0.0.1, with Basic authentication as github.com asks for it.

`GitHTTPServer` serves the bare repositories under `root` through `git http-backend` (real
git, CGI). Every request must carry `Authorization: Basic` with user `x-access-token` and a
password that `accept(password)` approves (e.g. an installation token the fake GitHub minted
and that has not expired), or it gets 401 with a `WWW-Authenticate` challenge, which is what
makes git ask its credential helper. `passwords` records what each request carried, for
asserting which token a push used.
"""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # as the fake GitHub: a busy test process must not reset clients
    owner: GitHTTPServer


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _serve(self) -> None:
        owner = self.server.owner
        password = _basic_password(self.headers.get("Authorization") or "")
        with owner.lock:
            owner.passwords.append(password)
        if password is None or not owner.accept(password):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="GitHub"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            **os.environ,
            "GIT_PROJECT_ROOT": str(owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": split.path,
            "QUERY_STRING": split.query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type") or "",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding") or "",
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol") or "",
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
        }
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve


def _basic_password(header: str) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    return password if user == "x-access-token" else None


class GitHTTPServer:
    def __init__(self, root: Path, accept: Callable[[str], bool]) -> None:
        self.root = root
        self.accept = accept
        self.lock = threading.Lock()
        self.passwords: list[str | None] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    def __enter__(self) -> GitHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"


__all__ = ["GitHTTPServer"]
