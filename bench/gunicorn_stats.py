"""gunicorn config file for bench/results.py: readiness marker and the API's own counters.

Changes no setting. In each worker, once the app is loaded, it counts what the process
sends PostgreSQL: every statement (psycopg `Cursor.execute`/`executemany`: the ORM's, the
ledger's plain SQL, the pool's pre-ping `SELECT 1`), every COMMIT/ROLLBACK, every pool
checkout; and writes them with the notification listener's figures to
BENCH_STATS_DIR/<pid>.json every STATS_INTERVAL, so the benchmark reads what the API process
itself did (not the worker's statements, nor another process's).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

STATS_INTERVAL = 0.25


def _counting(counts: dict[str, int], name: str, method: Callable[..., Any]) -> Any:
    @functools.wraps(method)
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[name] += 1
        return method(*args, **kwargs)

    return counted


def post_worker_init(worker: Any) -> None:
    directory = os.environ.get("BENCH_STATS_DIR")
    if not directory:
        return
    app = worker.wsgi
    counts = {"statements": 0, "ends": 0, "checkouts": 0}
    for cls, names, key in (
        (psycopg.Cursor, ("execute", "executemany"), "statements"),
        (psycopg.Connection, ("commit", "rollback"), "ends"),
    ):
        for name in names:
            setattr(cls, name, _counting(counts, key, getattr(cls, name)))

    def checkout(*_args: Any) -> None:
        counts["checkouts"] += 1

    with app.app_context():
        from app.extensions.ext_database import db

        engines = {db.engine, app.extensions["ledger_engine"]}
    for engine in engines:
        event.listen(engine.pool, "checkout", checkout)
    hub = app.extensions["notify_hub"]
    path = Path(directory, f"{os.getpid()}.json")

    def write() -> None:
        while True:
            figures = {
                **counts,
                "followers": hub.followers(),
                "received": hub.received,
                "live": hub.live,
                "at": time.time(),
            }
            path.with_suffix(".tmp").write_text(json.dumps(figures))
            path.with_suffix(".tmp").replace(path)
            time.sleep(STATS_INTERVAL)

    # gevent's patched threading: a greenlet beside the requests.
    threading.Thread(target=write, name="bench-stats", daemon=True).start()
