"""Sentry `before_send`: nothing secret and no document text leaves the process.

Keys that name a secret or document text are blanked wherever they appear in the event;
every string goes through the one redactor (app/observability/redaction.py), which cuts out
every configured secret value, nested ones included, and masks credentials by their shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from app.observability.redaction import FILTERED
from app.observability.redaction import Redactor
from app.observability.redaction import secret_values

__all__ = ["FILTERED", "Scrubber", "make_before_send", "secret_values"]


SECRET_KEY_PATTERN = re.compile(
    r"pass(word|wd)?|secret|token|auth|api[-_]?key|private[-_]?key|credential|cookie|"
    r"session|dsn|smtp_user",
    re.IGNORECASE,
)
# Names under which document text, prompts and generated text travel.
TEXT_KEYS = frozenset(
    {
        "text",
        "content",
        "contents",
        "document",
        "documents",
        "body",
        "html",
        "prompt",
        "prompts",
        "messages",
        "chunk",
        "chunks",
        "completion",
        "query",
    }
)
# A task's arguments as one printed string (Celery's log lines, kept as breadcrumbs): no key
# inside it can be seen, so the whole string goes. Structured arguments are walked instead.
ARGUMENT_KEYS = frozenset({"args", "kwargs", "argsrepr", "kwargsrepr"})
Event = dict[str, Any]


def _is_sensitive_key(key: str) -> bool:
    return key.lower() in TEXT_KEYS or bool(SECRET_KEY_PATTERN.search(key))


def _is_sensitive(key: Any, value: Any) -> bool:
    if not isinstance(key, str) or value in (None, ""):
        return False
    if isinstance(value, str) and key.lower() in ARGUMENT_KEYS:
        return value not in ("()", "{}", "[]")
    return _is_sensitive_key(key)


class Scrubber:
    def __init__(self, secrets: list[str]) -> None:
        # Strings go through the one redactor (app/observability/redaction.py).
        self.text = Redactor(secrets).text

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: FILTERED if _is_sensitive(k, v) else self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            # Headers travel as [name, value] pairs in some integrations.
            if len(value) == 2 and isinstance(value[0], str) and _is_sensitive_key(value[0]):
                return [value[0], FILTERED]
            return [self.value(item) for item in value]
        return value

    def event(self, event: Event) -> Event:
        scrubbed: Event = self.value(event)
        return scrubbed


def make_before_send(
    settings: BaseModel, *, drop: Callable[[Event, dict[str, Any]], bool]
) -> Callable[[Event, dict[str, Any]], Event | None]:
    """A `before_send`/`before_send_transaction` that drops what `drop` says and scrubs the rest."""
    scrubber = Scrubber(secret_values(settings))

    def before_send(event: Event, hint: dict[str, Any]) -> Event | None:
        if drop(event, hint):
            return None
        return scrubber.event(event)

    return before_send
