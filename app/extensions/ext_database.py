"""SQLAlchemy 2.0 through Flask-SQLAlchemy; engine options come from settings, never defaults."""

from __future__ import annotations

import os
import sqlite3
import weakref
from functools import cache
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine

from app.models.base import Base
from app.settings import reveal
from config import Settings
from config import settings_of

# Session.info key: this session only reads (an API GET), see ReadAwareSession.
READS_ONLY = "tasklane.reads_only"


class ReadAwareSession(FlaskSession):
    """Flask-SQLAlchemy's session; one marked `reads_only()` runs autocommitted.

    Under READ COMMITTED every statement takes its own snapshot, inside a transaction or not,
    so a request that only reads gains nothing from one; it paid for it with two round trips
    (psycopg sends BEGIN before the first statement and the pool a ROLLBACK at the end), as
    many as the reads themselves of a GET /jobs/{id}.
    """

    def get_bind(
        self,
        mapper: Any | None = None,
        clause: Any | None = None,
        bind: Engine | Connection | None = None,
        **kwargs: Any,
    ) -> Engine | Connection:
        found = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        if self.info.get(READS_ONLY) and isinstance(found, Engine):
            return _autocommitting(found)
        return found


_AUTOCOMMITTING: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def _autocommitting(engine: Engine) -> Engine:
    """`engine` with DBAPI autocommit: the same pool; the level is reset when a connection
    goes back to it."""
    found = _AUTOCOMMITTING.get(engine)
    if found is None:
        found = _AUTOCOMMITTING[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found


def reads_only() -> None:
    """Mark this app context's session as one that only reads (before its first statement).

    A write through it would commit at once, statement by statement: call this only where
    nothing writes (the API's GET, HEAD and OPTIONS requests).
    """
    db.session.info[READS_ONLY] = True


db = SQLAlchemy(model_class=Base, session_options={"class_": ReadAwareSession})
# At most this much of an SQLite file is read through a memory map (see _sqlite_pragmas).
SQLITE_MMAP_BYTES = 1 << 30


def database_url(app: Flask, settings: Settings) -> str:
    """The configured URL, or the embedded SQLite file in the instance folder."""
    url = reveal(settings.database.url)
    if url:
        # Plain postgresql:// would pick psycopg2, which is not installed; psycopg 3 is.
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, "tasklane.db")


@cache
def sqlite_module() -> Any:
    """A DB-API sqlite3 that can load extensions (migrations g1 and j1 make and drop
    sqlite-vec tables of older databases).

    The standard library's when Python was built with extension loading, else the
    pysqlite3-binary wheel (some Python builds, pyenv's default among them, lack it).
    """
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import pysqlite3.dbapi2 as module  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError as exc:  # pragma: no cover - depends on the platform
        raise RuntimeError(
            "this Python's sqlite3 cannot load extensions and pysqlite3-binary is not "
            "installed; run `uv sync` or use PostgreSQL (DATABASE_URL)"
        ) from exc
    return module


def engine_options(url: str, settings: Settings) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # SQLite is shared by the API and several worker processes: wait on locks, don't fail.
        return {"connect_args": {"timeout": 30}, "module": sqlite_module()}
    return {
        "pool_size": settings.database.pool_size,
        "max_overflow": settings.database.max_overflow,
        "pool_recycle": settings.database.pool_recycle,
        "pool_pre_ping": True,
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) proceed while a worker writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Pages read through a memory map, not copied into each connection's small page cache:
    # a keyword query reads the FTS5 index and its matches' rows, a vector matrix load
    # every vector of its dataset (250 MB at 250k segments). Address space only: the OS
    # shares and evicts the pages.
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


def ledger_engine_options(url: str, settings: Settings) -> dict[str, Any]:
    """The ledger's own engine: on PostgreSQL every transition is one autocommitted statement.

    No pre-ping: it would double the round trips of a write that is a single statement.
    A connection the server dropped is instead detected by the failing statement, which
    invalidates the pool, and the ledger runs the statement once more on a fresh one.
    No overflow, and a pool of its own size (LEDGER_POOL_SIZE): a transition holds its
    connection for one round trip, so a few serve a whole gevent worker without crowding
    the server.
    """
    options = engine_options(url, settings)
    if "pool_pre_ping" not in options:
        # SQLite: transitions that write a job and its attempt are one transaction of two.
        return options
    options.update(
        pool_pre_ping=False, pool_size=settings.database.ledger_pool_size, max_overflow=0
    )
    return {**options, "isolation_level": "AUTOCOMMIT"}


def init_app(app: Flask) -> None:
    settings: Settings = settings_of(app)
    url = database_url(app, settings)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(url, settings)
    db.init_app(app)
    # Connects on first use only, like db.engine.
    ledger_engine = create_engine(url, **ledger_engine_options(url, settings))
    app.extensions["ledger_engine"] = ledger_engine
    if url.startswith("sqlite"):
        event.listen(ledger_engine, "connect", _sqlite_pragmas)
        event.listen(engine_of(app), "connect", _sqlite_pragmas)


def engine_of(app: Flask) -> Engine:
    """The app's (Flask-SQLAlchemy) engine, for code that holds the app but no app context."""
    with app.app_context():
        return db.engine


def dispose_engine_after_fork(engine: Engine) -> None:
    """Drop connections inherited from a parent process without closing the parent's sockets."""
    engine.dispose(close=False)
