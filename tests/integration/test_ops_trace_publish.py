"""Handing a trace off never waits on the broker: an unreachable broker leaves the ship job
in the outbox, which the relay publishes once the broker is back; nothing is dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.ledger import requests
from app.models import Job
from app.models.job import JobState
from app.services import tracing
from tests.conftest import make_settings
from tests.support.jobs import job_row


@pytest.fixture
def app_without_broker(app: Flask, base_settings: dict[str, Any]) -> Iterator[Flask]:
    # Same database; the broker is a port nothing listens on.
    broken = create_app(
        make_settings(
            base_settings, CELERY_BROKER_URL="redis://127.0.0.1:9/0", LEDGER_RELAY_IN_API=False
        )
    )
    try:
        yield broken
    finally:
        app.extensions["celery"].set_default()


def test_a_hand_off_without_a_broker_leaves_the_ship_job_to_the_relay(
    app_without_broker: Flask,
) -> None:
    job_id = str(uuid.uuid4())
    with app_without_broker.app_context():
        db.session.add(job_row(JobState.SUCCEEDED, id=job_id, task="generation.complete"))
        db.session.commit()

        # The outbox accepts the ship job although the broker is down: nothing is dropped.
        assert tracing.hand_off(job_id, "generation.complete") is True
        [shipped] = [
            job
            for job in db.session.scalars(select(Job).where(Job.task == "ops_trace.ship"))
            if job.args["record"]["job_id"] == job_id
        ]
        # Accepted, unpublished: the relay's to send (this test cancels it instead).
        assert (shipped.state, shipped.published_at) == (JobState.QUEUED, None)
        assert requests.cancel(db.session, shipped.id) == JobState.CANCELLED
