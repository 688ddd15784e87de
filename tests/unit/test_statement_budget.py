"""Round trips per job: POST /jobs at most 3 (issue 14), a start and a finish one each on
PostgreSQL, whatever the ledger writes beside the job row (its attempt, its lease)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from app.extensions.ext_database import db
from app.ledger import execute
from app.ledger import requests
from app.ledger import transitions


@pytest.fixture
def trips(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    with app.app_context():
        engines = [db.engine, app.extensions["ledger_engine"]]

    here = threading.get_ident()

    def on_execute(*_args: Any) -> None:
        counts["app"] += 1

    def on_checkout(*_args: Any) -> None:
        counts["app"] += 1  # the app engine pings every connection it hands out

    def on_ledger_execute(*_args: Any) -> None:
        # Core statements on the ledger engine (the submit's INSERT); not the relay's or
        # the confirmation flusher's, which run in threads of their own, in bulk.
        if threading.get_ident() == here:
            counts["ledger"] += 1

    event.listen(engines[0], "before_cursor_execute", on_execute)
    event.listen(engines[0].pool, "checkout", on_checkout)
    event.listen(engines[1], "before_cursor_execute", on_ledger_execute)
    real = execute.run_sql

    def plain(engine: Any, sql: str, params: dict[str, Any]) -> Any:
        counts["ledger"] += 1
        return real(engine, sql, params)

    # Plain SQL on the driver fires no engine event: count it where the ledger calls it
    # (the hot transitions, and the one-row INSERT of POST /jobs).
    monkeypatch.setattr(transitions, "run_sql", plain)
    monkeypatch.setattr(requests, "run_sql", plain)
    try:
        yield counts
    finally:
        event.remove(engines[0], "before_cursor_execute", on_execute)
        event.remove(engines[0].pool, "checkout", on_checkout)
        event.remove(engines[1], "before_cursor_execute", on_ledger_execute)


def test_submit_start_and_finish_stay_within_their_round_trips(
    app: Flask, auth: dict[str, str], trips: Counter[str]
) -> None:
    client = app.test_client()
    # Due in an hour: a session worker (started by an earlier integration test) that gets the
    # message must not start the job before this test records its start by hand.
    body = {"task": "tests.echo", "args": {"value": 1}, "countdown": 3600}
    client.post("/api/v1/jobs", json=body, headers=auth)  # warm: relay, pools
    trips.clear()
    job_id = client.post("/api/v1/jobs", json=body, headers=auth).get_json()["id"]
    # The key is cached (app.services.api_keys.CACHE_TTL) and the INSERT autocommits on
    # the ledger engine: the request's session is never used. The relay confirms in bulk.
    assert trips["app"] + trips["ledger"] <= 3, trips
    assert trips == Counter(ledger=1), trips

    with app.app_context():
        postgres = execute.is_postgres(app.extensions["ledger_engine"])
        trips.clear()
        number = transitions.begin_attempt(
            job_id, task="tests.echo", queue="dataset", worker="w", args={}, max_attempts=4
        )
        started = trips["ledger"] + trips["app"]
        trips.clear()
        transitions.record_success(job_id, {"value": 1}, number)
        finished = trips["ledger"] + trips["app"]
    assert number == 1
    if postgres:  # SQLite: two statements in one transaction each
        assert (started, finished) == (1, 1)


@pytest.mark.parametrize("query", ["", "?wait=30"])
def test_a_job_read_is_one_select_outside_any_transaction(
    app: Flask, auth: dict[str, str], trips: Counter[str], query: str
) -> None:
    """GET /jobs/{id}: the access check reads the job with its attempts, the view shows that
    row (4 statements and 6 round trips before: EXISTS, the job, its attempts, BEGIN and
    ROLLBACK). A final job's long-poll answers from the same read."""
    client = app.test_client()
    body = {"task": "tests.echo", "args": {"value": 1}, "countdown": 3600}
    job_id = client.post("/api/v1/jobs", json=body, headers=auth).get_json()["id"]
    client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth)  # final, for the long-poll
    client.get(f"/api/v1/jobs/{job_id}", headers=auth)  # warm: compiled statements
    with app.app_context():
        engine = db.engine
    levels: list[str | None] = []

    def on_execute(conn: Any, *_args: Any) -> None:
        levels.append(conn.get_execution_options().get("isolation_level"))

    event.listen(engine, "before_cursor_execute", on_execute)
    trips.clear()
    try:
        response = client.get(f"/api/v1/jobs/{job_id}{query}", headers=auth)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)

    assert response.status_code == 200 and response.get_json()["state"] == "cancelled"
    assert trips == Counter(app=2), trips  # the pool's ping (checkout) and one SELECT
    assert levels == ["AUTOCOMMIT"]  # no BEGIN before it, no ROLLBACK after
