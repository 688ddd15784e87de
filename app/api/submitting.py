"""What the endpoints that queue work share: the Celery app, the broker wait, the 202."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask import url_for

from app.models import Job
from config import current_settings

Accepted = tuple[Job, int, dict[str, str]]


def celery() -> Any:
    return current_app.extensions["celery"]


def broker_timeout() -> float:
    """How long a submit waits for the broker before the relay takes the job over."""
    return float(current_settings().broker.submit_timeout)


def job_location(job: Job) -> dict[str, str]:
    return {"Location": url_for("jobs.JobItem", job_id=job.id)}


def accepted(job: Job) -> Accepted:
    """The answer to a request that queued `job`: 202, pointing at the job."""
    return job, 202, job_location(job)
