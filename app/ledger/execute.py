"""Running ledger statements: one round trip each, on the ledger's own engine.

No ORM session and no pre-ping: every job pays for its transitions, so each is a single
statement on a pooled connection (PostgreSQL: autocommitted, its hot statements plain SQL on
the driver). A connection the server dropped (a restart) fails its first statement and is
invalidated; the statement then runs once more on a fresh connection.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from typing import TypeVar

from flask import current_app
from sqlalchemy import Executable
from sqlalchemy import Row
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")


def ledger_engine() -> Engine:
    engine: Engine = current_app.extensions["ledger_engine"]
    return engine


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def run_sql(engine: Engine, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Plain SQL on the driver's connection; its first row, if it returns rows.

    Every error, including the driver's own and a failed connect, leaves as SQLAlchemy's
    DBAPIError, so callers catch one family (a psycopg error escaping here once made the
    worker run jobs it could not record).
    """
    for last_try in (False, True):
        conn = None
        try:
            conn = engine.raw_connection()
            cursor = conn.cursor()
            cursor.execute(sql, params)
            row: tuple[Any, ...] | None = cursor.fetchone() if cursor.description else None
            cursor.close()
            return row
        except engine.dialect.loaded_dbapi.Error as exc:
            dropped = conn is not None and engine.dialect.is_disconnect(
                exc, conn.dbapi_connection, None
            )
            if dropped and conn is not None:
                conn.invalidate(exc)
            if dropped and not last_try:
                continue
            raise DBAPIError.instance(
                sql,
                params,
                exc,
                engine.dialect.loaded_dbapi.Error,
                connection_invalidated=dropped,
                dialect=engine.dialect,
            ) from exc
        finally:
            if conn is not None:
                conn.close()
    raise AssertionError("unreachable")


def once_more_if_dropped(call: Callable[[], T], *, reset: Callable[[], None] | None = None) -> T:
    """`call()`, and once more when it failed on a pooled connection the server had dropped
    (a restart: SQLAlchemy invalidated the pool, the second call gets a fresh connection).
    `reset` runs in between (a session must roll back first). Any other error is raised."""
    try:
        return call()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    if reset is not None:
        reset()
    return call()


def run(engine: Engine, statement: Executable, params: dict[str, Any]) -> Row[Any] | None:
    """One statement in its own transaction; its first row, if it returns rows."""

    def once() -> Row[Any] | None:
        with engine.begin() as conn:
            result = conn.execute(statement, params)
            return result.first() if result.returns_rows else None

    return once_more_if_dropped(once)


def run_all(engine: Engine, statement: Executable, params: dict[str, Any]) -> list[Row[Any]]:
    """`run`, returning every row."""

    def once() -> list[Row[Any]]:
        with engine.begin() as conn:
            return list(conn.execute(statement, params))

    return once_more_if_dropped(once)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A real multi-statement transaction, also on PostgreSQL's autocommitting ledger engine."""
    with engine.connect() as conn:
        if is_postgres(engine):
            conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            yield conn
