"""Sentry `before_send`: nothing secret and no document text leaves the process.

Three nets, because a secret can hide under any name: keys that name a secret or document
text are blanked wherever they appear in the event; every configured secret value (any
setting named like a password, key, token or DSN) is cut out of every string; and bearer
tokens and Tasklane API keys are masked by their shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

FILTERED = "[Filtered]"

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
SECRET_SETTING = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|API_KEY|DSN", re.IGNORECASE)
SHAPES = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + FILTERED),
    (re.compile(r"\btl_[A-Za-z0-9_-]{8,}"), FILTERED),
)
# Values shorter than this are not cut out of strings: they would shred ordinary words.
MIN_SECRET_CHARS = 6

Event = dict[str, Any]


def secret_values(settings: BaseModel) -> list[str]:
    """Configured values of settings whose names say they are secret, longest first."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if (
            SECRET_SETTING.search(name)
            and isinstance(value, str)
            and len(value) >= MIN_SECRET_CHARS
        ):
            values.append(value)
    return sorted(set(values), key=len, reverse=True)


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
        self.secrets = secrets

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, FILTERED)
        for pattern, replacement in SHAPES:
            value = pattern.sub(replacement, value)
        return value

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
