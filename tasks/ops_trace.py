"""Trace shipping: every traced job's attempts end up here, off the traced work's path."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.signals import task_postrun
from celery.signals import worker_shutdown
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from app.services.providers.retry import backoff_delay
from app.services.tracing import delivery
from app.services.tracing import shipper
from app.services.tracing.publish import on_task_postrun
from app.tasking import job_task

# Every worker imports this module, so every traced task is traced wherever it runs.
task_postrun.connect(on_task_postrun, weak=False)

# Seconds a stopping worker spends sending the traces it still buffers.
SHUTDOWN_FLUSH_TIMEOUT = 5.0


def _flush_on_shutdown(**_kw: Any) -> None:
    shipper.flush(SHUTDOWN_FLUSH_TIMEOUT)


worker_shutdown.connect(_flush_on_shutdown, weak=False)


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
