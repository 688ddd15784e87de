"""End-to-end readiness: database, broker, and a canary job through every declared queue."""

from __future__ import annotations

import time
import uuid
from typing import Any

from celery import Celery
from sqlalchemy import select

from app import queues
from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.services import jobs
from app.services.operations import queue_status

CANARY_TASK = "system.canary"
POLL_INTERVAL = 0.1


def check(celery_app: Celery, *, inspect_timeout: float, canary_timeout: float) -> dict[str, Any]:
    """Run every check; `ready` is True only when each one passed."""
    db_error = queue_status.database_ok()
    broker_error = queue_status.broker_ok(celery_app, inspect_timeout)
    report: dict[str, Any] = {
        "database": {"ok": db_error is None, "error": db_error},
        "broker": {"ok": broker_error is None, "error": broker_error},
        "queues": {
            name: {"ok": False, "consumers": 0, "canary": "not sent"} for name in queues.QUEUES
        },
    }
    if broker_error is None:
        found = queue_status.consumers(celery_app, inspect_timeout)
        for name, workers in found.items():
            report["queues"][name]["consumers"] = len(workers)
            if not workers:
                report["queues"][name]["canary"] = "no worker consumes this queue"
        if db_error is None:
            consumed = [name for name, workers in found.items() if workers]
            _run_canaries(celery_app, consumed, report["queues"], canary_timeout)
    report["ready"] = (
        db_error is None
        and broker_error is None
        and all(q["ok"] for q in report["queues"].values())
    )
    return report


def _run_canaries(
    celery_app: Celery, names: list[str], results: dict[str, Any], timeout: float
) -> None:
    sent: dict[str, str] = {}
    for name in names:
        job, _ = jobs.submit(
            celery_app,
            jobs.Submission(task=CANARY_TASK, args={"token": uuid.uuid4().hex}, queue=name),
            broker_timeout=timeout,
        )
        sent[job.id] = name
    deadline = time.monotonic() + timeout
    pending = dict(sent)
    while pending:
        rows = db.session.execute(select(Job.id, Job.state).where(Job.id.in_(list(pending)))).all()
        db.session.rollback()
        for job_id, state in rows:
            if state.terminal:
                name = pending.pop(job_id)
                results[name]["canary"] = state.value
                results[name]["ok"] = state == JobState.SUCCEEDED
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(POLL_INTERVAL)
    for name in pending.values():
        results[name]["canary"] = f"no answer within {timeout:.0f}s"
