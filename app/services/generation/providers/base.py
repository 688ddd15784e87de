"""The provider contract: a chat request in, a stream of text deltas and usage out."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delta:
    """A piece of the answer; the last pieces may carry only a finish reason or usage."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ProviderError(Exception):
    """A provider call failed."""


class RetryableProviderError(ProviderError):
    """Worth trying again later: 429, 5xx, a connection error or a timeout."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderTimeout(RetryableProviderError):
    """The provider did not answer within the provider's deadline."""


class ProviderRejected(ProviderError):
    """The provider refused the request (4xx other than 429); trying again cannot help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Provider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> Generator[Delta, None, None]:
        """Yield the answer as it is produced; raise ProviderError subclasses on failure."""
        ...
