"""A local server that speaks the OpenAI chat-completions protocol, for tests and benchmarks.

`POST /v1/chat/completions` answers like the real API: a `chat.completion` object, or with
`"stream": true` a chunked `text/event-stream` of `chat.completion.chunk` events, a final
usage chunk when `stream_options.include_usage` is set, and `data: [DONE]`. Errors come as
`{"error": {...}}` bodies with the real status codes (and `Retry-After` on 429).

Tests script what a request gets by a marker string in its messages:

    fake.script("case-42", Reply(status=429, retry_after=1), Reply(text="hello"))

Requests whose messages hold no scripted marker get the server's default reply, which
echoes the last user message.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from http.server import ThreadingHTTPServer
from typing import Any

from tests.support.http_server import QuietHandler
from tests.support.http_server import serving


@dataclass(frozen=True)
class Reply:
    status: int = 200
    # The answer; None echoes the last user message.
    text: str | None = None
    # Seconds before the status line, and between two streamed chunks.
    delay: float = 0.0
    chunk_delay: float = 0.0
    retry_after: float | None = None
    error: str = "scripted failure"
    include_usage: bool = True


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    # When the whole answer was sent (None: not yet, or it failed).
    answered_at: float | None = None


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, default: Reply | None = None, api_key: str = "sk-test-key") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.default = default or Reply()
        self.api_key = api_key
        self._scripts: dict[str, list[Reply]] = {}
        self._seen: dict[str, list[Seen]] = {}
        self._lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing its keep-alive connection is normal, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, marker: str, *replies: Reply) -> None:
        """Requests mentioning `marker` get these replies in turn, then the last one again."""
        with self._lock:
            self._scripts[marker] = list(replies)
            self._seen[marker] = []

    def seen(self, marker: str) -> list[Seen]:
        with self._lock:
            return list(self._seen.get(marker, []))

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[Reply, Seen | None]:
        text = json.dumps(body.get("messages"))
        with self._lock:
            for marker, replies in self._scripts.items():
                if marker in text:
                    seen = Seen(body, headers)
                    self._seen[marker].append(seen)
                    return (replies.pop(0) if len(replies) > 1 else replies[0]), seen
        return self.default, None

    @classmethod
    @contextmanager
    def running(cls, default: Reply | None = None) -> Iterator[FakeOpenAI]:
        with serving(cls(default)) as server:
            yield server


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server: FakeOpenAI

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.reply_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid"}})
            return
        if self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            self.reply_json(
                401, {"error": {"message": "Incorrect API key provided", "type": "auth"}}
            )
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.reply_json(400, {"error": {"message": "body is not JSON", "type": "invalid"}})
            return
        # Header names are case-insensitive (the openai client sends them lower-case).
        received = {name.title(): value for name, value in self.headers.items()}
        reply, seen = self.server._next(body, received)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status != 200:
            headers = {}
            if reply.retry_after is not None:
                headers["Retry-After"] = f"{reply.retry_after:g}"
            error = {"message": reply.error, "type": "scripted", "code": reply.status}
            self.reply_json(reply.status, {"error": error}, headers)
            return
        text = reply.text
        if text is None:
            users = [m for m in body.get("messages", []) if m.get("role") == "user"]
            text = "echo: " + str(users[-1]["content"] if users else "")
        try:
            if body.get("stream"):
                self._stream(body, reply, text)
            else:
                self.reply_json(200, self._completion(body, text))
            if seen is not None:
                seen.answered_at = time.monotonic()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (cancel, timeout): nothing more to send

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion = len(_words(text))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(body, text),
        }

    def _stream(self, body: dict[str, Any], reply: Reply, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
        }

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        self._event(choice({"role": "assistant", "content": ""}))
        for word in _words(text):
            if reply.chunk_delay:
                time.sleep(reply.chunk_delay)
            self._event(choice({"content": word}))
        self._event(choice({}, "stop"))
        if reply.include_usage and (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": self._usage(body, text)})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, payload: dict[str, Any]) -> None:
        self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
