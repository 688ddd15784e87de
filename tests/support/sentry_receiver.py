"""A local stand-in for Sentry's ingest: accepts envelopes over HTTP on 127.0.0.1 and decodes them.

Point a DSN at it (`http://public@127.0.0.1:<port>/1`); the SDK posts to
`/api/<project>/envelope/`, gzip-compressed, as it would to sentry.io.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from tests.support.http_server import QuietHandler
from tests.support.http_server import serving

ENVELOPE_PATH = re.compile(r"^/api/(\d+)/envelope/?$")


@dataclass
class Item:
    type: str
    headers: dict[str, Any]
    payload: Any


@dataclass
class Envelope:
    headers: dict[str, Any]
    items: list[Item]
    raw: bytes


def parse_envelope(raw: bytes) -> Envelope:
    """Decode Sentry's envelope format: a header line, then (item header, payload) pairs."""
    header_line, _, rest = raw.partition(b"\n")
    items: list[Item] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_headers = json.loads(item_line)
        length = item_headers.get("length")
        if length is None:
            body, _, rest = rest.partition(b"\n")
        else:
            body, rest = rest[:length], rest[length + 1 :]
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body
        items.append(Item(item_headers.get("type", ""), item_headers, payload))
    return Envelope(json.loads(header_line), items, raw)


class SentryReceiver:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                if not ENVELOPE_PATH.match(self.path):
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                envelope = parse_envelope(body)
                with receiver._lock:
                    receiver.envelopes.append(envelope)
                self.reply_json(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.dsn = f"http://public@127.0.0.1:{self.port}/1"

    def items(self, type_: str) -> list[Any]:
        with self._lock:
            return [i.payload for e in self.envelopes for i in e.items if i.type == type_]

    def events(self) -> list[dict[str, Any]]:
        return self.items("event")

    def transactions(self) -> list[dict[str, Any]]:
        return self.items("transaction")

    def check_ins(self) -> list[dict[str, Any]]:
        return self.items("check_in")

    def raw(self) -> bytes:
        with self._lock:
            return b"\n".join(e.raw for e in self.envelopes)


@contextmanager
def sentry_receiver() -> Iterator[SentryReceiver]:
    receiver = SentryReceiver()
    with serving(receiver.server):
        yield receiver
