"""Publishing a trace is best effort: an unreachable broker costs a counted drop, no error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.models import Job
from app.services.tracing import stats
from app.services.tracing.publish import publish
from tests.conftest import make_settings


@pytest.fixture
def app_without_broker(app: Flask, base_settings: dict[str, Any]) -> Iterator[Flask]:
    # Same database and Redis counters; the broker is a port nothing listens on.
    broken = create_app(make_settings(base_settings, CELERY_BROKER_URL="redis://127.0.0.1:9/0"))
    try:
        yield broken
    finally:
        app.extensions["celery"].set_default()


def test_publishing_without_a_broker_counts_a_drop_and_leaves_nothing(
    app_without_broker: Flask,
) -> None:
    record = {"id": "r-1", "job_id": "traced-job-1", "operation": "generation.complete"}
    with app_without_broker.app_context():
        counters = app_without_broker.extensions["redis"]
        before = stats.read(counters, [stats.PUBLISHER])[stats.PUBLISHER]["dropped"]

        assert publish(record) is False

        after = stats.read(counters, [stats.PUBLISHER])[stats.PUBLISHER]
        assert after["dropped"] == before + 1
        assert "broker could not be reached" in after["reason"]
        # The ship job's ledger row was taken back: no job waits for a message never sent.
        shipped = db.session.scalars(select(Job).where(Job.task == "ops_trace.ship")).all()
        assert all(job.args["record"]["id"] != "r-1" for job in shipped)
