"""gunicorn config file for bench/results.py: readiness marker and the API's own counters.

Changes no setting. In each worker, once the app is loaded, it counts the SQL statements
every engine of the app sends (SQLAlchemy's `before_cursor_execute`) and the pool
checkouts (a transaction each), and writes them with the notification listener's figures
to BENCH_STATS_DIR/<pid>.json every STATS_INTERVAL, so the benchmark reads what the API
process itself did (not the worker's statements, not another helper's).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

STATS_INTERVAL = 0.25


def post_worker_init(worker: Any) -> None:
    directory = os.environ.get("BENCH_STATS_DIR")
    if not directory:
        return
    app = worker.wsgi
    counts = {"statements": 0, "checkouts": 0}

    def statement(*_args: Any) -> None:
        counts["statements"] += 1

    def checkout(*_args: Any) -> None:
        counts["checkouts"] += 1

    with app.app_context():
        from app.extensions.ext_database import db

        engines = {db.engine, app.extensions["ledger_engine"]}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", statement)
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
