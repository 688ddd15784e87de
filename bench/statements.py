"""Counts every PostgreSQL round trip of the worker process it is imported into (bench only).

`bench/generation.py` starts the Tasklane worker with TASKLANE_EXTRA_TASK_MODULES naming
this module and TASKLANE_BENCH_STATEMENTS naming a file. It counts at the driver, below
SQLAlchemy, so the ORM, Core and the ledger's plain SQL are all seen: each cursor execute,
the BEGIN psycopg sends before the first statement of a transaction, and each COMMIT and
ROLLBACK that reaches the server. On SIGUSR2 and at worker shutdown the counts so far, by
kind and table, go to the file as JSON. Nothing of this runs unless the worker is started so.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter
from typing import Any

import psycopg
from celery.signals import worker_shutdown
from psycopg import pq

OUTPUT = os.environ.get("TASKLANE_BENCH_STATEMENTS", "")
counts: Counter[str] = Counter()
_TABLE = re.compile(r"\b(?:FROM|UPDATE|INTO)\s+\"?(\w+)", re.IGNORECASE)


def _kind(query: Any) -> str:
    text = query.as_string(None) if hasattr(query, "as_string") else str(query)
    words = text.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    table = _TABLE.search(text)
    return f"{verb} {table.group(1)}" if table else verb


def _begins(conn: psycopg.Connection[Any]) -> None:
    if not conn.autocommit and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        counts["BEGIN"] += 1


def _install() -> None:
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
    commit, rollback = psycopg.Connection.commit, psycopg.Connection.rollback

    def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        _begins(self.connection)
        counts[_kind(query)] += 1
        return execute(self, query, *args, **kwargs)

    def counted_executemany(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        _begins(self.connection)
        counts[_kind(query)] += 1
        return executemany(self, query, *args, **kwargs)

    def counted_commit(self: Any) -> None:
        if self.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            counts["COMMIT"] += 1
        commit(self)

    def counted_rollback(self: Any) -> None:
        if self.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            counts["ROLLBACK"] += 1
        rollback(self)

    psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = counted_executemany  # type: ignore[method-assign]
    psycopg.Connection.commit = counted_commit  # type: ignore[method-assign]
    psycopg.Connection.rollback = counted_rollback  # type: ignore[method-assign]


def _dump(*_args: Any, **_kwargs: Any) -> None:
    # Written whole, then renamed: the benchmark never reads half a file.
    with open(OUTPUT + ".tmp", "w") as out:
        json.dump(dict(counts), out)
    os.replace(OUTPUT + ".tmp", OUTPUT)


if OUTPUT:
    _install()
    # SIGUSR2 (unused by Celery unless CELERY_RDBSIG is set): the counts so far, so the
    # benchmark can subtract its warm-up; and the totals at shutdown.
    signal.signal(signal.SIGUSR2, _dump)
    worker_shutdown.connect(_dump, weak=False)
