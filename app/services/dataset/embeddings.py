"""Client for an OpenAI-compatible `/embeddings` endpoint: batched, retried with backoff."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import retry
from tenacity import retry_if_exception
from tenacity import stop_after_attempt
from tenacity import wait_exponential

from app.services.dataset.errors import DocumentFailed
from app.settings import reveal
from config import current_settings


class EmbeddingUnavailable(DocumentFailed):
    """The provider could not produce vectors after every retry."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False


_clients: dict[tuple[int, float], httpx.Client] = {}
_clients_lock = threading.Lock()


def _http_client(timeout: float) -> httpx.Client:
    """One pooled client per process and timeout, reused by every call.

    Building an httpx.Client (its TLS context) costs tens of milliseconds, more than a
    whole retrieval; the pid in the key keeps a forked worker off its parent's sockets.
    """
    key = (os.getpid(), timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = httpx.Client(timeout=timeout)
        return client


@dataclass(frozen=True)
class EmbeddingClient:
    base_url: str
    model: str
    api_key: str | None = None
    batch_size: int = 64
    timeout: float = 30.0
    max_attempts: int = 5
    backoff_max: float = 20.0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""
        vectors: list[list[float]] = []
        client = _http_client(self.timeout)
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._batch(client, list(texts[start : start + self.batch_size])))
        return vectors

    def _batch(self, client: httpx.Client, texts: list[str]) -> list[list[float]]:
        call = retry(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential(multiplier=0.2, max=self.backoff_max),
            reraise=True,
        )(self._post)
        try:
            data = call(client, texts)
        except httpx.HTTPError as exc:
            raise EmbeddingUnavailable(
                f"the embedding provider at {self.base_url} failed ({exc}); check "
                "EMBEDDING_BASE_URL/EMBEDDING_API_KEY and reindex the document"
            ) from exc
        items = sorted(data["data"], key=lambda item: item["index"])
        if len(items) != len(texts):
            raise EmbeddingUnavailable(
                f"the embedding provider returned {len(items)} vectors for {len(texts)} texts"
            )
        return [normalise(item["embedding"]) for item in items]

    def _post(self, client: httpx.Client, texts: list[str]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = client.post(
            self.base_url.rstrip("/") + "/embeddings",
            json={"model": self.model, "input": texts},
            headers=headers,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def configured_client() -> EmbeddingClient | None:
    """The client for the configured provider, or None when none is configured."""
    dataset = current_settings().dataset
    if not dataset.embedding_base_url:
        return None
    return EmbeddingClient(
        base_url=dataset.embedding_base_url,
        model=dataset.embedding_model,
        api_key=reveal(dataset.embedding_api_key),
        batch_size=dataset.embedding_batch_size,
        timeout=dataset.embedding_timeout,
        max_attempts=dataset.embedding_max_attempts,
    )
