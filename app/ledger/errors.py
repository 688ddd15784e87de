"""Errors that mean "the database did not answer", whoever raised them."""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import SQLAlchemyError

# SQLAlchemy's own, and the drivers' (plain SQL on the driver raises those directly).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, psycopg.Error, sqlite3.Error)


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database is away (down, restarting, out of connections,
    locked), as opposed to a bug in a statement."""
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        psycopg.OperationalError | psycopg.InterfaceError | sqlite3.OperationalError,
    )
