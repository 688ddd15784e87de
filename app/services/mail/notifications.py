"""Mail other lanes send: the job-finished notification (jobs, dataset batches, generations).

A job submitted with `notify` has its addresses in `jobs.notify_to` and its broker message
carries the NOTIFY_HEADER. `on_task_postrun` looks only for that header, so a job that did
not ask costs one attribute lookup and no database read. The signal fires after the task
base's ledger hooks, so the row it reads is already final; a retried attempt (`retrying`)
sends nothing, and the dedup key keeps a redelivered finished job from sending twice. A job
killed at its hard time limit gets its mail from `on_task_failure` instead.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery import Task
from celery.exceptions import TimeLimitExceeded
from flask import current_app

from app.extensions.ext_database import db
from app.models import Job
from app.models.mail import Mail
from app.services.jobs import NOTIFY_HEADER
from app.services.mail import mails

log = logging.getLogger(__name__)


def job_context(job: Job) -> dict[str, Any]:
    error = {"type": job.error_type, "message": job.error_message} if job.error_type else None
    return {
        "id": job.id,
        "task": job.task,
        "state": job.state.value,
        "queue": job.queue,
        "attempts": job.attempts,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "error": error,
    }


def notify_job_finished(
    celery_app: Celery, job: Job, to: list[str], *, batch: dict[str, Any] | None = None
) -> Mail:
    """Queue the job_finished mail for `job`; a repeated call (a retried callback) sends none.

    With `batch` (an upload batch's summary, see `batch_context`) the mail reports the batch
    that `job` closed rather than the job itself.
    """
    context: dict[str, Any] = {"job": job_context(job)}
    if batch is not None:
        context["batch"] = batch
    mail, _ = mails.queue_mail(
        celery_app,
        template="job_finished",
        to=to,
        context=context,
        dedup_key=f"job-finished:{job.id}",
        # The mail about a job belongs to the job's project.
        project_id=job.project_id,
    )
    return mail


def batch_context(summary: dict[str, Any], errors: list[dict[str, str]]) -> dict[str, Any]:
    """The `batch` part of a job_finished mail from `batches.progress(...)`; JSON only."""
    counts: dict[str, int] = summary["counts"]
    finished_at = summary["finished_at"]
    return {
        "id": summary["id"],
        "dataset_id": summary["dataset_id"],
        "total_documents": summary["total_documents"],
        "completed": counts.get("completed", 0),
        "failed": counts.get("error", 0),
        "segments": summary["segments_done"],
        "finished_at": finished_at.isoformat() if finished_at else None,
        "errors": errors,
    }


def notify_if_finished(celery_app: Celery, job_id: str) -> Mail | None:
    """Queue the job_finished mail if the job asked for one and has reached a final state."""
    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None or not job.notify_to or not job.state.terminal:
        db.session.rollback()
        return None
    return notify_job_finished(celery_app, job, list(job.notify_to))


def on_task_postrun(task: Task | None = None, task_id: str | None = None, **_kw: Any) -> None:
    """Celery signal handler: the job_finished mail of a job submitted with `notify`."""
    if task is None or task_id is None or not getattr(task.request, NOTIFY_HEADER, None):
        return
    if task.request.called_directly:
        return
    _notify_quietly(task, task_id)


def on_task_failure(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    **_kw: Any,
) -> None:
    """Celery signal handler: the mail of a job failed at its hard time limit.

    The worker's main process records that failure after killing the child, so no
    `task_postrun` follows and the message's headers are out of reach: the row itself
    says whether anyone asked. Only hard time limits pay that read; they are rare.
    """
    if sender is None or task_id is None or not isinstance(exception, TimeLimitExceeded):
        return
    _notify_quietly(sender, task_id)


def _notify_quietly(task: Task, task_id: str) -> None:
    try:
        # FlaskTask's context: the task's own app context has ended by now.
        with task._context():
            try:
                notify_if_finished(current_app.extensions["celery"], task_id)
            except Exception:
                db.session.rollback()
                raise
    except Exception:
        # The job's outcome is recorded already; a lost notification must not touch it.
        log.exception("job_finished mail of job %s not queued", task_id)
