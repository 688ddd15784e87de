"""A streaming client for any OpenAI-compatible `POST /chat/completions` endpoint."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Generator
from datetime import UTC
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from gevent import Timeout as GeventTimeout
from gevent import monkey

from app.services.providers.base import ChatRequest
from app.services.providers.base import Delta
from app.services.providers.base import ProviderError
from app.services.providers.base import ProviderRejected
from app.services.providers.base import ProviderTimeout
from app.services.providers.base import RetryableProviderError
from app.services.providers.spec import ProviderSpec

MAX_ERROR_CHARS = 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:MAX_ERROR_CHARS] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:MAX_ERROR_CHARS]
    return json.dumps(body)[:MAX_ERROR_CHARS]


def _deadline(seconds: float) -> contextlib.AbstractContextManager[Any]:
    # Under gevent a Timeout interrupts a blocking read at the exact deadline; elsewhere
    # httpx's own connect/read timeouts plus the per-chunk check bound the call.
    if monkey.is_module_patched("socket"):
        timeout: contextlib.AbstractContextManager[Any] = GeventTimeout(
            seconds, ProviderTimeout(f"no complete answer by the deadline ({seconds:.1f}s left)")
        )
        return timeout
    return contextlib.nullcontext()


class _Done:
    """The `data: [DONE]` line that ends an OpenAI stream."""


class OpenAICompatible:
    """Streams chat completions; maps HTTP outcomes onto retryable or final errors."""

    def __init__(self, name: str, spec: ProviderSpec, client: httpx.Client) -> None:
        self.name = name
        self.spec = spec
        self._client = client

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.spec.api_key:
            headers["Authorization"] = f"Bearer {self.spec.api_key}"
        return headers

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        return {
            **request.parameters,
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def stream(self, request: ChatRequest) -> Generator[Delta, None, None]:
        deadline = time.monotonic() + self.spec.timeout
        timeout = httpx.Timeout(self.spec.timeout, connect=self.spec.connect_timeout)
        outgoing = self._client.build_request(
            "POST",
            f"{self.spec.base_url}/chat/completions",
            json=self._body(request),
            headers=self._headers(),
            timeout=timeout,
        )
        response: httpx.Response | None = None
        try:
            # The deadline guards only this generator's own reads, never the caller's work
            # between two chunks (an interrupted database write would spoil its connection).
            with _deadline(self._remaining(deadline)):
                response = self._client.send(outgoing, stream=True)
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(response)
            lines = response.iter_lines()
            while True:
                with _deadline(self._remaining(deadline)):
                    line = next(lines, None)
                if line is None:
                    return
                delta = self._parse_line(line)
                if isinstance(delta, _Done):
                    return
                if delta is not None:
                    yield delta
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        except httpx.TransportError as exc:
            raise RetryableProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            if response is not None:
                response.close()

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderTimeout(f"{self.name}: no complete answer within {self.spec.timeout}s")
        return remaining

    def _status_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        message = f"{self.name} answered HTTP {status}: {_error_message(response)}"
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return RetryableProviderError(message, retry_after=retry_after)
        return ProviderRejected(status, message)

    def _parse_line(self, line: str) -> Delta | _Done | None:
        # Server-Sent Events: only `data:` lines carry chunks; comments keep the line alive.
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        if data == "[DONE]":
            return _Done()
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise RetryableProviderError(
                f"{self.name} sent a malformed chunk: {data[:200]}"
            ) from exc
        if "error" in chunk:
            raise RetryableProviderError(f"{self.name} failed mid-stream: {chunk['error']}")
        usage = chunk.get("usage") or {}
        choice = (chunk.get("choices") or [{}])[0]
        delta = choice.get("delta") or {}
        return Delta(
            text=delta.get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
