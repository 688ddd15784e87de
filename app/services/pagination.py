"""Keyset pagination, newest first, for any table with `created_at` and a string `id`.

A cursor is the (created_at, id) of the last row of a page, so a page never skips or
repeats a row while new rows arrive.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from typing import Protocol

from sqlalchemy import Select
from sqlalchemy import and_
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from app.extensions.ext_database import db
from app.services.errors import JobError


class InvalidCursor(JobError):
    status = 400
    title = "Invalid cursor"


class Keyed(Protocol):
    created_at: datetime
    id: str


def newest_first(model: Any) -> Select[Any]:
    return select(model).order_by(model.created_at.desc(), model.id.desc())


def encode(row: Keyed) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        return datetime.fromisoformat(created), row_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this API returned; start without it") from None


def page(
    query: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    id_: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """One page of a newest-first query and the cursor of the next (None at the end)."""
    if cursor:
        when, row_id = _decode(cursor)
        query = query.where(or_(created_at < when, and_(created_at == when, id_ < row_id)))
    rows = list(db.session.scalars(query.limit(limit + 1)))
    next_cursor = encode(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor
