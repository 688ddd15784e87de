"""Submitting, cancelling, retrying and listing jobs: the API's side of the ledger.

The job row and its publish intent commit in one statement (app/ledger/requests.py); the
message is published after the commit. If the broker cannot be reached, the job stays
queued and the outbox relay publishes it once the broker is back (app/ledger/outbox.py):
an accepted job is never lost, and a broker outage refuses no work.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from celery import Task
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app import queues
from app.extensions.ext_database import db
from app.ledger import outbox
from app.ledger import requests
from app.ledger.outbox import BROKER_ERRORS
from app.ledger.outbox import NOTIFY_HEADER
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.services import api_keys
from app.services import pagination
from app.services.errors import JobError
from app.services.pagination import newest_first
from config import current_settings
from config import settings_of

__all__ = ["BROKER_ERRORS", "NOTIFY_HEADER"]

log = logging.getLogger(__name__)


class UnknownTask(JobError):
    status = 422
    title = "Unknown task"


class InvalidArguments(JobError):
    status = 422
    title = "Invalid task arguments"


class IdempotencyConflict(JobError):
    status = 409
    title = "Idempotency key reused"


class JobNotFound(JobError):
    status = 404
    title = "Job not found"


class InvalidTransition(JobError):
    status = 409
    title = "Job is not in a state that allows this"


class BrokerUnavailable(JobError):
    status = 503
    title = "Broker unavailable"


@dataclass(frozen=True)
class Submission:
    task: str
    args: dict[str, Any]
    idempotency_key: str | None = None
    countdown: int | None = None
    priority: int | None = None
    api_key_id: int | None = None
    # The tenant; when None, the project of `api_key_id` (none at all for system jobs).
    project_id: int | None = None
    # Only internal callers pick a queue (the readiness canary goes to every queue).
    queue: str | None = None
    parent_id: str | None = None
    # Addresses mailed once the job finished; validated by the caller (the API).
    notify_to: list[str] | None = None


def public_task(celery_app: Celery, name: str) -> Task:
    task = celery_app.tasks.get(name)
    if task is None or not getattr(task, "public", False):
        public = sorted(t for t, obj in celery_app.tasks.items() if getattr(obj, "public", False))
        raise UnknownTask(f"no public task named {name!r}; public tasks: {', '.join(public)}")
    return task


def check_arguments(task: Task, args: dict[str, Any]) -> None:
    """Refuse arguments the task cannot be called with, before anything is queued."""
    try:
        inspect.signature(task.run).bind(**args)
    except TypeError as exc:
        raise InvalidArguments(f"{task.name}: {exc}") from None
    try:
        json.dumps(args)
    except (TypeError, ValueError) as exc:
        raise InvalidArguments(f"arguments must be JSON: {exc}") from None


def attempt_budget(task: Task) -> int:
    """Attempts a job of `task` gets: its retries, the redeliveries of a lost worker, one."""
    settings = current_settings()
    return int(task.max_retries or 0) + int(settings.broker.task_max_redeliveries) + 1


class _BrokerState:
    """After a failed publish, requests leave publishing to the relay for a while."""

    lock = threading.Lock()
    down_until = 0.0


def publish_after_commit(celery_app: Celery, job: dict[str, Any], *, timeout: float) -> None:
    """Publish a committed job; if the broker is away, the relay publishes it later."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = settings_of(app)
    if settings.ledger.fault_after_commit == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if settings.ledger.relay_in_api and not outbox.in_worker():
        outbox.ensure_relay(app)
    if time.monotonic() < _BrokerState.down_until:
        return
    try:
        outbox.publish(celery_app, job, timeout=timeout)
    except BROKER_ERRORS as exc:
        with _BrokerState.lock:
            _BrokerState.down_until = time.monotonic() + float(settings.ledger.relay_grace)
        log.warning(
            "broker unreachable (%s); job %s stays queued and the relay publishes it when the "
            "broker is back",
            type(exc).__name__,
            job["id"],
        )
        return
    outbox.confirm(app, job["id"])


def submit(celery_app: Celery, request: Submission, *, broker_timeout: float) -> tuple[Job, bool]:
    """Create the job row with its publish intent, then publish. Returns the job, whether new."""
    task = celery_app.tasks.get(request.task)
    if task is None:
        raise UnknownTask(f"no task named {request.task!r}")
    check_arguments(task, request.args)
    queue = queues.queue(request.queue or task.tasklane_queue).name
    project_id = request.project_id or api_keys.project_of(request.api_key_id)
    if request.idempotency_key:
        existing = db.session.scalar(
            select(Job).where(Job.idempotency_key == request.idempotency_key)
        )
        if existing is not None:
            return _same_request(existing, request, project_id), False
    now = utcnow()
    job = Job(
        task=task.name,
        queue=queue,
        args=request.args,
        priority=request.priority,
        eta=now + timedelta(seconds=request.countdown) if request.countdown else None,
        idempotency_key=request.idempotency_key,
        api_key_id=request.api_key_id,
        project_id=project_id,
        parent_id=request.parent_id,
        notify_to=request.notify_to or None,
        max_attempts=attempt_budget(task),
        created_at=now,
    )
    try:
        requests.create(db.session, job)
    except IntegrityError:
        # A concurrent request with the same idempotency key won the insert.
        db.session.rollback()
        existing = db.session.scalar(
            select(Job).where(Job.idempotency_key == request.idempotency_key)
        )
        if existing is None:
            raise
        return _same_request(existing, request, project_id), False
    publish_after_commit(celery_app, requests.message(job), timeout=broker_timeout)
    return job, True


def _same_request(existing: Job, request: Submission, project_id: int | None) -> Job:
    if existing.project_id != project_id:
        # Keys are unique across projects; never hand out (or name) another project's job.
        raise IdempotencyConflict(
            f"idempotency key {request.idempotency_key!r} is already in use; use a new key"
        )
    if existing.task != request.task or existing.args != request.args:
        raise IdempotencyConflict(
            f"idempotency key {request.idempotency_key!r} was used for job {existing.id} "
            "with a different task or arguments; use a new key for a new job"
        )
    return existing


def get(job_id: str) -> Job:
    job = db.session.get(Job, job_id, options=[selectinload(Job.attempt_log)])
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    return job


def _refused(job_id: str, what: str) -> JobError:
    db.session.rollback()
    job = db.session.get(Job, job_id)
    if job is None:
        return JobNotFound(f"no job with id {job_id!r}")
    return InvalidTransition(f"job {job_id} is {job.state.value}; {what}")


def cancel(job_id: str) -> Job:
    """Cancel persistently: a queued job never runs; a running one is asked to stop."""
    if requests.cancel(db.session, job_id) is None:
        raise _refused(job_id, "only a job that has not finished can be cancelled")
    return get(job_id)


def retry(celery_app: Celery, job_id: str, *, broker_timeout: float) -> Job:
    """Run a failed or cancelled job again, as a new attempt of the same job."""
    job = get(job_id)
    task = celery_app.tasks.get(job.task)
    if task is None:
        raise UnknownTask(f"job {job_id}'s task {job.task!r} is not known here")
    message = requests.requeue(db.session, job_id, attempt_budget(task))
    if message is None:
        raise _refused(job_id, "only failed or cancelled jobs can be retried")
    # Read before publishing: the answer shows the job as the retry left it, `queued`.
    requeued = get(job_id)
    publish_after_commit(celery_app, message, timeout=broker_timeout)
    return requeued


def list_jobs(
    *,
    state: str | None = None,
    queue: str | None = None,
    task: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    project_id: int | None = None,
) -> tuple[list[Job], str | None]:
    """Newest first; returns a page and the cursor of the next page (None at the end).

    With `project_id`, only that project's jobs; without, every job (admin keys).
    """
    query = newest_first(Job).options(selectinload(Job.attempt_log))
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
    if state:
        query = query.where(Job.state == JobState(state))
    if queue:
        query = query.where(Job.queue == queue)
    if task:
        query = query.where(Job.task == task)
    return pagination.page(query, Job.created_at, Job.id, limit=limit, cursor=cursor)
