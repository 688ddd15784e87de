"""Trace shipping: every traced job's attempts end up here, off the traced work's path."""

from __future__ import annotations

from typing import Any

from celery import Task
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from app.services.providers.retry import backoff_delay
from app.services.tracing import delivery
from app.tasking import job_task


@job_task(
    "ops_trace.ship",
    queue="ops_trace",
    soft_time_limit=60,
    time_limit=90,
    max_retries=5,
)
def ship(self: Task, record: dict[str, Any]) -> None:
    try:
        delivery.deliver(record, current_app.config["SETTINGS"], current_app.extensions["redis"])
    except SQLAlchemyError as exc:
        delay = backoff_delay(self.request.retries, base=1, cap=60)
        raise self.retry(exc=exc, countdown=delay) from None
