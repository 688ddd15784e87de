"""Celery signal handlers that tie Sentry events to jobs.

Tags (queue, task, job id, attempt) go on the isolation scope Sentry's Celery integration
opens around each task run, so every event from the run carries them. The id of the error
event a run ends with is written to the job's ledger row once the task has failed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import sentry_sdk
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_prerun
from sqlalchemy import select
from sqlalchemy.engine import Engine

from app.hooks import Outcome
from app.ledger.errors import DATABASE_ERRORS
from app.ledger.transitions import record_sentry_event
from app.models import Job
from app.models import JobState

log = logging.getLogger(__name__)

# The last error event captured during a run, by job id, until the run ends.
_pending: dict[str, str] = {}
# A hard time limit can reach the main process's hooks more than once (its timeout handler,
# then the pool's report of the dead child): the jobs already reported, so each is once.
_reported_time_limits: deque[str | None] = deque(maxlen=1000)


def _tag_run(sender: Any = None, task_id: str | None = None, **_kw: Any) -> None:
    request = getattr(sender, "request", None)
    delivery = getattr(request, "delivery_info", None) or {}
    scope = sentry_sdk.get_isolation_scope()
    scope.set_tag("job_id", task_id)
    scope.set_tag("task", getattr(sender, "name", None))
    scope.set_tag("queue", delivery.get("routing_key") or getattr(sender, "tasklane_queue", None))
    # Celery's count of retries of this message; the ledger's attempt is added at capture.
    scope.set_tag("retries", getattr(request, "retries", 0))


def _forget(job_id: str) -> None:
    _pending.pop(job_id, None)


def annotate_job_event(engine: Engine, event: dict[str, Any]) -> None:
    """Add the ledger's attempt number to an error event from a job, and remember its id."""
    tags = event.get("tags") or {}
    job_id = tags.get("job_id")
    if not job_id or event.get("type") == "transaction":
        return
    try:
        with engine.connect() as conn:
            attempts = conn.scalar(select(Job.attempts).where(Job.id == job_id))
    except DATABASE_ERRORS:
        attempts = None
    if attempts is not None:
        tags["attempt"] = attempts
    event["tags"] = tags
    if event.get("event_id"):
        _pending[job_id] = event["event_id"]


def after_run_hook(engine: Engine) -> Callable[[Outcome], None]:
    """The after-run hook (app/hooks.py) that stores a failed run's Sentry event id.

    `engine` is the ledger's, used outside any app context.
    """

    def record_event_id(job_id: str) -> None:
        event_id = _pending.pop(job_id, None)
        if event_id is None:
            return
        try:
            record_sentry_event(engine, job_id, event_id)
        except DATABASE_ERRORS:
            log.warning("could not store Sentry event %s on job %s", event_id, job_id)

    def report_hard_time_limit(outcome: Outcome) -> None:
        # Only the main process sees this exception; no Celery integration scope is open.
        if outcome.job_id in _reported_time_limits:
            return
        _reported_time_limits.append(outcome.job_id)
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("job_id", outcome.job_id)
            scope.set_tag("task", getattr(outcome.task, "name", None))
            scope.set_tag("queue", getattr(outcome.task, "tasklane_queue", None))
            sentry_sdk.capture_exception(outcome.exception)
        record_event_id(outcome.job_id)

    def after_run(outcome: Outcome) -> None:
        if outcome.state != JobState.FAILED:
            # A run that logged an error but did not fail leaves nothing behind.
            _forget(outcome.job_id)
        elif outcome.in_main_process and isinstance(outcome.exception, TimeLimitExceeded):
            report_hard_time_limit(outcome)
        else:
            record_event_id(outcome.job_id)

    return after_run


def connect() -> None:
    """Tag every run's Sentry scope as it begins (its outcome is the after-run hook)."""
    task_prerun.connect(_tag_run, weak=False)
