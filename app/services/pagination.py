"""Keyset pagination, newest first, for any table with `created_at` and a string `id`.

A cursor is the (created_at, id) of the last row of a page, so a page never skips or
repeats a row while new rows arrive. It is written `<microseconds since 1970>.<id>`, a shape
the OpenAPI document states as a pattern: every string that matches it decodes, so a
cursor the schema allows is never refused.
"""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta
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


# 16 digits of microseconds reach the year 2286, well inside what datetime can hold.
CURSOR_PATTERN = "^[0-9]{1,16}\\.[0-9A-Za-z-]{1,64}$"
_CURSOR = re.compile(CURSOR_PATTERN.removeprefix("^").removesuffix("$"))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode(row: Keyed) -> str:
    micros = (row.created_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{row.id}"


def _decode(cursor: str) -> tuple[datetime, str]:
    if _CURSOR.fullmatch(cursor) is None:
        raise InvalidCursor("cursor is not one this API returned; start without it")
    micros, row_id = cursor.split(".", 1)
    return EPOCH + timedelta(microseconds=int(micros)), row_id


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
