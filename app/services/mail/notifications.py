"""Mail other lanes send: the job-finished notification (dataset batches, generations)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from app.models import Job
from app.models.mail import Mail
from app.services.mail import mails


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


def notify_job_finished(celery_app: Celery, job: Job, to: list[str]) -> Mail:
    """Queue the job_finished mail for `job`; a repeated call (a retried callback) sends none."""
    mail, _ = mails.queue_mail(
        celery_app,
        template="job_finished",
        to=to,
        context={"job": job_context(job)},
        dedup_key=f"job-finished:{job.id}",
    )
    return mail
