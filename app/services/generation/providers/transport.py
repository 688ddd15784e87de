"""The HTTP transport of the OpenAI-compatible providers: connections go back to the pool.

The `openai` client's synchronous stream stops reading at `data: [DONE]` and closes the
response with the body's last bytes (HTTP/1.1's closing chunk) still unread, so the
connection cannot be reused: every generation paid a new TCP connection (about a tenth of a
`worker io` process's CPU in the generation benchmark). Its asynchronous stream drains the
rest first; this does the same for the synchronous one, and only after `[DONE]`: a stream
closed early (a cancel, a deadline) is closed at once, its connection dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2

DONE = b"data: [DONE]"


class _DrainAfterDone(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream) -> None:
        self._inner = inner
        self._chunks: Iterator[bytes] | None = None
        self._tail = b""

    def __iter__(self) -> Iterator[bytes]:
        self._chunks = iter(self._inner)
        for chunk in self._chunks:
            self._tail = (self._tail + chunk)[-64:]
            yield chunk

    def close(self) -> None:
        try:
            if self._chunks is not None and self._tail.rstrip().endswith(DONE):
                # The server ends the body right after [DONE]; the caller's deadline bounds it.
                for _rest in self._chunks:
                    pass
        finally:
            self._inner.close()


class DrainingTransport(httpx2.HTTPTransport):
    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        stream: Any = response.stream
        response.stream = _DrainAfterDone(stream)
        return response
