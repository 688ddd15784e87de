"""/ready proves every queue is consumed end to end; /queues shows who consumes what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask

from app import create_app
from app.extensions.ext_database import db
from app.models import Job
from app.models.base import utcnow
from tests.conftest import make_settings
from tests.support.api import Api
from tests.support.workers import WorkerProcess


def test_ready_sends_a_canary_through_every_queue(api: Api) -> None:
    response = api.client.get("/api/v1/ready", headers=api.auth)
    report = response.get_json()
    assert response.status_code == 200, report
    assert report["ready"] is True
    assert report["database"]["ok"] and report["broker"]["ok"]
    for name, queue in report["queues"].items():
        assert queue["ok"] is True and queue["canary"] == "succeeded", name
        assert queue["consumers"] >= 1, name


def test_ready_is_503_and_says_why_when_the_broker_is_down(
    base_settings: dict[str, Any], api_token: str
) -> None:
    down = create_app(
        make_settings(
            base_settings, CELERY_BROKER_URL="redis://127.0.0.1:1/0", SUBMIT_BROKER_TIMEOUT=0.5
        )
    )
    response = down.test_client().get(
        "/api/v1/ready", headers={"Authorization": f"Bearer {api_token}"}
    )
    report = response.get_json()
    assert response.status_code == 503
    assert report["ready"] is False
    assert report["broker"]["ok"] is False and report["broker"]["error"]
    assert report["database"]["ok"] is True


def test_queues_lists_consumers_with_their_pools(
    api: Api, workers: dict[str, WorkerProcess]
) -> None:
    body = api.client.get("/api/v1/queues", headers=api.auth).get_json()
    by_name = {q["name"]: q for q in body["queues"]}
    assert set(by_name) == {"dataset", "generation", "mail", "ops_trace"}
    # Other tests may run extra workers; the session's profile workers must be listed as such.
    cpu = {w["worker"]: w for w in by_name["dataset"]["workers"]}[workers["cpu"].hostname]
    assert (cpu["pool"], cpu["concurrency"]) == ("prefork", 2)
    for name in ("generation", "mail", "ops_trace"):
        io = {w["worker"]: w for w in by_name[name]["workers"]}[workers["io"].hostname]
        assert (io["pool"], io["concurrency"]) == ("gevent", 20)
        assert by_name[name]["profile"] == "io"
        assert by_name[name]["consumers"] == len(by_name[name]["workers"])


def test_queues_reports_the_age_of_the_oldest_due_job_not_yet_started(app: Flask, api: Api) -> None:
    # A row as a stuck job leaves it: queued, due, created five minutes ago, never started.
    with app.app_context():
        stuck = Job(
            task="tests.echo", queue="mail", args={}, created_at=utcnow() - timedelta(minutes=5)
        )
        db.session.add(stuck)
        db.session.commit()
        try:
            body = api.client.get("/api/v1/queues", headers=api.auth).get_json()
        finally:
            db.session.delete(stuck)
            db.session.commit()
    mail = next(q for q in body["queues"] if q["name"] == "mail")
    assert mail["oldest_waiting_age_seconds"] >= 300
    assert all(isinstance(q["waiting"], int) for q in body["queues"])
