"""Handing a trace off is best effort: an unreachable broker loses the trace, never a job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.models import Job
from app.models.job import JobState
from app.services import tracing
from tests.conftest import make_settings


@pytest.fixture
def app_without_broker(app: Flask, base_settings: dict[str, Any]) -> Iterator[Flask]:
    # Same database; the broker is a port nothing listens on.
    broken = create_app(make_settings(base_settings, CELERY_BROKER_URL="redis://127.0.0.1:9/0"))
    try:
        yield broken
    finally:
        app.extensions["celery"].set_default()


def test_a_hand_off_without_a_broker_returns_false_and_leaves_no_ship_job(
    app_without_broker: Flask,
) -> None:
    job_id = str(uuid.uuid4())
    with app_without_broker.app_context():
        db.session.add(
            Job(
                id=job_id,
                task="generation.complete",
                queue="generation",
                state=JobState.SUCCEEDED,
                args={},
            )
        )
        db.session.commit()

        assert tracing.hand_off(job_id, "generation.complete") is False
        # The ship job's ledger row was taken back: no job waits for a message never sent.
        shipped = db.session.scalars(select(Job).where(Job.task == "ops_trace.ship")).all()
        assert all(job.args["record"]["job_id"] != job_id for job in shipped)
        # The traced job itself is untouched.
        assert db.session.get(Job, job_id, populate_existing=True).state == JobState.SUCCEEDED
