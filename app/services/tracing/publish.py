"""Publishing a trace once a traced job's attempt is over, never inside it.

The `task_postrun` signal fires after the task body and after the ledger recorded the
outcome, so the trace sees the final state and nothing here can change it: every error is
caught, logged and counted as a publisher drop.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from app.extensions.ext_database import db
from app.services import jobs
from app.services.errors import JobError
from app.services.jobs import Submission
from app.services.tracing import records
from app.services.tracing import stats

log = logging.getLogger(__name__)

SHIP_TASK = "ops_trace.ship"
# A trace is not worth holding up the worker for long when the broker is away.
PUBLISH_TIMEOUT = 1.0


def publish(record: dict[str, Any]) -> bool:
    """Submit the record to the ops_trace queue; False (and a counted drop) on failure."""
    try:
        jobs.submit(
            current_app.extensions["celery"],
            Submission(task=SHIP_TASK, args={"record": record}),
            broker_timeout=PUBLISH_TIMEOUT,
        )
        return True
    except (JobError, SQLAlchemyError) as exc:
        db.session.rollback()
        log.warning("trace of job %s dropped: %s", record.get("job_id"), exc)
        stats.count(current_app.extensions["redis"], stats.PUBLISHER, "dropped", reason=str(exc))
        return False


def on_task_postrun(task: Task | None = None, task_id: str | None = None, **_kw: Any) -> None:
    """Celery signal handler: publish a trace for every attempt of a `traced=True` task."""
    if task is None or task_id is None or not getattr(task, "traced", False):
        return
    if task.request.called_directly:
        return
    try:
        # FlaskTask's context: the task's own app context has ended by now.
        with task._context():
            _trace(task, task_id)
    except Exception:
        log.exception("trace of job %s not published", task_id)


def _trace(task: Task, task_id: str) -> None:
    settings = current_app.config["SETTINGS"]
    if not settings.TRACE_SINKS:
        return
    try:
        record = records.build(task_id, task.name, max_chars=settings.TRACE_MAX_FIELD_CHARS)
    except Exception as exc:
        # The ledger could not be read (database away): the trace is lost, and counted.
        db.session.rollback()
        log.warning("trace of job %s dropped: %s", task_id, exc)
        reason = f"{type(exc).__name__}: {exc}"[:300]
        stats.count(current_app.extensions["redis"], stats.PUBLISHER, "dropped", reason=reason)
        return
    if record is not None:
        publish(record)
