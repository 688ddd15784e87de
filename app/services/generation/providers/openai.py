"""Any OpenAI-compatible chat-completions endpoint, through the official `openai` client.

The client speaks the protocol (request, SSE stream, error bodies); Tasklane keeps what
the client does not know: one total deadline per call, retries scheduled by Celery (the
client's own are off) and the mapping of outcomes onto retryable or final errors.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
from gevent import Timeout as GeventTimeout
from gevent import monkey

from app.services.generation.providers.base import ChatRequest
from app.services.generation.providers.base import Delta
from app.services.generation.providers.base import ProviderError
from app.services.generation.providers.base import ProviderRejected
from app.services.generation.providers.base import ProviderTimeout
from app.services.generation.providers.base import RetryableProviderError
from app.services.retrying import parse_retry_after
from app.settings import reveal
from app.settings.generation import ProviderSpec

MAX_ERROR_CHARS = 500


def _deadline(seconds: float) -> contextlib.AbstractContextManager[Any]:
    # Under gevent a Timeout interrupts a blocking read at the exact deadline; elsewhere
    # the client's connect/read timeouts plus the per-chunk check bound the call.
    if monkey.is_module_patched("socket"):
        timeout: contextlib.AbstractContextManager[Any] = GeventTimeout(
            seconds, ProviderTimeout(f"no complete answer by the deadline ({seconds:.1f}s left)")
        )
        return timeout
    return contextlib.nullcontext()


def _message(exc: openai.APIError) -> str:
    # The provider's own words (`{"error": {"message": ...}}`), not the client's summary.
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or body or exc.message)[:MAX_ERROR_CHARS]


class OpenAICompatible:
    """Streams chat completions; maps the client's errors onto retryable or final ones."""

    def __init__(self, name: str, spec: ProviderSpec, http_client: httpx2.Client) -> None:
        self.name = name
        self.spec = spec
        self._client = openai.OpenAI(
            base_url=spec.base_url,
            # A keyless endpoint (a local model server): the client insists on a key, and
            # the omitted header (see `_headers`) keeps the placeholder from being sent.
            api_key=reveal(spec.api_key) or "unused",
            # Celery retries with Tasklane's backoff; a retry inside the call would hide it.
            max_retries=0,
            timeout=httpx2.Timeout(spec.timeout, connect=spec.connect_timeout),
            http_client=http_client,
        )

        self._headers: dict[str, str | openai.Omit] | None = (
            None if spec.api_key else {"Authorization": openai.omit}
        )

    def stream(self, request: ChatRequest) -> Generator[Delta, None, None]:
        deadline = time.monotonic() + self.spec.timeout
        try:
            # The deadline guards only this generator's own reads, never the caller's work
            # between two chunks (an interrupted database write would spoil its connection).
            with _deadline(self._remaining(deadline)):
                # The client's low-level `post` (its documented way to any endpoint): its
                # transport, SSE decoder and error mapping, without validating the request
                # through its TypedDicts and building a pydantic model of every chunk,
                # which cost a streaming worker about a tenth of its CPU. Messages pass
                # as given: the endpoint, not the client, judges them; any parameter the
                # endpoint takes goes with them (the API refused those naming these keys).
                chunks = self._client.post(
                    "/chat/completions",
                    body={
                        **request.parameters,
                        "model": request.model,
                        "messages": request.messages,
                        "stream": True,
                        "stream_options": {"include_usage": True},
                    },
                    cast_to=object,
                    options={"headers": self._headers} if self._headers else {},
                    stream=True,
                    stream_cls=openai.Stream[object],
                )
            with chunks:
                yield from self._deltas(iter(chunks), deadline)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APITimeoutError as exc:
            raise ProviderTimeout(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise RetryableProviderError(f"{self.name}: {type(cause).__name__}: {cause}") from exc
        except openai.APIError as exc:
            raise RetryableProviderError(f"{self.name} failed mid-stream: {_message(exc)}") from exc
        except ValueError as exc:
            raise RetryableProviderError(f"{self.name} sent a malformed chunk: {exc}") from exc

    def _deltas(self, chunks: Iterator[Any], deadline: float) -> Iterator[Delta]:
        while True:
            with _deadline(self._remaining(deadline)):
                chunk = next(chunks, None)
            if chunk is None:
                return
            if not isinstance(chunk, dict):
                raise ValueError(f"a chunk that is not an object: {chunk!r:.100}")
            usage = chunk.get("usage") or {}
            choices = chunk.get("choices") or [{}]
            choice = choices[0] if isinstance(choices[0], dict) else {}
            delta = choice.get("delta") or {}
            yield Delta(
                text=delta.get("content") or "",
                finish_reason=choice.get("finish_reason"),
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
            )

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderTimeout(f"{self.name}: no complete answer within {self.spec.timeout}s")
        return remaining

    def _status_error(self, exc: openai.APIStatusError) -> ProviderError:
        status = exc.status_code
        message = f"{self.name} answered HTTP {status}: {_message(exc)}"
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(exc.response.headers.get("Retry-After"))
            return RetryableProviderError(message, retry_after=retry_after)
        return ProviderRejected(status, message)
