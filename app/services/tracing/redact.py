"""Make a job's inputs and outputs safe and small enough to leave Tasklane as a trace."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
MAX_ITEMS = 50
MAX_DEPTH = 6

# Keys whose values are secrets; `max_tokens` or `prompt_tokens` are counts, not secrets.
SECRET_KEY = re.compile(
    r"(^|[_-])(api[_-]?key|secret|password|passwd|authorization|cookie|credentials?|"
    r"(access|refresh|auth|bearer|id)?[_-]?token|private[_-]?key)$",
    re.IGNORECASE,
)
# Secret-looking values wherever they appear: bearer credentials and common key formats.
SECRET_VALUE = re.compile(
    r"(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(sk|pk|rk)-[A-Za-z0-9_-]{12,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\b(ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}"
    r"|://[^/\s:@]+:[^/\s@]+@"
)


def _redact_text(text: str) -> str:
    return SECRET_VALUE.sub(
        lambda m: "://" + REDACTED + "@" if m.group(0).startswith("://") else REDACTED, text
    )


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"…[{len(text) - limit} more chars]"


def clean(value: Any, *, max_chars: int, depth: int = 0) -> Any:
    """A copy of `value` with secrets replaced and strings, lists and nesting cut short."""
    if isinstance(value, str):
        return _truncate(_redact_text(value), max_chars)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, item in list(value.items())[:MAX_ITEMS]:
            key = str(key)
            if SECRET_KEY.search(key):
                cleaned[key] = REDACTED
            else:
                cleaned[key] = clean(item, max_chars=max_chars, depth=depth + 1)
        if len(value) > MAX_ITEMS:
            cleaned["…"] = f"{len(value) - MAX_ITEMS} more keys"
        return cleaned
    if isinstance(value, list | tuple):
        items = [clean(item, max_chars=max_chars, depth=depth + 1) for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"…{len(value) - MAX_ITEMS} more items")
        return items
    return _truncate(_redact_text(repr(value)), max_chars)
