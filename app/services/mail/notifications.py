"""Mail other lanes send: the job-finished notification (jobs, dataset batches, generations).

A job submitted with `notify` has its addresses in `jobs.notify_to` and its broker message
carries the NOTIFY_HEADER. `after_run` looks only for that header, so a job that did not
ask costs one attribute lookup and no database read. It runs after the task base recorded
the outcome, so the row it reads is already final; a retried attempt (`retrying`) sends
nothing, and the dedup key keeps a redelivered finished job from sending twice.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery import Task
from celery.exceptions import TimeLimitExceeded
from flask import current_app

from app.extensions.ext_database import db
from app.hooks import Outcome
from app.ledger.publishing import NOTIFY_HEADER
from app.models import Job
from app.models.mail import Mail
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


def after_run(outcome: Outcome) -> None:
    """After-run hook (app/hooks.py): the job_finished mail of a job submitted with `notify`.

    In the run's own process only the message header says whether anyone asked, so a job
    that did not costs no read. A job killed at its hard time limit is recorded by the
    worker's main process, where the headers are out of reach: the row itself says whether
    anyone asked. Only hard time limits pay that read; they are rare.
    """
    task = outcome.task
    if outcome.in_main_process:
        if isinstance(outcome.exception, TimeLimitExceeded):
            _notify_quietly(task, outcome.job_id)
        return
    if task.request.called_directly or not getattr(task.request, NOTIFY_HEADER, None):
        return
    _notify_quietly(task, outcome.job_id)


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
