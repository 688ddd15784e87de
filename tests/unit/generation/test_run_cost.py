"""What one generation run costs the database: its row read once and written once."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from celery.backends.base import DisabledBackend
from flask import Flask
from sqlalchemy import event

from app.extensions.ext_database import db
from app.ledger import execute
from app.models.generation import Generation
from app.services.generation import store
from app.services.generation import streaming

ARTICLE = "Workers drain queues. The ledger records every job. Queues suit their work."


def _count(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counts: Counter[str] = Counter()

    def on_execute(*_args: Any) -> None:
        counts["orm"] += 1

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", on_execute)
    real_sql, real_run = execute.run_sql, execute.run

    def plain(engine: Any, sql: str, params: dict[str, Any]) -> Any:
        counts["ledger"] += 1
        return real_sql(engine, sql, params)

    def core(engine: Any, statement: Any, params: dict[str, Any]) -> Any:
        counts["ledger"] += 1
        return real_run(engine, statement, params)

    monkeypatch.setattr(store, "run_sql", plain)
    monkeypatch.setattr(store, "run", core)
    return counts


def test_a_run_reads_its_row_once_and_writes_it_once(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context():
        row = Generation(
            provider="offline",
            model="extractive-summary",
            messages=[{"role": "user", "content": ARTICLE}],
            parameters={"max_sentences": 1},
        )
        db.session.add(row)
        db.session.commit()
        generation_id = row.id
        db.session.remove()
    counts = _count(app, monkeypatch)
    reports: list[int] = []

    with app.app_context():
        result = streaming.run(
            generation_id, app.config["SETTINGS"], lambda n, *_: reports.append(n)
        )
        again = streaming.run(
            generation_id, app.config["SETTINGS"], lambda n, *_: reports.append(n)
        )

    # The first run: one read, one write; the second finds the answer complete: one read.
    assert counts == {"ledger": 3}
    assert reports == []  # a stream shorter than GENERATION_DB_WRITE_INTERVAL: no progress
    assert result["text"] and again == result
    with app.app_context():
        kept = db.session.get(Generation, generation_id)
        assert kept is not None and kept.text == result["text"] and kept.latency_ms
        assert kept.status == "pending"  # no job: where the work is comes from the job alone


def test_one_result_backend_serves_every_greenlet(app: Flask) -> None:
    # Chords need a backend; built anew per gevent greenlet (Celery keeps one per thread), it
    # cost the io worker 7 % of its CPU for tasks that keep no result.
    celery_app = app.extensions["celery"]
    seen: list[object] = [celery_app.backend]
    # Threads stand for the greenlets (gevent patches threading.local into a greenlet local).
    threads = [threading.Thread(target=lambda: seen.append(celery_app.backend)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not isinstance(seen[0], DisabledBackend)
    assert all(backend is seen[0] for backend in seen)
