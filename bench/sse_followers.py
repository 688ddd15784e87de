"""Many Server-Sent Events followers from one thread: raw sockets and a selector.

bench/results.py connects a thousand `GET /api/v1/jobs/{id}/events` streams to one API
process; a thread or an HTTP client object per stream would cost this process more than
the API it measures. Each stream's bytes are only counted: events (`event: ` lines), the
first one (the follower got its row), and `event: end`.
"""

from __future__ import annotations

import selectors
import socket
import threading
from dataclasses import dataclass

EVENT = b"event: "
END = b"event: end"


@dataclass
class _Stream:
    sock: socket.socket
    tail: bytes = b""
    events: int = 0
    ended: bool = False
    closed: bool = False  # the server closed the stream (EOF or an error)


class Followers:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.selector = selectors.DefaultSelector()
        self.streams: list[_Stream] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, name="sse-followers", daemon=True)

    def connect(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            request = (
                f"GET /api/v1/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n"
            )
            sock.sendall(request.encode())
            sock.setblocking(False)
            stream = _Stream(sock)
            with self.lock:
                self.streams.append(stream)
                self.selector.register(sock, selectors.EVENT_READ, stream)
            if not self.thread.is_alive():
                self.thread.start()

    def _read(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                registered = bool(self.selector.get_map())
            if not registered:
                self.stopping.wait(0.05)
                continue
            for key, _ in self.selector.select(timeout=0.2):
                stream: _Stream = key.data
                try:
                    data = stream.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                # An event line (7 bytes) split across reads is found in tail + data; the
                # 6-byte tail can hold no whole one, so nothing is counted twice.
                chunk = stream.tail + data
                stream.events += chunk.count(EVENT)
                stream.ended = stream.ended or END in chunk
                stream.tail = chunk[-6:]
                stream.closed = not data
                if not data or stream.ended:
                    with self.lock:
                        self.selector.unregister(stream.sock)
                    stream.sock.close()

    def events(self) -> int:
        return sum(stream.events for stream in self.streams)

    def first_events(self) -> int:
        return sum(1 for stream in self.streams if stream.events)

    def ended(self) -> int:
        return sum(1 for stream in self.streams if stream.ended)

    def closed(self) -> int:
        return sum(1 for stream in self.streams if stream.closed and not stream.ended)

    def close(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        for stream in self.streams:
            stream.sock.close()
