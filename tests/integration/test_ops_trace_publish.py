"""Publishing a trace never waits on the broker: an unreachable broker leaves the ship job
in the outbox, which the relay publishes once the broker is back; nothing is dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.ledger import requests
from app.models import Job
from app.models import JobState
from app.services.tracing import stats
from app.services.tracing.publish import publish
from tests.conftest import make_settings


@pytest.fixture
def app_without_broker(app: Flask, base_settings: dict[str, Any]) -> Iterator[Flask]:
    # Same database and Redis counters; the broker is a port nothing listens on.
    broken = create_app(
        make_settings(
            base_settings, CELERY_BROKER_URL="redis://127.0.0.1:9/0", LEDGER_RELAY_IN_API=False
        )
    )
    try:
        yield broken
    finally:
        app.extensions["celery"].set_default()


def test_publishing_without_a_broker_leaves_the_ship_job_to_the_relay(
    app_without_broker: Flask,
) -> None:
    record = {"id": "r-1", "job_id": "traced-job-1", "operation": "generation.complete"}
    with app_without_broker.app_context():
        counters = app_without_broker.extensions["redis"]
        before = stats.read(counters, [stats.PUBLISHER])[stats.PUBLISHER]["dropped"]

        assert publish(record) is True

        after = stats.read(counters, [stats.PUBLISHER])[stats.PUBLISHER]
        assert after["dropped"] == before
        [shipped] = [
            job
            for job in db.session.scalars(select(Job).where(Job.task == "ops_trace.ship"))
            if job.args["record"]["id"] == "r-1"
        ]
        # Accepted, unpublished: the relay's to send (this test cancels it instead).
        assert (shipped.state, shipped.published_at) == (JobState.QUEUED, None)
        assert requests.cancel(db.session, shipped.id) == JobState.CANCELLED
