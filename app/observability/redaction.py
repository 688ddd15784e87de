"""The one redactor: what Tasklane writes anywhere (Sentry, logs, a job's stored error, a
trace) goes through `redact` first, so a secret that an exception quotes stays in the process.

Two nets. Every configured secret value is cut out of the text: every `SecretStr` in the
settings tree, at any depth (`core.secret_key`, `mail.smtp_password`,
`dataset.embedding_api_key`, each `generation.providers[name].api_key`, the database and
broker URLs, ...), so declaring a new setting `SecretStr` is all it takes to cover it, and
the password inside every URL setting, secret or not. And credentials are masked by their
shape wherever they come from: bearer and basic credentials, passwords in URLs and in
`password=...` pairs, `sk-`/`pk-`/`rk-` keys, Tasklane `tl_` keys, AWS access key ids,
Google API keys and OAuth tokens, GitHub and Slack tokens, JWTs, PEM private keys.

`configure(settings)` (called by the logging extension when the app is built, in every
process) gives it the settings; before that, or without settings, only shapes are masked.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

from pydantic import BaseModel
from pydantic import SecretStr

FILTERED = "[Filtered]"
# Values shorter than this are not cut out of text as values (they would shred ordinary
# words); in a URL or a `password=` pair the shapes below still mask them.
MIN_SECRET_CHARS = 6
SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        FILTERED,
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + FILTERED),
    # user:password@ in any URL (the user is kept: it helps and is not secret).
    (re.compile(r"(://[^/\s:@]*):[^/\s@]+@"), r"\1:" + FILTERED + "@"),
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|api[_-]?key|access[_-]?token)"
            r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
        ),
        r"\1\2" + FILTERED,
    ),
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{12,}"), FILTERED),
    (re.compile(r"\btl_[A-Za-z0-9_-]{8,}"), FILTERED),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), FILTERED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), FILTERED),
    (re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"), FILTERED),
    (re.compile(r"\b(ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"), FILTERED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), FILTERED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), FILTERED),
)
# What every shape above must contain: text without any of these has no credential shape,
# so one scan replaces the twelve (each log line is redacted; most have none).
MAYBE_SHAPED = re.compile(
    r"-----BEGIN|(?i:bearer|basic|password|passwd|pwd|secret|api[_-]?key|access[_-]?token)"
    r"|://|\b(?:sk|pk|rk)-|\btl_|AKIA|ASIA|AIza|ya29\.|\b(?:gh[opsu]|github_pat)_|xox[abprs]-|eyJ"
)
# The same test as plain substrings of the lower-cased text, for ASCII text (nearly every
# line): a superset of MAYBE_SHAPED's matches (each marker is a match's fixed part, cased
# ones lowered, word boundaries dropped), at a fraction of its cost. The regex scan took
# ~14 us per log line (bench/throughput.py's drain logs two lines a job); case-insensitive
# matching of other text (a Kelvin sign matches "k") is left to the regex itself.
_MARKERS = (
    "-----begin", "bearer", "basic", "password", "passwd", "pwd", "secret", "api_key",
    "api-key", "apikey", "access_token", "access-token", "accesstoken", "://", "sk-", "pk-",
    "rk-", "tl_", "akia", "asia", "aiza", "ya29.", "ghp_", "gho_", "ghs_", "ghu_",
    "github_pat_", "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "eyj",
)  # fmt: skip


def maybe_shaped(text: str) -> bool:
    """Whether `text` may hold a credential shape (False: none of SHAPES can match)."""
    if not text.isascii():
        return MAYBE_SHAPED.search(text) is not None
    lower = text.lower()
    return any(marker in lower for marker in _MARKERS)


def _walk(value: Any) -> Iterator[str]:
    """Secret values in a settings value: SecretStrs and URL passwords, at any depth."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if secret:
            yield secret
            yield from _url_password(secret)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, str):
        yield from _url_password(value)


def _url_password(value: str) -> Iterator[str]:
    if "://" in value:
        password = urlsplit(value).password
        if password:
            yield password
            yield unquote(password)


def secret_values(settings: BaseModel) -> list[str]:
    """Configured secret values, longest first (so a longer one is cut before its part)."""
    found = set(_walk(settings))
    return sorted((v for v in found if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


class Redactor:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, FILTERED)
        if maybe_shaped(value):
            for pattern, replacement in SHAPES:
                value = pattern.sub(replacement, value)
        return value

    def holds_none(self, text: str) -> bool:
        """Whether `text` holds no configured secret and no credential shape."""
        return not maybe_shaped(text) and not any(s in text for s in self.secrets)


_lock = threading.Lock()
_current = Redactor([])


def configure(settings: BaseModel) -> Redactor:
    """Use these settings' secrets from now on, in this process."""
    global _current
    with _lock:
        _current = Redactor(secret_values(settings))
    return _current


def current() -> Redactor:
    return _current


def redact(text: str) -> str:
    """`text` with every configured secret and every credential-shaped string masked."""
    return _current.text(text)


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value with every string in it (keys too) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, BaseException):
        return redact(repr(value))
    return value


def _strings(value: Any) -> list[str] | None:
    """Every string in a JSON-like value (keys too); None when it holds anything else that
    `redact_value` would rewrite (an exception becomes its redacted repr)."""
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(k for k in item if isinstance(k, str))
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, BaseException):
            return None
    return found


def _extras_clean(values: list[Any]) -> bool:
    """Whether none of these values needs redacting, judged on all their strings at once.

    One scan of the joined text instead of one per string: Celery's task log lines carry a
    dict of a dozen strings (a `Task ... succeeded` record, redacted: 12.9 us, against 27.7
    us walking every string). A secret or shape inside any string is inside the joined
    text, so nothing is missed; a match across a join only costs the full walk.
    """
    strings = _strings(values)
    return strings is not None and _current.holds_none("\n".join(strings))


class RedactingFilter(logging.Filter):
    """A handler filter: the message and any traceback leave redacted, in every format.

    The traceback is formatted here, redacted, and kept as `exc_text` (which both the text
    and the JSON formatter print) with `exc_info` cleared, so no formatter formats it again
    from the live exception."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        # Extra fields (Celery's `data` with the exception and traceback) are printed by the
        # JSON formatter: redacted too.
        extras = {
            name: value
            for name, value in vars(record).items()
            if name not in _STANDARD and isinstance(value, str | dict | list | tuple)
        }
        if extras and not _extras_clean(list(extras.values())):
            for name, value in extras.items():
                setattr(record, name, redact_value(value))
        return True


_TRACEBACKS = logging.Formatter()
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
