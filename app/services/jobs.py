"""Submitting, cancelling, retrying and listing jobs: the API's side of the ledger.

The job row and its publish intent commit in one statement (app/ledger/requests.py); the
message is published after the commit. If the broker cannot be reached, the job stays
queued and the outbox relay publishes it once the broker is back (app/ledger/outbox.py):
an accepted job is never lost, and a broker outage refuses no work.
"""

from __future__ import annotations

import functools
import inspect
import json
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
from app.ledger import requests
from app.ledger.publishing import BROKER_ERRORS
from app.ledger.publishing import NOTIFY_HEADER
from app.models import Job
from app.models import JobState
from app.models.base import new_id
from app.models.base import utcnow
from app.services import api_keys
from app.services import pagination
from app.services.errors import JobError
from app.services.job_publishing import publish_after_commit
from app.services.pagination import newest_first
from config import current_settings

__all__ = ["BROKER_ERRORS", "NOTIFY_HEADER"]


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
    # The new job's id, when the caller must know it before the job is published (a submit
    # that waits follows it first); else one is drawn.
    job_id: str | None = None


def public_task(celery_app: Celery, name: str) -> Task:
    task = celery_app.tasks.get(name)
    if task is None or not getattr(task, "public", False):
        public = sorted(t for t, obj in celery_app.tasks.items() if getattr(obj, "public", False))
        raise UnknownTask(f"no public task named {name!r}; public tasks: {', '.join(public)}")
    return task


@functools.cache
def _signature(task: Task) -> inspect.Signature:
    # A task's signature never changes; inspecting it was a measurable cost per submit.
    return inspect.signature(task.run)


def check_arguments(task: Task, args: dict[str, Any]) -> None:
    """Refuse arguments the task cannot be called with, before anything is queued."""
    try:
        _signature(task).bind(**args)
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


def build(celery_app: Celery, request: Submission, project_id: int | None) -> Job:
    """The new job, transient and complete: checked, but neither written nor published."""
    return Job(**new_values(celery_app, request, project_id))


def new_row(celery_app: Celery, request: Submission, project_id: int | None) -> dict[str, Any]:
    """`build`'s job as its row, every column set (a batch's items: no ORM object)."""
    return requests.completed(new_values(celery_app, request, project_id))


def new_values(celery_app: Celery, request: Submission, project_id: int | None) -> dict[str, Any]:
    """The checked values a submission sets on its new job."""
    task = celery_app.tasks.get(request.task)
    if task is None:
        raise UnknownTask(f"no task named {request.task!r}")
    check_arguments(task, request.args)
    now = utcnow()
    return {
        # Its id at once: a later item of the same batch that reuses its key names it.
        "id": request.job_id or new_id(),
        "task": task.name,
        "queue": queues.queue(request.queue or task.tasklane_queue).name,
        "args": request.args,
        "priority": request.priority,
        "eta": now + timedelta(seconds=request.countdown) if request.countdown else None,
        "idempotency_key": request.idempotency_key,
        "api_key_id": request.api_key_id,
        "project_id": project_id,
        "parent_id": request.parent_id,
        "notify_to": request.notify_to or None,
        "max_attempts": attempt_budget(task),
        "created_at": now,
    }


def submit(
    celery_app: Celery,
    request: Submission,
    *,
    broker_timeout: float,
    standalone: bool = False,
) -> tuple[Job, bool]:
    """Create the job row with its publish intent, then publish. Returns the job, whether new.

    `standalone` (the API's POST, which writes nothing else): the row is one autocommitted
    INSERT on the ledger's engine and the request's session is never used, so a submit is
    one round trip. Otherwise the job commits on the caller's session.
    """
    project_id = request.project_id or api_keys.project_of(request.api_key_id)
    if standalone:
        return _submit_standalone(celery_app, request, project_id, broker_timeout)
    if request.idempotency_key:
        existing = db.session.scalar(
            select(Job).where(Job.idempotency_key == request.idempotency_key)
        )
        if existing is not None:
            return same_request(existing, request, project_id), False
    job = build(celery_app, request, project_id)
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
        return same_request(existing, request, project_id), False
    publish_after_commit(celery_app, requests.message(job), timeout=broker_timeout)
    return job, True


def _submit_standalone(
    celery_app: Celery, request: Submission, project_id: int | None, broker_timeout: float
) -> tuple[Job, bool]:
    job = build(celery_app, request, project_id)
    engine = current_app.extensions["ledger_engine"]
    try:
        # Insert first, look up only on a clash: a key's first use costs no SELECT.
        requests.create_all(engine, [job])
    except IntegrityError:
        existing = _existing(job)
        if existing is None:
            raise
        if existing.id == job.id:
            # Our own INSERT committed, then its connection dropped and it ran again.
            return existing, True
        return same_request(existing, request, project_id), False
    publish_after_commit(celery_app, requests.message(job), timeout=broker_timeout)
    return job, True


def _existing(job: Job) -> Job | None:
    query = select(Job).where(Job.id == job.id)
    if job.idempotency_key:
        query = select(Job).where((Job.idempotency_key == job.idempotency_key) | (Job.id == job.id))
    return db.session.scalar(query)


def same_request(existing: Job, request: Submission, project_id: int | None) -> Job:
    refuse_other_request(
        {
            "id": existing.id,
            "project_id": existing.project_id,
            "task": existing.task,
            "args": existing.args,
        },
        request,
        project_id,
    )
    return existing


def refuse_other_request(
    existing: dict[str, Any], request: Submission, project_id: int | None
) -> None:
    """IdempotencyConflict unless the job of the request's key (its `id`, `project_id`,
    `task`, `args`) is this very request."""
    if existing["project_id"] != project_id:
        # Keys are unique across projects; never hand out (or name) another project's job.
        raise IdempotencyConflict(
            f"idempotency key {request.idempotency_key!r} is already in use; use a new key"
        )
    if existing["task"] != request.task or existing["args"] != request.args:
        raise IdempotencyConflict(
            f"idempotency key {request.idempotency_key!r} was used for job {existing['id']} "
            "with a different task or arguments; use a new key for a new job"
        )


def get(job_id: str) -> Job:
    job = db.session.get(Job, job_id, options=[selectinload(Job.attempt_rows)])
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
    query = newest_first(Job).options(selectinload(Job.attempt_rows))
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
    if state:
        query = query.where(Job.state == JobState(state))
    if queue:
        query = query.where(Job.queue == queue)
    if task:
        query = query.where(Job.task == task)
    return pagination.page(query, Job.created_at, Job.id, limit=limit, cursor=cursor)
