"""Submitting, cancelling, retrying and listing jobs: the API's side of the ledger.

A job's broker message is published only after its row has committed, so a worker never
looks for a row that is not there. When the broker cannot be reached the row is removed
again (or, for a retry, put back as it was) and BrokerUnavailable tells the caller to try
later: nothing half-written remains.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from celery import Task
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import queues
from app.extensions.ext_celery import MAX_PRIORITY
from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.services import api_keys
from app.services import pagination
from app.services.errors import JobError
from app.services.pagination import newest_first

BROKER_ERRORS = (KombuOperationalError, RedisError, ConnectionError, OSError, TimeoutError)
# Set on the messages of jobs that have `notify_to`, so a worker looks the job up after the
# run only for them (app.services.mail.notifications); every other job pays nothing.
NOTIFY_HEADER = "tasklane_notify"


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


def _broker_priority(celery_app: Celery, priority: int | None) -> int | None:
    if priority is None:
        return None
    # The API says 9 is most urgent; kombu's Redis transport serves 0 first.
    url = str(celery_app.conf.broker_url or "")
    return MAX_PRIORITY - priority if url.startswith("redis") else priority


def _publish(celery_app: Celery, job: Job, timeout: float) -> None:
    task = celery_app.tasks[job.task]
    options: dict[str, Any] = {
        "task_id": job.id,
        "queue": job.queue,
        "retry": True,
        "retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": timeout / 3,
            "interval_max": timeout / 3,
        },
    }
    if job.eta is not None:
        options["eta"] = job.eta
    broker_priority = _broker_priority(celery_app, job.priority)
    if broker_priority is not None:
        options["priority"] = broker_priority
    if job.notify_to:
        options["headers"] = {NOTIFY_HEADER: True}
    task.apply_async(kwargs=job.args, **options)


def submit(celery_app: Celery, request: Submission, *, broker_timeout: float) -> tuple[Job, bool]:
    """Create the job row, commit, then publish. Returns the job and whether it is new."""
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
        state=JobState.QUEUED,
        priority=request.priority,
        eta=now + timedelta(seconds=request.countdown) if request.countdown else None,
        idempotency_key=request.idempotency_key,
        api_key_id=request.api_key_id,
        project_id=project_id,
        parent_id=request.parent_id,
        notify_to=request.notify_to or None,
        created_at=now,
    )
    db.session.add(job)
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent request with the same idempotency key won the insert.
        db.session.rollback()
        existing = db.session.scalar(
            select(Job).where(Job.idempotency_key == request.idempotency_key)
        )
        if existing is None:
            raise
        return _same_request(existing, request, project_id), False
    try:
        _publish(celery_app, job, broker_timeout)
    except BROKER_ERRORS as exc:
        db.session.execute(delete(Job).where(Job.id == job.id))
        db.session.commit()
        raise BrokerUnavailable(
            f"the broker could not be reached ({type(exc).__name__}); the job was not "
            "created. Retry the request later."
        ) from exc
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
    job = db.session.get(Job, job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    return job


def cancel(job_id: str) -> Job:
    """Cancel persistently: a queued job never runs; a running one is asked to stop."""
    job = db.session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    if job.state.terminal:
        db.session.rollback()
        raise InvalidTransition(f"job {job_id} is already {job.state.value}")
    now = utcnow()
    if job.state == JobState.STARTED:
        # The running task sees this at its next progress report or cancellation check.
        job.cancel_requested_at = job.cancel_requested_at or now
    else:
        job.state = JobState.CANCELLED
        job.cancel_requested_at = now
        job.finished_at = now
    db.session.commit()
    return job


def retry(celery_app: Celery, job_id: str, *, broker_timeout: float) -> Job:
    """Run a failed or cancelled job again, as a new attempt of the same job."""
    job = db.session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        db.session.rollback()
        raise InvalidTransition(
            f"job {job_id} is {job.state.value}; only failed or cancelled jobs can be retried"
        )
    before = {
        "state": job.state,
        "cancel_requested_at": job.cancel_requested_at,
        "finished_at": job.finished_at,
        "eta": job.eta,
    }
    job.state = JobState.QUEUED
    job.cancel_requested_at = None
    job.finished_at = None
    job.eta = None
    db.session.commit()
    try:
        _publish(celery_app, job, broker_timeout)
    except BROKER_ERRORS as exc:
        for name, value in before.items():
            setattr(job, name, value)
        db.session.commit()
        raise BrokerUnavailable(
            f"the broker could not be reached ({type(exc).__name__}); the job was left "
            f"{job.state.value}. Retry the request later."
        ) from exc
    return job


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
    query = newest_first(Job)
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
    if state:
        query = query.where(Job.state == JobState(state))
    if queue:
        query = query.where(Job.queue == queue)
    if task:
        query = query.where(Job.task == task)
    return pagination.page(query, Job.created_at, Job.id, limit=limit, cursor=cursor)
