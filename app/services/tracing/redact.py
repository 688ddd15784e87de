"""Make a job's inputs and outputs safe and small enough to leave Tasklane as a trace."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from app.observability.redaction import redact

REDACTED = "[REDACTED]"
MAX_ITEMS = 50
MAX_DEPTH = 6

# Keys whose values are secrets; `max_tokens` or `prompt_tokens` are counts, not secrets.
SECRET_KEY = re.compile(
    r"(^|[_-])(api[_-]?key|secret|password|passwd|authorization|cookie|credentials?|"
    r"(access|refresh|auth|bearer|id)?[_-]?token|private[_-]?key)$",
    re.IGNORECASE,
)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"…[{len(text) - limit} more chars]"


def clean(value: Any, *, max_chars: int, depth: int = 0) -> Any:
    """A copy of `value` with secrets replaced and strings, lists and nesting cut short."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH:
        return "[nested too deep]"
    deeper = partial(clean, max_chars=max_chars, depth=depth + 1)
    if isinstance(value, dict):
        pairs = list(value.items())[:MAX_ITEMS]
        cleaned = {str(k): REDACTED if SECRET_KEY.search(str(k)) else deeper(v) for k, v in pairs}
        if len(value) > MAX_ITEMS:
            cleaned["…"] = f"{len(value) - MAX_ITEMS} more keys"
        return cleaned
    if isinstance(value, list | tuple):
        items = [deeper(item) for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"…{len(value) - MAX_ITEMS} more items")
        return items
    # The one call of the text redactor.
    return _truncate(redact(value if isinstance(value, str) else repr(value)), max_chars)
