"""Redis and a database for the test session: the real servers when they answer, else embedded.

Each session gets its own isolated space and leaves nothing behind: a Redis database index
claimed and flushed for the run (or a private embedded redis-server), and a fresh PostgreSQL
database (or a temporary SQLite file).

    REDIS_URL / DATABASE_URL    use these servers as given
    TASKLANE_TEST_PG_ADMIN      the PostgreSQL server (any database on it) in which each run
                                creates its fresh database (default: 127.0.0.1:5432/test)
    TASKLANE_TEST_EMBEDDED=1    ignore local servers; embedded Redis and SQLite only
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import sqlalchemy as sa

from app import embedded_redis
from tests.support.processes import free_port as free_port  # re-exported for callers

LOCAL_REDIS = "redis://127.0.0.1:6379"
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# Claims live in database 0, never in the claimed database itself: flushing the claimed index
# then cannot delete its own claim and open a window for a second run to take it.
CLAIM_KEY = "tasklane:test-claim:{index}"


def embedded_only() -> bool:
    return os.environ.get("TASKLANE_TEST_EMBEDDED", "") not in ("", "0")


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if not embedded_only() and answers("127.0.0.1", 6379):
        with _claimed_local_db() as url:
            yield url
        return
    with embedded_redis_server(tmp) as url:
        yield url


@contextmanager
def _claimed_local_db() -> Iterator[str]:
    token = uuid.uuid4().hex
    claims = redis.Redis.from_url(f"{LOCAL_REDIS}/0")
    try:
        for index in range(1, 16):
            key = CLAIM_KEY.format(index=index)
            # SET NX is the atomic claim; it expires, so a crashed session frees its index.
            if not claims.set(key, token, nx=True, ex=3600):
                continue
            client = redis.Redis.from_url(f"{LOCAL_REDIS}/{index}")
            client.flushdb()
            try:
                yield f"{LOCAL_REDIS}/{index}"
            finally:
                client.flushdb()
                client.close()
                # Release only our own claim (it may have expired and been taken since).
                if claims.get(key) == token.encode():
                    claims.delete(key)
            return
    finally:
        claims.close()
    raise RuntimeError(
        "every Redis database index 1-15 is claimed by another test session; wait for them "
        "to finish, or set REDIS_URL to another server"
    )


@contextmanager
def embedded_redis_server(tmp: Path) -> Iterator[str]:
    """A private, diskless redis-server on a free port for this run; stopped when it ends."""
    server = embedded_redis.launch(tmp, port=free_port())
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def database(tmp: Path) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    admin = os.environ.get("TASKLANE_TEST_PG_ADMIN")
    if admin or (not embedded_only() and answers("127.0.0.1", 5432)):
        with _fresh_postgres_database(admin or LOCAL_POSTGRES) as url:
            yield url
        return
    tmp.mkdir(parents=True, exist_ok=True)
    yield f"sqlite:///{tmp / 'tasklane-test.db'}"


@contextmanager
def _fresh_postgres_database(admin_url: str) -> Iterator[str]:
    name = f"tasklane_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
