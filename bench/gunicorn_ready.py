"""gunicorn config file for bench/throughput.py: a readiness marker, no setting changed.

gunicorn loads the app in each worker after forking (no --preload), and a worker accepts
connections only once it has. The benchmark waits for one marker per worker, so no worker
is still importing the app (CPU on a 2-core machine) while requests are being timed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def post_worker_init(worker: Any) -> None:
    if os.environ.get("BENCH_STATS_DIR"):
        _instrument(worker.wsgi)
    directory = os.environ.get("BENCH_READY_DIR")
    if directory:
        Path(directory, str(os.getpid())).touch()


# --- Statement counter (BENCH_STATS_DIR set): what each request sends to PostgreSQL ---
# Counted in the server itself with SQLAlchemy events (pg_stat_statements would need a
# server restart with shared_preload_libraries). In a request: every cursor execute, the
# pre-ping of a checkout from a pinging pool, and BEGIN / COMMIT / ROLLBACK on connections
# that are not autocommitted (psycopg sends BEGIN itself). Outside requests (the outbox
# relay, the confirmation flusher, which use the driver directly): one round trip per pool
# checkout, an approximation.

_counts: dict[str, int] = {"requests": 0, "request_statements": 0, "background_statements": 0}


def _in_request() -> bool:
    """In a submit (any POST); health checks and the like are not counted."""
    from flask import has_request_context
    from flask import request

    return has_request_context() and request.method == "POST"


def _instrument(app: Any) -> None:
    from flask import request_finished
    from sqlalchemy import event

    engines = list(app.extensions.get("bench_engines") or [])
    if not engines:
        from app.extensions.ext_database import db

        with app.app_context():
            engines = [db.engine, app.extensions["ledger_engine"]]

    def statement(*_args: Any) -> None:
        if _in_request():
            _counts["request_statements"] += 1

    for engine in engines:
        pings = bool(getattr(engine.pool, "_pre_ping", False))
        autocommit = getattr(engine.dialect, "_on_connect_isolation_level", None) == "AUTOCOMMIT"

        def checkout(*_args: Any, pings: bool = pings) -> None:
            if _in_request():
                _counts["request_statements"] += int(pings)
            else:
                _counts["background_statements"] += 1

        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine.pool, "checkout", checkout)
        if engine.dialect.name == "postgresql" and not autocommit:
            for name in ("begin", "commit", "rollback"):
                event.listen(engine, name, statement)

    def finished(_sender: Any, **_kw: Any) -> None:
        if _in_request():
            _counts["requests"] += 1

    request_finished.connect(finished, app, weak=False)


def worker_exit(_server: Any, _worker: Any) -> None:
    directory = os.environ.get("BENCH_STATS_DIR")
    if directory:
        Path(directory, f"{os.getpid()}.json").write_text(json.dumps(_counts))
