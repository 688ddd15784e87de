"""Query fields every list shares: the page size (bounded by API_PAGE_LIMIT), cursor, offset."""

from __future__ import annotations

from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from app.api.validation import matches
from app.services.pagination import CURSOR_PATTERN
from config import current_settings

DEFAULT_PAGE = 50
# The largest offset a PostgreSQL bigint (and SQLite's integer) can hold.
MAX_OFFSET = 2**63 - 1


def _page_limit() -> int:
    return int(current_settings().api.page_limit)


def _default_limit() -> int:
    return min(DEFAULT_PAGE, _page_limit())


def _check_limit(value: int) -> None:
    limit = _page_limit()
    if not 1 <= value <= limit:
        raise ValidationError(f"must be between 1 and {limit} (API_PAGE_LIMIT)")


def limit_field() -> fields.Integer:
    """`limit`: 1 to API_PAGE_LIMIT (the document states the maximum as configured)."""
    return fields.Integer(
        load_default=_default_limit,
        validate=_check_limit,
        metadata={"description": "page size, at most API_PAGE_LIMIT"},
    )


def cursor_field() -> fields.String:
    return fields.String(
        validate=matches(CURSOR_PATTERN, "not a cursor this API returned; start without it"),
        metadata={
            "description": "`next_cursor` of the previous page",
            "pattern": CURSOR_PATTERN,
        },
    )


def offset_field() -> fields.Integer:
    return fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))
