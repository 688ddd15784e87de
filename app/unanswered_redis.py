"""A Redis connection Redis sends no replies on (`CLIENT REPLY OFF`): commands whose answer
nobody waits for, each batch of them one socket write.

Used where the database is the truth and a lost command costs only a later repair: the
ledger's notifications (app/ledger/notify.py) and the broker's records of reserved and
acknowledged messages (app/broker_redis.py). A command Redis refuses is not reported, and
what was in the socket when the connection broke may be lost; a write that fails raises,
and the caller falls back to its answered path.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

# Errors of a broken connection (redis-py's own and the socket's).
SEND_ERRORS = (redis.RedisError, OSError)


class Unanswered:
    """One reply-less connection, opened on first use from a pool's settings (never at
    import, and afresh after a fork: a parent's socket must not carry two processes'
    commands). Greenlets and threads share it: a lock keeps each write whole; a forked
    child takes a new lock too, as the parent's may be held by a thread it did not inherit."""

    def __init__(self) -> None:
        # A gevent lock under gevent: `celery -P gevent` patches before it imports the app.
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # redis.Connection; Any, as redis-py leaves its connection methods untyped.
        self._conn: Any = None
        self._pool: redis.ConnectionPool | None = None

    def send(self, pool: redis.ConnectionPool, commands: list[tuple[Any, ...]]) -> None:
        """Write `commands` on the connection made from `pool`'s settings. Raises one of
        SEND_ERRORS when the connection could not be opened or the write failed (it is
        closed then, and the next send opens another)."""
        if self._pid != os.getpid():
            # The parent's socket and lock: forget them without closing the parent's socket.
            self._lock, self._conn, self._pid = threading.Lock(), None, os.getpid()
        with self._lock:
            try:
                conn = self._connection(pool)
                conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            except SEND_ERRORS:
                self._close()
                raise

    def close(self) -> None:
        with self._lock:
            self._close()

    def _connection(self, pool: redis.ConnectionPool) -> Any:
        if self._conn is None or self._pool is not pool:
            self._close()
            conn = pool.connection_class(**pool.connection_kwargs)
            conn.connect()  # the handshake (AUTH, SELECT) still reads its replies
            conn.send_command("CLIENT", "REPLY", "OFF", check_health=False)
            self._conn, self._pool = conn, pool
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
        self._conn = None
