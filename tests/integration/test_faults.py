"""Faults lose nothing: a killed worker's job is redelivered; a down broker creates nothing."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.models import Job
from tests.conftest import make_settings
from tests.support.api import Api


def test_job_of_a_sigkilled_worker_process_is_redelivered_and_finishes(
    api: Api, markers: Path
) -> None:
    job = api.submit(
        "tests.steps", args={"count": 30, "interval": 0.05, "marker_dir": str(markers)}
    )
    running = api.wait_progress(job["id"], at_least=2)
    pid = int(running["progress"]["message"].removeprefix("pid="))

    os.kill(pid, signal.SIGKILL)

    done = api.wait(job["id"], timeout=60)
    assert done["state"] == "succeeded"
    assert done["attempts"] == 2
    started = (markers / f"{job['id']}.started").read_text().split()
    assert len(started) == 2 and started[0] == str(pid) and started[1] != str(pid)
    assert (markers / f"{job['id']}.done").read_text().count("\n") == 1


def test_submit_with_broker_down_answers_503_and_leaves_no_job(
    base_settings: dict[str, Any], api_token: str
) -> None:
    # Nothing listens on port 1: the broker is unreachable, the database is fine.
    down = create_app(
        make_settings(
            base_settings, CELERY_BROKER_URL="redis://127.0.0.1:1/0", SUBMIT_BROKER_TIMEOUT=0.5
        )
    )
    client = down.test_client()
    key = "broker-down-key"

    response = client.post(
        "/api/v1/jobs",
        json={"task": "tests.echo", "idempotency_key": key},
        headers={"Authorization": f"Bearer {api_token}"},
    )

    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"]
    assert "not created" in response.get_json()["detail"]
    with down.app_context():
        left = db.session.scalar(
            select(func.count()).select_from(Job).where(Job.idempotency_key == key)
        )
    assert left == 0


def test_broker_back_after_outage_accepts_the_same_request(
    app: Flask, base_settings: dict[str, Any], api: Api
) -> None:
    down = create_app(
        make_settings(
            base_settings, CELERY_BROKER_URL="redis://127.0.0.1:1/0", SUBMIT_BROKER_TIMEOUT=0.5
        )
    )
    body = {"task": "tests.echo", "args": {"value": "later"}, "idempotency_key": "after-outage"}
    assert down.test_client().post("/api/v1/jobs", json=body, headers=api.auth).status_code == 503

    # The client retries the same request once the broker is back: it runs exactly once.
    job = api.submit(**body)
    assert api.wait(job["id"])["result"] == {"value": "later"}
