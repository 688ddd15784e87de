"""Local receivers for the trace sinks: an OTLP/HTTP collector and a Langfuse ingestion API.

Each records the JSON batches it accepts, checks the request the way the real service
does (path, content type, Langfuse's Basic auth), and can be switched `down` to answer 503
as an unavailable back end would.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

from tests.support.http_server import serving


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, path: str, auth: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.path = path
        self.auth = auth
        self.down = False
        self.batches: list[Any] = []
        self.refused = 0
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def endpoint(self) -> str:
        return self.base_url + self.path

    def received(self) -> list[Any]:
        with self._lock:
            return list(self.batches)

    def _accept(self, handler: _Handler, body: bytes) -> tuple[int, Any]:
        if handler.path != self.path:
            return 404, {"message": f"no route {handler.path}"}
        if handler.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return 415, {"message": "send application/json"}
        if self.auth is not None:
            token = base64.b64encode(":".join(self.auth).encode()).decode()
            if handler.headers.get("Authorization") != f"Basic {token}":
                return 401, {"message": "invalid credentials"}
        with self._lock:
            if self.down:
                self.refused += 1
                return 503, {"message": "down"}
            payload = json.loads(body)
            self.batches.append(payload)
        if isinstance(payload, dict) and "batch" in payload:
            # Langfuse answers 207 with a result per event.
            ids = [{"id": event["id"], "status": 201} for event in payload["batch"]]
            return 207, {"successes": ids, "errors": []}
        return 200, {"partialSuccess": {}}

    @classmethod
    @contextmanager
    def running(cls, path: str, auth: tuple[str, str] | None = None) -> Iterator[Receiver]:
        with serving(cls(path, auth)) as server:
            yield server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = self.server._accept(self, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
